package bitcask

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/vfs"
	"github.com/sirupsen/logrus"
)

// Merge (Bitcask paper, §2: "merge process") rewrites the live records of
// the sealed segments into new, compact segments with hint files, and
// deletes the old ones. The protocol, and why each step comes where it
// does:
//
//  1. Seal: rotate the active segment, so that every segment but the new
//     active one is immutable. They are the inputs. Writes go on in the
//     active segment meanwhile.
//  2. Copy, without any write lock: scan each input; a put the keydir
//     still points at (same file, same offset) is live and is copied,
//     with its original sequence number, into output segments named
//     NNNNNN.data.merging (with hints NNNNNN.hint.merging) in the engine's
//     directory, whose ids come from the same counter as the active
//     segment's. Tombstones are dropped: a tombstone only has to hide
//     older puts of its key, and every older put is in an input too (the
//     inputs are every segment older than the active one, earlier merge
//     outputs included), so the inputs' puts and tombstones disappear
//     together; the active and later segments hold only newer sequence
//     numbers, which win anyway.
//  3. Sync the outputs and their hints, create merge/, sync the directory:
//     the outputs must exist durably before the commit names them.
//  4. Keep the active segment the newest: if its id is below an output's,
//     rotate again. Recovery treats only the highest-id segment's tail as
//     possibly torn; after this step that is always the segment writes go
//     to, never a merge output.
//  5. Commit: write merge/DONE (listing inputs and outputs) to DONE.tmp,
//     sync it, rename it to DONE, sync merge/. From here on recovery
//     finishes the merge instead of discarding it.
//  6. Rename each output to its final name (NNNNNN.data, NNNNNN.hint) and
//     sync the directory. NB: the outputs never move between directories:
//     a rename across two directories is two directory changes, and a
//     crash may persist the removal from one without the addition to the
//     other (vfs.MemFS.CrashCloneRandom models that), losing the file. A
//     rename within one directory is a single change.
//  7. Install, under db.mu: point each key the merge copied at its new
//     location, unless a write changed it meanwhile (the entry no longer
//     points at the input record it copied: the newer entry stays).
//     Replace the inputs with the outputs in the segment table.
//  8. Delete the inputs, each once nothing pins it (snapshots and
//     iterators may still read them), and sync the directory. Only when
//     every input is really gone is merge/ (and DONE with it) removed.
//     NB: DONE must outlive the inputs. Say input A holds a tombstone for
//     k and input B an older put of k, and A is deleted first: if DONE
//     were gone, a crash before B's deletion would resurrect k. With DONE,
//     recovery deletes B.
//
// An input still pinned when the next merge commits stays listed: the
// new DONE lists the inputs of every merge whose files are still on disk.

// errMergeAborted marks a merge that failed before its commit point and
// left the engine as it was.
var errMergeAborted = errors.New("kvs/bitcask: merge aborted")

// Compact runs a merge: it rewrites the live records of every segment but
// the active one into new segments with hint files and deletes the old
// segments (once no snapshot or iterator needs them). Reads and writes go
// on while it runs; only the install step takes the keydir lock. One merge
// runs at a time: a second Compact waits for the first. A merge that fails
// before its commit point leaves everything as it was and returns the
// error; one that fails after it makes the engine refuse writes
// (kvs.ErrFailed) until it is reopened, and recovery then finishes the
// merge. If the engine has failed (a write or an fsync failed) by the
// time the merge would seal the active segment, at its start or just
// before its commit (step 4), the merge aborts and Compact returns that
// failure, wrapping kvs.ErrFailed: the active segment may end in half a
// batch and must stay the newest (see rotateLocked).
func (db *DB) Compact() error {
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed {
		return kvs.ErrClosed
	}
	db.mergeMu.Lock()
	defer db.mergeMu.Unlock()
	if err := db.failure(); err != nil {
		return err
	}
	start := time.Now()
	inputs, err := db.sealForMerge()
	if err != nil || len(inputs) == 0 {
		return err
	}
	db.obsMu.Lock()
	db.merging = true
	db.obsMu.Unlock()
	defer func() {
		db.obsMu.Lock()
		db.merging = false
		db.removeMergeDirLocked()
		db.obsMu.Unlock()
	}()

	m := &merger{db: db, inputs: inputs}
	if err := m.run(); err != nil {
		return err
	}
	took := time.Since(start)
	db.stats.compactions.Add(1)
	db.stats.compactionNanos.Add(int64(took))
	db.log.WithFields(logrus.Fields{
		"inputs":        len(inputs),
		"outputs":       len(m.outputs),
		"bytes_read":    m.bytesRead,
		"bytes_written": m.bytesWritten,
		"took":          took.Round(time.Microsecond),
	}).Info("merged")
	return nil
}

