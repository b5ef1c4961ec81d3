package kvs

import (
	"fmt"
	"io"
	"os"

	"github.com/kvs-lab/kvs/internal/vfs"
	"github.com/sirupsen/logrus"
)

// MaxKeySize is the largest key any engine accepts, in bytes.
const MaxKeySize = 64 << 10

// DefaultMaxValueSize is Options.MaxValueSize when it is left zero.
const DefaultMaxValueSize = 16 << 20

// Options configure an engine. The zero value (and a nil *Options) means
// defaults; EnsureDefaults fills them in.
type Options struct {
	// FS is the file system the engine uses. Default: vfs.Default, the
	// operating system's. Tests pass a vfs.MemFS to simulate crashes.
	FS vfs.FS
	// Logger receives open, recovery, merge and warning messages. Default:
	// logrus to stderr at Warn level.
	Logger *logrus.Entry
	// MaxValueSize is the largest value accepted, in bytes. Default
	// DefaultMaxValueSize (16 MiB).
	MaxValueSize int
	// DisableGroupCommit makes every synced write fsync on its own instead
	// of sharing one fsync with the synced writers waiting beside it. It
	// exists to measure what group commit buys.
	DisableGroupCommit bool
	// ErrorIfNotExist makes Open fail when the directory does not exist
	// instead of creating it.
	ErrorIfNotExist bool

	// Bitcask holds options only the bitcask engine reads.
	Bitcask BitcaskOptions
}

// BitcaskOptions are the bitcask engine's knobs. They live here, not in
// package bitcask, so that an engine opened by name can be configured.
type BitcaskOptions struct {
	// Index selects the keydir: "hash" (the paper's hash table, the
	// default) or "btree" (an ordered google/btree). Both support ordered
	// scans; see docs/01-bitcask.md for what each costs.
	Index string
	// MaxSegmentBytes is the size at which the active segment is sealed
	// and a new one started. Default 64 MiB.
	MaxSegmentBytes int64
}

// Bitcask keydir index names.
const (
	IndexHash  = "hash"
	IndexBTree = "btree"
)

// DefaultMaxSegmentBytes is BitcaskOptions.MaxSegmentBytes when left zero.
const DefaultMaxSegmentBytes = 64 << 20

// EnsureDefaults returns o with every zero field set to its default. A nil o
// yields a new Options. The receiver is modified in place and returned.
func (o *Options) EnsureDefaults() *Options {
	if o == nil {
		o = &Options{}
	}
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.Logger == nil {
		l := logrus.New()
		l.SetOutput(os.Stderr)
		l.SetLevel(logrus.WarnLevel)
		o.Logger = logrus.NewEntry(l)
	}
	if o.MaxValueSize == 0 {
		o.MaxValueSize = DefaultMaxValueSize
	}
	if o.Bitcask.Index == "" {
		o.Bitcask.Index = IndexHash
	}
	if o.Bitcask.MaxSegmentBytes == 0 {
		o.Bitcask.MaxSegmentBytes = DefaultMaxSegmentBytes
	}
	return o
}

// Clone returns a shallow copy of o (nil gives a zero Options).
func (o *Options) Clone() *Options {
	if o == nil {
		return &Options{}
	}
	c := *o
	return &c
}

// Validate reports the first option with an impossible value, naming it.
func (o *Options) Validate() error {
	if o.MaxValueSize < 0 {
		return fmt.Errorf("kvs: option MaxValueSize: %d is negative", o.MaxValueSize)
	}
	if o.MaxValueSize > 1<<30 {
		return fmt.Errorf("kvs: option MaxValueSize: %d exceeds 1 GiB", o.MaxValueSize)
	}
	switch o.Bitcask.Index {
	case "", IndexHash, IndexBTree:
	default:
		return fmt.Errorf("kvs: option Bitcask.Index: %q is not %q or %q", o.Bitcask.Index, IndexHash, IndexBTree)
	}
	if o.Bitcask.MaxSegmentBytes < 0 {
		return fmt.Errorf("kvs: option Bitcask.MaxSegmentBytes: %d is negative", o.Bitcask.MaxSegmentBytes)
	}
	return nil
}

// DiscardLogger returns a logger that drops everything; tests use it.
func DiscardLogger() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

// CheckKey returns ErrEmptyKey or ErrKeyTooLarge (wrapped with the size)
// for a key no engine accepts.
func CheckKey(key []byte) error {
	if len(key) == 0 {
		return ErrEmptyKey
	}
	if len(key) > MaxKeySize {
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrKeyTooLarge, len(key), MaxKeySize)
	}
	return nil
}

// CheckValue returns ErrValueTooLarge (wrapped with the size) when value is
// longer than max.
func CheckValue(value []byte, max int) error {
	if len(value) > max {
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrValueTooLarge, len(value), max)
	}
	return nil
}
