package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/kvs-lab/kvs/server"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// serveFlags are kvs serve's own flags; the engine flags are the globals.
type serveFlags struct {
	config      string
	addr        string
	password    string
	insecure    bool
	tlsCert     string
	tlsKey      string
	maxClients  int
	pipeBatch   int
	maxBulk     string
	idleTimeout time.Duration
	http        string
	logFormat   string
	shutdown    time.Duration
}

// passwordEnv names the environment variable read when --requirepass is
// not given.
const passwordEnv = "KVS_REQUIREPASS"

// shutdownGrace bounds how long a graceful shutdown waits for in-flight
// commands before closing their connections.
const shutdownGrace = 30 * time.Second

func newServeCmd(g *globals) *cobra.Command {
	f := &serveFlags{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve an engine over the Redis protocol (RESP2)",
		Long: `serve opens the engine in --dir and answers Redis clients (redis-cli,
redis-benchmark, go-redis, ...) on --addr: GET, SET, DEL, MGET, MSET, INCR,
APPEND, SCAN, INFO and the rest listed in docs/06-serving.md, plus
KVS.COMPACT and KVS.STATS.

--sync chooses durability: group (the default: every write is fsynced before
its reply, concurrent writers share fsyncs), always (one fsync per write,
none shared) or none (no fsync: a crash may lose the newest writes).

It listens on 127.0.0.1 unless told otherwise, and refuses a non-loopback
--addr without --requirepass or --insecure. Without --requirepass the
password is read from the KVS_REQUIREPASS environment variable, which,
unlike a flag, other users cannot see in the process list. --http ADDR adds a side port
with Prometheus /metrics, /debug/pprof/ and a status page.

--config FILE reads a TOML file whose keys are these flags' names
(addr = "127.0.0.1:6380", sync = "none", memtable-size = "8MiB", ...);
a flag given on the command line wins over the file.

SIGINT or SIGTERM (or the SHUTDOWN command) stops the server gracefully:
no new connections, in-flight commands finish, the engine is synced and
closed. A second SIGINT or SIGTERM during the shutdown kills the process
at once.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var fromFile []string
			if f.config != "" {
				var err error
				if fromFile, err = applyConfigFile(cmd, f.config); err != nil {
					return err
				}
			}
			return nameConfigKey(runServe(cmd, g, f), f.config, fromFile)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "", "TOML file with defaults for these flags (keys are flag names; flags win)")
	fl.StringVar(&f.addr, "addr", "127.0.0.1:6380", "address to listen on for Redis clients")
	fl.StringVar(&f.password, "requirepass", "", "password clients must AUTH with (needed for a non-loopback --addr); when empty, $"+passwordEnv+" is used, which other users cannot read in the process list")
	fl.BoolVar(&f.insecure, "insecure", false, "allow a non-loopback --addr without --requirepass")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "TLS certificate file (PEM); with --tls-key, serve TLS")
	fl.StringVar(&f.tlsKey, "tls-key", "", "TLS private key file (PEM)")
	fl.IntVar(&f.maxClients, "max-clients", 10000, "most clients connected at once")
	fl.IntVar(&f.pipeBatch, "pipeline-batch", server.DefaultPipelineBatch, "most consecutive plain SETs of one client's pipeline merged into one engine write; 1 turns merging off")
	fl.StringVar(&f.maxBulk, "max-bulk-size", "", "largest bulk string accepted, e.g. 64MiB (default 512MiB, as Redis)")
	fl.DurationVar(&f.idleTimeout, "idle-timeout", 0, "close clients idle this long (0: never)")
	fl.StringVar(&f.http, "http", "", "address of the HTTP side port for /metrics, /debug/pprof/ and a status page (off when empty)")
	fl.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fl.DurationVar(&f.shutdown, "shutdown-timeout", shutdownGrace, "longest wait for in-flight commands at shutdown")
	return cmd
}

// configKeys are the flags a --config file may set: serve's own and the
// global engine flags. --config itself and --json are not among them.
func configKeys(cmd *cobra.Command) map[string]*pflag.Flag {
	keys := map[string]*pflag.Flag{}
	add := func(fl *pflag.Flag) {
		if fl.Name != "config" && fl.Name != "json" && fl.Name != "help" {
			keys[fl.Name] = fl
		}
	}
	cmd.Flags().VisitAll(add)
	cmd.InheritedFlags().VisitAll(add)
	return keys
}

// applyConfigFile sets every flag the TOML file at path names and the
// command line did not, and returns their names. An unknown key, a table
// or array, or a value the flag cannot take is an error naming the file
// and the key.
func applyConfigFile(cmd *cobra.Command, path string) ([]string, error) {
	var raw map[string]any
	md, err := toml.DecodeFile(path, &raw)
	if err != nil {
		return nil, usagef("--config %s: %v", path, err)
	}
	keys := configKeys(cmd)
	var set []string
	names := make([]string, 0, len(raw))
	for k := range raw {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fl, ok := keys[k]
		if !ok {
			known := make([]string, 0, len(keys))
			for n := range keys {
				known = append(known, n)
			}
			sort.Strings(known)
			return nil, usagef("--config %s: unknown key %q (keys are flag names: %s)", path, k, strings.Join(known, ", "))
		}
		var val string
		switch v := raw[k].(type) {
		case string:
			val = v
		case int64:
			val = strconv.FormatInt(v, 10)
		case bool:
			val = strconv.FormatBool(v)
		case float64:
			val = strconv.FormatFloat(v, 'f', -1, 64)
		default:
			return nil, usagef("--config %s: key %q: a %s is not a flag value (use a string, number or boolean)", path, k, md.Type(k))
		}
		if fl.Changed {
			continue // the command line wins
		}
		if err := fl.Value.Set(val); err != nil {
			return nil, usagef("--config %s: key %q: %q: %v", path, k, val, err)
		}
		fl.Changed = true
		set = append(set, k)
	}
	return set, nil
}

// nameConfigKey points an error about a flag ("--sync: ...") at the config
// file when the flag's value came from there, so the user knows which
// line to fix.
func nameConfigKey(err error, path string, fromFile []string) error {
	if err == nil {
		return nil
	}
	for _, k := range fromFile {
		if strings.HasPrefix(err.Error(), "--"+k+":") {
			return usagef("--config %s: key %q: %v", path, k, err)
		}
	}
	return err
}

func runServe(cmd *cobra.Command, g *globals, f *serveFlags) error {
	mode, err := server.ParseSyncMode(orDefault(g.sync, string(server.SyncGroup)))
	if err != nil {
		return usagef("--sync: %v", err)
	}
	// A server says what it is doing (listening, shutting down) unless
	// told otherwise; the other commands stay quiet at warn.
	level := g.logLevel
	if fl := cmd.Flags().Lookup("log-level"); fl == nil || !fl.Changed {
		level = "info"
	}
	logger, err := serveLogger(cmd.ErrOrStderr(), level, f.logFormat)
	if err != nil {
		return err
	}
	password := f.password
	if password == "" {
		password = os.Getenv(passwordEnv)
	}
	cfg := server.Config{
		Addr: f.addr, Password: password, Insecure: f.insecure,
		TLSCertFile: f.tlsCert, TLSKeyFile: f.tlsKey,
		MaxClients: f.maxClients, IdleTimeout: f.idleTimeout, PipelineBatch: f.pipeBatch,
		HTTPAddr: f.http, Logger: logger,
	}
	if f.maxClients <= 0 {
		return usagef("--max-clients: %d is not a positive count", f.maxClients)
	}
	if f.pipeBatch <= 0 {
		return usagef("--pipeline-batch: %d is not a positive count", f.pipeBatch)
	}
	if f.idleTimeout < 0 {
		return usagef("--idle-timeout: %v is negative", f.idleTimeout)
	}
	if f.maxBulk != "" {
		n, err := parseBytes(f.maxBulk)
		if err != nil || n <= 0 {
			return usagef("--max-bulk-size: %q is not a positive size such as 64MiB", f.maxBulk)
		}
		cfg.MaxBulkBytes = n
	}
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}

	// Open the engine only once the configuration is known to be good, so
	// that a typo never leaves an engine directory behind.
	o, err := g.options(cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	o.Logger = logger.WithField("dir", g.dir)
	o.DisableGroupCommit = mode == server.SyncAlways
	e, name, err := g.openWith(o, true)
	if err != nil {
		return err
	}
	cfg.MaxValueBytes = o.EnsureDefaults().MaxValueSize
	srv, err := server.New(server.NewEngineBackend(name, e, mode), cfg)
	if err != nil {
		e.Close()
		return err
	}
	if err := serveUntilStopped(cmd, srv, logger, f.shutdown); err != nil {
		return fmt.Errorf("kvs serve: %w", err)
	}
	logger.Info("engine closed")
	return nil
}

// serveUntilStopped runs srv until a client sends SHUTDOWN or the process
// gets SIGINT or SIGTERM, then shuts it down gracefully, giving in-flight
// commands up to grace. It returns a listening error or a failed shutdown
// (which closes the backend).
func serveUntilStopped(cmd *cobra.Command, srv *server.Server, logger *logrus.Entry, grace time.Duration) error {
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.ListenAndServe() }()
	var serveErr error
	select {
	case serveErr = <-served:
		// Listening failed, or a SHUTDOWN finished the server on its own.
		served = nil
	case <-srv.Done():
	case <-ctx.Done():
		logger.Info("signal received, shutting down")
	}
	// Restore the default signal behaviour: a second SIGINT or SIGTERM
	// during a slow shutdown kills the process at once.
	stop()
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if served != nil {
		serveErr = <-served
	}
	if serveErr != nil && !errors.Is(serveErr, net.ErrClosed) {
		return serveErr
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// serveLogger makes the server's logger: level from --log-level, text or
// JSON lines on stderr.
func serveLogger(w io.Writer, level, format string) (*logrus.Entry, error) {
	lvl, err := logrus.ParseLevel(level)
	if err != nil {
		return nil, usagef("--log-level: %q is not debug, info, warn or error", level)
	}
	l := logrus.New()
	l.SetOutput(w)
	l.SetLevel(lvl)
	switch format {
	case "text":
		l.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
	case "json":
		l.SetFormatter(&logrus.JSONFormatter{})
	default:
		return nil, usagef("--log-format: %q is not text or json", format)
	}
	return logrus.NewEntry(l), nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
