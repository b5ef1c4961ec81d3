package kvs

import (
	"errors"
	"fmt"
)

// Errors returned by engines. Check them with errors.Is: engines wrap them
// with detail (sizes, file names).
var (
	// ErrNotFound is returned by Get when the key is absent.
	ErrNotFound = errors.New("kvs: not found")
	// ErrClosed is returned by any call on a closed engine, snapshot or
	// iterator.
	ErrClosed = errors.New("kvs: closed")
	// ErrEmptyKey is returned for a zero-length key.
	ErrEmptyKey = errors.New("kvs: empty key")
	// ErrKeyTooLarge is returned for a key longer than MaxKeySize.
	ErrKeyTooLarge = errors.New("kvs: key too large")
	// ErrValueTooLarge is returned for a value longer than
	// Options.MaxValueSize.
	ErrValueTooLarge = errors.New("kvs: value too large")
	// ErrBatchTooLarge is returned for a batch whose encoding exceeds
	// MaxBatchSize.
	ErrBatchTooLarge = errors.New("kvs: batch too large")
	// ErrCorruption matches every *CorruptionError.
	ErrCorruption = errors.New("kvs: corruption")
	// ErrLocked is returned by Open when another process (or another open
	// engine in this process) holds the directory.
	ErrLocked = errors.New("kvs: directory is locked by another engine")
	// ErrUnknownEngine is returned by Open for a name nobody registered.
	ErrUnknownEngine = errors.New("kvs: unknown engine")
	// ErrNotKVSDir is returned by Open when the directory holds files kvs
	// did not write, or files of a different engine.
	ErrNotKVSDir = errors.New("kvs: not a kvs directory")
	// ErrFailed is returned by writes after an earlier I/O error left the
	// engine unable to promise durability. Close and reopen the engine.
	ErrFailed = errors.New("kvs: engine failed after an I/O error")
)

// CorruptionError reports damaged data found on disk: a checksum mismatch,
// an impossible length, a bad magic number.
type CorruptionError struct {
	File   string // path of the damaged file
	Offset int64  // byte offset of the damaged record or block
	Reason string // what was wrong
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("kvs: corruption in %s at offset %d: %s", e.File, e.Offset, e.Reason)
}

// Is makes errors.Is(err, ErrCorruption) true for a *CorruptionError.
func (e *CorruptionError) Is(target error) bool { return target == ErrCorruption }

// Corruptf returns a *CorruptionError for file at offset.
func Corruptf(file string, offset int64, format string, args ...any) error {
	return &CorruptionError{File: file, Offset: offset, Reason: fmt.Sprintf(format, args...)}
}
