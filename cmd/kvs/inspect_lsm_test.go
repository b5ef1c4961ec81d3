package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/compaction"
	"github.com/kvs-lab/kvs/internal/base"
	"github.com/kvs-lab/kvs/internal/vfs"
	"github.com/kvs-lab/kvs/lsm"
	"github.com/kvs-lab/kvs/sstable"
	"github.com/kvs-lab/kvs/wal"
)

// lsmFixture is a directory of real LSM files written through vfs.Default
// with the building blocks' own writers.
type lsmFixture struct {
	dir      string
	table    string // 000005.sst: 300 keys, every tenth a deletion
	table2   string // 000006.sst: 20 keys
	log      string // 000007.log: 3 batches of 1, 2 and 3 entries
	manifest string // MANIFEST-000004: 3 edits
}

const fixtureKeys = 300

func newLSMFixture(t testing.TB) lsmFixture {
	t.Helper()
	dir := t.TempDir()
	fx := lsmFixture{
		dir:      dir,
		table:    filepath.Join(dir, "000005.sst"),
		table2:   filepath.Join(dir, "000006.sst"),
		log:      filepath.Join(dir, "000007.log"),
		manifest: filepath.Join(dir, "MANIFEST-000004"),
	}
	// Small blocks and incompressible-free values: several data blocks,
	// some snappy-compressed.
	writeTable(t, fx.table, sstable.WriterOptions{BlockSize: 1024}, fixtureKeys, "key", 1)
	writeTable(t, fx.table2, sstable.WriterOptions{}, 20, "zeta", 1000)

	f, err := vfs.Default.Create(fx.log)
	if err != nil {
		t.Fatal(err)
	}
	w := wal.NewWriter(f, 7)
	seq := uint64(2000)
	for n := 1; n <= 3; n++ {
		var b kvs.Batch
		for i := 0; i < n; i++ {
			if i == 1 {
				b.Delete([]byte(fmt.Sprintf("gone%d", n)))
			} else {
				b.Put([]byte(fmt.Sprintf("w%d.%d", n, i)), []byte(strings.Repeat("v", 10*n)))
			}
		}
		b.SetSeq(seq)
		seq += uint64(n)
		if _, err := w.WriteRecord(b.Repr()); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	st := func(path string) int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	edits := []*lsm.VersionEdit{
		{LogNumber: 3, NextFileNumber: 5, LastSeq: 0},
		{LogNumber: 7, NextFileNumber: 8, LastSeq: 300,
			Added: []lsm.NewTable{tableAt(0, 5, st(fx.table), "key00000", 1, "key00299", 300)}},
		{NextFileNumber: 8, LastSeq: 1019,
			Deleted: []lsm.DeletedTable{{Level: 0, FileNum: 5}},
			Added: []lsm.NewTable{tableAt(1, 5, st(fx.table), "key00000", 1, "key00299", 300),
				tableAt(1, 6, st(fx.table2), "zeta00000", 1000, "zeta00019", 1019)}},
	}
	writeManifest(t, fx.manifest, 4, edits)
	writeFile(t, filepath.Join(dir, "CURRENT"), "MANIFEST-000004\n")
	writeFile(t, filepath.Join(dir, kvs.EngineFile), "lsm\n")
	writeFile(t, filepath.Join(dir, "LOCK"), "")
	return fx
}

// writeTable writes n keys prefix%05d with seqs from seq0 up; every tenth
// is a deletion.
func writeTable(t testing.TB, path string, o sstable.WriterOptions, n int, prefix string, seq0 uint64) {
	t.Helper()
	f, err := vfs.Default.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := sstable.NewWriter(f, o)
	for i := 0; i < n; i++ {
		kind, value := base.KindSet, []byte(strings.Repeat(fmt.Sprintf("value%d-", i), 4))
		if i%10 == 9 {
			kind, value = base.KindDelete, nil
		}
		if err := w.Add(base.MakeInternalKey([]byte(fmt.Sprintf("%s%05d", prefix, i)), seq0+uint64(i), kind), value); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func writeManifest(t testing.TB, path string, num uint64, edits []*lsm.VersionEdit) {
	t.Helper()
	f, err := vfs.Default.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := wal.NewWriter(f, num)
	for _, e := range edits {
		if _, err := w.WriteRecord(e.Encode(nil)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t testing.TB, path, s string) {
	t.Helper()
	f, err := vfs.Default.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// tableAt describes a table for a version edit.
func tableAt(level int, num uint64, size int64, lo string, loSeq uint64, hi string, hiSeq uint64) lsm.NewTable {
	return lsm.NewTable{Level: level, Meta: &compaction.TableMeta{
		FileNum: num, Size: size,
		Smallest:    base.MakeInternalKey([]byte(lo), loSeq, base.KindSet),
		Largest:     base.MakeInternalKey([]byte(hi), hiSeq, base.KindSet),
		SmallestSeq: loSeq, LargestSeq: hiSeq,
	}}
}

// flipByte xors one byte of path at off.
func flipByte(t testing.TB, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 0x40
	writeFile(t, path, string(b))
}

func TestInspectTableShowsPropertiesBlocksAndKeys(t *testing.T) {
	fx := newLSMFixture(t)
	out := mustRun(t, "inspect", fx.table)
	for _, want := range []string{"000005.sst: table", "entries      300 (30 deletions)", "key00000#1,SET .. key00299#300,DEL",
		"10 bits/key", "BLOCK", "data 0", "snappy", "index", "properties", "footer"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect of a table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "VALUE BYTES") {
		t.Errorf("inspect without --keys or --limit listed entries:\n%s", out)
	}
	out = mustRun(t, "inspect", fx.table, "--limit", "5")
	if !strings.Contains(out, "key00004") || strings.Contains(out, "key00005") || !strings.Contains(out, "... 295 more (raise --limit)") {
		t.Errorf("inspect --limit 5 of a table:\n%s", out)
	}
	out = mustRun(t, "inspect", fx.table, "--keys")
	if !strings.Contains(out, "key00299  300  DEL") || strings.Count(out, "\nkey0") != fixtureKeys {
		t.Errorf("inspect --keys lists %d entries, want %d:\n%s", strings.Count(out, "\nkey0"), fixtureKeys, out)
	}

	var rep tableReport
	if err := json.Unmarshal([]byte(mustRun(t, "inspect", fx.table, "--json", "--keys")), &rep); err != nil {
		t.Fatal(err)
	}
	p := rep.Properties
	if p == nil || p.Entries != fixtureKeys || p.Deletions != 30 || p.Smallest.Key != "key00000" || p.Largest.Seq != 300 || p.FilterBitsPerKey != 10 {
		t.Fatalf("inspect --json properties = %+v", p)
	}
	data, entries := 0, 0
	for _, b := range rep.Blocks {
		if b.Kind == "data" {
			data++
			entries += b.Entries
			if b.Separator == nil {
				t.Errorf("data block at %d has no separator", b.Offset)
			}
		}
	}
	if data < 2 || uint64(data) != p.DataBlocks || entries != fixtureKeys || len(rep.Entries) != fixtureKeys || rep.Entries[9].Kind != "DEL" {
		t.Fatalf("inspect --json: %d data blocks (properties say %d) holding %d entries, %d entries listed", data, p.DataBlocks, entries, len(rep.Entries))
	}
}

func TestInspectDamagedTableNamesFileAndOffset(t *testing.T) {
	fx := newLSMFixture(t)
	var rep tableReport
	if err := json.Unmarshal([]byte(mustRun(t, "inspect", fx.table, "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	second := rep.Blocks[1] // a data block: Open still works, reading it fails
	flipByte(t, fx.table, int64(second.Offset)+3)
	out, errs, code := kvsRun(t, "", "inspect", fx.table, "--keys")
	want := fmt.Sprintf("corruption in %s at offset %d", fx.table, second.Offset)
	if code != 1 || !strings.Contains(errs, want) {
		t.Fatalf("inspect of a damaged table: exit %d, stderr %q; want exit 1 and %q", code, errs, want)
	}
	// What could be read comes first: the properties and the entries of
	// the first block.
	if !strings.Contains(out, "entries      300") || !strings.Contains(out, "key00000") ||
		!strings.Contains(out, fmt.Sprintf("%d of 300 entries readable", rep.Blocks[0].Entries)) {
		t.Fatalf("inspect of a damaged table printed:\n%s", out)
	}

	// Damage to the footer leaves nothing but the error.
	fi, _ := os.Stat(fx.table2)
	flipByte(t, fx.table2, fi.Size()-1)
	_, errs, code = kvsRun(t, "", "inspect", fx.table2)
	if code != 1 || !strings.Contains(errs, "corruption in "+fx.table2) {
		t.Fatalf("inspect of a table with a bad footer: exit %d, stderr %q", code, errs)
	}
}

func TestInspectWALListsBatches(t *testing.T) {
	fx := newLSMFixture(t)
	out := mustRun(t, "inspect", fx.log)
	for _, want := range []string{"OFFSET", "2000", "2001", "2003", "SET w3.0 (30 B), DEL gone3, SET w3.2 (30 B)",
		"000007.log: wal, log number 7", "3 records, 6 entries (4 sets, 2 deletes), seqs 2000-2005"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect of a wal lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "torn") {
		t.Errorf("a clean log reported a torn tail:\n%s", out)
	}
	out = mustRun(t, "inspect", fx.log, "--limit", "2")
	if !strings.Contains(out, "SET w2.0 (20 B), DEL gone2\n") || !strings.Contains(out, "... 1 more records") {
		t.Errorf("inspect --limit 2 of a wal:\n%s", out)
	}
	var rep walReport
	if err := json.Unmarshal([]byte(mustRun(t, "inspect", fx.log, "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Records != 3 || rep.Entries != 6 || rep.Deletes != 2 || rep.MinSeq != 2000 || rep.MaxSeq != 2005 ||
		len(rep.Listed) != 3 || rep.Listed[2].Seq != 2003 || rep.Listed[2].Count != 3 || rep.Listed[2].Entries[1].Key != "gone3" {
		t.Fatalf("inspect --json of a wal = %+v", rep)
	}
}

func TestInspectWALTornTailIsANote(t *testing.T) {
	fx := newLSMFixture(t)
	b, err := os.ReadFile(fx.log)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, fx.log, string(b[:len(b)-5])) // the last record cut short
	out := mustRun(t, "inspect", fx.log)
	if !strings.Contains(out, "2 records") || !strings.Contains(out, "note: torn tail") {
		t.Fatalf("inspect of a torn wal:\n%s", out)
	}
	var rep walReport
	if err := json.Unmarshal([]byte(mustRun(t, "inspect", fx.log, "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.TornTail == nil || rep.TornTail.Bytes != int64(len(b)-5)-rep.TornTail.Offset || rep.Records != 2 {
		t.Fatalf("inspect --json of a torn wal: %+v, torn tail %+v", rep, rep.TornTail)
	}
}

func TestInspectWALMidLogDamageIsAnError(t *testing.T) {
	fx := newLSMFixture(t)
	var rep walReport
	if err := json.Unmarshal([]byte(mustRun(t, "inspect", fx.log, "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	second := rep.Listed[1].Offset
	flipByte(t, fx.log, second+wal.HeaderSize+2) // the second record's payload
	out, errs, code := kvsRun(t, "", "inspect", fx.log)
	want := fmt.Sprintf("corruption in %s at offset %d", fx.log, second)
	if code != 1 || !strings.Contains(errs, want) || !strings.Contains(out, "1 records") {
		t.Fatalf("inspect of a damaged wal: exit %d, stderr %q, stdout:\n%s\nwant exit 1, %q and the first record", code, errs, want, out)
	}
}

func TestInspectManifestReplaysEdits(t *testing.T) {
	fx := newLSMFixture(t)
	out := mustRun(t, "inspect", fx.manifest)
	for _, want := range []string{"MANIFEST-000004: manifest", "3 version edits", "edit 1 at offset",
		"log number 7, next file 8, last seq 300", "+ L0  000005.sst", "- L0  000005.sst",
		"keys key00000#1,SET .. key00299#300,SET", "seqs 1000-1019",
		"version: log number 7, next file number 8, last seq 1019", "L1     2", "key00000#1,SET .. zeta00019#1019,SET"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect of a MANIFEST lacks %q:\n%s", want, out)
		}
	}
	viaCurrent := mustRun(t, "inspect", filepath.Join(fx.dir, "CURRENT"))
	if !strings.HasPrefix(viaCurrent, "CURRENT names MANIFEST-000004\n") || !strings.HasSuffix(viaCurrent, out[strings.Index(out, "version:"):]) {
		t.Errorf("inspect CURRENT:\n%s", viaCurrent)
	}
	var rep manifestReport
	if err := json.Unmarshal([]byte(mustRun(t, "inspect", fx.manifest, "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	v := rep.Version
	if rep.Edits != 3 || len(rep.Listed) != 3 || len(rep.Listed[2].Added) != 2 || rep.Listed[2].Deleted[0].FileNum != 5 ||
		v.LastSeq != 1019 || v.LogNumber != 7 || len(v.Levels) != 2 || v.Levels[0].Files != 0 || v.Levels[1].Files != 2 ||
		v.Levels[1].Tables[1].FileNum != 6 || v.Levels[1].Largest.Key != "zeta00019" {
		t.Fatalf("inspect --json of a MANIFEST = %+v", rep)
	}
}

func TestInspectManifestThatDoesNotApplyIsCorruption(t *testing.T) {
	fx := newLSMFixture(t)
	bad := filepath.Join(fx.dir, "MANIFEST-000009")
	writeManifest(t, bad, 9, []*lsm.VersionEdit{
		{NextFileNumber: 10},
		{Deleted: []lsm.DeletedTable{{Level: 2, FileNum: 5}}},
	})
	out, errs, code := kvsRun(t, "", "inspect", bad)
	if code != 1 || !strings.Contains(errs, "corruption in "+bad+" at offset") || !strings.Contains(errs, "does not hold it") ||
		!strings.Contains(out, "1 version edits") {
		t.Fatalf("a MANIFEST deleting a missing table: exit %d, stderr %q, stdout:\n%s", code, errs, out)
	}
	writeFile(t, filepath.Join(fx.dir, "CURRENT"), "MANIFEST-9\n")
	_, errs, code = kvsRun(t, "", "inspect", filepath.Join(fx.dir, "CURRENT"))
	if code != 1 || !strings.Contains(errs, "not a MANIFEST name") {
		t.Fatalf("a bad CURRENT: exit %d, stderr %q", code, errs)
	}
}

func TestInspectLSMDirectorySummary(t *testing.T) {
	fx := newLSMFixture(t)
	writeFile(t, filepath.Join(fx.dir, "000002.sst"), "")  // not in the version
	writeFile(t, filepath.Join(fx.dir, "notes.txt"), "hi") // not ours
	// The empty table is damaged (no footer): the summary still lists every
	// file, then exits 1 naming it.
	out, errs, code := kvsRun(t, "", "inspect", "--dir", fx.dir)
	if code != 1 || !strings.Contains(errs, "corruption in "+filepath.Join(fx.dir, "000002.sst")) {
		t.Fatalf("directory with a broken table: exit %d, stderr %q", code, errs)
	}
	for _, want := range []string{"engine lsm", "CURRENT names MANIFEST-000004", "FILE", "000002.sst table 0 B 0 0 0 -",
		"000005.sst table", "000007.log wal", "MANIFEST-000004 manifest", "named by CURRENT", "CURRENT current",
		"ENGINE engine", "LOCK lock", "notes.txt unknown", "not an lsm file", "L1 2"} {
		if !strings.Contains(strings.Join(strings.Fields(out), " "), want) {
			t.Errorf("directory summary lacks %q:\n%s", want, out)
		}
	}
	if err := vfs.Default.Remove(filepath.Join(fx.dir, "000002.sst")); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "inspect", fx.dir)

	var res struct {
		Engine  string           `json:"engine"`
		Current string           `json:"current"`
		Files   []lsmFileSummary `json:"files"`
		Version versionJSON      `json:"version"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, "inspect", fx.dir, "--json")), &res); err != nil {
		t.Fatal(err)
	}
	byName := map[string]lsmFileSummary{}
	for _, f := range res.Files {
		byName[f.Name] = f
	}
	if res.Engine != "lsm" || res.Current != "MANIFEST-000004" || len(res.Files) != 8 ||
		byName["000005.sst"].Entries != fixtureKeys || byName["000005.sst"].Deletions != 30 || byName["000005.sst"].Note != "L1" ||
		byName["000007.log"].Records != 3 || byName["000007.log"].Entries != 6 || byName["MANIFEST-000004"].Records != 3 ||
		byName["notes.txt"].Kind != "unknown" || res.Version.LastSeq != 1019 {
		t.Fatalf("inspect --json of the directory = %+v", res)
	}
}

func TestParseLSMName(t *testing.T) {
	for name, want := range map[string]lsmKind{
		"000007.sst": lsmTable, "1234567.log": lsmWAL, "MANIFEST-000004": lsmManifest, "CURRENT": lsmCurrent,
		"ENGINE": lsmEngine, "LOCK": lsmLock, "7.sst": lsmUnknown, "0000007.log": lsmUnknown, "MANIFEST-": lsmUnknown,
		"000007.data": lsmUnknown, "MANIFEST-00000x": lsmUnknown,
	} {
		if _, got := parseLSMName(name); got != want {
			t.Errorf("parseLSMName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestInspectDirectoryWhoseCurrentNamesAMissingManifest(t *testing.T) {
	fx := newLSMFixture(t)
	writeFile(t, filepath.Join(fx.dir, "CURRENT"), "MANIFEST-000011\n")
	out, errs, code := kvsRun(t, "", "inspect", fx.dir)
	if code != 1 || !strings.Contains(errs, "names MANIFEST-000011, which does not exist") || !strings.Contains(out, "not named by CURRENT") {
		t.Fatalf("CURRENT naming a missing MANIFEST: exit %d, stderr %q, stdout:\n%s", code, errs, out)
	}
}

func TestInspectBitcaskDirectoryIsUnchangedByLSMNames(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "put", "--dir", dir, "k", "v")
	writeFile(t, filepath.Join(dir, "000001.log"), "") // ENGINE says bitcask: a stray name does not switch views
	out, _, _ := kvsRun(t, "", "inspect", dir)
	if !strings.Contains(out, "engine bitcask") || !strings.Contains(out, "TOMBSTONES") {
		t.Fatalf("bitcask directory summary:\n%s", out)
	}
}

func TestInspectWALRecordThatIsNoBatchIsCorruption(t *testing.T) {
	path := filepath.Join(t.TempDir(), "000003.log")
	f, err := vfs.Default.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := wal.NewWriter(f, 3)
	var b kvs.Batch
	b.Put([]byte("a"), []byte("1"))
	b.SetSeq(5)
	for _, rec := range [][]byte{b.Repr(), []byte("not a batch")} {
		if _, err := w.WriteRecord(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out, errs, code := kvsRun(t, "", "inspect", path)
	want := fmt.Sprintf("corruption in %s at offset %d: record holds no valid batch", path, wal.HeaderSize+len(b.Repr()))
	if code != 1 || !strings.Contains(errs, want) || !strings.Contains(out, "SET a (1 B)") {
		t.Fatalf("a wal record that is no batch: exit %d, stderr %q, stdout:\n%s", code, errs, out)
	}
}
