package base

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Kind says what an internal key's entry does. The numbers equal Kind's
// (the lsm package checks it) and are part of every on-disk format that
// stores internal keys: never reuse one.
type Kind uint8

// Entry kinds.
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

// TrailerLen is the encoded size of an internal key's trailer.
const TrailerLen = 8

// SeqMax is the largest sequence number: 56 bits, the trailer keeps the
// low byte for the kind.
const SeqMax uint64 = 1<<56 - 1

// KindMax is the largest kind. A search key (user key, SeqMax, KindMax)
// sorts before every version of its user key.
const KindMax = KindSet

// MakeTrailer packs seq and kind into a trailer.
func MakeTrailer(seq uint64, kind Kind) uint64 { return seq<<8 | uint64(kind) }

// InternalKey is a user key with its sequence number and kind. UserKey
// aliases whatever it was decoded from.
type InternalKey struct {
	UserKey []byte
	Trailer uint64
}

// MakeInternalKey returns the internal key for userKey at seq with kind.
func MakeInternalKey(userKey []byte, seq uint64, kind Kind) InternalKey {
	return InternalKey{UserKey: userKey, Trailer: MakeTrailer(seq, kind)}
}

// MakeSearchKey returns the internal key that sorts before every version
// of userKey: seek to it to find the newest version.
func MakeSearchKey(userKey []byte) InternalKey {
	return MakeInternalKey(userKey, SeqMax, KindMax)
}

// Seq returns the key's sequence number.
func (k InternalKey) Seq() uint64 { return k.Trailer >> 8 }

// Kind returns the key's kind.
func (k InternalKey) Kind() Kind { return Kind(k.Trailer & 0xff) }

// Size returns the encoded length.
func (k InternalKey) Size() int { return len(k.UserKey) + TrailerLen }

// Append appends the encoding (user key, then the trailer little-endian)
// to dst.
func (k InternalKey) Append(dst []byte) []byte {
	dst = append(dst, k.UserKey...)
	return binary.LittleEndian.AppendUint64(dst, k.Trailer)
}

// Clone returns a copy that owns its user key.
func (k InternalKey) Clone() InternalKey {
	return InternalKey{UserKey: bytes.Clone(k.UserKey), Trailer: k.Trailer}
}

func (k InternalKey) String() string {
	return fmt.Sprintf("%q#%d,%s", k.UserKey, k.Seq(), k.Kind())
}

// DecodeInternalKey splits an encoded internal key. ok is false when b is
// shorter than a trailer or its kind is unknown; the user key aliases b.
func DecodeInternalKey(b []byte) (k InternalKey, ok bool) {
	n := len(b) - TrailerLen
	if n < 0 {
		return InternalKey{}, false
	}
	k = InternalKey{UserKey: b[:n:n], Trailer: binary.LittleEndian.Uint64(b[n:])}
	if kind := k.Kind(); kind != KindSet && kind != KindDelete {
		return InternalKey{}, false
	}
	return k, true
}

// InternalCompare orders internal keys: user key ascending, then trailer
// descending (newest first).
func InternalCompare(a, b InternalKey) int {
	if c := bytes.Compare(a.UserKey, b.UserKey); c != 0 {
		return c
	}
	switch {
	case a.Trailer > b.Trailer:
		return -1
	case a.Trailer < b.Trailer:
		return 1
	}
	return 0
}

// CompareEncoded is InternalCompare on encoded keys. Both must be at least
// TrailerLen long.
func CompareEncoded(a, b []byte) int {
	na, nb := len(a)-TrailerLen, len(b)-TrailerLen
	if c := bytes.Compare(a[:na], b[:nb]); c != 0 {
		return c
	}
	ta, tb := binary.LittleEndian.Uint64(a[na:]), binary.LittleEndian.Uint64(b[nb:])
	switch {
	case ta > tb:
		return -1
	case ta < tb:
		return 1
	}
	return 0
}
