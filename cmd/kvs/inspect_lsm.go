package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/compaction"
	"github.com/kvs-lab/kvs/internal/base"
	"github.com/kvs-lab/kvs/internal/vfs"
	"github.com/kvs-lab/kvs/lsm"
	"github.com/kvs-lab/kvs/sstable"
	"github.com/kvs-lab/kvs/wal"
)

// This file teaches inspect the files of the LSM engine: tables
// (NNNNNN.sst), write-ahead logs (NNNNNN.log), MANIFEST-NNNNNN and CURRENT.
// Each reader fills a report as far as the file can be read and returns the
// error that stopped it, so the printers show everything readable before
// the command exits 1.

// lsmKind says what a name in an LSM directory is.
type lsmKind int

const (
	lsmUnknown    lsmKind = iota
	lsmTable              // NNNNNN.sst
	lsmWAL                // NNNNNN.log, log number NNNNNN
	lsmManifest           // MANIFEST-NNNNNN, a wal-format log of version edits
	lsmCurrent            // CURRENT: "MANIFEST-NNNNNN\n"
	lsmCurrentTmp         // CURRENT.tmp, left by a CURRENT switch a crash interrupted
	lsmEngine             // ENGINE
	lsmLock               // LOCK
)

func (k lsmKind) String() string {
	switch k {
	case lsmTable:
		return "table"
	case lsmWAL:
		return "wal"
	case lsmManifest:
		return "manifest"
	case lsmCurrent:
		return "current"
	case lsmCurrentTmp:
		return "current.tmp"
	case lsmEngine:
		return "engine"
	case lsmLock:
		return "lock"
	}
	return "unknown"
}

// inspectable reports whether inspect dumps a file of kind k in detail.
func (k lsmKind) inspectable() bool {
	return k == lsmTable || k == lsmWAL || k == lsmManifest || k == lsmCurrent
}

// lsmOnly reports whether only the LSM engine writes files of kind k.
func (k lsmKind) lsmOnly() bool {
	return k != lsmUnknown && k != lsmEngine && k != lsmLock
}

const manifestPrefix = "MANIFEST-"

// parseLSMName returns the kind of the file called name (a base name) and,
// for a table, log or MANIFEST, its number. Numbers are at least six
// decimal digits, zero-padded to six, as the engine writes them.
func parseLSMName(name string) (num uint64, kind lsmKind) {
	switch name {
	case "CURRENT":
		return 0, lsmCurrent
	case "CURRENT.tmp":
		return 0, lsmCurrentTmp
	case kvs.EngineFile:
		return 0, lsmEngine
	case "LOCK":
		return 0, lsmLock
	}
	var digits string
	switch {
	case strings.HasPrefix(name, manifestPrefix):
		digits, kind = strings.TrimPrefix(name, manifestPrefix), lsmManifest
	case strings.HasSuffix(name, ".sst"):
		digits, kind = strings.TrimSuffix(name, ".sst"), lsmTable
	case strings.HasSuffix(name, ".log"):
		digits, kind = strings.TrimSuffix(name, ".log"), lsmWAL
	default:
		return 0, lsmUnknown
	}
	num, ok := parseFileNum(digits)
	if !ok {
		return 0, lsmUnknown
	}
	return num, kind
}

