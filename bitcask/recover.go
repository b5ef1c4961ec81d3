package bitcask

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"time"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/vfs"
	"github.com/sirupsen/logrus"
)

// recover rebuilds the engine's state from its directory, following the
// recovery rules of docs/formats/bitcask.md, and starts a new active
// segment. It runs before the DB is shared, so it takes no locks.
func (db *DB) recover() error {
	start := time.Now()
	names, err := db.fs.List(db.dir)
	if err != nil {
		return fmt.Errorf("kvs/bitcask: open %s: %w", db.dir, err)
	}
	if err := checkNames(db.fs, db.dir, names); err != nil {
		return err
	}
	if err := db.checkEngineFile(names); err != nil {
		return err
	}
	// Rule 1: finish a committed merge, drop an unfinished one.
	if err := db.recoverMerge(names); err != nil {
		return err
	}
	if names, err = db.fs.List(db.dir); err != nil {
		return fmt.Errorf("kvs/bitcask: open %s: %w", db.dir, err)
	}

	var segIDs []uint64
	hints := map[uint64]bool{}
	for _, name := range names {
		switch id, kind := ParseFileName(name); kind {
		case FileSegment:
			segIDs = append(segIDs, id)
		case FileHint:
			hints[id] = true
		}
	}
	slices.Sort(segIDs)
	var maxID uint64
	if len(segIDs) > 0 {
		maxID = segIDs[len(segIDs)-1]
	}
	for id := range hints {
		if _, found := slices.BinarySearch(segIDs, id); !found {
			// A hint outlived its segment (its removal came first and
			// the crash came before the segment's): it is useless.
			if err := db.fs.Remove(db.path(hintName(id))); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("kvs/bitcask: open %s: remove orphan hint: %w", db.dir, err)
			}
			delete(hints, id)
		}
	}

	// Rule 2: load every segment. The newest may have a torn tail (rule
	// 3); see loadSegment.
	l := &loader{db: db, tombs: map[string]uint64{}}
	db.keydir.reserve(db.hintedKeys(hints))
	for i, id := range segIDs {
		if err := l.loadSegment(id, i == len(segIDs)-1, hints[id]); err != nil {
			return err
		}
	}
	// Tombstones only had to beat older puts met later in the load;
	// nothing needs them in memory now.
	l.tombs = nil
	db.nextSeq = l.maxSeq + 1
	// The loaded segments are sealed now (a torn tail was cut): map each
	// at its final size.
	for _, s := range db.segs {
		db.mapSegment(s, s.flushed.Load())
	}

	// Always start a new active segment rather than append to an old one:
	// the newest file's tail was just cut and is not worth trusting for
	// appends, and a fresh segment makes "the newest segment is the one
	// being written" true at every moment.
	db.nextFileID.Store(maxID + 1)
	id := db.nextFileID.Add(1) - 1
	active, err := db.createSegment(id)
	if err != nil {
		return err
	}
	db.segs[id] = active
	db.active, db.activeID = active, id
	db.log.WithFields(logrus.Fields{
		"keys":     db.keydir.len(),
		"segments": len(db.segs),
		"hints":    l.fromHints,
		"took":     time.Since(start).Round(time.Microsecond),
	}).Info("opened")
	return nil
}

// loader applies the records of every segment to the keydir during
// recovery, whatever order they come in: for each key the record with the
// highest sequence number wins.
type loader struct {
	db *DB
	// tombs holds, for each key whose newest record seen so far is a
	// tombstone, that tombstone's sequence number. Without it a put in a
	// file loaded later but older than the delete (a merge output has a
	// higher file id than the files it copied from, yet older records)
	// would resurrect the key.
	tombs     map[string]uint64
	maxSeq    uint64
	fromHints int
}

