package bitcask

import (
	"fmt"

	"github.com/kvs-lab/kvs"
)

// op is one put or delete of a write. key and value alias the caller's
// memory until the write returns.
type op struct {
	kind  kvs.Kind
	key   []byte
	value []byte
}

// Put stores value under key. key and value may be reused once Put
// returns. Errors: kvs.ErrEmptyKey, kvs.ErrKeyTooLarge, kvs.ErrValueTooLarge
// (wrapped, with sizes), kvs.ErrFailed after an earlier I/O error,
// kvs.ErrClosed.
func (db *DB) Put(key, value []byte, o kvs.WriteOptions) error {
	if err := kvs.CheckKey(key); err != nil {
		return fmt.Errorf("kvs/bitcask: put: %w", err)
	}
	if err := kvs.CheckValue(value, db.opts.MaxValueSize); err != nil {
		return fmt.Errorf("kvs/bitcask: put: %w", err)
	}
	_, err := db.write([]op{{kvs.KindSet, key, value}}, int64(len(key)+len(value)), o)
	return err
}

// Delete removes key by appending a tombstone. Deleting an absent key is
// not an error. Errors are those of Put.
func (db *DB) Delete(key []byte, o kvs.WriteOptions) error {
	if err := kvs.CheckKey(key); err != nil {
		return fmt.Errorf("kvs/bitcask: delete: %w", err)
	}
	_, err := db.write([]op{{kind: kvs.KindDelete, key: key}}, int64(len(key)), o)
	return err
}

// Write applies every entry of b atomically, also across a crash: its
// records go to the active segment as one append, every record but
// the last flagged "batch continues", and recovery drops a batch whose
// last record is missing. Every entry is checked before anything is
// written; a bad one fails the whole batch with an error wrapping the kvs
// sentinel and naming the entry. A nil or empty b writes nothing (with
// Sync, it waits until every earlier write is durable). On success the
// batch's header holds the sequence number of its first record.
func (db *DB) Write(b *kvs.Batch, o kvs.WriteOptions) error {
	if b == nil {
		b = &kvs.Batch{}
	}
	if err := b.Validate(db.opts.MaxValueSize); err != nil {
		return fmt.Errorf("kvs/bitcask: write: %w", err)
	}
	ops := make([]op, 0, b.Count())
	r := b.Reader()
	for {
		kind, key, value, ok := r.Next()
		if !ok {
			break
		}
		ops = append(ops, op{kind, key, value})
	}
	if err := r.Err(); err != nil {
		return fmt.Errorf("kvs/bitcask: write: %w", err)
	}
	seq, err := db.write(ops, b.UserBytes(), o)
	if err == nil && len(ops) > 0 {
		b.SetSeq(seq)
	}
	return err
}

// maxKeptWriteBuffer is the largest encoding buffer kept between writes;
// a bigger one (a huge value) is dropped so that it does not pin memory.
const maxKeptWriteBuffer = 1 << 20

// write appends ops as one batch and returns the sequence number of its
// first record. The order of events is what makes the durability promise
// hold:
//
//  1. Under writeMu: rotate the active segment if the batch does not fit
//     (the old one is fsynced before the new one takes a byte), encode the
//     batch, append it to the segment's buffer (segment.append; it reaches
//     the file when the buffer fills or before an fsync), and point the
//     keydir at it.
//     Readers see the batch from here on, all of it at once (db.mu).
//  2. Without writeMu, if o.Sync: wait until the log is durable up to the
//     batch's end, sharing fsyncs with other writers (waitDurable).
func (db *DB) write(ops []op, userBytes int64, o kvs.WriteOptions) (uint64, error) {
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed {
		return 0, kvs.ErrClosed
	}
	db.writeMu.Lock()
	if err := db.failure(); err != nil {
		db.writeMu.Unlock()
		return 0, err
	}
	if len(ops) == 0 {
		pos := db.appended
		db.writeMu.Unlock()
		if o.Sync {
			return 0, db.waitDurable(pos)
		}
		return 0, nil
	}
	seq := db.nextSeq
	n := 0
	for i, op := range ops {
		n += recordLen(seq+uint64(i), len(op.key), len(op.value))
	}
	// A batch never straddles segments; one larger than MaxSegmentBytes
	// gets a segment of its own.
	if db.active.bytes > fileHeaderLen && db.active.bytes+int64(n) > db.opts.Bitcask.MaxSegmentBytes {
		if err := db.rotateLocked(); err != nil {
			db.writeMu.Unlock()
			return 0, err
		}
	}
	buf := db.wbuf[:0]
	for i, op := range ops {
		typ := typePut
		if op.kind == kvs.KindDelete {
			typ = typeDelete
		}
		if i < len(ops)-1 {
			typ |= typeBatchContinues
		}
		buf = appendRecord(buf, typ, seq+uint64(i), op.key, op.value)
	}
	if cap(buf) <= maxKeptWriteBuffer {
		db.wbuf = buf
	} else {
		db.wbuf = nil
	}
	active := db.active
	if err := active.append(buf); err != nil {
		err = db.fail(err)
		db.writeMu.Unlock()
		return 0, err
	}
	db.nextSeq += uint64(len(ops))
	db.appended += int64(len(buf))
	pos := db.appended

	db.mu.Lock()
	off := active.bytes
	for i, op := range ops {
		size := recordLen(seq+uint64(i), len(op.key), len(op.value)) // NB: a delete's value is nil
		e := entry{fileID: uint32(active.id), size: uint32(size), offset: off, seq: seq + uint64(i)}
		db.applyLocked(active, op.kind, op.key, e, len(op.value))
		off += int64(size)
	}
	active.bytes = off
	db.mu.Unlock()
	if o.Sync && db.opts.DisableGroupCommit {
		active.ref() // keep the file open for our fsync even if a merge retires it
	}
	db.writeMu.Unlock()

	db.stats.userBytesWritten.Add(userBytes)
	db.stats.diskBytesWritten.Add(int64(len(buf)))
	if !o.Sync {
		return seq, nil
	}
	if db.opts.DisableGroupCommit {
		return seq, db.syncAlone(active, pos)
	}
	return seq, db.waitDurable(pos)
}

