package plot

import (
	"fmt"
	"image/color"
	"math"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Colours of the training figure: per-step values pale, their moving
// average dark.
var (
	rawColour    = color.RGBA{R: 0x9e, G: 0xc5, B: 0xe8, A: 0xff}
	smoothColour = color.RGBA{R: 0x1f, G: 0x4e, B: 0x96, A: 0xff}
	knnColour    = color.RGBA{R: 0xc0, G: 0x39, B: 0x2b, A: 0xff}
)

// Training is the figure of a run's curves against steps, one panel each:
// the loss and the throughput (per step and a moving average), the
// learning rate, the data wait (milliseconds per step, with its share of
// the step time) and, when the run has kNN evaluations, the kNN top-1
// accuracy. The scales are linear: the loss of a SimCLR run moves within
// less than a factor of two, and the learning rate's cosine decay (and
// warm-up) reach 0, which a log scale cannot show. title heads the figure.
func Training(m *Metrics, title string) (Figure, error) {
	if len(m.Steps) == 0 && len(m.KNN) == 0 {
		return Figure{}, fmt.Errorf("plot: no step records to draw; the run has not finished a step yet")
	}
	var panels []*plot.Plot
	if len(m.Steps) > 0 {
		window := max(1, len(m.Steps)/25)
		loss := series(m.Steps, func(r Record) float64 { return r.Loss })
		lr := series(m.Steps, func(r Record) float64 { return r.LR })
		ips := series(m.Steps, func(r Record) float64 { return r.ImagesPerSecond })
		wait := series(m.Steps, func(r Record) float64 { return 1e3 * r.DataWaitSeconds })
		panels = append(panels,
			curve("loss (NT-Xent)", loss, window, true),
			curve("learning rate", lr, 0, false),
			curve("throughput (images/s)", ips, window, false),
			curve("data wait (ms/step)", wait, 0, false))
		var waitSum, stepSum float64
		for _, r := range m.Steps {
			if !math.IsNaN(r.DataWaitSeconds) && !math.IsNaN(r.StepSeconds) {
				waitSum += r.DataWaitSeconds
				stepSum += r.StepSeconds
			}
		}
		if stepSum > 0 {
			panels[3].Title.Text = fmt.Sprintf("%.2g%% of the step time waited for data", 100*waitSum/stepSum)
		}
		// A few slow steps (the first waits for the loader to start) would
		// flatten the rest against 0: the scale ends above the 99th
		// percentile, and the title names the steps off it.
		if n := len(wait); n >= 20 {
			v := make([]float64, n)
			for i := range wait {
				v[i] = wait[i].Y
			}
			slices.Sort(v)
			if top, p99 := v[n-1], v[n*99/100]; p99 > 0 && top > 5*p99 {
				panels[3].Y.Max = 1.5 * p99
				var off []string
				for _, w := range wait {
					if w.Y > panels[3].Y.Max && len(off) < 3 {
						off = append(off, fmt.Sprintf("step %d: %.3g ms", int64(w.X), w.Y))
					}
				}
				panels[3].Title.Text += "; off the scale: " + strings.Join(off, ", ")
			}
		}
		if n := len(loss); n > 0 {
			tail := loss[max(0, n-window):]
			var sum float64
			for _, v := range tail {
				sum += v.Y
			}
			panels[0].Title.Text = fmt.Sprintf("first %.4g, last %.4g (mean of the last %d steps)", loss[0].Y, sum/float64(len(tail)), len(tail))
		}
		if n := len(lr); n > 0 {
			peak := 0.0
			for _, v := range lr {
				peak = math.Max(peak, v.Y)
			}
			panels[1].Title.Text = fmt.Sprintf("peak %.3g, last %.3g", peak, lr[n-1].Y)
		}
		if n := len(ips); n > 0 {
			v := make([]float64, n)
			for i := range ips {
				v[i] = ips[i].Y
			}
			slices.Sort(v)
			panels[2].Title.Text = fmt.Sprintf("median %.4g images/s (pairs)", v[n/2])
		}
		panels[1].Y.Min = 0
		panels[3].Y.Min = 0
		panels[2].Y.Min = 0
	}
	if len(m.KNN) > 0 {
		xy := make(plotter.XYs, len(m.KNN))
		for i, k := range m.KNN {
			xy[i] = plotter.XY{X: float64(k.Step), Y: 100 * k.Top1}
		}
		p := newPanel("kNN top-1 (%)")
		l, pts, err := plotter.NewLinePoints(xy)
		if err != nil {
			return Figure{}, fmt.Errorf("plot: kNN accuracy: %w", err)
		}
		l.Color, pts.Color = knnColour, knnColour
		l.Width = vg.Points(1.5)
		pts.Shape = draw.CircleGlyph{}
		pts.Radius = vg.Points(2.5)
		p.Add(l, pts)
		last := m.KNN[len(m.KNN)-1]
		p.Title.Text = fmt.Sprintf("last: %.2f%% at step %d", 100*last.Top1, last.Step)
		panels = append(panels, p)
	}
	// One step range for every panel, so that they line up.
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, p := range panels {
		lo, hi = math.Min(lo, p.X.Min), math.Max(hi, p.X.Max)
	}
	if hi <= lo {
		hi = lo + 1
	}
	for i, p := range panels {
		p.X.Min, p.X.Max = lo, hi
		if i == len(panels)-1 {
			p.X.Label.Text = "step"
		}
	}
	const panelHeight = 1.9 * vg.Inch
	fig := Figure{Width: 8 * vg.Inch, Height: vg.Length(len(panels))*panelHeight + 0.5*vg.Inch}
	fig.Draw = func(dc draw.Canvas) {
		head := draw.Crop(dc, 0, 0, dc.Size().Y-0.5*vg.Inch, 0)
		drawTitle(head, title)
		body := draw.Crop(dc, 0, 0, 0, -0.5*vg.Inch)
		rows := make([][]*plot.Plot, len(panels))
		for i, p := range panels {
			rows[i] = []*plot.Plot{p}
		}
		tiles := draw.Tiles{Rows: len(panels), Cols: 1, PadY: vg.Points(6), PadLeft: vg.Points(6), PadRight: vg.Points(14), PadBottom: vg.Points(4)}
		for i, c := range plot.Align(rows, tiles, body) {
			panels[i].Draw(c[0])
		}
	}
	return fig, nil
}

// series is the finite values of f over the records, against their steps.
func series(rs []Record, f func(Record) float64) plotter.XYs {
	xy := make(plotter.XYs, 0, len(rs))
	for _, r := range rs {
		if v := f(r); !math.IsNaN(v) && !math.IsInf(v, 0) {
			xy = append(xy, plotter.XY{X: float64(r.Step), Y: v})
		}
	}
	return xy
}

// Sans is the typeface of every figure (gonum/plot's default is a serif).
var Sans = font.Font{Typeface: "Liberation", Variant: "Sans"}

func sans(size float64) font.Font {
	f := Sans
	f.Size = vg.Points(size)
	return f
}

// newPanel is an empty panel with readable fonts and a grid.
func newPanel(ylabel string) *plot.Plot {
	p := plot.New()
	p.Y.Label.Text = ylabel
	p.Y.Label.TextStyle.Font = sans(11)
	p.X.Label.TextStyle.Font = sans(11)
	p.X.Tick.Label.Font = sans(10)
	p.Y.Tick.Label.Font = sans(10)
	p.Title.TextStyle.Font = sans(10)
	p.Title.TextStyle.Color = color.Gray{Y: 0x55}
	p.Title.Padding = vg.Points(2)
	p.Legend.TextStyle.Font = sans(9)
	p.Legend.Top = true
	g := plotter.NewGrid()
	g.Vertical.Color = color.Gray{Y: 0xe0}
	g.Horizontal.Color = color.Gray{Y: 0xe0}
	p.Add(g)
	return p
}

// curve is a panel of xy, with its moving average over window steps when
// window > 1 (the per-step values then pale beneath it, and legend says
// which is which).
func curve(ylabel string, xy plotter.XYs, window int, legend bool) *plot.Plot {
	p := newPanel(ylabel)
	if len(xy) == 0 {
		p.Title.Text = "no values"
		return p
	}
	raw, _ := plotter.NewLine(xy)
	raw.Width = vg.Points(1)
	if window <= 1 {
		raw.Color = smoothColour
		raw.Width = vg.Points(1.5)
		p.Add(raw)
		return p
	}
	raw.Color = rawColour
	avg, _ := plotter.NewLine(movingAverage(xy, window))
	avg.Color = smoothColour
	avg.Width = vg.Points(2)
	p.Add(raw, avg)
	if legend {
		p.Legend.Add("per step", raw)
		p.Legend.Add(fmt.Sprintf("mean of %d steps", window), avg)
	}
	return p
}

// movingAverage is the centred mean of window points around each point
// (fewer at the ends).
func movingAverage(xy plotter.XYs, window int) plotter.XYs {
	out := make(plotter.XYs, len(xy))
	half := window / 2
	var sum float64
	lo, hi := 0, 0 // xy[lo:hi] is summed
	for i := range xy {
		for hi < len(xy) && hi <= i+half {
			sum += xy[hi].Y
			hi++
		}
		for lo < i-half {
			sum -= xy[lo].Y
			lo++
		}
		out[i] = plotter.XY{X: xy[i].X, Y: sum / float64(hi-lo)}
	}
	return out
}

// drawTitle writes a figure's title centred in c.
func drawTitle(c draw.Canvas, title string) {
	sty := textStyle(14, color.Black, draw.XCenter)
	sty.YAlign = draw.YCenter
	c.FillText(sty, c.Center(), title)
}

// textStyle is the default font at size points.
func textStyle(size float64, c color.Color, align text.XAlignment) text.Style {
	return text.Style{Color: c, Font: sans(size), XAlign: align, YAlign: draw.YCenter, Handler: plot.DefaultTextHandler}
}