func parseFileNum(digits string) (uint64, bool) {
	if len(digits) < 6 || strings.TrimLeft(digits, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || fmt.Sprintf("%06d", n) != digits {
		return 0, false
	}
	return n, true
}

// isLSMDir reports whether dir's ENGINE file names lsm or, without a
// readable one, whether dir holds files only the LSM engine writes.
// Anything else keeps the bitcask summary.
func isLSMDir(dir string) bool {
	if name, err := kvs.DetectEngine(vfs.Default, dir); err == nil {
		return name == "lsm"
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if _, k := parseLSMName(e.Name()); !e.IsDir() && k.lsmOnly() {
			return true
		}
	}
	return false
}

type lsmInspectOptions struct {
	json    bool
	limit   int  // records, entries or edits listed (0: all)
	keys    bool // list a table's entries
	summary bool // only the summary
}

// keyJSON is an internal key: the user key (printable), seq and kind.
type keyJSON struct {
	Key  string `json:"key"`
	Seq  uint64 `json:"seq"`
	Kind string `json:"kind"`
}

func ikey(k base.InternalKey) keyJSON {
	return keyJSON{Key: printable(k.UserKey, 48), Seq: k.Seq(), Kind: k.Kind().String()}
}

func (k keyJSON) String() string { return fmt.Sprintf("%s#%d,%s", k.Key, k.Seq, k.Kind) }

func keyRange(lo, hi keyJSON) string { return lo.String() + " .. " + hi.String() }

// openFile opens path through vfs.Default and returns it with its size.
func openFile(path string) (vfs.File, int64, error) {
	f, err := vfs.Default.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("kvs: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("kvs: stat %s: %w", path, err)
	}
	return f, st.Size(), nil
}

func inspectLSMFile(w io.Writer, path string, o lsmInspectOptions) error {
	num, kind := parseLSMName(filepath.Base(path))
	switch kind {
	case lsmTable:
		want := -1 // no entries
		if o.keys || o.limit > 0 {
			want = o.limit
		}
		if o.summary {
			want = -1
		}
		r, err := readTable(path, want)
		return printReport(w, o, r, r.printText, err)
	case lsmWAL:
		r, err := readWAL(path, num, o.limit)
		return printReport(w, o, r, r.printText, err)
	case lsmManifest:
		r, err := readManifest(path, num, o.limit)
		return printReport(w, o, r, r.printText, err)
	case lsmCurrent:
		name, err := readCurrent(path)
		if err != nil {
			return err
		}
		num, _ := parseLSMName(name)
		r, err := readManifest(filepath.Join(filepath.Dir(path), name), num, o.limit)
		r.Current = path
		return printReport(w, o, r, r.printText, err)
	}
	return fmt.Errorf("kvs: %s is not a file kvs inspects", path)
}

// printReport prints r as JSON or through text, then returns err: what was
// read comes out before the error that stopped the reading.
func printReport(w io.Writer, o lsmInspectOptions, r any, text func(io.Writer, lsmInspectOptions), err error) error {
	if o.json {
		if jerr := printJSON(w, r); jerr != nil {
			return jerr
		}
	} else {
		text(w, o)
	}
	return err
}

// --- tables ---

type tablePropsJSON struct {
	Entries          uint64   `json:"entries"`
	Deletions        uint64   `json:"deletions"`
	Smallest         *keyJSON `json:"smallest,omitempty"`
	Largest          *keyJSON `json:"largest,omitempty"`
	RawKeyBytes      uint64   `json:"raw_key_bytes"`
	RawValueBytes    uint64   `json:"raw_value_bytes"`
	DataBlocks       uint64   `json:"data_blocks"`
	DataBytes        uint64   `json:"data_bytes"`
	IndexBytes       uint64   `json:"index_bytes"`
	FilterBytes      uint64   `json:"filter_bytes"`
	CompressionRatio float64  `json:"compression_ratio"` // raw key+value bytes / data bytes
	FilterBitsPerKey uint64   `json:"filter_bits_per_key"`
}

type blockJSON struct {
	Kind          string   `json:"kind"`
	Offset        uint64   `json:"offset"`
	Length        uint64   `json:"length"`
	Compression   string   `json:"compression,omitempty"`
	DecodedLength int      `json:"decoded_length,omitempty"`
	Entries       int      `json:"entries,omitempty"`
	Separator     *keyJSON `json:"separator,omitempty"`
}

type tableEntryJSON struct {
	keyJSON
	ValueLen int `json:"value_len"`
}

type tableReport struct {
	File         string           `json:"file"`
	Bytes        int64            `json:"bytes"`
	Properties   *tablePropsJSON  `json:"properties,omitempty"`
	Blocks       []blockJSON      `json:"blocks,omitempty"`
	FilterProbes int              `json:"filter_probes,omitempty"`
	FilterBits   uint64           `json:"filter_bits,omitempty"`
	Entries      []tableEntryJSON `json:"entries,omitempty"`
	// EntriesRead counts the entries the iterator reached, listed or not;
	// it is only filled when entries were asked for or the blocks are damaged.
	EntriesRead int    `json:"entries_read,omitempty"`
	Error       string `json:"error,omitempty"`
}

// readTable reads the table at path: properties, block layout and, when
// want >= 0, up to want entries (0: all). A damaged block stops the layout;
// the entries are then read up to the damage anyway.
func readTable(path string, want int) (*tableReport, error) {
	rep := &tableReport{File: path}
	fail := func(err error) (*tableReport, error) {
		rep.Error = err.Error()
		return rep, err
	}
	f, size, err := openFile(path)
	if err != nil {
		return fail(err)
	}
	rep.Bytes = size
	r, err := sstable.Open(f, path, size, sstable.ReaderOptions{})
	if err != nil {
		return fail(err)
	}
	defer r.Close()
	p := r.Properties()
	rep.Properties = &tablePropsJSON{
		Entries: p.NumEntries, Deletions: p.NumDeletions,
		RawKeyBytes: p.RawKeySize, RawValueBytes: p.RawValueSize,
		DataBlocks: p.NumDataBlocks, DataBytes: p.DataSize, IndexBytes: p.IndexSize, FilterBytes: p.FilterSize,
		FilterBitsPerKey: p.FilterBitsPerKey,
	}
	if p.DataSize > 0 {
		rep.Properties.CompressionRatio = float64(p.RawKeySize+p.RawValueSize) / float64(p.DataSize)
	}
	if p.NumEntries > 0 {
		lo, hi := ikey(p.Smallest), ikey(p.Largest)
		rep.Properties.Smallest, rep.Properties.Largest = &lo, &hi
	}
	l, layoutErr := r.Layout()
	for _, b := range l.Blocks {
		bj := blockJSON{Kind: b.Kind, Offset: b.Offset, Length: b.Length, Compression: b.Compression,
			DecodedLength: b.DecodedLength, Entries: b.Entries}
		if b.Kind == "data" {
			sep := ikey(b.Separator)
			bj.Separator = &sep
		}
		rep.Blocks = append(rep.Blocks, bj)
	}
	rep.FilterProbes, rep.FilterBits = l.FilterProbes, l.FilterBits
	if want < 0 && layoutErr == nil {
		return rep, nil
	}
	// NB: Layout reports nothing past a damaged block, so walk the entries
	// to show how far the table still reads.
	it, err := r.NewIter(nil, nil)
	if err != nil {
		return fail(err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		rep.EntriesRead++
		if want >= 0 && (want == 0 || len(rep.Entries) < want) {
			rep.Entries = append(rep.Entries, tableEntryJSON{keyJSON: ikey(it.Key()), ValueLen: len(it.Value())})
		}
	}
	iterErr := it.Close()
	if err := errors.Join(layoutErr, iterErr); err != nil {
		// Both usually name the same damaged block: report the first.
		if layoutErr != nil {
			err = layoutErr
		}
		return fail(err)
	}
	return rep, nil
}

func (rep *tableReport) printText(w io.Writer, o lsmInspectOptions) {
	fmt.Fprintf(w, "%s: table, %s\n", filepath.Base(rep.File), humanBytes(rep.Bytes))
	p := rep.Properties
	if p == nil {
		return // not even the footer, index and properties read
	}
	keys := "none"
	if p.Smallest != nil {
		keys = keyRange(*p.Smallest, *p.Largest)
	}
	bloom := "none"
	if p.FilterBitsPerKey > 0 {
		bloom = fmt.Sprintf("%d bits/key", p.FilterBitsPerKey)
		if rep.FilterProbes > 0 {
			bloom += fmt.Sprintf(", %d probes, %d bits", rep.FilterProbes, rep.FilterBits)
		}
	}
	fmt.Fprintf(w, "  entries      %d (%d deletions)\n", p.Entries, p.Deletions)
	fmt.Fprintf(w, "  keys         %s\n", keys)
	fmt.Fprintf(w, "  raw bytes    keys %s, values %s\n", humanBytes(int64(p.RawKeyBytes)), humanBytes(int64(p.RawValueBytes)))
	fmt.Fprintf(w, "  stored       data %s in %d blocks, index %s, filter %s\n",
		humanBytes(int64(p.DataBytes)), p.DataBlocks, humanBytes(int64(p.IndexBytes)), humanBytes(int64(p.FilterBytes)))
	fmt.Fprintf(w, "  compression  %.2fx (raw key+value bytes / data bytes)\n", p.CompressionRatio)
	fmt.Fprintf(w, "  bloom        %s\n", bloom)
	if o.summary {
		return
	}
	if len(rep.Blocks) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "BLOCK\tOFFSET\tLENGTH\tCOMPRESSION\tDECODED\tENTRIES\tINDEX SEPARATOR")
		data := 0
		for _, b := range rep.Blocks {
			name, sep := b.Kind, "-"
			if b.Kind == "data" {
				name = fmt.Sprintf("data %d", data)
				data++
				sep = b.Separator.String()
			}
			comp, decoded, entries := b.Compression, strconv.Itoa(b.DecodedLength), strconv.Itoa(b.Entries)
			if b.Kind == "footer" {
				comp, decoded = "-", "-"
			}
			if b.Kind == "filter" || b.Kind == "footer" {
				entries = "-"
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\n", name, b.Offset, b.Length, comp, decoded, entries, sep)
		}
		tw.Flush()
	} else if rep.Error != "" {
		fmt.Fprintln(w, "\nblocks: the layout stops at the damage below")
	}
	if rep.Entries != nil {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "KEY\tSEQ\tKIND\tVALUE BYTES")
		for _, e := range rep.Entries {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\n", e.Key, e.Seq, e.Kind, e.ValueLen)
		}
		tw.Flush()
		if more := rep.EntriesRead - len(rep.Entries); more > 0 {
			fmt.Fprintf(w, "... %d more (raise --limit)\n", more)
		}
	}
	if rep.Error != "" {
		fmt.Fprintf(w, "%d of %d entries readable\n", rep.EntriesRead, p.Entries)
	}
}

