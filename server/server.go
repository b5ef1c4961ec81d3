package server

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
)

// Server serves RESP2 over a Backend. Create it with New; it is safe for
// concurrent use.
type Server struct {
	b       Backend
	cfg     Config
	log     *logrus.Entry
	tlsConf *tls.Config
	reg     *prometheus.Registry
	m       *metrics
	started time.Time
	cursors cursorTable
	// passDigest is the SHA-256 of Config.Password, which AUTH compares
	// in constant time.
	passDigest [sha256.Size]byte
	serverCounters

	mu       sync.Mutex
	ln       net.Listener
	httpLn   net.Listener
	httpSrv  *http.Server
	conns    map[*conn]struct{}
	nextID   int64
	closing  atomic.Bool
	wg       sync.WaitGroup // one per connection goroutine
	done     chan struct{}  // closed when shutdown begins
	finished chan struct{}  // closed when shutdown has closed the backend
	shutOnce sync.Once
	shutErr  error
}

// New returns a server over b. It validates c (see Config.Validate) and
// loads the TLS certificate; it does not listen yet.
func New(b Backend, c Config) (*Server, error) {
	if b == nil {
		return nil, errors.New("server: nil backend")
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c.ensureDefaults()
	tc, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	s := &Server{
		b:        b,
		cfg:      c,
		log:      c.Logger.WithField("component", "server"),
		tlsConf:  tc,
		reg:      prometheus.NewRegistry(),
		started:  time.Now(),
		conns:    make(map[*conn]struct{}),
		done:     make(chan struct{}),
		finished: make(chan struct{}),
	}
	s.cursors.init()
	s.passDigest = sha256.Sum256([]byte(c.Password))
	s.m = newMetrics(s)
	return s, nil
}

// Registry returns the server's own Prometheus registry (not the global
// one): command, connection and engine metrics.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// Done returns a channel closed when shutdown begins: Shutdown was called
// or a client sent SHUTDOWN.
func (s *Server) Done() <-chan struct{} { return s.done }

// Addr returns the RESP listener's address, or nil before listening.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// HTTPAddr returns the HTTP listener's address, or nil when it is off (or
// not listening yet).
func (s *Server) HTTPAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.httpLn == nil {
		return nil
	}
	return s.httpLn.Addr()
}

// ListenAndServe listens on Config.Addr (with TLS when configured) and on
// Config.HTTPAddr, and serves until Shutdown. It returns nil after a clean
// Shutdown, once the backend is closed. When it cannot listen it returns
// the error without shutting down: call Shutdown to close the backend.
func (s *Server) ListenAndServe() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("server: listen on %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ln)
}

// Serve serves RESP on ln (wrapped in TLS when configured), and HTTP on
// Config.HTTPAddr when set, until Shutdown. It returns nil after a clean
// Shutdown, once the backend is closed. Serve takes ownership of ln.
func (s *Server) Serve(ln net.Listener) error {
	if s.tlsConf != nil {
		ln = tls.NewListener(ln, s.tlsConf)
	}
	s.mu.Lock()
	if s.closing.Load() || s.ln != nil {
		s.mu.Unlock()
		ln.Close()
		if s.closing.Load() {
			return errors.New("server: Serve after Shutdown")
		}
		return errors.New("server: Serve called twice")
	}
	s.ln = ln
	s.mu.Unlock()
	if s.cfg.HTTPAddr != "" {
		if err := s.serveHTTP(); err != nil {
			s.beginShutdown()
			<-s.finished
			if errors.Is(err, errClosing) {
				return s.shutErr
			}
			return err
		}
	}
	s.log.WithFields(logrus.Fields{"addr": ln.Addr().String(), "backend": s.b.Name(), "sync": s.b.SyncMode(), "tls": s.tlsConf != nil}).Info("serving RESP")
	s.checkFileLimit()
	var backoff time.Duration
	var lastWarn time.Time
	failures := 0
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				<-s.finished
				return s.shutErr
			}
			if errors.Is(err, net.ErrClosed) {
				s.log.WithError(err).Error("listener closed; shutting down")
				s.beginShutdown()
				<-s.finished
				return fmt.Errorf("server: accept: %w", err)
			}
			// Anything else is taken as temporary: out of file
			// descriptors (EMFILE, ENFILE), a connection aborted or
			// reset before it was accepted, a timeout. Back off, as
			// net/http does, instead of spinning or giving up: the
			// clients already connected keep being served.
			backoff = min(max(2*backoff, acceptBackoffMin), acceptBackoffMax)
			failures++
			if now := time.Now(); now.Sub(lastWarn) >= acceptWarnEvery {
				s.log.WithError(err).WithFields(logrus.Fields{"failures": failures, "retry_in": backoff}).Warn("accept failed; retrying")
				lastWarn, failures = now, 0
			}
			select {
			case <-time.After(backoff):
			case <-s.done:
			}
			continue
		}
		backoff = 0
		s.accept(nc)
	}
}