// rotateLocked seals the active segment and starts a new one. The old one
// is fsynced first: a synced write in the new segment must imply that
// every earlier write is durable too (prefix durability), and recovery
// may treat only the newest segment's tail as torn. db.writeMu is held.
//
// After the engine failed it returns the sticky failure and changes
// nothing. NB: a failed write may have left half a batch at the end of
// the active segment; that segment must stay the newest, where recovery
// cuts the half batch as a torn tail. Sealing it (a merge's
// sealForMerge or keepActiveNewest would) would fsync the half batch
// into a segment that is no longer the newest, which recovery reports
// as corruption: the directory would not open.
func (db *DB) rotateLocked() error {
	if err := db.failure(); err != nil {
		return err
	}
	old := db.active
	if err := old.syncFile(); err != nil {
		return db.fail(err)
	}
	db.stats.syncs.Add(1)
	db.markSynced(db.appended)
	id := db.nextFileID.Add(1) - 1
	seg, err := db.createSegment(id)
	if err != nil {
		return db.fail(err)
	}
	db.mu.Lock()
	db.segs[id] = seg
	db.activeID = id
	db.mu.Unlock()
	db.active = seg
	return nil
}

// markSynced records that the log is durable up to pos and wakes the
// writers waiting for it.
func (db *DB) markSynced(pos int64) {
	db.syncMu.Lock()
	if pos > db.synced {
		db.synced = pos
	}
	db.syncCond.Broadcast()
	db.syncMu.Unlock()
}

// waitDurable returns once the log is durable up to pos (group commit).
// The first writer to find no fsync running becomes the leader: it notes
// how far the log reaches now, fsyncs the active segment, and publishes
// that position, waking every writer it covers. Writers arriving while an
// fsync runs wait for it to end; those it did not cover (they appended
// after it started) elect the next leader among themselves, whose one
// fsync covers them all. So N concurrent synced writers cost about two
// fsyncs, not N.
func (db *DB) waitDurable(pos int64) error {
	db.syncMu.Lock()
	defer db.syncMu.Unlock()
	for db.synced < pos {
		if err := db.failure(); err != nil {
			return err
		}
		if db.syncing {
			db.syncCond.Wait()
			continue
		}
		db.syncing = true
		db.syncMu.Unlock()
		err := db.syncActive()
		db.syncMu.Lock()
		db.syncing = false
		db.syncCond.Broadcast()
		if err != nil {
			return err
		}
	}
	return nil
}

// syncActive fsyncs the active segment and publishes the log position it
// covers. Segments before the active one were fsynced when they were
// sealed.
func (db *DB) syncActive() error {
	db.writeMu.Lock()
	seg, target := db.active, db.appended
	seg.ref()
	err := seg.flush()
	db.writeMu.Unlock()
	defer db.unref(seg)
	if err != nil {
		return db.fail(err)
	}
	if err := seg.f.Sync(); err != nil {
		return db.fail(fmt.Errorf("sync %s: %w", seg.path, err))
	}
	db.stats.syncs.Add(1)
	db.syncMu.Lock()
	if target > db.synced {
		db.synced = target
	}
	db.syncMu.Unlock()
	return nil
}

// syncAlone is the synced write's fsync without group commit: the writer
// fsyncs the segment it wrote to itself (which holds a reference for it).
func (db *DB) syncAlone(seg *segment, pos int64) error {
	defer db.unref(seg)
	if err := seg.syncFile(); err != nil {
		return db.fail(err)
	}
	db.stats.syncs.Add(1)
	db.markSynced(pos)
	return nil
}