// --- write-ahead logs ---

type batchEntryJSON struct {
	Kind     string `json:"kind"`
	Key      string `json:"key"`
	ValueLen int    `json:"value_len"`
}

type walRecordJSON struct {
	Offset  int64            `json:"offset"`
	Bytes   int              `json:"bytes"`
	Seq     uint64           `json:"seq"`
	Count   int              `json:"count"`
	Entries []batchEntryJSON `json:"entries"`
}

type tornTailJSON struct {
	Offset int64  `json:"offset"`
	Bytes  int64  `json:"bytes"`
	Reason string `json:"reason"`
}

type walReport struct {
	File      string          `json:"file"`
	LogNumber uint64          `json:"log_number"`
	Bytes     int64           `json:"bytes"`
	Records   int             `json:"records"`
	Entries   int             `json:"entries"`
	Sets      int             `json:"sets"`
	Deletes   int             `json:"deletes"`
	MinSeq    uint64          `json:"min_seq,omitempty"`
	MaxSeq    uint64          `json:"max_seq,omitempty"`
	Listed    []walRecordJSON `json:"records_listed"`
	TornTail  *tornTailJSON   `json:"torn_tail,omitempty"`
	Error     string          `json:"error,omitempty"`
}

// readWAL reads the log numbered num at path: every record is counted,
// the first limit (0: all; < 0: none) are kept with their first limit
// entries. A torn tail is a note; damage before it is the error.
func readWAL(path string, num uint64, limit int) (*walReport, error) {
	rep := &walReport{File: path, LogNumber: num, Listed: []walRecordJSON{}}
	fail := func(err error) (*walReport, error) {
		rep.Error = err.Error()
		return rep, err
	}
	f, size, err := openFile(path)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	rep.Bytes = size
	r := wal.NewReader(f, path, num)
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fail(err)
		}
		b, err := kvs.DecodeBatch(rec)
		if err != nil {
			return fail(kvs.Corruptf(path, r.Offset(), "record holds no valid batch: %v", err))
		}
		rep.Records++
		rj := walRecordJSON{Offset: r.Offset(), Bytes: len(rec), Seq: b.Seq(), Count: b.Count(), Entries: []batchEntryJSON{}}
		br := b.Reader()
		for {
			kind, key, value, ok := br.Next()
			if !ok {
				break
			}
			if kind == kvs.KindDelete {
				rep.Deletes++
			} else {
				rep.Sets++
			}
			if limit >= 0 && (limit == 0 || len(rj.Entries) < limit) {
				rj.Entries = append(rj.Entries, batchEntryJSON{Kind: kind.String(), Key: printable(key, 48), ValueLen: len(value)})
			}
		}
		if err := br.Err(); err != nil {
			return fail(kvs.Corruptf(path, r.Offset(), "record holds no valid batch: %v", err))
		}
		rep.Entries += b.Count()
		if b.Count() > 0 {
			if rep.MinSeq == 0 || b.Seq() < rep.MinSeq {
				rep.MinSeq = b.Seq()
			}
			rep.MaxSeq = max(rep.MaxSeq, b.Seq()+uint64(b.Count())-1)
		}
		if limit >= 0 && (limit == 0 || len(rep.Listed) < limit) {
			rep.Listed = append(rep.Listed, rj)
		}
	}
	if t, ok := r.TornTail(); ok {
		rep.TornTail = &tornTailJSON{Offset: t.Offset, Bytes: t.Bytes, Reason: t.Reason}
	}
	return rep, nil
}

