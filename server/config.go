package server

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/kvs-lab/kvs"
	"github.com/sirupsen/logrus"
)

// SyncMode is how a write is made durable before it is acknowledged.
type SyncMode string

// The sync modes. The engine backend writes with kvs.WriteOptions{Sync:
// mode != SyncNone}; what separates SyncGroup from SyncAlways is how the
// engine was opened (kvs.Options.DisableGroupCommit).
const (
	SyncNone   SyncMode = "none"   // no fsync: fastest, a crash may lose recent writes
	SyncGroup  SyncMode = "group"  // fsync per write, concurrent writers share fsyncs (group commit)
	SyncAlways SyncMode = "always" // fsync per write, none shared (the engine must be opened with kvs.Options.DisableGroupCommit)
)

// ParseSyncMode parses "none", "group" or "always". The error names the bad
// value and the choices.
func ParseSyncMode(s string) (SyncMode, error) {
	switch m := SyncMode(s); m {
	case SyncNone, SyncGroup, SyncAlways:
		return m, nil
	}
	return "", fmt.Errorf("server: sync mode %q is not one of %q, %q, %q", s, SyncNone, SyncGroup, SyncAlways)
}

// Defaults for the zero fields of Config.
const (
	DefaultAddr         = "127.0.0.1:6380"
	DefaultMaxClients   = 10000
	DefaultMaxBulkBytes = 512 << 20 // Redis's proto-max-bulk-len
	DefaultMaxArgs      = 1 << 20
	// DefaultMaxQueryBytes bounds one command's buffered bytes; Config
	// raises it when MaxValueBytes needs more (see Config.MaxQueryBytes).
	DefaultMaxQueryBytes = 64 << 20
	// DefaultWriteTimeout bounds one write of replies when IdleTimeout is
	// not set (see Config.WriteTimeout).
	DefaultWriteTimeout = 30 * time.Second
	// DefaultMaxReplyBytes bounds what one command's reply may hold in
	// memory (see Config.MaxReplyBytes).
	DefaultMaxReplyBytes = 256 << 20
	// DefaultPipelineBatch is Config.PipelineBatch when left zero.
	DefaultPipelineBatch = 64
	// pipelineBatchBytes bounds the keys and values of one merged write.
	pipelineBatchBytes = 1 << 20
)

// Config configures a Server. The zero value of every field means its
// default; New fills them in and calls Validate.
type Config struct {
	Addr         string // default "127.0.0.1:6380"
	Password     string // requirepass: clients must AUTH first; "" means none
	Insecure     bool   // allow a non-loopback Addr without a Password
	TLSCertFile  string // both set: serve TLS
	TLSKeyFile   string
	MaxClients   int   // default 10000; one over gets "-ERR max number of clients reached" and is closed
	MaxBulkBytes int64 // largest bulk string accepted by the protocol, default 512 MiB (see the package doc: larger than MaxValueBytes is skipped, not buffered)
	MaxArgs      int   // most arguments in one command, default 1<<20
	// MaxKeyBytes is the longest key accepted; default kvs.MaxKeySize.
	MaxKeyBytes int
	// MaxValueBytes is the longest value accepted; default
	// kvs.DefaultMaxValueSize. An argument longer than both MaxKeyBytes
	// and MaxValueBytes is never buffered: its bytes are skipped as they
	// arrive and the command fails with an error, keeping the connection.
	MaxValueBytes int
	// MaxQueryBytes bounds the bytes of one command held in memory (and
	// so a connection's unparsed input). A command over it closes the
	// connection, as Redis's client-query-buffer-limit does. Default
	// DefaultMaxQueryBytes, or enough for a SET of the largest key and
	// value when that is more.
	MaxQueryBytes int64
	IdleTimeout   time.Duration // 0: none; idle clients are closed
	// WriteTimeout bounds each write of replies to a client: a client
	// that does not read them within it is closed. Default IdleTimeout
	// when that is set, else DefaultWriteTimeout (30 s). Once shutdown
	// has begun each write gets at most one second.
	WriteTimeout time.Duration
	// MaxReplyBytes bounds the bytes one command's reply holds in memory:
	// an MGET whose values pass it fails with "ERR reply too large ...",
	// and a SCAN call stops early (returning a cursor) once its keys
	// reach it. Default DefaultMaxReplyBytes (256 MiB), or MaxValueBytes
	// when that is more.
	MaxReplyBytes int64
	// PipelineBatch is the most consecutive plain SETs (no NX, XX or GET)
	// of one client's pipeline that the server merges into one backend
	// write (Backend.MSet): one engine batch, one WAL record, one fsync
	// under group or always, instead of one per SET. Each SET still gets
	// its own +OK, in order, once the merged write is done; any other
	// command, the end of what the client sent so far, pipelineBatchBytes
	// of keys and values, or the limit ends a run. 1 turns merging off.
	// Default DefaultPipelineBatch.
	PipelineBatch int
	Logger        *logrus.Entry // default: logrus to stderr at Info
	HTTPAddr      string        // "" = off; else serves /metrics, /debug/pprof/, / (status page)
}

