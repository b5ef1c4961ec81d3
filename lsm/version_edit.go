package lsm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/kvs-lab/kvs"
	"github.com/kvs-lab/kvs/compaction"
	"github.com/kvs-lab/kvs/internal/base"
)

// A VersionEdit is one atomic change to the set of tables: the MANIFEST is
// a log of them (docs/formats/manifest.md). Replaying every edit in order
// from an empty version gives the current version; a flush adds one L0
// table, a compaction deletes its inputs and adds its outputs in one edit,
// so a crash leaves either the old table set or the new one, never a mix.
//
// Encoding: a sequence of fields, each a uvarint tag followed by the tag's
// payload. Tags are added, never reused.
//
//	tag 1  LogNumber       uvarint     WALs numbered below it are obsolete
//	tag 2  NextFileNumber  uvarint     the next file number to hand out
//	tag 3  LastSeq         uvarint     the last sequence number used
//	tag 4  DeletedTable    level uvarint, file number uvarint
//	tag 5  NewTable        level uvarint, file number uvarint, size uvarint,
//	                       smallest key (uvarint length + internal key),
//	                       largest key (likewise), smallest seq uvarint,
//	                       largest seq uvarint
//	tag 6  Compaction      uvarint length + name: the compaction policy
//	                       in force, "leveled" or "tiered"
type VersionEdit struct {
	LogNumber      uint64 // 0: unchanged
	NextFileNumber uint64 // 0: unchanged
	LastSeq        uint64 // 0: unchanged
	// Compaction is the compaction policy the directory is kept by
	// ("": unchanged). Open records it in the snapshot that starts each
	// MANIFEST, so a later Open that names no policy keeps it.
	Compaction string
	Deleted    []DeletedTable
	Added      []NewTable
}

// DeletedTable names a table an edit removes.
type DeletedTable struct {
	Level   int
	FileNum uint64
}

// NewTable is a table an edit adds.
type NewTable struct {
	Level int
	Meta  *compaction.TableMeta
}

// Version edit tags. Never reuse a number.
const (
	tagLogNumber      = 1
	tagNextFileNumber = 2
	tagLastSeq        = 3
	tagDeletedTable   = 4
	tagNewTable       = 5
	tagCompaction     = 6
)

// errBadEdit is wrapped by every decoding error; the manifest reader turns
// it into a *kvs.CorruptionError with the record's file and offset.
var errBadEdit = errors.New("kvs/lsm: malformed version edit")

// Encode appends the edit's encoding to dst.
func (e *VersionEdit) Encode(dst []byte) []byte {
	put := func(tag uint64, vals ...uint64) {
		dst = binary.AppendUvarint(dst, tag)
		for _, v := range vals {
			dst = binary.AppendUvarint(dst, v)
		}
	}
	if e.LogNumber != 0 {
		put(tagLogNumber, e.LogNumber)
	}
	if e.NextFileNumber != 0 {
		put(tagNextFileNumber, e.NextFileNumber)
	}
	if e.LastSeq != 0 {
		put(tagLastSeq, e.LastSeq)
	}
	if e.Compaction != "" {
		put(tagCompaction, uint64(len(e.Compaction)))
		dst = append(dst, e.Compaction...)
	}
	for _, d := range e.Deleted {
		put(tagDeletedTable, uint64(d.Level), d.FileNum)
	}
	for _, a := range e.Added {
		m := a.Meta
		put(tagNewTable, uint64(a.Level), m.FileNum, uint64(m.Size))
		for _, k := range []base.InternalKey{m.Smallest, m.Largest} {
			dst = binary.AppendUvarint(dst, uint64(k.Size()))
			dst = k.Append(dst)
		}
		dst = binary.AppendUvarint(dst, m.SmallestSeq)
		dst = binary.AppendUvarint(dst, m.LargestSeq)
	}
	return dst
}