func (rep *walReport) printText(w io.Writer, o lsmInspectOptions) {
	if !o.summary && len(rep.Listed) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "OFFSET\tBYTES\tSEQ\tCOUNT\tENTRIES")
		for _, r := range rep.Listed {
			var parts []string
			for _, e := range r.Entries {
				if e.Kind == kvs.KindDelete.String() {
					parts = append(parts, fmt.Sprintf("%s %s", e.Kind, e.Key))
				} else {
					parts = append(parts, fmt.Sprintf("%s %s (%d B)", e.Kind, e.Key, e.ValueLen))
				}
			}
			if more := r.Count - len(r.Entries); more > 0 {
				parts = append(parts, fmt.Sprintf("… %d more", more))
			}
			fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%s\n", r.Offset, r.Bytes, r.Seq, r.Count, strings.Join(parts, ", "))
		}
		tw.Flush()
		if more := rep.Records - len(rep.Listed); more > 0 {
			fmt.Fprintf(w, "... %d more records (raise --limit)\n", more)
		}
	}
	seqs := ""
	if rep.MaxSeq > 0 {
		seqs = fmt.Sprintf(", seqs %d-%d", rep.MinSeq, rep.MaxSeq)
	}
	fmt.Fprintf(w, "%s: wal, log number %d, %s, %d records, %d entries (%d sets, %d deletes)%s\n",
		filepath.Base(rep.File), rep.LogNumber, humanBytes(rep.Bytes), rep.Records, rep.Entries, rep.Sets, rep.Deletes, seqs)
	if t := rep.TornTail; t != nil {
		fmt.Fprintf(w, "note: torn tail of %d bytes at offset %d (%s): what a crash while appending leaves; recovery cuts it if this is the newest log\n",
			t.Bytes, t.Offset, t.Reason)
	}
}