// sealForMerge rotates the active segment if it holds records and returns
// every other live segment, in id order.
func (db *DB) sealForMerge() ([]*segment, error) {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if db.active.records > 0 {
		if err := db.rotateLocked(); err != nil {
			return nil, err
		}
	}
	db.mu.RLock()
	defer db.mu.RUnlock()
	var inputs []*segment
	for id, s := range db.segs {
		if id != db.active.id {
			inputs = append(inputs, s)
		}
	}
	slices.SortFunc(inputs, func(a, b *segment) int { return cmp.Compare(a.id, b.id) })
	return inputs, nil
}

// merger is one merge in progress.
type merger struct {
	db      *DB
	inputs  []*segment
	outputs []*mergeOutput
	out     *mergeOutput // the output being written
	updates []mergeUpdate
	buf     []byte

	bytesRead, bytesWritten int64
	committed               bool
}

// mergeOutput is one output segment being written, under its .merging
// name until the commit.
type mergeOutput struct {
	id          uint64
	path, hpath string // the .merging names
	f           vfs.File
	w           *bufio.Writer
	hf          vfs.File
	hint        *hintWriter
	size        int64
	records     int64
}

// mergeUpdate moves a key's entry from the input record the merge copied
// to the output record, if the keydir still points at the former.
type mergeUpdate struct {
	key      string
	from, to entry
}

func (m *merger) run() (err error) {
	db := m.db
	defer func() {
		if err != nil && !m.committed {
			m.abort()
		}
	}()
	for _, in := range m.inputs {
		if err := m.copySegment(in); err != nil {
			return fmt.Errorf("%w: %w", errMergeAborted, err)
		}
	}
	if err := m.finishOutput(); err != nil {
		return fmt.Errorf("%w: %w", errMergeAborted, err)
	}
	if err := db.fs.MkdirAll(db.mergePath, 0o755); err != nil {
		return fmt.Errorf("%w: create %s: %w", errMergeAborted, db.mergePath, err)
	}
	if err := vfs.SyncDir(db.fs, db.dir); err != nil {
		return fmt.Errorf("%w: %w", errMergeAborted, err)
	}
	if err := m.keepActiveNewest(); err != nil {
		return err
	}
	done, err := m.commit()
	if err != nil {
		if m.committed {
			return db.fail(fmt.Errorf("merge: %w", err))
		}
		return fmt.Errorf("%w: %w", errMergeAborted, err)
	}
	if err := m.renameOutputs(); err != nil {
		return db.fail(fmt.Errorf("merge: %w", err))
	}
	if err := m.install(done); err != nil {
		return db.fail(fmt.Errorf("merge: %w", err))
	}
	return nil
}

// copySegment copies the live puts of input in to the outputs.
func (m *merger) copySegment(in *segment) error {
	db := m.db
	r := newSegmentReader(in.f, in.bytes, true)
	for {
		rec, status, err := r.next()
		if err != nil {
			return fmt.Errorf("read %s at offset %d: %w", in.path, rec.offset, err)
		}
		switch status {
		case scanEOF:
			m.bytesRead += in.bytes
			db.stats.compactionBytesRead.Add(in.bytes)
			return nil
		case scanChecksum:
			return kvs.Corruptf(in.path, rec.offset, "record checksum mismatch (%s)", describe(rec.h))
		case scanTruncated, scanInvalid:
			return kvs.Corruptf(in.path, rec.offset, "%s", r.reason)
		}
		if rec.h.tombstone() {
			continue
		}
		db.mu.RLock()
		e, ok := db.keydir.get(rec.key)
		db.mu.RUnlock()
		if !ok || uint64(e.fileID) != in.id || e.offset != rec.offset {
			continue // overwritten or deleted since
		}
		if err := m.copyRecord(rec, e); err != nil {
			return err
		}
	}
}

