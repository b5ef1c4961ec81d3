package kvs

// Reader is the read side shared by an Engine and a Snapshot.
type Reader interface {
	// Get returns the value stored under key, or ErrNotFound. The returned
	// slice belongs to the caller.
	Get(key []byte) ([]byte, error)
	// NewIter returns an iterator over the keys in [o.LowerBound,
	// o.UpperBound) in key order. A nil o means the whole key space. The
	// iterator sees a consistent point-in-time view: writes made after
	// NewIter returns are not visible to it.
	NewIter(o *IterOptions) (Iterator, error)
}

// Engine is a key-value storage engine. See the package documentation for
// the durability and concurrency rules every implementation keeps.
type Engine interface {
	Reader
	// Put stores value under key. key and value may be reused by the caller
	// once Put returns.
	Put(key, value []byte, o WriteOptions) error
	// Delete removes key. Deleting an absent key is not an error.
	Delete(key []byte, o WriteOptions) error
	// Write applies every operation of b atomically: after Write returns, and
	// after any crash, either all of b is visible or none of it. Every key
	// and value is checked before anything is written.
	Write(b *Batch, o WriteOptions) error
	// NewSnapshot returns a consistent read view of the engine as of now.
	// It must be closed; an open snapshot may pin files on disk.
	NewSnapshot() (Snapshot, error)
	// Compact runs the engine's maintenance to reclaim space: a Bitcask
	// merge, an LSM manual compaction of the whole key space.
	Compact() error
	// Stats returns a copy of the engine's counters and on-disk layout.
	Stats() Stats
	// Close flushes, syncs and releases the engine. Further calls return
	// ErrClosed. Close may be called more than once.
	Close() error
}

// Snapshot is a read-only, point-in-time view of an Engine.
type Snapshot interface {
	Reader
	// Close releases the snapshot. Iterators made from it must be closed
	// first.
	Close() error
}

// Iterator walks keys in order. Its positioning methods return Valid().
// Key and Value stay valid until the next positioning call; copy them to
// keep them. Errors are sticky: once one happens Valid is false and Error
// (and Close) return it.
type Iterator interface {
	// First moves to the smallest key >= LowerBound.
	First() bool
	// Last moves to the largest key < UpperBound.
	Last() bool
	// SeekGE moves to the smallest key >= key (and >= LowerBound).
	SeekGE(key []byte) bool
	// SeekLT moves to the largest key < key (and < UpperBound).
	SeekLT(key []byte) bool
	// Next moves forward one key.
	Next() bool
	// Prev moves back one key.
	Prev() bool
	// Valid reports whether the iterator is positioned at a key.
	Valid() bool
	// Key returns the current key.
	Key() []byte
	// Value returns the current value.
	Value() []byte
	// Error returns the first error the iterator met.
	Error() error
	// Close releases the iterator and returns Error(). Calling it twice is
	// allowed.
	Close() error
}

// IterOptions bounds an iterator to [LowerBound, UpperBound). A nil bound is
// open on that side.
type IterOptions struct {
	LowerBound []byte
	UpperBound []byte
}

// WriteOptions control one write.
type WriteOptions struct {
	// Sync makes the write durable before it is acknowledged: the engine
	// fsyncs its log (sharing the fsync with concurrent synced writers
	// under group commit). Without Sync a crash may lose the write, and
	// every write after it, but never a write acknowledged with Sync.
	Sync bool
}

// Sync and NoSync are the two WriteOptions values most callers need.
var (
	Sync   = WriteOptions{Sync: true}
	NoSync = WriteOptions{Sync: false}
)
