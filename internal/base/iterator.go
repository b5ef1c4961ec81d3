package base

// InternalIterator walks internal keys in InternalCompare order. Memtable
// iterators, sstable iterators and the merging iterator implement it; the
// lsm package turns one into a kvs.Iterator by hiding versions newer than
// its snapshot, shadowed versions and deletions.
//
// Positioning methods return Valid(). Key and Value stay valid until the
// next positioning call. Errors are sticky: once one happens Valid is false
// and Error returns it.
type InternalIterator interface {
	// SeekGE moves to the first entry whose user key is >= key: with
	// several versions of that user key, the newest.
	SeekGE(key []byte) bool
	// SeekLT moves to the last entry whose user key is < key: with several
	// versions of that user key, the oldest.
	SeekLT(key []byte) bool
	// First moves to the first entry.
	First() bool
	// Last moves to the last entry.
	Last() bool
	// Next moves to the following entry.
	Next() bool
	// Prev moves to the preceding entry.
	Prev() bool
	// Valid reports whether the iterator is at an entry.
	Valid() bool
	// Key returns the current entry's internal key.
	Key() InternalKey
	// Value returns the current entry's value.
	Value() []byte
	// Error returns the first error met.
	Error() error
	// Close releases the iterator and returns Error().
	Close() error
}