// copyRecord appends rec, a live put, to the current output, clearing its
// batch bit: the batch it came from was whole, and the merge commits all
// its outputs at once. NB: every record written to an output goes through
// here and is listed in the output's hint right away, so the hint lists
// the records in file order with nothing between them, as its format
// requires (it stores no offsets; see hint.go).
func (m *merger) copyRecord(rec scannedRecord, from entry) error {
	size := int64(recordLen(rec.h.seq, len(rec.key), len(rec.value)))
	if m.out == nil || (m.out.size > fileHeaderLen && m.out.size+size > m.db.opts.Bitcask.MaxSegmentBytes) {
		if err := m.finishOutput(); err != nil {
			return err
		}
		if err := m.newOutput(); err != nil {
			return err
		}
	}
	o := m.out
	m.buf = appendRecord(m.buf[:0], typePut, rec.h.seq, rec.key, rec.value)
	if _, err := o.w.Write(m.buf); err != nil {
		return fmt.Errorf("write %s: %w", o.path, err)
	}
	if err := o.hint.add(rec.h.seq, rec.key, o.size, size); err != nil {
		return fmt.Errorf("write %s: %w", o.hpath, err)
	}
	m.updates = append(m.updates, mergeUpdate{
		key:  string(rec.key),
		from: from,
		to:   entry{fileID: uint32(o.id), size: uint32(size), offset: o.size, seq: rec.h.seq},
	})
	o.size += size
	o.records++
	return nil
}

// newOutput creates the next output segment and its hint file under their
// .merging names.
func (m *merger) newOutput() error {
	db := m.db
	id := db.nextFileID.Add(1) - 1
	if id > maxFileID {
		return fmt.Errorf("file id %d exceeds %d", id, uint64(maxFileID))
	}
	o := &mergeOutput{
		id:    id,
		path:  db.path(segmentName(id) + mergingSuffix),
		hpath: db.path(hintName(id) + mergingSuffix),
		size:  fileHeaderLen,
	}
	m.outputs = append(m.outputs, o)
	var err error
	if o.f, err = db.fs.Create(o.path); err != nil {
		return fmt.Errorf("create %s: %w", o.path, err)
	}
	o.w = bufio.NewWriterSize(o.f, scanBufferSize)
	if _, err := o.w.Write(appendFileHeader(nil, segmentMagic, segmentVersion)); err != nil {
		return fmt.Errorf("write %s: %w", o.path, err)
	}
	if o.hf, err = db.fs.Create(o.hpath); err != nil {
		return fmt.Errorf("create %s: %w", o.hpath, err)
	}
	if o.hint, err = newHintWriter(o.hf); err != nil {
		return fmt.Errorf("write %s: %w", o.hpath, err)
	}
	m.out = o
	return nil
}

// finishOutput flushes, syncs and closes the current output and its hint.
func (m *merger) finishOutput() error {
	o := m.out
	if o == nil {
		return nil
	}
	m.out = nil
	db := m.db
	if o.hint.end != o.size {
		panic(fmt.Sprintf("kvs/bitcask: merge output %s holds %d bytes, its hint lists records up to %d", o.path, o.size, o.hint.end))
	}
	if err := o.w.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", o.path, err)
	}
	if err := o.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", o.path, err)
	}
	if err := o.hint.finish(); err != nil {
		return fmt.Errorf("sync %s: %w", o.hpath, err)
	}
	db.stats.syncs.Add(2)
	err := o.f.Close()
	o.f = nil
	if herr := o.hf.Close(); err == nil {
		err = herr
	}
	o.hf = nil
	if err != nil {
		return fmt.Errorf("close %s: %w", o.path, err)
	}
	written := o.size + o.hint.written
	m.bytesWritten += written
	db.stats.diskBytesWritten.Add(written)
	db.stats.compactionBytesWritten.Add(written)
	return nil
}

