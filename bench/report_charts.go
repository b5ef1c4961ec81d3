package bench

import (
	"bytes"
	"fmt"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// chart is one SVG file of a report.
type chart struct {
	section, title string
	file           string // name inside the report's directory
	svg            []byte
}

// makeCharts draws a report's charts: throughput and amplification over
// every workload, then per workload the latency CDF and disk usage over
// time. Each engine keeps one colour in every chart.
func makeCharts(results []*Result) ([]chart, error) {
	workloads := firstSeen(results, func(r *Result) string { return r.Workload })
	dbs := firstSeen(results, func(r *Result) string { return r.DB })
	find := func(wl, db string) *Result {
		for _, r := range results {
			if r.Workload == wl && r.DB == db {
				return r
			}
		}
		return nil
	}
	value := func(f func(*Result) float64) func(g, s int) float64 {
		return func(g, s int) float64 {
			if r := find(workloads[g], dbs[s]); r != nil {
				return finite(f(r))
			}
			return 0
		}
	}
	var charts []chart
	add := func(section, title, file string, svg []byte, err error) error {
		if err != nil {
			return fmt.Errorf("bench: report: chart %s: %w", file, err)
		}
		charts = append(charts, chart{section: section, title: title, file: file, svg: svg})
		return nil
	}

	p := barPlot("Throughput", "operations per second", workloads, dbs, value(func(r *Result) float64 { return r.OpsPerSec }), HumanCount)
	svg, err := render(barWidth(len(workloads), len(dbs)), 9*vg.Centimeter, [][]*plot.Plot{{p}})
	if err := add("Throughput", "throughput per workload", "throughput.svg", svg, err); err != nil {
		return nil, err
	}

	wa := barPlot("Write amplification", "bytes written per user byte", workloads, dbs, value(func(r *Result) float64 { return r.WriteAmp }), amp)
	sa := barPlot("Space amplification", "bytes on disk per live byte", workloads, dbs, value(func(r *Result) float64 { return r.SpaceAmp }), amp)
	svg, err = render(barWidth(len(workloads), len(dbs)), 16*vg.Centimeter, [][]*plot.Plot{{wa}, {sa}})
	if err := add("Amplification", "write and space amplification", "amplification.svg", svg, err); err != nil {
		return nil, err
	}

	for _, wl := range workloads {
		section := "Workload " + wl
		p := plot.New()
		p.Title.Text = "Latency CDF: " + wl + " (all operations)"
		p.X.Label.Text = "latency (µs, log scale)"
		p.Y.Label.Text = "fraction of operations"
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
		p.Y.Min, p.Y.Max = 0, 1
		p.Add(plotter.NewGrid())
		lo, hi := math.Inf(1), math.Inf(-1)
		for i, db := range dbs {
			r := find(wl, db)
			if r == nil || r.Latency["all"] == nil {
				continue
			}
			var xys plotter.XYs
			for _, pt := range r.Latency["all"].CDF {
				if pt.Nanos > 0 {
					us := float64(pt.Nanos) / 1e3
					xys = append(xys, plotter.XY{X: us, Y: pt.Fraction})
					lo, hi = min(lo, us), max(hi, us)
				}
			}
			if err := addLine(p, i, db, xys); err != nil {
				return nil, fmt.Errorf("bench: report: latency chart of %s: %w", wl, err)
			}
		}
		if lo <= hi {
			// Whole decades, so the axis has at least two labelled ticks.
			p.X.Min, p.X.Max = math.Pow(10, math.Floor(math.Log10(lo))), math.Pow(10, math.Ceil(math.Log10(hi)))
			if p.X.Max <= p.X.Min {
				p.X.Max = p.X.Min * 10
			}
		}
		p.Legend.Top, p.Legend.Left = false, false
		svg, err := render(16*vg.Centimeter, 10*vg.Centimeter, [][]*plot.Plot{{p}})
		if err := add(section, "latency CDF of "+wl, "latency-cdf-"+wl+".svg", svg, err); err != nil {
			return nil, err
		}

		p = plot.New()
		p.Title.Text = "Disk usage during " + wl
		p.X.Label.Text = "seconds into the timed phase"
		p.Y.Label.Text = "MiB on disk"
		p.Y.Min = 0
		p.Add(plotter.NewGrid())
		top := 0.0
		for i, db := range dbs {
			r := find(wl, db)
			if r == nil {
				continue
			}
			var xys plotter.XYs
			for _, s := range r.Samples {
				xys = append(xys, plotter.XY{X: s.Seconds, Y: float64(s.BytesOnDisk) / (1 << 20)})
				top = max(top, float64(s.BytesOnDisk)/(1<<20))
			}
			if err := addLine(p, i, db, xys); err != nil {
				return nil, fmt.Errorf("bench: report: disk chart of %s: %w", wl, err)
			}
		}
		// Head room for the legend, top left: usage grows to the right.
		p.Y.Max = math.Max(top, 1.0/1024) * 1.35
		p.Legend.Top, p.Legend.Left = true, true
		svg, err = render(16*vg.Centimeter, 10*vg.Centimeter, [][]*plot.Plot{{p}})
		if err := add(section, "disk usage during "+wl, "disk-usage-"+wl+".svg", svg, err); err != nil {
			return nil, err
		}
	}
	return charts, nil
}

// amp formats an amplification.
func amp(x float64) string { return strconv.FormatFloat(x, 'f', 2, 64) }

// finite turns NaN and infinities (a run too short to time) into 0.
func finite(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return x
}

// barWidth is the width of a grouped bar chart with groups of n bars:
// room for the bars, a gap between groups that fits their names, and the
// axis.
func barWidth(groups, n int) vg.Length {
	return max(16*vg.Centimeter, vg.Length(groups)*(vg.Length(n)*barSize(groups, n)+vg.Points(40))+vg.Points(80))
}

// barSize is the width of one bar in a group of n: the groups share about
// 13 cm, a group is at most 3 cm wide, and a bar at least 10 points (its
// label's height).
func barSize(groups, n int) vg.Length {
	group := min(3*vg.Centimeter, 13*vg.Centimeter/vg.Length(max(groups, 1))*0.7)
	return max(vg.Points(10), group/vg.Length(max(n, 1)))
}

// barPlot draws grouped bars: a group per name in groups, a bar per name
// in series, value(g, s) high, each labelled with label(value).
func barPlot(title, ylabel string, groups, series []string, value func(g, s int) float64, label func(float64) string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = ylabel
	p.Y.Min = 0
	top := 0.0
	w := barSize(len(groups), len(series))
	for s, name := range series {
		vals := make(plotter.Values, len(groups))
		for g := range groups {
			vals[g] = value(g, s)
			top = max(top, vals[g])
		}
		b, err := plotter.NewBarChart(vals, w)
		if err != nil {
			continue // NB: only for NaN or infinite values, which finite removed
		}
		b.LineStyle.Width = 0
		b.Color = plotutil.Color(s)
		b.Offset = vg.Length(float64(s)-float64(len(series)-1)/2) * w
		p.Add(b)
		p.Legend.Add(name, b)
		// The values, written upwards from each bar's top: groups
		// share one scale, so a short bar is read from its label.
		xys := plotter.XYLabels{XYs: make(plotter.XYs, len(groups)), Labels: make([]string, len(groups))}
		for g := range groups {
			xys.XYs[g] = plotter.XY{X: float64(g), Y: vals[g]}
			xys.Labels[g] = label(vals[g])
		}
		if l, err := plotter.NewLabels(xys); err == nil {
			for i := range l.TextStyle {
				l.TextStyle[i].Font.Size = vg.Points(7)
				l.TextStyle[i].Rotation = math.Pi / 2
				l.TextStyle[i].XAlign = draw.XLeft
				l.TextStyle[i].YAlign = draw.YCenter
			}
			l.Offset = vg.Point{X: b.Offset, Y: vg.Points(2)}
			p.Add(l)
		}
	}
	// Head room for the labels and the legend above the tallest bar, and
	// half a group's room at either end.
	p.Y.Max = max(1, top) * (1.35 + 0.08*float64(len(series)))
	p.Y.Tick.Marker = plot.TickerFunc(func(min, max float64) []plot.Tick {
		ticks := plot.DefaultTicks{}.Ticks(min, max)
		for i := range ticks {
			if ticks[i].Label != "" {
				ticks[i].Label = label(ticks[i].Value)
			}
		}
		return ticks
	})
	p.Legend.Top = true
	p.NominalX(groups...)
	p.X.Min, p.X.Max = -0.5, float64(len(groups))-0.5
	return p
}

// addLine adds a line with points for series i to p.
func addLine(p *plot.Plot, i int, name string, xys plotter.XYs) error {
	if len(xys) == 0 {
		return nil
	}
	l, s, err := plotter.NewLinePoints(xys)
	if err != nil {
		return err
	}
	l.Color = plotutil.Color(i)
	l.Dashes = plotutil.Dashes(i)
	l.Width = vg.Points(1.5)
	s.Color = plotutil.Color(i)
	s.Shape = plotutil.Shape(i)
	s.Radius = vg.Points(2)
	p.Add(l, s)
	p.Legend.Add(name, l, s)
	return nil
}

// render draws plots, a grid of rows, into one SVG document of w by h.
func render(w, h vg.Length, plots [][]*plot.Plot) (svg []byte, err error) {
	// NB: gonum/plot panics on degenerate input (an empty log axis); a
	// report must not take the process down with it.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("draw: %v", r)
		}
	}()
	c := vgsvg.New(w, h)
	dc := draw.New(c)
	tiles := draw.Tiles{Rows: len(plots), Cols: len(plots[0]), PadTop: vg.Millimeter, PadBottom: vg.Millimeter,
		PadLeft: vg.Millimeter, PadRight: vg.Millimeter, PadX: 4 * vg.Millimeter, PadY: 4 * vg.Millimeter}
	canvases := plot.Align(plots, tiles, dc)
	for j, row := range plots {
		for i, p := range row {
			p.Draw(canvases[j][i])
		}
	}
	var b bytes.Buffer
	if _, err := c.WriteTo(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
