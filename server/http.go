package server

import (
	"errors"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/kvs-lab/kvs"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// serveHTTP starts the side port: /metrics, /debug/pprof/ and the status
// page, on a mux of its own (never http.DefaultServeMux).
func (s *Server) serveHTTP() error {
	ln, err := net.Listen("tcp", s.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("server: listen on http addr %s: %w", s.cfg.HTTPAddr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg}))
	// NB: no /debug/pprof/cmdline: it would show os.Args, and with them
	// --requirepass, to anyone who reaches the port. So the handlers are
	// registered one by one, and pprof.Index only for the index page
	// itself (it would serve any profile name below it).
	mux.HandleFunc("/debug/pprof/{$}", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	for _, name := range pprofProfiles {
		mux.Handle("/debug/pprof/"+name, pprof.Handler(name))
	}
	mux.HandleFunc("/{$}", s.statusPage)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	// Register the HTTP server under s.mu, and only while not closing:
	// beginShutdown sets closing under s.mu and later shuts down whatever
	// is registered, so the HTTP server either is shut down with the
	// server or never starts.
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		ln.Close()
		return errClosing
	}
	s.httpLn, s.httpSrv = ln, hs
	s.mu.Unlock()
	s.log.WithField("addr", ln.Addr().String()).Info("serving HTTP (metrics, pprof, status)")
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.WithError(err).Error("http server stopped")
		}
	}()
	return nil
}

// pprofProfiles are the runtime/pprof profiles served by name.
var pprofProfiles = []string{"allocs", "block", "goroutine", "heap", "mutex", "threadcreate"}

// errClosing is serveHTTP's error when shutdown began first.
var errClosing = errors.New("server: shutting down")

// statusData is what the status page shows.
type statusData struct {
	Backend, SyncMode, Uptime string
	Clients                   int
	Commands, Errors, Conns   int64
	Stats                     kvs.Stats
	Fields                    []InfoField
	Extra                     []InfoSection
}

var statusTmpl = template.Must(template.New("status").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>kvs {{.Backend}}</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1.5em}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}th{background:#eee}</style>
</head><body>
<h1>kvs serving {{.Backend}}</h1>
<p>Sync mode <b>{{.SyncMode}}</b>, up {{.Uptime}}, {{.Clients}} clients connected, {{.Conns}} connections so far,
{{.Commands}} commands processed ({{.Errors}} answered with an error).</p>
<h2>Engine</h2>
<table>{{range .Fields}}<tr><th>{{.Key}}</th><td>{{.Value}}</td></tr>{{end}}</table>
{{if .Stats.Levels}}<h2>LSM levels</h2>
<p>L0 holds whole memtable flushes, which may overlap; every deeper level is one sorted run of tables whose target size grows tenfold per level. A compaction merges a level into the next when its score passes 1 (for L0: table count over the trigger; below: bytes over the target).</p>
<table><tr><th>level</th><th>tables</th><th>bytes</th><th>score</th><th>compactions</th><th>bytes read</th><th>bytes written</th></tr>
{{range .Stats.Levels}}<tr><td>L{{.Level}}</td><td>{{.Files}}</td><td>{{.Bytes}}</td><td>{{printf "%.2f" .Score}}</td><td>{{.Compactions}}</td><td>{{.BytesRead}}</td><td>{{.BytesWritten}}</td></tr>{{end}}
</table>{{end}}
{{if .Stats.Segments}}<h2>Bitcask segments</h2>
<p>Append-only data files, oldest first; a merge rewrites the live records of sealed segments and deletes them.</p>
<table><tr><th>id</th><th>bytes</th><th>live bytes</th><th>records</th><th>live records</th><th>active</th><th>hint</th></tr>
{{range .Stats.Segments}}<tr><td>{{.ID}}</td><td>{{.Bytes}}</td><td>{{.LiveBytes}}</td><td>{{.Records}}</td><td>{{.LiveRecords}}</td><td>{{.Active}}</td><td>{{.Hint}}</td></tr>{{end}}
</table>{{end}}
{{range .Extra}}<h2>{{.Name}}</h2><table>{{range .Fields}}<tr><th>{{.Key}}</th><td>{{.Value}}</td></tr>{{end}}</table>{{end}}
<p><a href="/metrics">/metrics</a> · <a href="/debug/pprof/">/debug/pprof/</a></p>
</body></html>
`))

func (s *Server) statusPage(w http.ResponseWriter, _ *http.Request) {
	st := s.b.Stats()
	var fields []InfoField
	for _, f := range engineFields(st) {
		if len(f.Key) > 5 && (f.Key[:5] == "level" || f.Key[:5] == "segme") {
			continue // shown in their own tables
		}
		fields = append(fields, f)
	}
	d := statusData{
		Backend: s.b.Name(), SyncMode: string(s.b.SyncMode()), Uptime: time.Since(s.started).Round(time.Second).String(),
		Clients: s.clientCount(), Commands: s.nCommands.Load(), Errors: s.nErrors.Load(), Conns: s.nConns.Load(),
		Stats: st, Fields: fields, Extra: s.b.InfoSections(),
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := statusTmpl.Execute(w, d); err != nil {
		s.log.WithError(err).Warn("status page")
	}
}