// apply applies one record of seg. It assumes the record is the newest
// of its key, the common case, and undoes the change in the rare case it
// is not: one keydir operation per record instead of a lookup and an
// update.
func (l *loader) apply(seg *segment, tomb bool, key []byte, e entry, valueLen int) {
	db := l.db
	seg.records++
	l.maxSeq = max(l.maxSeq, e.seq)
	if tomb {
		old, had := db.keydir.remove(key)
		if had && old.seq > e.seq {
			db.keydir.set(string(key), old) // an older tombstone: undo
			return
		}
		if had {
			db.killLocked(old, len(key))
		}
		if ts, ok := l.tombs[string(key)]; !ok || ts < e.seq {
			l.tombs[string(key)] = e.seq
		}
		return
	}
	if len(l.tombs) > 0 {
		if ts, ok := l.tombs[string(key)]; ok {
			if ts > e.seq {
				return // deleted later
			}
			delete(l.tombs, string(key))
		}
	}
	old, had := db.keydir.set(string(key), e)
	if had && old.seq > e.seq {
		db.keydir.set(string(key), old) // an older put: undo
		return
	}
	if had {
		db.killLocked(old, len(key))
	}
	seg.liveRecords++
	seg.liveBytes += int64(e.size)
	db.liveUserBytes += int64(len(key) + valueLen)
}

// loadSegment loads segment id into the keydir, from its hint file when
// it has a valid one. newest says it is the segment with the highest id,
// the only one a crash can leave torn: every other segment was fsynced
// whole before a newer one was created (rotation), or before its merge
// committed (merge outputs, whose ids stay below the active segment's:
// merger.keepActiveNewest rotates the active segment before the commit
// if an output got a higher id; see merge.go, step 4).
func (l *loader) loadSegment(id uint64, newest, hasHint bool) error {
	db := l.db
	path := db.path(segmentName(id))
	if id > maxFileID {
		return fmt.Errorf("kvs/bitcask: open %s: file id of %s exceeds %d", db.dir, path, uint64(maxFileID))
	}
	f, err := db.fs.Open(path)
	if err != nil {
		return fmt.Errorf("kvs/bitcask: open %s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("kvs/bitcask: stat %s: %w", path, err)
	}
	size := st.Size()
	hdr := make([]byte, fileHeaderLen)
	n, err := f.ReadAt(hdr, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		f.Close()
		return fmt.Errorf("kvs/bitcask: read %s: %w", path, err)
	}
	if reason := checkFileHeader(hdr[:n], segmentMagic, segmentVersion); reason != "" {
		f.Close()
		if newest && (n < fileHeaderLen || allZero(hdr)) {
			// A crash after the segment's creation reached the
			// directory but before its header reached the disk: it
			// never held a record.
			db.log.WithFields(logrus.Fields{"file": path, "bytes": size}).Warn("removing a newest segment whose header never reached the disk")
			return db.removeEmptySegment(id, path)
		}
		return kvs.Corruptf(path, 0, "%s", reason)
	}
	seg := newSegment(id, path, f)
	seg.bytes = size
	seg.setFlushed(size)
	db.segs[id] = seg

	if hasHint {
		hpath := db.path(hintName(id))
		hintSize, err := loadHint(db.fs, hpath, size, func(h hintEntry) {
			e := entry{fileID: uint32(id), size: uint32(h.size), offset: h.offset, seq: h.seq}
			l.apply(seg, false, h.key, e, valueLenOf(h.size, h.seq, len(h.key)))
		})
		if err == nil {
			seg.hintBytes = hintSize
			l.fromHints++
			if newest {
				return db.syncNewest(seg)
			}
			return nil
		}
		// A hint is a cache, never the truth: scan the segment instead.
		// Remove the hint so that it is not read, and does not cost a
		// log line, at every open; the next merge writes a new one.
		if errors.Is(err, errOldHint) {
			db.log.WithField("file", hpath).Info("ignoring a hint file of format version 1; scanning its segment")
		} else {
			db.log.WithError(err).WithField("file", hpath).Warn("ignoring a damaged hint file; scanning its segment")
		}
		if rerr := db.fs.Remove(hpath); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			return fmt.Errorf("kvs/bitcask: remove %s: %w", hpath, rerr)
		}
	}
	if err := l.scanSegment(seg, newest); err != nil {
		return err
	}
	if seg.records == 0 {
		// Nothing to keep: the active segment of an Open that wrote
		// nothing, a newest segment whose every record was torn, or an
		// empty active segment a merge dropped whose removal a crash
		// undid (merger.keepActiveNewest). Open starts a new active
		// segment anyway; keeping these would only pile up empty files.
		delete(db.segs, id)
		f.Close()
		return db.removeEmptySegment(id, path)
	}
	if !newest {
		return nil
	}
	return db.syncNewest(seg)
}

