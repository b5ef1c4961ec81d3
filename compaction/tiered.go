package compaction

// TieredOptions tune size-tiered compaction. Zero fields mean defaults.
type TieredOptions struct {
	// MinMergeWidth is the fewest runs a size-ratio compaction merges.
	// Default 4.
	MinMergeWidth int
	// MaxMergeWidth caps how many runs one compaction merges. Default 32.
	MaxMergeWidth int
	// SizeRatioPercent lets a run join the runs newer than it when it is
	// at most this much larger than their total. Default 20 (%).
	SizeRatioPercent int
	// MaxSpaceAmpPercent triggers a merge of every run when the runs newer
	// than the oldest add up to more than this share of it: they may all
	// be overwrites of its data. Default 200 (%).
	MaxSpaceAmpPercent int
	// MaxRuns triggers a merge of the newest MinMergeWidth runs when there
	// are more runs than this and nothing else fired, bounding how many
	// runs a read must look at. Default 12.
	MaxRuns int
}

func (o *TieredOptions) ensureDefaults() {
	if o.MinMergeWidth < 2 {
		o.MinMergeWidth = 4
	}
	if o.MaxMergeWidth < o.MinMergeWidth {
		o.MaxMergeWidth = max(32, o.MinMergeWidth)
	}
	if o.SizeRatioPercent <= 0 {
		o.SizeRatioPercent = 20
	}
	if o.MaxSpaceAmpPercent <= 0 {
		o.MaxSpaceAmpPercent = 200
	}
	if o.MaxRuns <= 0 {
		o.MaxRuns = 12
	}
}

// Tiered picks size-tiered compactions over the sorted runs in L0 (one
// table per run, newest first). A merge of consecutive runs produces one
// run that takes their place, so L0 stays ordered by age. It checks, in
// order:
//
//  1. Space amplification: the runs newer than the oldest add up to more
//     than MaxSpaceAmpPercent of the oldest: merge everything.
//  2. Size ratio: from the newest run down, find the first window where
//     each next run is at most SizeRatioPercent larger than the window so
//     far, at least MinMergeWidth runs long: merge it. Runs of similar
//     size merge; a big old run is left alone until enough has piled up
//     above it.
//  3. Run count: more than MaxRuns runs: merge the newest MinMergeWidth.
type Tiered struct {
	opts TieredOptions
}

// NewTiered returns a size-tiered picker.
func NewTiered(o TieredOptions) *Tiered {
	o.ensureDefaults()
	return &Tiered{opts: o}
}

// Pick returns the next tiered compaction or nil. Runs that busy reports
// are never picked, nor is any window containing one.
func (p *Tiered) Pick(v *Version, busy func(*TableMeta) bool) *Compaction {
	if busy == nil {
		busy = func(*TableMeta) bool { return false }
	}
	runs := v.Levels[0]
	n := len(runs)
	if n < 2 {
		return nil
	}
	free := func(w []*TableMeta) bool {
		for _, t := range w {
			if busy(t) {
				return false
			}
		}
		return true
	}
	merge := func(w []*TableMeta, reason string, score float64) *Compaction {
		return &Compaction{Level: 0, OutputLevel: 0, Inputs: [2][]*TableMeta{w, nil}, Reason: reason, Score: score}
	}

	newer := totalSize(runs[:n-1])
	if oldest := runs[n-1].Size; oldest > 0 && newer*100 > int64(p.opts.MaxSpaceAmpPercent)*oldest && free(runs) {
		return merge(runs, "space amplification", float64(newer)/float64(oldest))
	}
	for start := 0; start+p.opts.MinMergeWidth <= n; start++ {
		sum, end := runs[start].Size, start+1
		for end < n && end-start < p.opts.MaxMergeWidth && sum*int64(100+p.opts.SizeRatioPercent) >= runs[end].Size*100 {
			sum += runs[end].Size
			end++
		}
		if end-start >= p.opts.MinMergeWidth && free(runs[start:end]) {
			return merge(runs[start:end], "size ratio", float64(end-start)/float64(p.opts.MinMergeWidth))
		}
	}
	if n > p.opts.MaxRuns && free(runs[:p.opts.MinMergeWidth]) {
		return merge(runs[:p.opts.MinMergeWidth], "run count", float64(n)/float64(p.opts.MaxRuns))
	}
	return nil
}