// keepActiveNewest rotates the active segment if an output has a higher
// id (step 4). An active segment that holds no record is dropped rather
// than sealed: it would only be an empty file until the next merge.
func (m *merger) keepActiveNewest() error {
	var maxOut uint64
	for _, o := range m.outputs {
		maxOut = max(maxOut, o.id)
	}
	db := m.db
	db.writeMu.Lock()
	old := db.active
	if old.id > maxOut {
		db.writeMu.Unlock()
		return nil
	}
	if err := db.rotateLocked(); err != nil {
		db.writeMu.Unlock()
		return err
	}
	empty := old.records == 0
	if empty {
		// NB: no keydir entry points at it, so nothing but pins (which
		// unref handles) needs it; if its removal does not survive a
		// crash it comes back as an empty sealed segment, which the
		// next Open deletes (loader.loadSegment).
		db.mu.Lock()
		delete(db.segs, old.id)
		old.obsolete.Store(true)
		db.mu.Unlock()
	}
	db.writeMu.Unlock()
	if empty {
		db.unref(old)
	}
	return nil
}

// commit writes merge/DONE (step 5). It lists as inputs this merge's
// inputs and every earlier merge's input still on disk.
func (m *merger) commit() ([]byte, error) {
	db := m.db
	var inputs, outputs []uint64
	for _, in := range m.inputs {
		inputs = append(inputs, in.id)
	}
	db.obsMu.Lock()
	for id := range db.pending {
		inputs = append(inputs, id)
	}
	db.obsMu.Unlock()
	slices.Sort(inputs)
	for _, o := range m.outputs {
		outputs = append(outputs, o.id)
	}
	done := encodeDone(inputs, outputs)

	tmp := db.fs.PathJoin(db.mergePath, doneTmpFile)
	path := db.fs.PathJoin(db.mergePath, doneFile)
	f, err := db.fs.Create(tmp)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", tmp, err)
	}
	if _, err := f.Write(done); err != nil {
		f.Close()
		return nil, fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("sync %s: %w", tmp, err)
	}
	db.stats.syncs.Add(1)
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("close %s: %w", tmp, err)
	}
	db.stats.diskBytesWritten.Add(int64(len(done)))
	if err := db.fs.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("rename %s: %w", tmp, err)
	}
	// NB: from here on the merge counts as committed in memory too: DONE
	// is in the directory, durable or not, and the next Open will finish
	// the merge. Any failure now must stop the engine instead of going
	// on without this merge.
	m.committed = true
	if err := vfs.SyncDir(db.fs, db.mergePath); err != nil {
		return nil, err
	}
	return done, nil
}

// renameOutputs gives the outputs and their hints their final names and
// syncs the directory (step 6).
func (m *merger) renameOutputs() error {
	db := m.db
	for _, o := range m.outputs {
		for _, p := range [][2]string{{o.path, db.path(segmentName(o.id))}, {o.hpath, db.path(hintName(o.id))}} {
			if err := db.fs.Rename(p[0], p[1]); err != nil {
				return fmt.Errorf("rename %s: %w", p[0], err)
			}
		}
	}
	return vfs.SyncDir(db.fs, db.dir)
}

// install replaces the inputs with the outputs in the keydir and the
// segment table (step 7), then drops the table's references to the
// inputs, deleting those no snapshot or iterator pins (step 8).
func (m *merger) install(done []byte) error {
	db := m.db
	outs := make(map[uint64]*segment, len(m.outputs))
	for _, o := range m.outputs {
		path := db.path(segmentName(o.id))
		f, err := db.fs.Open(path)
		if err != nil {
			for _, s := range outs {
				s.closeFile()
			}
			return fmt.Errorf("open %s: %w", path, err)
		}
		s := newSegment(o.id, path, f)
		s.bytes, s.records, s.hintBytes = o.size, o.records, o.hint.written
		s.setFlushed(o.size)
		db.mapSegment(s, o.size)
		outs[o.id] = s
	}

	db.mu.Lock()
	for id, s := range outs {
		db.segs[id] = s
	}
	for _, u := range m.updates {
		cur, ok := db.keydir.get(unsafe.Slice(unsafe.StringData(u.key), len(u.key)))
		if !ok || cur.fileID != u.from.fileID || cur.offset != u.from.offset {
			continue // a write replaced or deleted the key during the merge
		}
		db.keydir.set(u.key, u.to)
		if in := db.segs[uint64(u.from.fileID)]; in != nil {
			in.liveRecords--
			in.liveBytes -= int64(u.from.size)
		}
		out := outs[uint64(u.to.fileID)]
		out.liveRecords++
		out.liveBytes += int64(u.to.size)
	}
	for _, in := range m.inputs {
		delete(db.segs, in.id)
		in.obsolete.Store(true)
	}
	db.mu.Unlock()
	m.updates = nil

	db.obsMu.Lock()
	for _, in := range m.inputs {
		db.pending[in.id] = in
	}
	db.doneBytes = int64(len(done))
	db.obsMu.Unlock()
	db.unref(m.inputs...)
	return nil
}

