package compaction

import (
	"bytes"
	"fmt"
	"strings"
)

// Options tune leveled compaction. The zero value means defaults
// (EnsureDefaults).
type Options struct {
	// L0CompactionTrigger is the L0 file count at which L0 scores 1.
	// Default 4.
	L0CompactionTrigger int
	// BaseLevelBytes is L1's target size. Default 32 MiB: about what L0
	// holds at its compaction trigger with the lsm engine's default 8 MiB
	// memtables, so an L0→L1 compaction rewrites about as much of L1 as
	// it brings down (a larger L1 multiplies the bytes rewritten).
	BaseLevelBytes int64
	// LevelMultiplier is how much larger each level's target is than the
	// one above. Default 10.
	LevelMultiplier int
	// TargetFileSize is the size at which a compaction cuts its output
	// into a new table. Default 2 MiB.
	TargetFileSize int64
	// MaxGrandparentOverlapBytes stops a trivial move (and, in the runner,
	// cuts an output table) when one table would overlap more than this
	// many bytes of the level two below, so that a later compaction of it
	// stays small. Default 10 × TargetFileSize.
	MaxGrandparentOverlapBytes int64
}

// EnsureDefaults fills in zero fields and returns o.
func (o *Options) EnsureDefaults() *Options {
	if o.L0CompactionTrigger <= 0 {
		o.L0CompactionTrigger = 4
	}
	if o.BaseLevelBytes <= 0 {
		o.BaseLevelBytes = 32 << 20
	}
	if o.LevelMultiplier <= 1 {
		o.LevelMultiplier = 10
	}
	if o.TargetFileSize <= 0 {
		o.TargetFileSize = 2 << 20
	}
	if o.MaxGrandparentOverlapBytes <= 0 {
		o.MaxGrandparentOverlapBytes = 10 * o.TargetFileSize
	}
	return o
}

// LevelTarget returns the target size of level (1 or deeper).
func (o *Options) LevelTarget(level int) int64 {
	t := o.BaseLevelBytes
	for l := 1; l < level; l++ {
		t *= int64(o.LevelMultiplier)
	}
	return t
}

// Scores returns each level's compaction score: L0's file count over
// L0CompactionTrigger, a deeper level's bytes over its target. The last
// level has no level below it and scores 0.
func Scores(v *Version, o Options) [NumLevels]float64 {
	o.EnsureDefaults()
	var s [NumLevels]float64
	s[0] = float64(len(v.Levels[0])) / float64(o.L0CompactionTrigger)
	for level := 1; level < NumLevels-1; level++ {
		s[level] = float64(v.LevelBytes(level)) / float64(o.LevelTarget(level))
	}
	return s
}

// Compaction is one picked compaction: merge Inputs[0] (from Level) and
// Inputs[1] (from OutputLevel) into new tables in OutputLevel.
type Compaction struct {
	Level       int
	OutputLevel int
	Inputs      [2][]*TableMeta
	// Grandparents are the tables of OutputLevel+1 overlapping the
	// inputs; the runner cuts an output table early rather than let it
	// overlap more than MaxGrandparentOverlapBytes of them.
	Grandparents []*TableMeta
	// TrivialMove says Inputs[0] is one table that can move to
	// OutputLevel unchanged: nothing there overlaps it.
	TrivialMove bool
	Score       float64
	Reason      string
}

// InputBytes returns the total size of all inputs.
func (c *Compaction) InputBytes() int64 { return totalSize(c.Inputs[0]) + totalSize(c.Inputs[1]) }

func (c *Compaction) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "L%d->L%d (%s, score %.2f)", c.Level, c.OutputLevel, c.Reason, c.Score)
	if c.TrivialMove {
		b.WriteString(" trivial move")
	}
	for i, in := range c.Inputs {
		fmt.Fprintf(&b, " in%d=%v", i, in)
	}
	return b.String()
}

// Leveled picks leveled compactions. It remembers, per level, where the
// last compaction of that level ended (the compact pointer), so successive
// compactions walk the key space round-robin and every table gets its turn.
// A Leveled is not safe for concurrent use.
type Leveled struct {
	opts    Options
	pointer [NumLevels][]byte
}

// NewLeveled returns a leveled picker.
func NewLeveled(o Options) *Leveled {
	o.EnsureDefaults()
	return &Leveled{opts: o}
}

