package compaction

import (
	"bytes"
	"fmt"

	"github.com/kvs-lab/kvs/internal/base"
)

// NumLevels is the number of levels, L0 to L6.
const NumLevels = 7

// TableMeta describes one sstable to the picker: the lsm package's
// manifest holds these.
type TableMeta struct {
	FileNum  uint64
	Size     int64
	Smallest base.InternalKey // smallest internal key in the table
	Largest  base.InternalKey // largest internal key in the table
	// SmallestSeq and LargestSeq bound the sequence numbers inside; L0
	// tables are ordered by LargestSeq, newest first.
	SmallestSeq, LargestSeq uint64
}

func (t *TableMeta) String() string {
	return fmt.Sprintf("%06d:[%q-%q]", t.FileNum, t.Smallest.UserKey, t.Largest.UserKey)
}

// overlaps reports whether t's user-key range meets [lo, hi] (inclusive).
func (t *TableMeta) overlaps(lo, hi []byte) bool {
	return bytes.Compare(t.Largest.UserKey, lo) >= 0 && bytes.Compare(t.Smallest.UserKey, hi) <= 0
}

// Version is a set of tables by level, as the picker sees it. L0 is newest
// first; L1 and deeper are sorted by smallest key and do not overlap.
type Version struct {
	Levels [NumLevels][]*TableMeta
}

// LevelBytes returns the total size of the tables in level.
func (v *Version) LevelBytes(level int) int64 {
	var n int64
	for _, t := range v.Levels[level] {
		n += t.Size
	}
	return n
}

// Check reports the first broken invariant: L0 not newest first, a deeper
// level out of order or overlapping, a table whose smallest key is above its
// largest.
func (v *Version) Check() error {
	for level, tables := range v.Levels {
		for i, t := range tables {
			if base.InternalCompare(t.Smallest, t.Largest) > 0 {
				return fmt.Errorf("kvs/compaction: L%d table %s: smallest key above largest", level, t)
			}
			if i == 0 {
				continue
			}
			prev := tables[i-1]
			if level == 0 {
				if prev.LargestSeq < t.LargestSeq {
					return fmt.Errorf("kvs/compaction: L0 table %s is newer than %s before it", t, prev)
				}
				continue
			}
			if bytes.Compare(prev.Largest.UserKey, t.Smallest.UserKey) >= 0 {
				return fmt.Errorf("kvs/compaction: L%d tables %s and %s overlap or are out of order", level, prev, t)
			}
		}
	}
	return nil
}

// Overlapping returns the tables of level whose user-key range meets
// [lo, hi]. In L0, where tables overlap each other, the range grows to cover
// every table that joins, until no more join: a key's versions may be spread
// over several L0 tables, and compacting only some of them would put an
// older version below a newer one.
func (v *Version) Overlapping(level int, lo, hi []byte) []*TableMeta {
	var out []*TableMeta
	if level > 0 {
		for _, t := range v.Levels[level] {
			if t.overlaps(lo, hi) {
				out = append(out, t)
			}
		}
		return out
	}
	in := make([]bool, len(v.Levels[0]))
	for grew := true; grew; {
		grew = false
		for i, t := range v.Levels[0] {
			if in[i] || !t.overlaps(lo, hi) {
				continue
			}
			in[i], grew = true, true
			if bytes.Compare(t.Smallest.UserKey, lo) < 0 {
				lo = t.Smallest.UserKey
			}
			if bytes.Compare(t.Largest.UserKey, hi) > 0 {
				hi = t.Largest.UserKey
			}
		}
	}
	for i, t := range v.Levels[0] {
		if in[i] {
			out = append(out, t)
		}
	}
	return out
}

// keyRange returns the smallest and largest user keys of tables.
func keyRange(tables ...[]*TableMeta) (lo, hi []byte) {
	for _, ts := range tables {
		for _, t := range ts {
			if lo == nil || bytes.Compare(t.Smallest.UserKey, lo) < 0 {
				lo = t.Smallest.UserKey
			}
			if hi == nil || bytes.Compare(t.Largest.UserKey, hi) > 0 {
				hi = t.Largest.UserKey
			}
		}
	}
	return lo, hi
}

func totalSize(tables []*TableMeta) int64 {
	var n int64
	for _, t := range tables {
		n += t.Size
	}
	return n
}