// --- MANIFEST ---

type tableMetaJSON struct {
	Level       int     `json:"level"`
	FileNum     uint64  `json:"file_num"`
	Size        int64   `json:"size"`
	Smallest    keyJSON `json:"smallest"`
	Largest     keyJSON `json:"largest"`
	SmallestSeq uint64  `json:"smallest_seq"`
	LargestSeq  uint64  `json:"largest_seq"`
}

type deletedJSON struct {
	Level   int    `json:"level"`
	FileNum uint64 `json:"file_num"`
}

type editJSON struct {
	Offset         int64           `json:"offset"`
	LogNumber      uint64          `json:"log_number,omitempty"`
	NextFileNumber uint64          `json:"next_file_number,omitempty"`
	LastSeq        uint64          `json:"last_seq,omitempty"`
	Compaction     string          `json:"compaction,omitempty"`
	Deleted        []deletedJSON   `json:"deleted,omitempty"`
	Added          []tableMetaJSON `json:"added,omitempty"`
}

type levelJSON struct {
	Level    int             `json:"level"`
	Files    int             `json:"files"`
	Bytes    int64           `json:"bytes"`
	Smallest *keyJSON        `json:"smallest,omitempty"`
	Largest  *keyJSON        `json:"largest,omitempty"`
	Tables   []tableMetaJSON `json:"tables"`
}

type versionJSON struct {
	LogNumber      uint64      `json:"log_number"`
	NextFileNumber uint64      `json:"next_file_number"`
	LastSeq        uint64      `json:"last_seq"`
	Compaction     string      `json:"compaction,omitempty"`
	Levels         []levelJSON `json:"levels"`
}

type manifestReport struct {
	Current  string        `json:"current,omitempty"` // the CURRENT file followed, if any
	File     string        `json:"file"`
	Number   uint64        `json:"number"`
	Bytes    int64         `json:"bytes"`
	Edits    int           `json:"edits"`
	Listed   []editJSON    `json:"edits_listed"`
	Version  versionJSON   `json:"version"`
	TornTail *tornTailJSON `json:"torn_tail,omitempty"`
	Error    string        `json:"error,omitempty"`
}