// syncNewest fsyncs the newest segment before a newer one is created.
// What it holds was read back, perhaps from the page cache of a process
// that crashed, or that failed and closed without its final sync: once it
// stops being the newest segment it must be durable, for recovery treats
// damage anywhere but in the newest segment as corruption, and a synced
// write in the new segment must imply everything before it is durable.
func (db *DB) syncNewest(seg *segment) error {
	if err := seg.f.Sync(); err != nil {
		return fmt.Errorf("kvs/bitcask: open %s: sync %s: %w", db.dir, seg.path, err)
	}
	db.stats.syncs.Add(1)
	return nil
}

// removeEmptySegment deletes a segment that holds no record, and makes the
// removal durable.
func (db *DB) removeEmptySegment(id uint64, path string) error {
	if err := db.removeSegmentFiles(id); err != nil {
		return err
	}
	if err := vfs.SyncDir(db.fs, db.dir); err != nil {
		return fmt.Errorf("kvs/bitcask: remove %s: %w", path, err)
	}
	return nil
}

// pendingRecord is a record of a batch whose last record has not been read
// yet.
type pendingRecord struct {
	tomb     bool
	key      []byte
	e        entry
	valueLen int
}

// scanSegment applies every record of seg, applying a batch only once its
// last record is read. In the newest segment a torn tail is cut off (rule
// 3): a record cut short by the end of the file, a record failing its
// checksum with only zeros or nothing after it, a zero-filled tail, or a
// batch the file ends inside. Any other damage is corruption (rule 4).
func (l *loader) scanSegment(seg *segment, newest bool) error {
	r := newSegmentReader(seg.f, seg.bytes, false)
	var batch []pendingRecord
	batchStart := int64(-1)
	for {
		rec, status, err := r.next()
		if err != nil {
			return fmt.Errorf("kvs/bitcask: read %s at offset %d: %w", seg.path, rec.offset, err)
		}
		switch status {
		case scanOK:
			e := entry{fileID: uint32(seg.id), size: uint32(rec.h.size()), offset: rec.offset, seq: rec.h.seq}
			if rec.h.batchContinues() {
				if len(batch) == 0 {
					batchStart = rec.offset
				}
				batch = append(batch, pendingRecord{rec.h.tombstone(), bytes.Clone(rec.key), e, rec.h.valueLen})
				continue
			}
			for _, p := range batch {
				l.apply(seg, p.tomb, p.key, p.e, p.valueLen)
			}
			batch = batch[:0]
			l.apply(seg, rec.h.tombstone(), rec.key, e, rec.h.valueLen)
			continue
		case scanEOF:
			if len(batch) == 0 {
				return nil
			}
			if newest {
				return l.db.cutTornTail(seg, batchStart, fmt.Sprintf("batch of %d records not closed", len(batch)))
			}
			return kvs.Corruptf(seg.path, batchStart, "the file ends inside a batch of %d records", len(batch))
		}
		// A damaged record.
		reason := r.reason
		if status == scanChecksum {
			reason = fmt.Sprintf("record checksum mismatch (%s)", describe(rec.h))
		}
		if newest {
			torn, next, err := l.db.isTornTail(seg, rec, status)
			if err != nil {
				return err
			}
			if torn {
				cut := rec.offset
				if len(batch) > 0 {
					cut = batchStart
				}
				return l.db.cutTornTail(seg, cut, reason)
			}
			if next >= 0 {
				reason += fmt.Sprintf("; a whole record follows at offset %d, so this is not a torn tail", next)
			}
		}
		return kvs.Corruptf(seg.path, rec.offset, "%s", reason)
	}
}

// describe summarises a record header for error messages.
func describe(h recordHeader) string {
	return fmt.Sprintf("type %#x, seq %d, %d-byte key, %d-byte value", h.typ, h.seq, h.keyLen, h.valueLen)
}

