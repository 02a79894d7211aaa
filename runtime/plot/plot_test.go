package plot

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestParseMetrics(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		steps    []int64
		losses   []float64
		knn      []KNN
		errorHas string
	}{
		{name: "empty", in: ""},
		{
			name: "resumed run repeats steps: the last record wins",
			in: `{"step":0,"epoch":0,"loss":5,"lr":0.3,"step_seconds":1,"data_wait_seconds":0,"images_per_second":64}
{"step":1,"epoch":0,"loss":4.9,"lr":0.3,"step_seconds":1,"data_wait_seconds":0,"images_per_second":64}
{"step":2,"epoch":0,"loss":4.8,"lr":0.3,"step_seconds":1,"data_wait_seconds":0,"images_per_second":64}
{"step":1,"epoch":0,"loss":4.7,"lr":0.3,"step_seconds":1,"data_wait_seconds":0,"images_per_second":64}
{"step":2,"epoch":0,"loss":4.6,"lr":0.3,"step_seconds":1,"data_wait_seconds":0,"images_per_second":64}
`,
			steps: []int64{0, 1, 2}, losses: []float64{5, 4.7, 4.6},
		},
		{
			name: "kNN on records of their own and on step records",
			in: `{"step":0,"loss":5,"lr":0.3,"step_seconds":1}
{"step":0,"knn_top1":0.5}
{"step":1,"loss":4,"lr":0.3,"step_seconds":1,"knn_top1":0.6}
{"step":0,"knn_top1":0.55}
`,
			steps: []int64{0, 1}, losses: []float64{5, 4},
			knn: []KNN{{0, 0.55}, {1, 0.6}},
		},
		{
			name:  "a non-finite loss is null: NaN",
			in:    `{"step":3,"loss":null,"lr":0.1,"step_seconds":1}` + "\n",
			steps: []int64{3}, losses: []float64{math.NaN()},
		},
		{
			name:  "a last line cut short is ignored",
			in:    `{"step":0,"loss":5,"lr":0.3}` + "\n" + `{"step":1,"lo`,
			steps: []int64{0}, losses: []float64{5},
		},
		{
			name:     "a bad line before the last is an error",
			in:       `{"step":0,"loss":5}` + "\nnot json\n" + `{"step":1,"loss":4}` + "\n",
			errorHas: "line 2",
		},
		{
			name:     "a line without a step is an error",
			in:       `{"loss":5}` + "\n" + `{"step":1,"loss":4}` + "\n",
			errorHas: "line 1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseMetrics(strings.NewReader(tt.in))
			if tt.errorHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errorHas) {
					t.Fatalf("error %v, want one naming %q", err, tt.errorHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Steps) != len(tt.steps) {
				t.Fatalf("%d steps, want %d: %+v", len(m.Steps), len(tt.steps), m.Steps)
			}
			for i, r := range m.Steps {
				if r.Step != tt.steps[i] || !(r.Loss == tt.losses[i] || math.IsNaN(r.Loss) && math.IsNaN(tt.losses[i])) {
					t.Errorf("record %d: step %d loss %v, want step %d loss %v", i, r.Step, r.Loss, tt.steps[i], tt.losses[i])
				}
			}
			if len(m.KNN) != len(tt.knn) {
				t.Fatalf("kNN %+v, want %+v", m.KNN, tt.knn)
			}
			for i := range m.KNN {
				if m.KNN[i] != tt.knn[i] {
					t.Errorf("kNN %d: %+v, want %+v", i, m.KNN[i], tt.knn[i])
				}
			}
		})
	}
}

// decodePNG reads a written PNG and checks its size in pixels.
func decodePNG(t *testing.T, path string, inchesW, inchesH float64) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	w, h := int(math.Round(inchesW*DPI)), int(math.Round(inchesH*DPI))
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Errorf("%s is %dx%d pixels, want %dx%d", path, b.Dx(), b.Dy(), w, h)
	}
	return img
}