// abort removes the outputs of a merge that did not commit. merge/ goes
// when nothing else needs it (removeMergeDirLocked).
func (m *merger) abort() {
	db := m.db
	for _, o := range m.outputs {
		for _, f := range []vfs.File{o.f, o.hf} {
			if f != nil {
				f.Close()
			}
		}
		for _, p := range []string{o.path, o.hpath} {
			if err := db.fs.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				db.log.WithError(err).WithField("file", p).Warn("cannot remove an aborted merge's output")
			}
		}
	}
	db.fs.Remove(db.fs.PathJoin(db.mergePath, doneTmpFile))
}

// removeMergeDirLocked removes merge/ once no merge runs and every segment
// a merge replaced is gone, then syncs the directory. db.obsMu is held.
func (db *DB) removeMergeDirLocked() {
	if db.merging || len(db.pending) > 0 || db.obsClosed || db.failure() != nil {
		return
	}
	if _, err := db.fs.Stat(db.mergePath); errors.Is(err, fs.ErrNotExist) {
		db.doneBytes = 0
		return
	}
	if err := db.removeMergeDir(); err != nil {
		db.log.WithError(err).Warn("cannot remove the merge directory; the next open will")
		return
	}
	if err := vfs.SyncDir(db.fs, db.dir); err != nil {
		db.fail(err)
		return
	}
	db.doneBytes = 0
}

// removeMergeDir removes merge/DONE.tmp, merge/DONE and then merge/,
// which must then be empty. It removes nothing else: kvs never deletes
// what it does not recognise, so a file it did not write in merge/ makes
// it fail, before it removes anything, with an error wrapping
// kvs.ErrNotKVSDir naming the file. The caller syncs the engine's
// directory.
func (db *DB) removeMergeDir() error {
	if err := checkMergeDir(db.fs, db.mergePath); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	for _, name := range []string{doneTmpFile, doneFile} {
		p := db.fs.PathJoin(db.mergePath, name)
		if err := db.fs.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", p, err)
		}
	}
	// NB: a file created in merge/ since the check makes this fail
	// (ENOTEMPTY) rather than delete it.
	if err := db.fs.Remove(db.mergePath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", db.mergePath, err)
	}
	return nil
}

// encodeDone returns the text of a DONE file: "input <id>" and
// "output <id>" lines and a last line "crc32c <8 hex digits>" over the
// bytes before it.
func encodeDone(inputs, outputs []uint64) []byte {
	var b []byte
	for _, id := range inputs {
		b = fmt.Appendf(b, "input %d\n", id)
	}
	for _, id := range outputs {
		b = fmt.Appendf(b, "output %d\n", id)
	}
	return appendDoneChecksum(b)
}

// appendDoneChecksum appends DONE's last line to body.
func appendDoneChecksum(body []byte) []byte {
	return fmt.Appendf(body, "crc32c %08x\n", crc32.Checksum(body, crcTable))
}

// decodeDone parses a DONE file read from path. Any flaw is a
// *kvs.CorruptionError at the offset of the bad line: DONE is written
// whole and renamed into place, so a damaged one is not a torn write.
func decodeDone(path string, b []byte) (inputs, outputs []uint64, err error) {
	if len(b) == 0 || b[len(b)-1] != '\n' {
		return nil, nil, kvs.Corruptf(path, int64(len(b)), "DONE does not end with a newline")
	}
	lastStart := bytes.LastIndexByte(b[:len(b)-1], '\n') + 1
	body, last := b[:lastStart], string(b[lastStart:len(b)-1])
	hex, ok := strings.CutPrefix(last, "crc32c ")
	if !ok || len(hex) != 8 {
		return nil, nil, kvs.Corruptf(path, int64(lastStart), "last line %q is not \"crc32c <8 hex digits>\"", last)
	}
	want, perr := strconv.ParseUint(hex, 16, 32)
	if perr != nil {
		return nil, nil, kvs.Corruptf(path, int64(lastStart), "bad checksum %q", hex)
	}
	if got := crc32.Checksum(body, crcTable); uint32(want) != got {
		return nil, nil, kvs.Corruptf(path, int64(lastStart), "checksum mismatch: stored %08x, computed %08x", want, got)
	}
	for off := 0; off < len(body); {
		end := off + bytes.IndexByte(body[off:], '\n')
		line := string(body[off:end])
		word, num, _ := strings.Cut(line, " ")
		id, perr := strconv.ParseUint(num, 10, 64)
		switch {
		case perr != nil || id == 0 || strconv.FormatUint(id, 10) != num:
			return nil, nil, kvs.Corruptf(path, int64(off), "bad line %q", line)
		case word == "input":
			inputs = append(inputs, id)
		case word == "output":
			outputs = append(outputs, id)
		default:
			return nil, nil, kvs.Corruptf(path, int64(off), "bad line %q", line)
		}
		off = end + 1
	}
	return inputs, outputs, nil
}