// isTornTail reports whether the damaged record rec of the newest segment
// is what a crash during an append leaves (recovery rule 3). Two tests,
// both needed:
//
//  1. The damage looks like a torn write: the record is cut short by the
//     end of the file; or it fails its checksum with nothing but zeros
//     after it (the file grew but the data pages never reached the
//     disk); or it starts a zero-filled tail.
//  2. No whole record with a good checksum starts anywhere after rec's
//     offset (recordAfter, a byte-by-byte resync scan to the end of the
//     file). If one does, the damage is in the middle of the log and is
//     corruption: next returns that record's offset for the error. A
//     single flipped bit in a length varint makes a record in the middle
//     of the newest segment claim to run past the end of the file, which
//     test 1 alone would take for a torn tail and cut, dropping every
//     acknowledged write after it.
//
// Why test 2 cannot turn a real torn tail into corruption: if the damage
// is a torn write, rec's header is the one the writer wrote, so in the
// first case the file ends inside rec's span, in the second only zeros
// follow rec's span, and in the third only zeros follow its offset. Either
// way every byte after rec's offset is one of rec's own bytes (as written,
// or zero where its page never reached the disk) or a zero. Bytes after a
// cut were never written: segments are append-only, and a crash keeps a
// prefix of what was appended (vfs.MemFS.CrashCloneRandom keeps a random
// prefix of the unsynced appends, a failed write of vfs.Inject the first
// half of its buffer). Zeros never decode as a record (type 0). So the
// scan finds a record only if rec's own key or value holds the image of a
// whole record with a good checksum (say, a value that is a copy of a
// segment file) and the crash tore rec after that image: then Open fails
// with a *kvs.CorruptionError at rec instead of cutting it, which loses
// nothing (`kvs inspect` shows the file's records). The scan runs only on this damage
// path, so a clean Open costs nothing.
func (db *DB) isTornTail(seg *segment, rec scannedRecord, status scanStatus) (torn bool, next int64, err error) {
	looksTorn := status == scanTruncated
	if status == scanChecksum {
		if looksTorn, err = zeroFrom(seg, rec.offset+rec.h.size()); err != nil {
			return false, -1, err
		}
	}
	if !looksTorn {
		// A zero-filled tail holds no record: nothing to resync to.
		zero, err := zeroFrom(seg, rec.offset)
		return zero, -1, err
	}
	if next, err = recordAfter(seg, rec.offset); err != nil || next >= 0 {
		return false, next, err
	}
	return true, -1, nil
}

// zeroFrom reports whether seg holds only zero bytes from off to its end.
func zeroFrom(seg *segment, off int64) (bool, error) {
	buf := make([]byte, 64<<10)
	for off < seg.bytes {
		n, err := seg.f.ReadAt(buf[:min(int64(len(buf)), seg.bytes-off)], off)
		if n == 0 && err != nil {
			return false, fmt.Errorf("kvs/bitcask: read %s at offset %d: %w", seg.path, off, err)
		}
		if !allZero(buf[:n]) {
			return false, nil
		}
		off += int64(n)
	}
	return true, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// cutTornTail truncates the newest segment to off, the end of its last
// complete batch, syncs it, and logs one warning naming the file, the
// offset and the bytes cut.
func (db *DB) cutTornTail(seg *segment, off int64, reason string) error {
	f, err := db.fs.OpenReadWrite(seg.path)
	if err != nil {
		return fmt.Errorf("kvs/bitcask: cut torn tail of %s: %w", seg.path, err)
	}
	if err := f.Truncate(off); err != nil {
		f.Close()
		return fmt.Errorf("kvs/bitcask: cut torn tail of %s: %w", seg.path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("kvs/bitcask: cut torn tail of %s: %w", seg.path, err)
	}
	db.stats.syncs.Add(1)
	if err := f.Close(); err != nil {
		return fmt.Errorf("kvs/bitcask: cut torn tail of %s: %w", seg.path, err)
	}
	db.log.WithFields(logrus.Fields{
		"file":   seg.path,
		"offset": off,
		"bytes":  seg.bytes - off,
		"reason": reason,
	}).Warn("cut a torn tail left by a crash")
	seg.bytes = off
	return nil
}
