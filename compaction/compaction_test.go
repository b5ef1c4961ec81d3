package compaction

import (
	"fmt"
	"strings"
	"testing"

	"github.com/kvs-lab/kvs/internal/base"
)

// tbl makes a table [lo, hi] of size bytes whose newest entry has seq.
func tbl(num uint64, lo, hi string, size int64, seq uint64) *TableMeta {
	return &TableMeta{
		FileNum:     num,
		Size:        size,
		Smallest:    base.MakeInternalKey([]byte(lo), seq, base.KindSet),
		Largest:     base.MakeInternalKey([]byte(hi), seq, base.KindSet),
		SmallestSeq: seq, LargestSeq: seq,
	}
}

func nums(ts []*TableMeta) string {
	var s []string
	for _, t := range ts {
		s = append(s, fmt.Sprint(t.FileNum))
	}
	return strings.Join(s, ",")
}

const mb = 1 << 20

func TestScores(t *testing.T) {
	o := Options{L0CompactionTrigger: 4, BaseLevelBytes: 10 * mb, LevelMultiplier: 10}
	v := &Version{}
	v.Levels[0] = []*TableMeta{tbl(1, "a", "z", mb, 3), tbl(2, "a", "z", mb, 2)}
	v.Levels[1] = []*TableMeta{tbl(3, "a", "m", 15*mb, 1)}
	v.Levels[2] = []*TableMeta{tbl(4, "a", "m", 50*mb, 1)}
	v.Levels[6] = []*TableMeta{tbl(5, "a", "m", 5000*mb, 1)}
	s := Scores(v, o)
	want := [NumLevels]float64{0.5, 1.5, 0.5, 0, 0, 0, 0}
	if s != want {
		t.Fatalf("Scores = %v, want %v", s, want)
	}
	if got := o.LevelTarget(3); got != 1000*mb {
		t.Fatalf("LevelTarget(3) = %d, want %d", got, 1000*mb)
	}
}

func TestPickNothingBelowScoreOne(t *testing.T) {
	v := &Version{}
	v.Levels[0] = []*TableMeta{tbl(1, "a", "c", mb, 1)}
	if c := NewLeveled(Options{}).Pick(v, nil); c != nil {
		t.Fatalf("picked %v with one L0 table", c)
	}
}

func TestPickL0PullsInOverlappingL0AndL1(t *testing.T) {
	v := &Version{}
	// Newest first. 5 overlaps 4 (the oldest), 3 overlaps 5, 2 overlaps
	// nothing picked: the range grows from the oldest table until stable.
	v.Levels[0] = []*TableMeta{
		tbl(2, "x", "z", mb, 9),
		tbl(3, "h", "k", mb, 8),
		tbl(5, "d", "i", mb, 7),
		tbl(4, "a", "e", mb, 6),
	}
	v.Levels[1] = []*TableMeta{tbl(10, "a", "c", mb, 1), tbl(11, "f", "g", mb, 1), tbl(12, "m", "p", mb, 1)}
	c := NewLeveled(Options{L0CompactionTrigger: 4}).Pick(v, nil)
	if c == nil || c.Level != 0 || c.OutputLevel != 1 || c.TrivialMove {
		t.Fatalf("Pick = %v", c)
	}
	if got := nums(c.Inputs[0]); got != "3,5,4" {
		t.Errorf("L0 inputs %s, want 3,5,4", got)
	}
	if got := nums(c.Inputs[1]); got != "10,11" {
		t.Errorf("L1 inputs %s, want 10,11", got)
	}
}

func TestPickHighestScoreFirst(t *testing.T) {
	o := Options{L0CompactionTrigger: 4, BaseLevelBytes: 10 * mb}
	v := &Version{}
	v.Levels[0] = []*TableMeta{tbl(1, "a", "b", mb, 5), tbl(2, "a", "b", mb, 4), tbl(3, "a", "b", mb, 3), tbl(4, "a", "b", mb, 2), tbl(5, "a", "b", mb, 1)} // 1.25
	v.Levels[1] = []*TableMeta{tbl(6, "c", "d", 30*mb, 1)}                                                                                                  // 3.0
	c := NewLeveled(o).Pick(v, nil)
	if c == nil || c.Level != 1 || c.Reason != "level size" {
		t.Fatalf("Pick = %v, want the L1 compaction (score 3 beats 1.25)", c)
	}
	if !c.TrivialMove {
		t.Fatalf("L1 table with nothing under it should move trivially: %v", c)
	}
	// With L1's table busy, L0 is next.
	c = NewLeveled(o).Pick(v, func(t *TableMeta) bool { return t.FileNum == 6 })
	if c == nil || c.Level != 0 {
		t.Fatalf("Pick with L1 busy = %v, want L0", c)
	}
}