// recoverMerge applies recovery rule 1: finish the merge merge/DONE
// commits, or discard an uncommitted one, then delete every output left
// under a .merging name (from a merge that never committed). names are the
// directory's entries. Each step is idempotent, so a crash during recovery
// is recovered the same way.
func (db *DB) recoverMerge(names []string) error {
	hasMergeDir := slices.Contains(names, mergeDir)
	if hasMergeDir {
		if err := db.finishMerge(); err != nil {
			return err
		}
		var err error
		if names, err = db.fs.List(db.dir); err != nil {
			return fmt.Errorf("kvs/bitcask: open %s: %w", db.dir, err)
		}
	}
	removed := 0
	for _, name := range names {
		if _, kind := ParseFileName(name); kind == FileMergeOutput {
			if err := db.fs.Remove(db.path(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("kvs/bitcask: open %s: remove an uncommitted merge output: %w", db.dir, err)
			}
			removed++
		}
	}
	if removed > 0 {
		db.log.WithField("files", removed).Info("removed the outputs of an uncommitted merge")
	}
	if hasMergeDir {
		if err := db.removeMergeDir(); err != nil {
			return fmt.Errorf("kvs/bitcask: open %s: %w", db.dir, err)
		}
	}
	if removed > 0 || hasMergeDir {
		if err := vfs.SyncDir(db.fs, db.dir); err != nil {
			return fmt.Errorf("kvs/bitcask: open %s: %w", db.dir, err)
		}
	}
	return nil
}

// finishMerge completes the merge merge/DONE records, if there is one:
// it renames the outputs still under .merging names, syncs, deletes the
// inputs, syncs.
func (db *DB) finishMerge() error {
	donePath := db.fs.PathJoin(db.mergePath, doneFile)
	b, err := readWhole(db.fs, donePath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		db.log.Info("discarding an unfinished merge")
		return nil
	case err != nil:
		return fmt.Errorf("kvs/bitcask: open %s: read %s: %w", db.dir, donePath, err)
	}
	inputs, outputs, err := decodeDone(donePath, b)
	if err != nil {
		return err
	}
	for _, id := range outputs {
		for _, name := range []string{segmentName(id), hintName(id)} {
			src, dst := db.path(name+mergingSuffix), db.path(name)
			if _, err := db.fs.Stat(src); err == nil {
				if err := db.fs.Rename(src, dst); err != nil {
					return fmt.Errorf("kvs/bitcask: open %s: finish merge: rename %s: %w", db.dir, src, err)
				}
			} else if _, err := db.fs.Stat(dst); err != nil && name == segmentName(id) {
				return kvs.Corruptf(donePath, 0, "merge output %s is missing", dst)
			}
		}
	}
	if err := vfs.SyncDir(db.fs, db.dir); err != nil {
		return fmt.Errorf("kvs/bitcask: open %s: finish merge: %w", db.dir, err)
	}
	for _, id := range inputs {
		if err := db.removeSegmentFiles(id); err != nil {
			return fmt.Errorf("kvs/bitcask: open %s: finish merge: %w", db.dir, err)
		}
	}
	if err := vfs.SyncDir(db.fs, db.dir); err != nil {
		return fmt.Errorf("kvs/bitcask: open %s: finish merge: %w", db.dir, err)
	}
	db.log.WithFields(logrus.Fields{"inputs": len(inputs), "outputs": len(outputs)}).Info("finished a committed merge")
	return nil
}
