package plot

import (
	"fmt"
	"image/color"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Palette is the class colours (matplotlib's tab10, then its tab20's
// lighter halves); labels beyond it repeat it.
var Palette = []color.RGBA{
	{0x1f, 0x77, 0xb4, 0xff}, {0xff, 0x7f, 0x0e, 0xff}, {0x2c, 0xa0, 0x2c, 0xff}, {0xd6, 0x27, 0x28, 0xff},
	{0x94, 0x67, 0xbd, 0xff}, {0x8c, 0x56, 0x4b, 0xff}, {0xe3, 0x77, 0xc2, 0xff}, {0x7f, 0x7f, 0x7f, 0xff},
	{0xbc, 0xbd, 0x22, 0xff}, {0x17, 0xbe, 0xcf, 0xff}, {0xae, 0xc7, 0xe8, 0xff}, {0xff, 0xbb, 0x78, 0xff},
	{0x98, 0xdf, 0x8a, 0xff}, {0xff, 0x98, 0x96, 0xff}, {0xc5, 0xb0, 0xd5, 0xff}, {0xc4, 0x9c, 0x94, 0xff},
	{0xf7, 0xb6, 0xd2, 0xff}, {0xc7, 0xc7, 0xc7, 0xff}, {0xdb, 0xdb, 0x8d, 0xff}, {0x9e, 0xda, 0xe5, 0xff},
}

func classColour(label int) color.RGBA {
	return Palette[((label%len(Palette))+len(Palette))%len(Palette)]
}

// PCA projects the n rows of feats (n x d, row-major) onto their two
// principal components, after scaling each row to unit length (the cosine
// geometry the kNN evaluation sees). It returns the 2-D points and the
// fraction of the variance each component explains.
func PCA(feats []float32, n, d int) (xy [][2]float64, explained [2]float64, err error) {
	if n < 3 || d < 2 || len(feats) != n*d {
		return nil, explained, fmt.Errorf("plot: PCA needs at least 3 features of 2 or more values, got %d values for %d x %d", len(feats), n, d)
	}
	x := mat.NewDense(n, d, nil)
	for i := range n {
		row := feats[i*d : (i+1)*d]
		var norm float64
		for _, v := range row {
			norm += float64(v) * float64(v)
		}
		norm = math.Sqrt(norm)
		if norm == 0 {
			norm = 1
		}
		for j, v := range row {
			x.Set(i, j, float64(v)/norm)
		}
	}
	for j := range d {
		col := mat.Col(nil, j, x)
		var mean float64
		for _, v := range col {
			mean += v
		}
		mean /= float64(n)
		for i := range n {
			x.Set(i, j, x.At(i, j)-mean)
		}
	}
	var cov mat.SymDense
	cov.SymOuterK(1/float64(n-1), x.T())
	var eig mat.EigenSym
	if !eig.Factorize(&cov, true) {
		return nil, explained, fmt.Errorf("plot: PCA: the eigendecomposition of the %d x %d covariance failed", d, d)
	}
	values := eig.Values(nil) // ascending
	var vecs mat.Dense
	eig.VectorsTo(&vecs)
	var total float64
	for _, v := range values {
		total += math.Max(v, 0)
	}
	if total == 0 {
		return nil, explained, fmt.Errorf("plot: PCA: all %d features are the same; the encoder maps every image to one point", n)
	}
	top := vecs.Slice(0, d, d-2, d).(*mat.Dense) // columns d-2 (2nd) and d-1 (1st)
	var proj mat.Dense
	proj.Mul(x, top)
	xy = make([][2]float64, n)
	for i := range n {
		xy[i] = [2]float64{proj.At(i, 1), proj.At(i, 0)}
	}
	return xy, [2]float64{values[d-1] / total, values[d-2] / total}, nil
}

// glyphThumb is a legend entry's coloured dot.
type glyphThumb struct{ draw.GlyphStyle }

func (g glyphThumb) Thumbnail(c *draw.Canvas) { c.DrawGlyph(g.GlyphStyle, c.Center()) }

// Embedding is the scatter figure of 2-D points coloured by label, with a
// legend of the class names (classes[label]; "class N" past their end).
// Points are drawn in a fixed shuffled order so that no class hides the
// others; at most maxPoints of them (0: all), chosen at random with a
// fixed seed.
func Embedding(xy [][2]float64, labels []int, classes []string, explained [2]float64, title string, maxPoints int) (Figure, error) {
	if len(xy) != len(labels) {
		return Figure{}, fmt.Errorf("plot: %d points and %d labels; the labels file belongs to other features", len(xy), len(labels))
	}
	order := rand.New(rand.NewPCG(1, 2)).Perm(len(xy))
	if maxPoints > 0 && len(order) > maxPoints {
		order = order[:maxPoints]
	}
	pts := make(plotter.XYs, len(order))
	for i, j := range order {
		pts[i] = plotter.XY{X: xy[j][0], Y: xy[j][1]}
	}
	radius := vg.Points(2.2)
	if len(pts) > 3000 {
		radius = vg.Points(1.6)
	}
	glyph := func(label int) draw.GlyphStyle {
		c := classColour(label) // opaque, so premultiplied or not is the same
		return draw.GlyphStyle{Color: color.NRGBA{R: c.R, G: c.G, B: c.B, A: 0xc0}, Radius: radius, Shape: draw.CircleGlyph{}}
	}
	sc, err := plotter.NewScatter(pts)
	if err != nil {
		return Figure{}, fmt.Errorf("plot: embedding: %w", err)
	}
	sc.GlyphStyleFunc = func(i int) draw.GlyphStyle { return glyph(labels[order[i]]) }
	p := newPanel(fmt.Sprintf("PC2 (%.1f%% of the variance)", 100*explained[1]))
	p.X.Label.Text = fmt.Sprintf("PC1 (%.1f%% of the variance)", 100*explained[0])
	p.Add(sc)
	p.Title.Text = fmt.Sprintf("%d of %d images, features scaled to unit length", len(pts), len(xy))

	present := map[int]int{}
	maxLabel := 0
	for _, j := range order {
		present[labels[j]]++
		maxLabel = max(maxLabel, labels[j])
	}
	legend := plot.NewLegend()
	legend.TextStyle.Font = sans(11)
	legend.Top, legend.Left = true, true
	legend.ThumbnailWidth = vg.Points(12)
	legend.Padding = vg.Points(4)
	for l := 0; l <= maxLabel; l++ {
		if present[l] == 0 {
			continue
		}
		name := fmt.Sprintf("class %d", l)
		if l < len(classes) && classes[l] != "" {
			name = classes[l]
		}
		g := glyph(l)
		g.Radius = vg.Points(4)
		g.Color = classColour(l)
		legend.Add(name, glyphThumb{g})
	}
	fig := Figure{Width: 8 * vg.Inch, Height: 6.5 * vg.Inch}
	fig.Draw = func(dc draw.Canvas) {
		drawTitle(draw.Crop(dc, 0, 0, dc.Size().Y-0.5*vg.Inch, 0), title)
		body := draw.Crop(dc, 0, 0, 0, -0.5*vg.Inch)
		p.Draw(draw.Crop(body, vg.Points(6), -1.8*vg.Inch, vg.Points(4), 0))
		legend.Draw(draw.Crop(body, body.Size().X-1.7*vg.Inch, 0, 0, -0.3*vg.Inch))
	}
	return fig, nil
}
