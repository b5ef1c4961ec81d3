package server

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/kvs-lab/kvs"
)

// infoSections are INFO's own sections in output order; the backend's
// (Backend.InfoSections) follow.
var infoSections = []string{"server", "clients", "stats", "keyspace", "engine"}

func cmdInfo(c *conn, args [][]byte) {
	want := map[string]bool{}
	all := len(args) == 1
	for _, a := range args[1:] {
		name := strings.ToLower(string(a))
		if name == "all" || name == "default" || name == "everything" {
			all = true
		}
		want[name] = true
	}
	c.writeBulkString(c.s.info(func(name string) bool { return all || want[name] }))
}

// info formats the INFO sections that include accepts.
func (s *Server) info(include func(string) bool) string {
	var b strings.Builder
	section := func(title string, fields []InfoField) {
		if b.Len() > 0 {
			b.WriteString("\r\n")
		}
		fmt.Fprintf(&b, "# %s\r\n", title)
		for _, f := range fields {
			fmt.Fprintf(&b, "%s:%s\r\n", f.Key, f.Value)
		}
	}
	for _, name := range infoSections {
		if !include(name) {
			continue
		}
		switch name {
		case "server":
			section("Server", s.infoServer())
		case "clients":
			section("Clients", s.infoClients())
		case "stats":
			section("Stats", s.infoStats())
		case "keyspace":
			st := s.b.Stats()
			var f []InfoField
			if st.LiveKeys > 0 {
				f = append(f, InfoField{"db0", fmt.Sprintf("keys=%d,expires=0,avg_ttl=0", st.LiveKeys)})
			}
			section("Keyspace", f)
		case "engine":
			section("Engine", engineFields(s.b.Stats()))
		}
	}
	for _, sec := range s.b.InfoSections() {
		if include(sec.Name) {
			section(titleCase(sec.Name), sec.Fields)
		}
	}
	return b.String()
}

func titleCase(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func (s *Server) infoServer() []InfoField {
	up := time.Since(s.started)
	port := ""
	if a := s.Addr(); a != nil {
		_, port, _ = strings.Cut(a.String(), "]:")
		if port == "" {
			port = a.String()[strings.LastIndexByte(a.String(), ':')+1:]
		}
	}
	return []InfoField{
		// NB: clients and tools read redis_version to pick features;
		// kvs answers like a RESP2-only Redis 7.0 string store.
		{"redis_version", "7.0.0"},
		{"redis_mode", "standalone"},
		{"kvs_backend", s.b.Name()},
		{"kvs_sync_mode", string(s.b.SyncMode())},
		{"os", runtime.GOOS},
		{"arch_bits", strconv.Itoa(strconv.IntSize)},
		{"go_version", runtime.Version()},
		{"process_id", strconv.Itoa(os.Getpid())},
		{"tcp_port", port},
		{"tls", strconv.FormatBool(s.tlsConf != nil)},
		{"uptime_in_seconds", strconv.FormatInt(int64(up.Seconds()), 10)},
		{"uptime_in_days", strconv.FormatInt(int64(up.Hours()/24), 10)},
	}
}

func (s *Server) clientCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func (s *Server) infoClients() []InfoField {
	return []InfoField{
		{"connected_clients", strconv.Itoa(s.clientCount())},
		{"maxclients", strconv.Itoa(s.cfg.MaxClients)},
	}
}

func (s *Server) infoStats() []InfoField {
	i := func(v int64) string { return strconv.FormatInt(v, 10) }
	return []InfoField{
		{"total_connections_received", i(s.nConns.Load())},
		{"total_commands_processed", i(s.nCommands.Load())},
		{"total_error_replies", i(s.nErrors.Load())},
		{"rejected_connections", i(s.nRejected.Load())},
		{"total_net_input_bytes", i(s.nBytesIn.Load())},
		{"total_net_output_bytes", i(s.nBytesOut.Load())},
	}
}

// engineFields is INFO's engine section: kvs.Stats, one field per counter,
// then one per LSM level or bitcask segment.
func engineFields(st kvs.Stats) []InfoField {
	i := func(v int64) string { return strconv.FormatInt(v, 10) }
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }
	fields := []InfoField{
		{"engine", st.Engine},
		{"live_keys", i(st.LiveKeys)},
		{"live_bytes", i(st.LiveBytes)},
		{"user_bytes_written", i(st.UserBytesWritten)},
		{"disk_bytes_written", i(st.DiskBytesWritten)},
		{"bytes_on_disk", i(st.BytesOnDisk)},
		{"write_amp", f(st.WriteAmp())},
		{"space_amp", f(st.SpaceAmp())},
		{"read_amp", f(st.ReadAmp())},
		{"gets", i(st.Gets)},
		{"disk_reads", i(st.DiskReads)},
		{"filter_skips", i(st.FilterSkips)},
		{"memtable_filter_skips", i(st.MemtableFilterSkips)},
		{"syncs", i(st.Syncs)},
		{"compactions", i(st.Compactions)},
		{"compaction_time_seconds", f(st.CompactionTime.Seconds())},
		{"compaction_bytes_read", i(st.CompactionBytesRead)},
		{"compaction_bytes_written", i(st.CompactionBytesWritten)},
		{"stall_time_seconds", f(st.StallTime.Seconds())},
		{"index_bytes", i(st.IndexBytes)},
		{"index_kind", st.IndexKind},
	}
	if st.Compaction != "" {
		fields = append(fields, InfoField{"compaction_policy", st.Compaction})
	}
	if len(st.Levels) > 0 {
		fields = append(fields, InfoField{"levels", strconv.Itoa(len(st.Levels))})
	}
	for _, l := range st.Levels {
		fields = append(fields, InfoField{"level" + strconv.Itoa(l.Level),
			fmt.Sprintf("files=%d,bytes=%d,score=%.2f,compactions=%d,bytes_read=%d,bytes_written=%d", l.Files, l.Bytes, l.Score, l.Compactions, l.BytesRead, l.BytesWritten)})
	}
	if len(st.Segments) > 0 {
		fields = append(fields, InfoField{"segments", strconv.Itoa(len(st.Segments))})
	}
	for _, sg := range st.Segments {
		fields = append(fields, InfoField{"segment" + strconv.FormatUint(sg.ID, 10),
			fmt.Sprintf("bytes=%d,live_bytes=%d,records=%d,live_records=%d,active=%d,hint=%d", sg.Bytes, sg.LiveBytes, sg.Records, sg.LiveRecords, b2i(sg.Active), b2i(sg.Hint))})
	}
	return fields
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// formatStats is KVS.STATS: the engine section as "key: value" lines.
func formatStats(st kvs.Stats) string {
	var b strings.Builder
	for _, f := range engineFields(st) {
		fmt.Fprintf(&b, "%s: %s\n", f.Key, f.Value)
	}
	return b.String()
}
