package lsm

import (
	"fmt"
	"time"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/internal/base"
	"github.com/kvs-lab/kvs/internal/vfs"
	"github.com/kvs-lab/kvs/memtable"
	"github.com/kvs-lab/kvs/wal"
)

// Put stores value under key. key and value may be reused once Put
// returns. Errors: kvs.ErrEmptyKey, kvs.ErrKeyTooLarge, kvs.ErrValueTooLarge
// (wrapped, with sizes), kvs.ErrFailed after an earlier I/O error,
// kvs.ErrClosed.
func (db *DB) Put(key, value []byte, o kvs.WriteOptions) error {
	var b kvs.Batch
	b.Put(key, value)
	return db.Write(&b, o)
}

// Delete removes key. Deleting an absent key is not an error. Errors are
// those of Put.
func (db *DB) Delete(key []byte, o kvs.WriteOptions) error {
	var b kvs.Batch
	b.Delete(key)
	return db.Write(&b, o)
}

// Write applies every entry of b atomically, also across a crash: the
// batch is one WAL record, and readers see it only once all of it is in
// the memtable. Every entry is checked first; a bad one fails the whole
// batch. A nil or empty b writes nothing (with Sync, it waits until every
// earlier write is durable). On success b's header holds the sequence
// number of its first entry.
func (db *DB) Write(b *kvs.Batch, o kvs.WriteOptions) error {
	if b == nil {
		b = &kvs.Batch{}
	}
	if err := b.Validate(db.opts.MaxValueSize); err != nil {
		return fmt.Errorf("kvs/lsm: write: %w", err)
	}
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed.Load() {
		return kvs.ErrClosed
	}
	return db.commit(b, o)
}

// commit runs one batch through the write path. The order of events is
// what makes atomicity and durability hold:
//
//  1. Under commitMu: make room in the memtable for the whole batch
//     (rotating to a new memtable and WAL, or stalling, see makeRoom),
//     assign the batch consecutive sequence numbers, append it to the WAL
//     as one record, add its entries to the memtable and only then
//     publish its last sequence number to readers, so nobody sees part
//     of it.
//  2. Without commitMu, if o.Sync: wait until the WAL is durable past
//     the record (wal.Writer.WaitDurable), sharing one fsync with the
//     synced writers waiting beside it (group commit).
func (db *DB) commit(b *kvs.Batch, o kvs.WriteOptions) error {
	db.commitMu.Lock()
	if err := db.failure(); err != nil {
		db.commitMu.Unlock()
		return err
	}
	if b.Empty() {
		w := db.currentWAL()
		db.commitMu.Unlock()
		if o.Sync {
			return db.syncWAL(w, w.Size())
		}
		return nil
	}
	need := batchNodeBytes(b)
	mem, w, err := db.makeRoom(need)
	if err != nil {
		db.commitMu.Unlock()
		return err
	}
	seq := db.nextSeq
	b.SetSeq(seq)
	end, err := w.WriteRecord(b.Repr())
	if err != nil {
		db.commitMu.Unlock()
		return db.fail(fmt.Errorf("append to %s: %w", logName(mem.logNum), err))
	}
	if err := applyBatch(mem.Memtable, b, seq); err != nil {
		// NB: makeRoom checked there is room, so this is a broken
		// invariant; the WAL holds the batch, so fail rather than
		// acknowledge a write readers cannot see.
		db.commitMu.Unlock()
		return db.fail(err)
	}
	db.nextSeq = seq + uint64(b.Count())
	db.visibleSeq.Store(db.nextSeq - 1)
	db.commitMu.Unlock()
	db.stats.userBytesWritten.Add(b.UserBytes())
	if !o.Sync {
		return nil
	}
	return db.syncWAL(w, end)
}

// syncWAL waits until w is durable up to end.
func (db *DB) syncWAL(w *wal.Writer, end int64) error {
	var err error
	if db.opts.DisableGroupCommit {
		err = w.SyncUnshared(end)
	} else {
		err = w.WaitDurable(end)
	}
	if err != nil {
		// NB: a WAL rotated away was closed, which syncs it, so even
		// then an error means the record may not be durable.
		return db.fail(err)
	}
	return nil
}

// currentWAL returns the WAL of the mutable memtable.
func (db *DB) currentWAL() *wal.Writer {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.walw
}