// readCurrent returns the MANIFEST name CURRENT at path holds.
func readCurrent(path string) (string, error) {
	f, _, err := openFile(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 64))
	if err != nil {
		return "", fmt.Errorf("kvs: read %s: %w", path, err)
	}
	name, ok := strings.CutSuffix(string(b), "\n")
	if _, kind := parseLSMName(name); !ok || kind != lsmManifest {
		return "", kvs.Corruptf(path, 0, "CURRENT holds %q, not a MANIFEST name and a newline", bytes.TrimSpace(b))
	}
	return name, nil
}

// readManifest replays the MANIFEST numbered num at path with the engine's
// own replay (lsm.ReadManifest): the first limit edits (0: all; < 0: none)
// are kept for listing. An edit that does not decode or does not apply is
// corruption at the edit's offset.
func readManifest(path string, num uint64, limit int) (*manifestReport, error) {
	rep := &manifestReport{File: path, Number: num, Listed: []editJSON{}}
	if st, err := os.Stat(path); err == nil {
		rep.Bytes = st.Size()
	}
	v, torn, err := lsm.ReadManifest(vfs.Default, path, num, func(off int64, e *lsm.VersionEdit, _ *compaction.Version) {
		rep.Edits++
		rep.Version.LogNumber = max(rep.Version.LogNumber, e.LogNumber)
		rep.Version.NextFileNumber = max(rep.Version.NextFileNumber, e.NextFileNumber)
		rep.Version.LastSeq = max(rep.Version.LastSeq, e.LastSeq)
		if e.Compaction != "" {
			rep.Version.Compaction = e.Compaction
		}
		if limit < 0 || (limit > 0 && len(rep.Listed) >= limit) {
			return
		}
		ej := editJSON{Offset: off, LogNumber: e.LogNumber, NextFileNumber: e.NextFileNumber, LastSeq: e.LastSeq, Compaction: e.Compaction}
		for _, d := range e.Deleted {
			ej.Deleted = append(ej.Deleted, deletedJSON{Level: d.Level, FileNum: d.FileNum})
		}
		for _, a := range e.Added {
			ej.Added = append(ej.Added, tableMeta(a.Level, a.Meta))
		}
		rep.Listed = append(rep.Listed, ej)
	})
	rep.Version.Levels = summariseLevels(v)
	if torn != nil {
		rep.TornTail = &tornTailJSON{Offset: torn.Offset, Bytes: torn.Bytes, Reason: torn.Reason}
	}
	if err != nil {
		rep.Error = err.Error()
	}
	return rep, err
}

func tableMeta(level int, m *compaction.TableMeta) tableMetaJSON {
	return tableMetaJSON{Level: level, FileNum: m.FileNum, Size: m.Size, Smallest: ikey(m.Smallest), Largest: ikey(m.Largest),
		SmallestSeq: m.SmallestSeq, LargestSeq: m.LargestSeq}
}

// summariseLevels totals each level of v from L0 to the deepest non-empty
// one, so that a level's index is its number. v's tables are already
// ordered as the engine orders them: L0 newest first, deeper levels by
// smallest key.
func summariseLevels(v *compaction.Version) []levelJSON {
	out := []levelJSON{}
	deepest := -1
	for level, tables := range v.Levels {
		if len(tables) > 0 {
			deepest = level
		}
	}
	for level, tables := range v.Levels[:deepest+1] {
		l := levelJSON{Level: level, Files: len(tables), Tables: []tableMetaJSON{}}
		if len(tables) == 0 {
			out = append(out, l)
			continue
		}
		lo, hi := tables[0].Smallest, tables[0].Largest
		for _, t := range tables {
			l.Tables = append(l.Tables, tableMeta(level, t))
			l.Bytes += t.Size
			if base.InternalCompare(t.Smallest, lo) < 0 {
				lo = t.Smallest
			}
			if base.InternalCompare(t.Largest, hi) > 0 {
				hi = t.Largest
			}
		}
		s, g := ikey(lo), ikey(hi)
		l.Smallest, l.Largest = &s, &g
		out = append(out, l)
	}
	return out
}

