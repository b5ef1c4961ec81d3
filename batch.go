package kvs

import (
	"encoding/binary"
	"fmt"
)

// Kind says what a batch entry does.
type Kind uint8

// Batch entry kinds. The numbers are part of the batch format
// (docs/formats/batch.md) and of the LSM internal key; never reuse one.
const (
	KindDelete Kind = 0
	KindSet    Kind = 1
)

func (k Kind) String() string {
	switch k {
	case KindDelete:
		return "DEL"
	case KindSet:
		return "SET"
	}
	return fmt.Sprintf("KIND(%d)", uint8(k))
}

// BatchHeaderLen is the size of a batch's header: an 8-byte sequence number
// and a 4-byte entry count.
const BatchHeaderLen = 12

// Batch is a list of puts and deletes applied atomically by Engine.Write.
// Its encoding (Repr) is documented in docs/formats/batch.md:
//
//	+-----------+----------+-------------------------------------------+
//	| seq (u64) | n (u32)  | n entries: kind(1) | uvarint klen | key   |
//	|           |          |            [uvarint vlen | value]  (SET)  |
//	+-----------+----------+-------------------------------------------+
//
// The zero value is an empty batch ready to use. A Batch is not safe for
// concurrent use.
type Batch struct {
	repr  []byte
	count uint32
	// userBytes is the key+value bytes the entries carry.
	userBytes int64
}

func (b *Batch) init() {
	if len(b.repr) < BatchHeaderLen {
		b.repr = make([]byte, BatchHeaderLen, 256)
	}
}

// Put adds a set of key to value. key and value are copied.
func (b *Batch) Put(key, value []byte) {
	b.init()
	b.repr = append(b.repr, byte(KindSet))
	b.repr = binary.AppendUvarint(b.repr, uint64(len(key)))
	b.repr = append(b.repr, key...)
	b.repr = binary.AppendUvarint(b.repr, uint64(len(value)))
	b.repr = append(b.repr, value...)
	b.count++
	b.userBytes += int64(len(key) + len(value))
	binary.LittleEndian.PutUint32(b.repr[8:12], b.count)
}

// Delete adds a deletion of key. key is copied.
func (b *Batch) Delete(key []byte) {
	b.init()
	b.repr = append(b.repr, byte(KindDelete))
	b.repr = binary.AppendUvarint(b.repr, uint64(len(key)))
	b.repr = append(b.repr, key...)
	b.count++
	b.userBytes += int64(len(key))
	binary.LittleEndian.PutUint32(b.repr[8:12], b.count)
}

// Count returns the number of entries.
func (b *Batch) Count() int { return int(b.count) }

// Empty reports whether the batch has no entries.
func (b *Batch) Empty() bool { return b.count == 0 }

// UserBytes returns the key and value bytes the batch carries, the figure
// Stats.UserBytesWritten counts.
func (b *Batch) UserBytes() int64 { return b.userBytes }

// Reset empties the batch, keeping its buffer.
func (b *Batch) Reset() {
	if len(b.repr) >= BatchHeaderLen {
		b.repr = b.repr[:BatchHeaderLen]
		clear(b.repr)
	}
	b.count = 0
	b.userBytes = 0
}

// Seq returns the sequence number stored in the header (0 until an engine
// that uses sequence numbers sets it).
func (b *Batch) Seq() uint64 {
	if len(b.repr) < BatchHeaderLen {
		return 0
	}
	return binary.LittleEndian.Uint64(b.repr[:8])
}

// SetSeq stores seq in the header. Engines call it while committing.
func (b *Batch) SetSeq(seq uint64) {
	b.init()
	binary.LittleEndian.PutUint64(b.repr[:8], seq)
}

// Repr returns the batch's encoding. The slice is owned by the batch and
// valid until its next change.
func (b *Batch) Repr() []byte {
	b.init()
	return b.repr
}

// Validate checks the batch's size against MaxBatchSize (ErrBatchTooLarge)
// and every entry against the key limit and maxValue, returning the first
// error with the entry's index.
func (b *Batch) Validate(maxValue int) error {
	if n := len(b.Repr()); n > maxBatchSize {
		return fmt.Errorf("batch of %d bytes: %w (the limit is %d)", n, ErrBatchTooLarge, maxBatchSize)
	}
	r := b.Reader()
	for i := 0; ; i++ {
		kind, key, value, ok := r.Next()
		if !ok {
			break
		}
		if err := CheckKey(key); err != nil {
			return fmt.Errorf("batch entry %d: %w", i, err)
		}
		if kind == KindSet {
			if err := CheckValue(value, maxValue); err != nil {
				return fmt.Errorf("batch entry %d: %w", i, err)
			}
		}
	}
	return r.Err()
}

// Reader returns a reader over the batch's entries in order.
func (b *Batch) Reader() BatchReader {
	b.init()
	return BatchReader{data: b.repr[BatchHeaderLen:], left: b.count}
}

// DecodeBatch parses repr (as made by Repr) into a Batch, checking that
// every entry is well formed. The Batch keeps its own copy of repr.
func DecodeBatch(repr []byte) (*Batch, error) {
	if len(repr) < BatchHeaderLen {
		return nil, fmt.Errorf("kvs: batch of %d bytes is shorter than its %d-byte header", len(repr), BatchHeaderLen)
	}
	b := &Batch{repr: append([]byte(nil), repr...)}
	b.count = binary.LittleEndian.Uint32(repr[8:12])
	r := b.Reader()
	for {
		kind, key, value, ok := r.Next()
		if !ok {
			break
		}
		_ = kind
		b.userBytes += int64(len(key) + len(value))
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	if len(r.data) != 0 {
		return nil, fmt.Errorf("kvs: batch has %d bytes after its %d entries", len(r.data), b.count)
	}
	return b, nil
}

// BatchReader walks the entries of an encoded batch.
type BatchReader struct {
	data []byte
	left uint32
	err  error
}

// Next returns the next entry. The key and value alias the batch's buffer.
// ok is false at the end or on a malformed entry (see Err).
func (r *BatchReader) Next() (kind Kind, key, value []byte, ok bool) {
	if r.left == 0 || r.err != nil {
		return 0, nil, nil, false
	}
	if len(r.data) == 0 {
		r.err = fmt.Errorf("kvs: batch ends with %d entries missing", r.left)
		return 0, nil, nil, false
	}
	kind = Kind(r.data[0])
	r.data = r.data[1:]
	if kind != KindSet && kind != KindDelete {
		r.err = fmt.Errorf("kvs: batch entry has unknown kind %d", kind)
		return 0, nil, nil, false
	}
	if key, r.err = r.bytes("key"); r.err != nil {
		return 0, nil, nil, false
	}
	if kind == KindSet {
		if value, r.err = r.bytes("value"); r.err != nil {
			return 0, nil, nil, false
		}
	}
	r.left--
	return kind, key, value, true
}

func (r *BatchReader) bytes(what string) ([]byte, error) {
	n, w := binary.Uvarint(r.data)
	if w <= 0 {
		return nil, fmt.Errorf("kvs: batch entry has a bad %s length", what)
	}
	r.data = r.data[w:]
	if n > uint64(len(r.data)) {
		return nil, fmt.Errorf("kvs: batch entry %s length %d runs past the end", what, n)
	}
	p := r.data[:n:n]
	r.data = r.data[n:]
	return p, nil
}

// Err returns the decoding error that stopped Next, if any.
func (r *BatchReader) Err() error { return r.err }