// Options returns the picker's options, defaults filled in.
func (p *Leveled) Options() Options { return p.opts }

// Pick returns the compaction the version needs most, or nil when every
// level scores below 1. busy reports tables already being compacted; a
// level whose candidates are busy is skipped.
func (p *Leveled) Pick(v *Version, busy func(*TableMeta) bool) *Compaction {
	if busy == nil {
		busy = func(*TableMeta) bool { return false }
	}
	scores := Scores(v, p.opts)
	// Levels in decreasing score order; ties go to the shallower level.
	order := make([]int, 0, NumLevels-1)
	for level := 0; level < NumLevels-1; level++ {
		order = append(order, level)
	}
	for i := 1; i < len(order); i++ {
		for j := i; j > 0 && scores[order[j]] > scores[order[j-1]]; j-- {
			order[j], order[j-1] = order[j-1], order[j]
		}
	}
	for _, level := range order {
		if scores[level] < 1 {
			return nil
		}
		if c := p.pickLevel(v, level, busy); c != nil {
			c.Score = scores[level]
			return c
		}
	}
	return nil
}

func (p *Leveled) pickLevel(v *Version, level int, busy func(*TableMeta) bool) *Compaction {
	c := &Compaction{Level: level, OutputLevel: level + 1}
	if level == 0 {
		c.Reason = "L0 file count"
		// Start from the oldest L0 table: its versions are the ones that
		// must move down first.
		oldest := v.Levels[0][len(v.Levels[0])-1]
		c.Inputs[0] = v.Overlapping(0, oldest.Smallest.UserKey, oldest.Largest.UserKey)
	} else {
		c.Reason = "level size"
		t := p.nextTable(v, level)
		if t == nil {
			return nil
		}
		c.Inputs[0] = []*TableMeta{t}
	}
	lo, hi := keyRange(c.Inputs[0])
	c.Inputs[1] = v.Overlapping(c.OutputLevel, lo, hi)
	for _, in := range c.Inputs {
		for _, t := range in {
			if busy(t) {
				return nil
			}
		}
	}
	if c.OutputLevel+1 < NumLevels {
		lo, hi = keyRange(c.Inputs[0], c.Inputs[1])
		c.Grandparents = v.Overlapping(c.OutputLevel+1, lo, hi)
	}
	c.TrivialMove = len(c.Inputs[0]) == 1 && len(c.Inputs[1]) == 0 &&
		totalSize(c.Grandparents) <= p.opts.MaxGrandparentOverlapBytes
	if level > 0 {
		p.pointer[level] = append(p.pointer[level][:0], c.Inputs[0][0].Largest.UserKey...)
	}
	return c
}

// nextTable returns the first table of level after the compact pointer,
// wrapping around to the first table.
func (p *Leveled) nextTable(v *Version, level int) *TableMeta {
	tables := v.Levels[level]
	if len(tables) == 0 {
		return nil
	}
	for _, t := range tables {
		if p.pointer[level] == nil || bytes.Compare(t.Smallest.UserKey, p.pointer[level]) > 0 {
			return t
		}
	}
	return tables[0]
}

// Manual returns the compactions that push everything in [lo, hi] (nil
// for an open end) from level down one level, one compaction of every
// overlapping table of level and the next; nil when level holds nothing
// in the range. A full manual compaction calls it for each level in turn,
// top to bottom, rerunning after each round is applied.
func Manual(v *Version, level int, lo, hi []byte) *Compaction {
	if level >= NumLevels-1 {
		return nil
	}
	var in []*TableMeta
	for _, t := range v.Levels[level] {
		if (lo == nil || bytes.Compare(t.Largest.UserKey, lo) >= 0) && (hi == nil || bytes.Compare(t.Smallest.UserKey, hi) <= 0) {
			in = append(in, t)
		}
	}
	if len(in) == 0 {
		return nil
	}
	if level == 0 {
		klo, khi := keyRange(in)
		in = v.Overlapping(0, klo, khi)
	}
	c := &Compaction{Level: level, OutputLevel: level + 1, Reason: "manual", Inputs: [2][]*TableMeta{in, nil}}
	klo, khi := keyRange(in)
	c.Inputs[1] = v.Overlapping(level+1, klo, khi)
	if level+2 < NumLevels {
		klo, khi = keyRange(c.Inputs[0], c.Inputs[1])
		c.Grandparents = v.Overlapping(level+2, klo, khi)
	}
	return c
}