// DecodeVersionEdit parses an encoded edit. Any malformed field, unknown
// tag or out-of-range level is an error wrapping errBadEdit; the keys of
// the returned tables own their bytes.
func DecodeVersionEdit(b []byte) (*VersionEdit, error) {
	e := &VersionEdit{}
	d := editDecoder{b: b}
	for len(d.b) > 0 && d.err == nil {
		switch tag := d.uvarint("tag"); tag {
		case tagLogNumber:
			e.LogNumber = d.uvarint("log number")
		case tagNextFileNumber:
			e.NextFileNumber = d.uvarint("next file number")
		case tagLastSeq:
			e.LastSeq = d.uvarint("last sequence number")
		case tagCompaction:
			e.Compaction = d.str("compaction policy")
			if d.err == nil && e.Compaction != kvs.CompactionLeveled && e.Compaction != kvs.CompactionTiered {
				d.fail("unknown compaction policy %q", e.Compaction)
			}
		case tagDeletedTable:
			e.Deleted = append(e.Deleted, DeletedTable{Level: d.level(), FileNum: d.uvarint("file number")})
		case tagNewTable:
			level := d.level()
			m := &compaction.TableMeta{FileNum: d.uvarint("file number"), Size: int64(d.uvarint("table size"))}
			m.Smallest = d.key("smallest key")
			m.Largest = d.key("largest key")
			m.SmallestSeq = d.uvarint("smallest seq")
			m.LargestSeq = d.uvarint("largest seq")
			if d.err == nil && (m.Size < 0 || m.SmallestSeq > m.LargestSeq || base.InternalCompare(m.Smallest, m.Largest) > 0) {
				d.fail("table %d has an impossible size, key range or seq range", m.FileNum)
			}
			e.Added = append(e.Added, NewTable{Level: level, Meta: m})
		default:
			if d.err == nil {
				d.fail("unknown tag %d", tag)
			}
		}
	}
	if d.err != nil {
		return nil, d.err
	}
	return e, nil
}

type editDecoder struct {
	b   []byte
	err error
}

func (d *editDecoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", errBadEdit, fmt.Sprintf(format, args...))
	}
}

func (d *editDecoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad %s", what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *editDecoder) str(what string) string {
	n := d.uvarint(what + " length")
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.fail("%s length %d runs past the end", what, n)
		return ""
	}
	v := string(d.b[:n])
	d.b = d.b[n:]
	return v
}

func (d *editDecoder) level() int {
	l := d.uvarint("level")
	if d.err == nil && l >= compaction.NumLevels {
		d.fail("level %d is beyond L%d", l, compaction.NumLevels-1)
	}
	return int(l)
}

func (d *editDecoder) key(what string) base.InternalKey {
	n := d.uvarint(what + " length")
	if d.err != nil {
		return base.InternalKey{}
	}
	if n > uint64(len(d.b)) {
		d.fail("%s length %d runs past the end", what, n)
		return base.InternalKey{}
	}
	k, ok := base.DecodeInternalKey(d.b[:n])
	if !ok {
		d.fail("bad %s", what)
		return base.InternalKey{}
	}
	d.b = d.b[n:]
	return k.Clone()
}

// Apply returns the version that results from applying e to v, which it
// does not modify. Deleting a table that is not there, or adding one
// whose file number is already in use, is an error: the manifest and the
// engine disagree about the table set.
func (e *VersionEdit) Apply(v *compaction.Version) (*compaction.Version, error) {
	out := &compaction.Version{}
	present := map[uint64]int{}
	for level := range v.Levels {
		out.Levels[level] = slices.Clone(v.Levels[level])
		for _, t := range v.Levels[level] {
			present[t.FileNum] = level
		}
	}
	for _, d := range e.Deleted {
		level, ok := present[d.FileNum]
		if !ok || level != d.Level {
			return nil, fmt.Errorf("kvs/lsm: version edit deletes table %06d from L%d, which does not hold it", d.FileNum, d.Level)
		}
		out.Levels[level] = slices.DeleteFunc(out.Levels[level], func(t *compaction.TableMeta) bool { return t.FileNum == d.FileNum })
		delete(present, d.FileNum)
	}
	for _, a := range e.Added {
		if level, dup := present[a.Meta.FileNum]; dup {
			return nil, fmt.Errorf("kvs/lsm: version edit adds table %06d to L%d, but L%d already holds it", a.Meta.FileNum, a.Level, level)
		}
		present[a.Meta.FileNum] = a.Level
		out.Levels[a.Level] = append(out.Levels[a.Level], a.Meta)
	}
	// L0 newest first (ties: higher file number first); deeper levels by
	// smallest key.
	slices.SortStableFunc(out.Levels[0], func(a, b *compaction.TableMeta) int {
		if a.LargestSeq != b.LargestSeq {
			return cmpDesc(a.LargestSeq, b.LargestSeq)
		}
		return cmpDesc(a.FileNum, b.FileNum)
	})
	for level := 1; level < compaction.NumLevels; level++ {
		slices.SortFunc(out.Levels[level], func(a, b *compaction.TableMeta) int {
			return base.InternalCompare(a.Smallest, b.Smallest)
		})
	}
	if err := out.Check(); err != nil {
		return nil, err
	}
	return out, nil
}

func cmpDesc(a, b uint64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}