func TestTrivialMoveRefusedWhenGrandparentOverlapIsLarge(t *testing.T) {
	o := Options{BaseLevelBytes: mb, TargetFileSize: mb, MaxGrandparentOverlapBytes: 5 * mb}
	v := &Version{}
	v.Levels[1] = []*TableMeta{tbl(1, "a", "z", 2*mb, 1)}
	v.Levels[3] = []*TableMeta{tbl(2, "b", "c", 3*mb, 1), tbl(3, "d", "e", 3*mb, 1)}
	c := NewLeveled(o).Pick(v, nil)
	if c == nil || c.TrivialMove || nums(c.Grandparents) != "2,3" {
		t.Fatalf("Pick = %v, want a rewrite because 6 MiB of L3 lies under the table", c)
	}
}

func TestCompactPointerWalksTheLevelRoundRobin(t *testing.T) {
	o := Options{BaseLevelBytes: mb}
	v := &Version{}
	v.Levels[1] = []*TableMeta{tbl(1, "a", "b", mb, 1), tbl(2, "c", "d", mb, 1), tbl(3, "e", "f", mb, 1)}
	p := NewLeveled(o)
	var got []string
	for i := 0; i < 4; i++ {
		c := p.Pick(v, nil)
		got = append(got, nums(c.Inputs[0]))
	}
	if strings.Join(got, " ") != "1 2 3 1" {
		t.Fatalf("successive picks took %v, want 1 2 3 1", got)
	}
}

func TestManualCoversTheRange(t *testing.T) {
	v := &Version{}
	v.Levels[0] = []*TableMeta{tbl(1, "a", "c", mb, 2), tbl(2, "b", "k", mb, 1)}
	v.Levels[1] = []*TableMeta{tbl(3, "a", "d", mb, 1), tbl(4, "x", "z", mb, 1)}
	c := Manual(v, 0, nil, nil)
	if nums(c.Inputs[0]) != "1,2" || nums(c.Inputs[1]) != "3" {
		t.Fatalf("Manual(L0) = %v", c)
	}
	if c := Manual(v, 1, []byte("w"), nil); nums(c.Inputs[0]) != "4" {
		t.Fatalf("Manual(L1, [w,)) = %v", c)
	}
	if c := Manual(v, 2, nil, nil); c != nil {
		t.Fatalf("Manual of an empty level = %v", c)
	}
}

func TestVersionCheck(t *testing.T) {
	v := &Version{}
	v.Levels[1] = []*TableMeta{tbl(1, "a", "d", mb, 1), tbl(2, "c", "f", mb, 1)}
	if err := v.Check(); err == nil {
		t.Fatal("overlapping L1 tables passed Check")
	}
	v = &Version{}
	v.Levels[0] = []*TableMeta{tbl(1, "a", "d", mb, 1), tbl(2, "a", "d", mb, 2)}
	if err := v.Check(); err == nil {
		t.Fatal("L0 oldest-first passed Check")
	}
}

func TestTiered(t *testing.T) {
	runs := func(sizes ...int64) *Version {
		v := &Version{}
		for i, s := range sizes {
			v.Levels[0] = append(v.Levels[0], tbl(uint64(i+1), "a", "z", s, uint64(100-i)))
		}
		return v
	}
	cases := []struct {
		name   string
		v      *Version
		want   string
		reason string
	}{
		{"too few runs", runs(1, 1, 1), "", ""},
		{"similar sizes merge", runs(10, 10, 11, 12, 1000), "1,2,3,4", "size ratio"},
		{"a big old run waits", runs(10, 10, 10, 500), "", ""},
		{"window starts below a lone small run", runs(1, 100, 100, 110, 120, 1000000), "2,3,4,5", "size ratio"},
		{"space amplification merges all", runs(150, 150, 100), "1,2,3", "space amplification"},
		{"newer runs under the space limit wait", runs(60, 60, 100), "", ""},
		{"run count bounds reads", runs(1, 3, 9, 27, 81, 243, 729, 2187, 6561, 19683, 59049, 177147, 531441, 1594323), "1,2,3,4", "run count"},
	}
	p := NewTiered(TieredOptions{})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := p.Pick(c.v, nil)
			if c.want == "" {
				if got != nil {
					t.Fatalf("picked %v, want nothing", got)
				}
				return
			}
			if got == nil || nums(got.Inputs[0]) != c.want || got.Reason != c.reason || got.OutputLevel != 0 {
				t.Fatalf("picked %v, want runs %s (%s)", got, c.want, c.reason)
			}
		})
	}
}