func TestTrainingFigure(t *testing.T) {
	var b strings.Builder
	for s := range 300 {
		loss := 4.9 - 1.5*float64(s)/300 + 0.1*math.Sin(float64(s))
		b.WriteString(`{"step":` + itoa(s) + `,"epoch":0,"loss":` + ftoa(loss) + `,"lr":` + ftoa(0.3*math.Cos(float64(s)/300*math.Pi/2)) +
			`,"step_seconds":0.5,"data_wait_seconds":` + ftoa(0.001+0.5*float64(max(0, 1-s))) + `,"images_per_second":128}` + "\n")
		if s%100 == 99 {
			b.WriteString(`{"step":` + itoa(s) + `,"knn_top1":` + ftoa(0.7+float64(s)/10000) + "}\n")
		}
	}
	for _, tt := range []struct {
		name, in string
		panels   int
		has      string
	}{
		{"with kNN", b.String(), 5, "kNN top-1"},
		{"without kNN", strings.ReplaceAll(b.String(), "knn_top1", "other"), 4, "off the scale: step 0: 501 ms"},
		{"one step", `{"step":0,"loss":5,"lr":0.3,"step_seconds":1,"data_wait_seconds":0,"images_per_second":64}`, 4, "loss"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseMetrics(strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			fig, err := Training(m, "test run")
			if err != nil {
				t.Fatal(err)
			}
			files, err := Save(fig, filepath.Join(t.TempDir(), "training.png"), 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(files) != 2 || !strings.HasSuffix(files[0], "training.png") || !strings.HasSuffix(files[1], "training.svg") {
				t.Fatalf("wrote %v", files)
			}
			decodePNG(t, files[0], 8, 1.9*float64(tt.panels)+0.5)
			svg, err := os.ReadFile(files[1])
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(svg, []byte("<svg")) || !bytes.Contains(svg, []byte(tt.has)) {
				t.Errorf("the SVG has no %q", tt.has)
			}
		})
	}
	if _, err := Training(&Metrics{}, "empty"); err == nil {
		t.Error("a run without records drew a figure")
	}
}

func itoa(i int) string     { return strconv.Itoa(i) }
func ftoa(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func TestPCA(t *testing.T) {
	// Three clusters around orthogonal directions of 6-D space: the map
	// must keep them apart, and the variances must add up.
	const perCluster, d = 200, 6
	r := rand.New(rand.NewPCG(1, 1))
	var feats []float32
	var labels []int
	for c := range 3 {
		for range perCluster {
			for j := range d {
				v := 0.05 * r.NormFloat64()
				if j == c {
					v += 1
				}
				feats = append(feats, float32(v))
			}
			labels = append(labels, c)
		}
	}
	n := len(labels)
	xy, explained, err := PCA(feats, n, d)
	if err != nil {
		t.Fatal(err)
	}
	if explained[0] < explained[1] || explained[0]+explained[1] > 1+1e-9 || explained[0]+explained[1] < 0.9 {
		t.Errorf("explained %v: want PC1 >= PC2 and together over 90%% of the variance of three clusters", explained)
	}
	var centre [3][2]float64
	var spread float64
	for i, p := range xy {
		centre[labels[i]][0] += p[0] / perCluster
		centre[labels[i]][1] += p[1] / perCluster
	}
	for i, p := range xy {
		c := centre[labels[i]]
		spread = math.Max(spread, math.Hypot(p[0]-c[0], p[1]-c[1]))
	}
	for a := range 3 {
		for b := a + 1; b < 3; b++ {
			if dist := math.Hypot(centre[a][0]-centre[b][0], centre[a][1]-centre[b][1]); dist < 2*spread {
				t.Errorf("clusters %d and %d are %.3g apart, within twice a cluster's spread %.3g", a, b, dist, spread)
			}
		}
	}
	if _, _, err := PCA(make([]float32, 30), 10, 3); err == nil || !strings.Contains(err.Error(), "the same") {
		t.Errorf("identical features: %v, want an error saying so", err)
	}
	if _, _, err := PCA(feats[:10], 3, d); err == nil {
		t.Error("a short feature slice was accepted")
	}

	fig, err := Embedding(xy, labels, []string{"first", "second"}, explained, "clusters", 0)
	if err != nil {
		t.Fatal(err)
	}
	files, err := Save(fig, filepath.Join(t.TempDir(), "map"), 0)
	if err != nil {
		t.Fatal(err)
	}
	decodePNG(t, files[0], 8, 6.5)
	small, err := Save(fig, filepath.Join(t.TempDir(), "small"), 72)
	if err != nil {
		t.Fatal(err)
	}
	if img := decodePNG(t, small[0], 8*72/DPI, 6.5*72/DPI); img.Bounds().Dx() != 576 {
		t.Errorf("at 72 dpi an 8-inch figure is %d pixels wide, want 576", img.Bounds().Dx())
	}
	svg, _ := os.ReadFile(files[1])
	for _, want := range []string{"first", "second", "class 2", "PC1 ("} {
		if !bytes.Contains(svg, []byte(want)) {
			t.Errorf("the map's SVG lacks %q", want)
		}
	}
	if _, err := Embedding(xy, labels[1:], nil, explained, "", 0); err == nil {
		t.Error("labels of other features were accepted")
	}
}

func TestNearest(t *testing.T) {
	train := []float32{
		1, 0, // 0
		0, 1, // 1
		1, 1, // 2
		-1, 0, // 3
		2, 0.1, // 4
	}
	queries := []float32{1, 0, -1, -0.2}
	tests := []struct {
		k    int
		want [][]int
	}{
		{1, [][]int{{0}, {3}}},
		{3, [][]int{{0, 4, 2}, {3, 1, 2}}},
		{9, [][]int{{0, 4, 2, 1, 3}, {3, 1, 2, 0, 4}}}, // k clamped to the 5 training rows
	}
	for _, tt := range tests {
		idx, sims := Nearest(train, queries, 2, tt.k)
		for q := range tt.want {
			if len(idx[q]) != len(tt.want[q]) {
				t.Fatalf("k=%d query %d: %v, want %v", tt.k, q, idx[q], tt.want[q])
			}
			for i := range tt.want[q] {
				if idx[q][i] != tt.want[q][i] {
					t.Errorf("k=%d query %d: %v, want %v", tt.k, q, idx[q], tt.want[q])
					break
				}
				if i > 0 && sims[q][i] > sims[q][i-1] {
					t.Errorf("k=%d query %d: similarities %v not in decreasing order", tt.k, q, sims[q])
				}
			}
		}
		if math.Abs(sims[0][0]-1) > 1e-12 {
			t.Errorf("cosine of a vector with itself %v, want 1", sims[0][0])
		}
	}
}

func TestNeighbourGrid(t *testing.T) {
	img := func(v uint8) image.Image {
		g := image.NewGray(image.Rect(0, 0, 28, 28))
		for i := range g.Pix {
			g.Pix[i] = v + uint8(i%7)
		}
		return g
	}
	rows := []NeighbourRow{
		{Query: img(10), QueryLabel: 0, Images: []image.Image{img(20), img(30), img(40)}, Labels: []int{0, 1, 0}, Similarity: []float64{0.9, 0.8, 0.7}},
		{Query: img(50), QueryLabel: 1, Images: []image.Image{img(60), img(70), img(80)}, Labels: []int{1, 1, 5}, Similarity: []float64{0.95, 0.5, 0.1}},
	}
	fig, err := NeighbourGrid(rows, []string{"zero", "one"}, "grid")
	if err != nil {
		t.Fatal(err)
	}
	files, err := Save(fig, filepath.Join(t.TempDir(), "grid.svg"), 0)
	if err != nil {
		t.Fatal(err)
	}
	png := decodePNG(t, files[0], float64(fig.Width/72), float64(fig.Height/72))
	// The first neighbour's frame is green (same class), the second's red.
	var green, red int
	b := png.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := color.RGBAModel.Convert(png.At(x, y)).(color.RGBA)
			if c == sameColour {
				green++
			}
			if c == otherColour {
				red++
			}
		}
	}
	if green == 0 || red == 0 {
		t.Errorf("%d green and %d red pixels: the frames do not tell same-class neighbours from others", green, red)
	}
	svg, _ := os.ReadFile(files[1])
	for _, want := range []string{"4 of 6 nearest training images (67%)", "class 5", "0.950", "query (test)", "3rd"} {
		if !bytes.Contains(svg, []byte(want)) {
			t.Errorf("the grid's SVG lacks %q", want)
		}
	}
	if _, err := NeighbourGrid(nil, nil, ""); err == nil {
		t.Error("an empty grid was drawn")
	}
	rows[0].Labels = rows[0].Labels[:1]
	if _, err := NeighbourGrid(rows, nil, ""); err == nil {
		t.Error("a row with fewer labels than images was accepted")
	}
}