func (rep *manifestReport) printText(w io.Writer, o lsmInspectOptions) {
	if rep.Current != "" {
		fmt.Fprintf(w, "%s names %s\n", filepath.Base(rep.Current), filepath.Base(rep.File))
	}
	fmt.Fprintf(w, "%s: manifest, %s, %d version edits\n", filepath.Base(rep.File), humanBytes(rep.Bytes), rep.Edits)
	if !o.summary {
		for i, e := range rep.Listed {
			var fields []string
			if e.LogNumber != 0 {
				fields = append(fields, fmt.Sprintf("log number %d", e.LogNumber))
			}
			if e.NextFileNumber != 0 {
				fields = append(fields, fmt.Sprintf("next file %d", e.NextFileNumber))
			}
			if e.LastSeq != 0 {
				fields = append(fields, fmt.Sprintf("last seq %d", e.LastSeq))
			}
			if e.Compaction != "" {
				fields = append(fields, "compaction "+e.Compaction)
			}
			fmt.Fprintf(w, "\nedit %d at offset %d: %s\n", i, e.Offset, strings.Join(fields, ", "))
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			for _, d := range e.Deleted {
				fmt.Fprintf(tw, "  - L%d\t%06d.sst\n", d.Level, d.FileNum)
			}
			for _, a := range e.Added {
				fmt.Fprintf(tw, "  + L%d\t%06d.sst\t%s\tkeys %s\tseqs %d-%d\n", a.Level, a.FileNum, humanBytes(a.Size),
					keyRange(a.Smallest, a.Largest), a.SmallestSeq, a.LargestSeq)
			}
			tw.Flush()
		}
		if more := rep.Edits - len(rep.Listed); more > 0 {
			fmt.Fprintf(w, "... %d more edits (raise --limit)\n", more)
		}
	}
	v := rep.Version
	policy := ""
	if v.Compaction != "" {
		policy = ", compaction " + v.Compaction
	}
	fmt.Fprintf(w, "\nversion: log number %d, next file number %d, last seq %d%s\n", v.LogNumber, v.NextFileNumber, v.LastSeq, policy)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LEVEL\tFILES\tBYTES\tKEY RANGE")
	var files int
	var total int64
	for _, l := range v.Levels {
		if l.Files == 0 {
			continue
		}
		files += l.Files
		total += l.Bytes
		fmt.Fprintf(tw, "L%d\t%d\t%s\t%s\n", l.Level, l.Files, humanBytes(l.Bytes), keyRange(*l.Smallest, *l.Largest))
	}
	fmt.Fprintf(tw, "total\t%d\t%s\n", files, humanBytes(total))
	tw.Flush()
	if t := rep.TornTail; t != nil {
		fmt.Fprintf(w, "note: torn tail of %d bytes at offset %d (%s): an edit a crash interrupted; recovery drops it\n",
			t.Bytes, t.Offset, t.Reason)
	}
}

// --- directory summary ---

type lsmFileSummary struct {
	Name      string `json:"name"`
	Kind      string `json:"kind"`
	Number    uint64 `json:"number,omitempty"`
	Bytes     int64  `json:"bytes"`
	Records   int    `json:"records,omitempty"` // wal records, MANIFEST edits, table data blocks
	Entries   uint64 `json:"entries,omitempty"`
	Deletions uint64 `json:"deletions,omitempty"`
	MinSeq    uint64 `json:"min_seq,omitempty"`
	MaxSeq    uint64 `json:"max_seq,omitempty"`
	Note      string `json:"note,omitempty"`
	Error     string `json:"error,omitempty"`
}

