package plot

import (
	"container/heap"
	"fmt"
	"image"
	"image/color"
	"math"

	xdraw "golang.org/x/image/draw"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Nearest returns, for each query row of queries (m x d), the indices of
// the k rows of train (n x d) with the highest cosine similarity, most
// similar first, and those similarities.
func Nearest(train, queries []float32, d, k int) ([][]int, [][]float64) {
	n, m := len(train)/d, len(queries)/d
	k = min(k, n)
	norms := func(x []float32, rows int) []float64 {
		out := make([]float64, rows)
		for i := range rows {
			var s float64
			for _, v := range x[i*d : (i+1)*d] {
				s += float64(v) * float64(v)
			}
			out[i] = math.Sqrt(s)
			if out[i] == 0 {
				out[i] = 1
			}
		}
		return out
	}
	tn, qn := norms(train, n), norms(queries, m)
	idx, sims := make([][]int, m), make([][]float64, m)
	for q := range m {
		qv := queries[q*d : (q+1)*d]
		h := make(minHeap, 0, k+1)
		for i := range n {
			var dot float64
			for j, v := range train[i*d : (i+1)*d] {
				dot += float64(v) * float64(qv[j])
			}
			s := dot / (tn[i] * qn[q])
			if len(h) < k {
				heap.Push(&h, scored{i, s})
			} else if s > h[0].sim {
				h[0] = scored{i, s}
				heap.Fix(&h, 0)
			}
		}
		idx[q], sims[q] = make([]int, len(h)), make([]float64, len(h))
		for r := len(h) - 1; r >= 0; r-- {
			e := heap.Pop(&h).(scored)
			idx[q][r], sims[q][r] = e.i, e.sim
		}
	}
	return idx, sims
}

type scored struct {
	i   int
	sim float64
}

type minHeap []scored

func (h minHeap) Len() int           { return len(h) }
func (h minHeap) Less(i, j int) bool { return h[i].sim < h[j].sim }
func (h minHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *minHeap) Push(x any)        { *h = append(*h, x.(scored)) }
func (h *minHeap) Pop() any          { old := *h; x := old[len(old)-1]; *h = old[:len(old)-1]; return x }

// NeighbourRow is one row of a neighbour grid: a query image and its
// nearest training images, with their labels and cosine similarities.
type NeighbourRow struct {
	Query      image.Image
	QueryLabel int
	Images     []image.Image
	Labels     []int
	Similarity []float64
}

// Colours of the neighbour grid's frames and captions.
var (
	queryColour = color.RGBA{R: 0x1f, G: 0x4e, B: 0x96, A: 0xff}
	sameColour  = color.RGBA{R: 0x1a, G: 0x9a, B: 0x3a, A: 0xff}
	otherColour = color.RGBA{R: 0xd0, G: 0x20, B: 0x20, A: 0xff}
)

// NeighbourGrid is the figure of rows: each query image, then its
// neighbours left to right, most similar first, each captioned with its
// class (classes[label]) and cosine similarity, framed green when its
// class is the query's and red when not. The subtitle says how many
// neighbours share their query's class.
func NeighbourGrid(rows []NeighbourRow, classes []string, title string) (Figure, error) {
	if len(rows) == 0 {
		return Figure{}, fmt.Errorf("plot: no query images for the neighbour grid")
	}
	k := 0
	same, total := 0, 0
	for _, r := range rows {
		if len(r.Images) != len(r.Labels) || len(r.Images) != len(r.Similarity) {
			return Figure{}, fmt.Errorf("plot: a neighbour row has %d images, %d labels and %d similarities", len(r.Images), len(r.Labels), len(r.Similarity))
		}
		k = max(k, len(r.Images))
		for _, l := range r.Labels {
			total++
			if l == r.QueryLabel {
				same++
			}
		}
	}
	const (
		cell    = 0.72 * vg.Inch // image side
		gap     = 0.1 * vg.Inch  // between columns
		caption = 0.3 * vg.Inch  // two caption lines under each image
		rowGap  = 0.08 * vg.Inch
		gutter  = 0.25 * vg.Inch // between the query and its neighbours
		margin  = 0.3 * vg.Inch
		head    = 0.95 * vg.Inch // title, subtitle and column headings
	)
	name := func(l int) string {
		if l >= 0 && l < len(classes) && classes[l] != "" {
			return classes[l]
		}
		return fmt.Sprintf("class %d", l)
	}
	width := 2*margin + vg.Length(k+1)*(cell+gap) + gutter
	height := head + vg.Length(len(rows))*(cell+caption+rowGap) + margin/2
	fig := Figure{Width: width, Height: height}
	fig.Draw = func(dc draw.Canvas) {
		top := dc.Max.Y
		drawTitle(draw.Crop(dc, 0, 0, dc.Size().Y-0.45*vg.Inch, 0), title)
		sub := textStyle(10, color.Gray{Y: 0x44}, draw.XCenter)
		dc.FillText(sub, vg.Point{X: dc.Center().X, Y: top - 0.5*vg.Inch},
			fmt.Sprintf("%d of %d nearest training images (%.0f%%) share the query's class; cosine similarity of the features", same, total, 100*float64(same)/float64(max(total, 1))))
		colHead := textStyle(9, color.Gray{Y: 0x44}, draw.XCenter)
		x0 := dc.Min.X + margin
		colX := func(c int) vg.Length {
			x := x0 + vg.Length(c)*(cell+gap)
			if c > 0 {
				x += gutter
			}
			return x
		}
		headY := top - head + 0.12*vg.Inch
		dc.FillText(colHead, vg.Point{X: colX(0) + cell/2, Y: headY}, "query (test)")
		for c := 1; c <= k; c++ {
			dc.FillText(colHead, vg.Point{X: colX(c) + cell/2, Y: headY}, ordinal(c))
		}
		capName := textStyle(7.5, color.Black, draw.XCenter)
		capSim := textStyle(7, color.Gray{Y: 0x66}, draw.XCenter)
		for r, row := range rows {
			y := top - head - vg.Length(r)*(cell+caption+rowGap) - cell // image bottom
			drawCell(dc, row.Query, colX(0), y, cell, queryColour, 2)
			capName.Color = queryColour
			dc.FillText(capName, vg.Point{X: colX(0) + cell/2, Y: y - 0.11*vg.Inch}, name(row.QueryLabel))
			for c, img := range row.Images {
				frame := otherColour
				if row.Labels[c] == row.QueryLabel {
					frame = sameColour
				}
				x := colX(c + 1)
				drawCell(dc, img, x, y, cell, frame, 1.5)
				capName.Color = frame
				dc.FillText(capName, vg.Point{X: x + cell/2, Y: y - 0.11*vg.Inch}, name(row.Labels[c]))
				dc.FillText(capSim, vg.Point{X: x + cell/2, Y: y - 0.23*vg.Inch}, fmt.Sprintf("%.3f", row.Similarity[c]))
			}
		}
	}
	return fig, nil
}

// drawCell draws img in the square of side size at (x, y), scaled by
// nearest neighbour (small images stay sharp) to the square's pixels on a
// raster canvas, or at least svgPixels on a vector one, with a frame of the
// given colour and width in points.
func drawCell(dc draw.Canvas, img image.Image, x, y, size vg.Length, frame color.Color, lineWidth float64) {
	b := img.Bounds()
	side := max(b.Dx(), b.Dy())
	target := side * max(1, (svgPixels+side-1)/side)
	if r, ok := dc.Canvas.(interface{ DPI() float64 }); ok {
		target = int(math.Round(size.Dots(r.DPI())))
	}
	if target > side {
		big := image.NewRGBA(image.Rect(0, 0, b.Dx()*target/side, b.Dy()*target/side))
		xdraw.NearestNeighbor.Scale(big, big.Bounds(), img, b, xdraw.Src, nil)
		img = big
	}
	rect := vg.Rectangle{Min: vg.Point{X: x, Y: y}, Max: vg.Point{X: x + size, Y: y + size}}
	dc.DrawImage(rect, img)
	sty := draw.LineStyle{Color: frame, Width: vg.Points(lineWidth)}
	dc.StrokeLines(sty, []vg.Point{rect.Min, {X: rect.Max.X, Y: rect.Min.Y}, rect.Max, {X: rect.Min.X, Y: rect.Max.Y}, rect.Min})
}

// svgPixels is the least side in pixels of an image embedded in an SVG
// file (the viewer scales it, smoothly: small images are enlarged first).
const svgPixels = 112

func ordinal(n int) string {
	suffix := "th"
	switch {
	case n%100 >= 11 && n%100 <= 13:
	case n%10 == 1:
		suffix = "st"
	case n%10 == 2:
		suffix = "nd"
	case n%10 == 3:
		suffix = "rd"
	}
	return fmt.Sprintf("%d%s", n, suffix)
}