// Accept retries: the delay doubles from acceptBackoffMin up to
// acceptBackoffMax, and the warning is logged at most every
// acceptWarnEvery.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
	acceptWarnEvery  = 10 * time.Second
)

// fileLimitMargin is the number of file descriptors kept for the engine's
// files, the listeners and the HTTP port when checking MaxClients against
// RLIMIT_NOFILE.
const fileLimitMargin = 128

// checkFileLimit warns when MaxClients connections could exhaust the
// process's file descriptors: then accepts fail with EMFILE (and are
// retried) before the server turns clients away with "max number of
// clients reached", and the engine may fail to open files.
func (s *Server) checkFileLimit() {
	soft, ok := fileLimit()
	if !ok || soft <= fileLimitMargin || uint64(s.cfg.MaxClients) <= soft-fileLimitMargin {
		return
	}
	s.log.WithFields(logrus.Fields{"max_clients": s.cfg.MaxClients, "rlimit_nofile": soft}).
		Warnf("max clients is above the open file limit minus %d; raise the limit (ulimit -n) or lower max clients", fileLimitMargin)
}

// accept registers a new connection and starts its goroutine, or turns it
// away when the server is full or closing.
func (s *Server) accept(nc net.Conn) {
	s.nConns.Add(1)
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		nc.Close()
		return
	}
	if len(s.conns) >= s.cfg.MaxClients {
		s.mu.Unlock()
		s.nRejected.Add(1)
		// The write must not hold up the accept loop on a client that
		// does not read.
		go func() {
			_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = nc.Write([]byte("-ERR max number of clients reached\r\n"))
			nc.Close()
		}()
		return
	}
	s.nextID++
	c := &conn{s: s, nc: nc, id: s.nextID, addr: nc.RemoteAddr().String(), created: time.Now()}
	c.authed = s.cfg.Password == ""
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	s.m.clients.Inc()
	go c.serve()
}

// dropConn closes c and forgets it.
func (s *Server) dropConn(c *conn) {
	c.nc.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.m.clients.Dec()
	s.wg.Done()
}

// Shutdown stops accepting, lets every connection finish the commands it
// has read (writing their replies), closes the connections and then the
// backend, which syncs and closes the engine. When ctx ends first, the
// remaining connections are closed at once (replies may be lost) and
// ctx's error is returned once the backend is closed. Shutdown is
// idempotent: later calls wait for the first and return its result.
func (s *Server) Shutdown(ctx context.Context) error {
	s.beginShutdown()
	select {
	case <-s.finished:
		return s.shutErr
	case <-ctx.Done():
	}
	s.mu.Lock()
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	<-s.finished
	return errors.Join(ctx.Err(), s.shutErr)
}

// beginShutdown starts the shutdown once: it marks the server closing,
// closes the listeners, wakes idle connections and, in the background,
// waits for them and closes the backend.
func (s *Server) beginShutdown() {
	s.shutOnce.Do(func() {
		s.mu.Lock()
		s.closing.Store(true)
		close(s.done)
		if s.ln != nil {
			s.ln.Close()
		}
		// A past read deadline wakes connections blocked in Read; a
		// connection running a command finishes it, writes its replies
		// and then sees closing (see conn.readMore).
		// A short write deadline stops a connection blocked writing to a
		// client that does not read (see conn.write).
		past := time.Unix(1, 0)
		wdl := time.Now().Add(min(s.cfg.WriteTimeout, shutdownWriteTimeout))
		for c := range s.conns {
			_ = c.nc.SetReadDeadline(past)
			_ = c.nc.SetWriteDeadline(wdl)
		}
		s.mu.Unlock()
		s.log.Info("shutting down")
		go func() {
			s.wg.Wait()
			var errs []error
			// NB: serveHTTP registers httpSrv under s.mu only while not
			// closing, and closing was set under s.mu above, so httpSrv
			// is final here: an HTTP server cannot start after this and
			// outlive the backend.
			s.mu.Lock()
			hs := s.httpSrv
			s.mu.Unlock()
			if hs != nil {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				if err := hs.Shutdown(ctx); err != nil {
					hs.Close()
				}
				cancel()
			}
			if err := s.b.Close(); err != nil {
				errs = append(errs, fmt.Errorf("server: close backend: %w", err))
			}
			s.shutErr = errors.Join(errs...)
			if s.shutErr != nil {
				s.log.WithError(s.shutErr).Error("shutdown")
			} else {
				s.log.Info("shut down")
			}
			close(s.finished)
		}()
	})
}