func inspectLSMDir(w io.Writer, dir string, asJSON bool) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("kvs: %w", err)
	}
	engine, engineErr := kvs.DetectEngine(vfs.Default, dir)
	if engineErr != nil {
		engine = "unknown (no readable ENGINE file)"
	}
	// The version CURRENT leads to says which tables and logs are live.
	var current string
	var version *manifestReport
	var damaged []error
	live := map[uint64]int{} // table number -> level
	if name, err := readCurrent(filepath.Join(dir, "CURRENT")); err == nil {
		current = name
		num, _ := parseLSMName(name)
		var err error
		version, err = readManifest(filepath.Join(dir, name), num, -1) // other errors show on its own row
		if errors.Is(err, os.ErrNotExist) {
			damaged = append(damaged, fmt.Errorf("kvs: %s names %s, which does not exist", filepath.Join(dir, "CURRENT"), name))
		}
		for _, l := range version.Version.Levels {
			for _, t := range l.Tables {
				live[t.FileNum] = l.Level
			}
		}
	}
	var files []lsmFileSummary
	for _, ent := range entries {
		path := filepath.Join(dir, ent.Name())
		if ent.IsDir() {
			files = append(files, lsmFileSummary{Name: ent.Name() + "/", Kind: "directory", Note: "not an lsm file"})
			continue
		}
		num, kind := parseLSMName(ent.Name())
		s := lsmFileSummary{Name: ent.Name(), Kind: kind.String(), Number: num}
		if st, err := ent.Info(); err == nil {
			s.Bytes = st.Size()
		}
		var err error
		switch kind {
		case lsmTable:
			var r *tableReport
			r, err = readTable(path, -1)
			if p := r.Properties; p != nil {
				s.Records, s.Entries, s.Deletions = int(p.DataBlocks), p.Entries, p.Deletions
			}
			// NB: a table's properties hold no seq range (the smallest
			// key's seq is not the smallest seq); the MANIFEST's does.
			switch level, ok := live[num]; {
			case ok:
				s.Note = fmt.Sprintf("L%d", level)
				for _, t := range version.Version.Levels[level].Tables {
					if t.FileNum == num {
						s.MinSeq, s.MaxSeq = t.SmallestSeq, t.LargestSeq
					}
				}
			case version != nil:
				s.Note = "not in the current version: obsolete, or an unfinished flush or compaction"
			}
		case lsmWAL:
			var r *walReport
			r, err = readWAL(path, num, -1)
			s.Records, s.Entries, s.Deletions, s.MinSeq, s.MaxSeq = r.Records, uint64(r.Entries), uint64(r.Deletes), r.MinSeq, r.MaxSeq
			if r.TornTail != nil {
				s.Note = fmt.Sprintf("torn tail of %d bytes at offset %d", r.TornTail.Bytes, r.TornTail.Offset)
			}
			if version != nil && num < version.Version.LogNumber {
				s.Note = strings.TrimPrefix(s.Note+"; obsolete (below the MANIFEST's log number)", "; ")
			}
		case lsmManifest:
			var r *manifestReport
			r, err = readManifest(path, num, -1)
			s.Records = r.Edits
			if ent.Name() == current {
				s.Note = "named by CURRENT"
			} else {
				s.Note = "not named by CURRENT: obsolete"
			}
			if r.TornTail != nil {
				s.Note += fmt.Sprintf("; torn tail of %d bytes at offset %d", r.TornTail.Bytes, r.TornTail.Offset)
			}
		case lsmCurrent:
			if _, err = readCurrent(path); err == nil {
				s.Note = "names " + current
				if version != nil && version.Edits == 0 && version.Bytes == 0 {
					s.Note += " (missing or empty)"
				}
			}
		case lsmCurrentTmp:
			s.Note = "left by an interrupted switch of CURRENT"
		case lsmUnknown:
			s.Note = "not an lsm file"
		}
		if err != nil {
			s.Error = err.Error()
			damaged = append(damaged, err)
		}
		files = append(files, s)
	}
	if asJSON {
		out := map[string]any{"dir": dir, "engine": engine, "current": current, "files": files}
		if version != nil {
			out["version"] = version.Version
		}
		if err := printJSON(w, out); err != nil {
			return err
		}
		return errors.Join(damaged...)
	}
	fmt.Fprintf(w, "directory %s: engine %s, %d entries", dir, engine, len(files))
	if current != "" {
		fmt.Fprintf(w, ", CURRENT names %s", current)
	}
	fmt.Fprint(w, "\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE\tKIND\tBYTES\tRECORDS\tENTRIES\tDELETIONS\tSEQ RANGE\tNOTE")
	var total int64
	for _, f := range files {
		total += f.Bytes
		seqs := "-"
		if f.MaxSeq > 0 {
			seqs = fmt.Sprintf("%d-%d", f.MinSeq, f.MaxSeq)
		}
		note := f.Note
		if f.Error != "" {
			note = f.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", f.Name, f.Kind, humanBytes(f.Bytes), f.Records, f.Entries, f.Deletions, seqs, note)
	}
	tw.Flush()
	fmt.Fprintf(w, "\ntotal %s (records: data blocks of a table, batches of a wal, edits of a manifest)\n", humanBytes(total))
	if version != nil && version.Edits > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(w)
		fmt.Fprintln(tw, "LEVEL\tFILES\tBYTES\tKEY RANGE")
		for _, l := range version.Version.Levels {
			if l.Files > 0 {
				fmt.Fprintf(tw, "L%d\t%d\t%s\t%s\n", l.Level, l.Files, humanBytes(l.Bytes), keyRange(*l.Smallest, *l.Largest))
			}
		}
		tw.Flush()
	}
	return errors.Join(damaged...)
}