// minQueryBytes is the room a SET of the largest key and value needs, with
// slack for the command name and the RESP headers.
func (c *Config) minQueryBytes() int64 {
	return int64(c.MaxKeyBytes) + int64(c.MaxValueBytes) + 4096
}

// ensureDefaults fills in the zero fields.
func (c *Config) ensureDefaults() {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.MaxClients == 0 {
		c.MaxClients = DefaultMaxClients
	}
	if c.MaxBulkBytes == 0 {
		c.MaxBulkBytes = DefaultMaxBulkBytes
	}
	if c.MaxArgs == 0 {
		c.MaxArgs = DefaultMaxArgs
	}
	if c.MaxKeyBytes == 0 {
		c.MaxKeyBytes = kvs.MaxKeySize
	}
	if c.MaxValueBytes == 0 {
		c.MaxValueBytes = kvs.DefaultMaxValueSize
	}
	if c.MaxQueryBytes == 0 {
		c.MaxQueryBytes = max(DefaultMaxQueryBytes, c.minQueryBytes())
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
		if c.IdleTimeout > 0 {
			c.WriteTimeout = c.IdleTimeout
		}
	}
	if c.PipelineBatch == 0 {
		c.PipelineBatch = DefaultPipelineBatch
	}
	if c.MaxReplyBytes == 0 {
		// At least one value: an MGET of one key always works as GET does.
		c.MaxReplyBytes = max(DefaultMaxReplyBytes, int64(c.MaxValueBytes))
	}
	if c.Logger == nil {
		l := logrus.New()
		l.SetOutput(os.Stderr)
		l.SetLevel(logrus.InfoLevel)
		c.Logger = logrus.NewEntry(l)
	}
}

// Validate reports the first field with an impossible or unsafe value,
// naming it. Zero fields are valid: they mean the defaults.
func (c *Config) Validate() error {
	d := *c
	d.ensureDefaults()
	host, _, err := net.SplitHostPort(d.Addr)
	if err != nil {
		return fmt.Errorf("server: addr %q: %v", d.Addr, err)
	}
	if !isLoopback(host) && d.Password == "" && !d.Insecure {
		return fmt.Errorf("server: addr %q is not loopback: set a password (requirepass) or --insecure", d.Addr)
	}
	if d.HTTPAddr != "" {
		hh, _, err := net.SplitHostPort(d.HTTPAddr)
		if err != nil {
			return fmt.Errorf("server: http addr %q: %v", d.HTTPAddr, err)
		}
		if !isLoopback(hh) && !d.Insecure {
			// NB: the HTTP port has no authentication at all (pprof,
			// metrics), so a password does not make it safe to expose.
			return fmt.Errorf("server: http addr %q is not loopback: the status port has no authentication; use --insecure to expose it", d.HTTPAddr)
		}
	}
	if (d.TLSCertFile == "") != (d.TLSKeyFile == "") {
		return fmt.Errorf("server: tls cert file %q and key file %q: set both or neither", d.TLSCertFile, d.TLSKeyFile)
	}
	switch {
	case d.MaxClients < 0:
		return fmt.Errorf("server: max clients %d is negative", d.MaxClients)
	case d.PipelineBatch < 0:
		return fmt.Errorf("server: pipeline batch %d is negative", d.PipelineBatch)
	case d.MaxBulkBytes < 0:
		return fmt.Errorf("server: max bulk bytes %d is negative", d.MaxBulkBytes)
	case d.MaxArgs < 0:
		return fmt.Errorf("server: max args %d is negative", d.MaxArgs)
	case d.MaxKeyBytes < 0 || d.MaxKeyBytes > kvs.MaxKeySize:
		return fmt.Errorf("server: max key bytes %d is not in [1, %d]", d.MaxKeyBytes, kvs.MaxKeySize)
	case d.MaxValueBytes < 0 || d.MaxValueBytes > 1<<30:
		return fmt.Errorf("server: max value bytes %d is not in [1, 1 GiB]", d.MaxValueBytes)
	case d.MaxQueryBytes < d.minQueryBytes():
		return fmt.Errorf("server: max query bytes %d is below %d, what a SET of the largest key (%d) and value (%d) needs", d.MaxQueryBytes, d.minQueryBytes(), d.MaxKeyBytes, d.MaxValueBytes)
	case d.IdleTimeout < 0:
		return fmt.Errorf("server: idle timeout %v is negative", d.IdleTimeout)
	case d.WriteTimeout < 0:
		return fmt.Errorf("server: write timeout %v is negative", d.WriteTimeout)
	case d.MaxReplyBytes < 0:
		return fmt.Errorf("server: max reply bytes %d is negative", d.MaxReplyBytes)
	}
	return nil
}

// isLoopback reports whether host (from an address) only accepts local
// connections. An empty host means every interface, so it is not.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// tlsConfig loads the certificate pair, or returns nil when TLS is off.
func (c *Config) tlsConfig() (*tls.Config, error) {
	if c.TLSCertFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("server: load tls cert %q and key %q: %w", c.TLSCertFile, c.TLSKeyFile, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}
