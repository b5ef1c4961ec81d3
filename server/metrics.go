package server

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// cmdMetrics are one command's metric children, resolved once in New so
// that a command costs no label lookup.
type cmdMetrics struct {
	calls   prometheus.Counter
	errors  prometheus.Counter
	latency prometheus.Observer
}

// metrics are the server's Prometheus metrics, all in Server.Registry.
type metrics struct {
	cmds           []cmdMetrics // by command id
	unknown        prometheus.Counter
	protocolErrors prometheus.Counter
	clients        prometheus.Gauge
}

// serverCounters are the server-wide counters INFO shows; the registry
// exports them through CounterFuncs, so each costs one atomic add.
type serverCounters struct {
	nCommands, nErrors, nConns, nRejected, nBytesIn, nBytesOut atomic.Int64
}

func newMetrics(s *Server) *metrics {
	const ns = "kvs_server"
	calls := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "commands_total", Help: "Commands processed, by command."}, []string{"cmd"})
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "command_errors_total", Help: "Commands answered with an error, by command."}, []string{"cmd"})
	lat := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "command_duration_seconds", Help: "Command latency in the server (parse to reply buffered), by command.",
		Buckets: prometheus.ExponentialBuckets(1e-6, 4, 12)}, []string{"cmd"})
	m := &metrics{
		unknown:        prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "unknown_commands_total", Help: "Commands with a name the server does not know."}),
		protocolErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "protocol_errors_total", Help: "Connections closed for a RESP protocol error or an oversized command."}),
		clients:        prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "connected_clients", Help: "Clients connected now."}),
	}
	fn := func(name, help string, v *atomic.Int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help}, func() float64 { return float64(v.Load()) })
	}
	m.cmds = make([]cmdMetrics, len(commands))
	for i, c := range commands {
		m.cmds[i] = cmdMetrics{calls: calls.WithLabelValues(c.name), errors: errs.WithLabelValues(c.name), latency: lat.WithLabelValues(c.name)}
	}
	s.reg.MustRegister(calls, errs, lat, m.unknown, m.protocolErrors, m.clients,
		fn("connections_total", "Connections accepted, including rejected ones.", &s.nConns),
		fn("rejected_connections_total", "Connections refused because MaxClients was reached.", &s.nRejected),
		fn("net_input_bytes_total", "Bytes read from clients.", &s.nBytesIn),
		fn("net_output_bytes_total", "Bytes written to clients.", &s.nBytesOut),
		fn("processed_commands_total", "Commands processed, all commands together.", &s.nCommands),
		&engineCollector{b: s.b}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// engineCollector exports the backend's kvs.Stats as gauges, read at
// scrape time.
type engineCollector struct {
	b Backend
}

var (
	engineLabels = []string{"engine"}
	engDescs     = map[string]*prometheus.Desc{}
	engineGauges = []struct{ name, help string }{
		{"live_keys", "Live keys (exact for bitcask, an estimate for lsm)."},
		{"live_bytes", "Key and value bytes of the live keys."},
		{"user_bytes_written", "Key and value bytes accepted by writes since open."},
		{"disk_bytes_written", "Bytes written to files since open."},
		{"bytes_on_disk", "Size of the engine's files now."},
		{"write_amp", "Disk bytes written per user byte written."},
		{"space_amp", "Bytes on disk per live byte."},
		{"read_amp", "File reads per Get."},
		{"gets", "Get calls since open."},
		{"syncs", "Fsyncs since open."},
		{"compactions", "Completed merges or compactions since open."},
		{"compaction_seconds", "Time spent in merges or compactions since open."},
		{"stall_seconds", "Time writers waited on write slowdown or stop."},
		{"index_bytes", "Estimated memory of in-memory indexes."},
		{"segments", "Bitcask data files."},
	}
	levelFilesDesc = prometheus.NewDesc("kvs_engine_level_files", "LSM tables per level.", []string{"engine", "level"}, nil)
	levelBytesDesc = prometheus.NewDesc("kvs_engine_level_bytes", "LSM bytes per level.", []string{"engine", "level"}, nil)
)

func init() {
	for _, g := range engineGauges {
		engDescs[g.name] = prometheus.NewDesc("kvs_engine_"+g.name, g.help, engineLabels, nil)
	}
}

func (e *engineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range engDescs {
		ch <- d
	}
	ch <- levelFilesDesc
	ch <- levelBytesDesc
}

func (e *engineCollector) Collect(ch chan<- prometheus.Metric) {
	st := e.b.Stats()
	v := map[string]float64{
		"live_keys":          float64(st.LiveKeys),
		"live_bytes":         float64(st.LiveBytes),
		"user_bytes_written": float64(st.UserBytesWritten),
		"disk_bytes_written": float64(st.DiskBytesWritten),
		"bytes_on_disk":      float64(st.BytesOnDisk),
		"write_amp":          st.WriteAmp(),
		"space_amp":          st.SpaceAmp(),
		"read_amp":           st.ReadAmp(),
		"gets":               float64(st.Gets),
		"syncs":              float64(st.Syncs),
		"compactions":        float64(st.Compactions),
		"compaction_seconds": st.CompactionTime.Seconds(),
		"stall_seconds":      st.StallTime.Seconds(),
		"index_bytes":        float64(st.IndexBytes),
		"segments":           float64(len(st.Segments)),
	}
	name := st.Engine
	if name == "" {
		name = e.b.Name()
	}
	for _, g := range engineGauges {
		ch <- prometheus.MustNewConstMetric(engDescs[g.name], prometheus.GaugeValue, v[g.name], name)
	}
	for _, l := range st.Levels {
		lv := strconv.Itoa(l.Level)
		ch <- prometheus.MustNewConstMetric(levelFilesDesc, prometheus.GaugeValue, float64(l.Files), name, lv)
		ch <- prometheus.MustNewConstMetric(levelBytesDesc, prometheus.GaugeValue, float64(l.Bytes), name, lv)
	}
}