// batchNodeBytes returns the most memtable arena bytes b's entries can
// take.
func batchNodeBytes(b *kvs.Batch) int {
	n := 0
	r := b.Reader()
	for {
		_, key, value, ok := r.Next()
		if !ok {
			return n
		}
		n += memtable.MaxNodeSize(len(key), len(value))
	}
}

// applyBatch adds b's entries to m with sequence numbers seq, seq+1, ...
func applyBatch(m *memtable.Memtable, b *kvs.Batch, seq uint64) error {
	r := b.Reader()
	for i := uint64(0); ; i++ {
		kind, key, value, ok := r.Next()
		if !ok {
			return r.Err()
		}
		if err := m.Add(base.MakeInternalKey(key, seq+i, base.Kind(kind)), value); err != nil {
			return fmt.Errorf("kvs/lsm: apply batch: %w", err)
		}
	}
}

// makeRoom returns the mutable memtable, with room for need more arena
// bytes, and its WAL. commitMu is held. When the memtable is too full it
// waits while the flushes or L0 are too far behind (write stop), then
// rotates; it delays the write a millisecond while L0 is merely large
// (write slowdown), as LevelDB does.
func (db *DB) makeRoom(need int) (*memTable, *wal.Writer, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	slowed := false
	for {
		if db.failErr != nil {
			return nil, nil, db.failErr
		}
		if db.bgClosing {
			return nil, nil, kvs.ErrClosed
		}
		// NB: without automatic compactions nothing would bring L0
		// down, so its triggers do not apply.
		l0 := len(db.rs.levels[0])
		if db.lo.DisableAutomaticCompactions {
			l0 = 0
		}
		if !slowed && l0 >= db.lo.L0SlowdownTrigger {
			slowed = true
			start := time.Now()
			db.mu.Unlock()
			time.Sleep(time.Millisecond)
			db.mu.Lock()
			db.stats.stallNanos.Add(int64(time.Since(start)))
			continue
		}
		mem := db.rs.mem
		if mem.Size()+need <= mem.Capacity() {
			return mem, db.walw, nil
		}
		if len(db.rs.imm) >= db.lo.MaxImmutableMemtables || l0 >= db.lo.L0StopTrigger {
			start := time.Now()
			db.bgWork.Broadcast()
			db.stall.Wait()
			db.stats.stallNanos.Add(int64(time.Since(start)))
			continue
		}
		if err := db.rotateLocked(need); err != nil {
			return nil, nil, db.failLocked(err)
		}
	}
}

// rotateLocked makes the mutable memtable immutable and starts a new one,
// with a new WAL, big enough for need bytes. The old WAL is synced and
// closed first: a synced write in the new WAL must imply that every
// earlier write is durable (prefix durability), and recovery accepts a
// torn tail only in the newest WAL.
//
// commitMu and db.mu are held. db.mu is released during the fsync and the
// creation of the new WAL, so readers do not wait for the disk; commitMu
// keeps the mutable memtable and its WAL from changing meanwhile.
func (db *DB) rotateLocked(need int) error {
	old, oldNum := db.walw, db.rs.mem.logNum
	num := db.nextFileNum
	db.nextFileNum++
	db.mu.Unlock()
	err := old.Close()
	if err != nil {
		err = fmt.Errorf("close %s: %w", logName(oldNum), err)
	}
	var w *wal.Writer
	if err == nil {
		w, err = db.createWAL(num)
	}
	db.mu.Lock()
	if err != nil {
		return err
	}
	// The old WAL's bytes (framing included) and fsyncs now count in the
	// engine's totals; Stats adds those of the current WAL.
	db.stats.diskBytesWritten.Add(old.Stats().Bytes)
	db.stats.syncs.Add(old.Stats().Syncs)
	db.walw = w
	// A batch larger than a memtable gets a memtable of its own size.
	size := max(db.lo.MemtableBytes, need+memtable.EmptySize)
	mem := &memTable{Memtable: memtable.New(size), logNum: num}
	rs := db.rs
	db.rs = newReadState(mem, append([]*memTable{rs.mem}, rs.imm...), rs.levels)
	rs.unref()
	db.gen++
	db.bgWork.Broadcast()
	return nil
}

// createWAL creates WAL num and makes its directory entry durable, so that
// a synced record in it is never lost with the file.
func (db *DB) createWAL(num uint64) (*wal.Writer, error) {
	path := db.path(logName(num))
	f, err := db.fs.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	if err := vfs.SyncDir(db.fs, db.dir); err != nil {
		f.Close()
		return nil, err
	}
	db.stats.syncs.Add(1)
	return wal.NewWriter(f, num), nil
}
