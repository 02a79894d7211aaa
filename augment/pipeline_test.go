package augment

import (
	"image"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func mustNew(t testing.TB, cfg Config) *Pipeline {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no size", Config{}, "pass a positive size"},
		{"scale above 1", Config{Size: 8, ScaleMin: 0.5, ScaleMax: 1.5}, "0 < min <= max <= 1"},
		{"scale reversed", Config{Size: 8, ScaleMin: 0.5, ScaleMax: 0.2}, "0 < min <= max <= 1"},
		{"ratio negative", Config{Size: 8, RatioMin: -1, RatioMax: 2}, "0 < min <= max"},
		{"jitter too strong", Config{Size: 8, JitterStrength: 3}, "at most 2.5"},
	}
	for _, tc := range tests {
		_, err := New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "augment: ") {
			t.Errorf("%s: New error = %v, want one containing %q", tc.name, err, tc.want)
		}
	}
	c := mustNew(t, Config{Size: 8}).Config()
	if c.ScaleMin != 0.08 || c.ScaleMax != 1 || c.RatioMin != 0.75 || c.RatioMax != 4.0/3 || c.JitterStrength != 1 || c.Blur {
		t.Errorf("defaults = %+v", c)
	}
}

func TestViewsReproducible(t *testing.T) {
	src := randomNRGBA(rand.New(rand.NewPCG(5, 5)), 50, 40)
	for _, blur := range []bool{false, true} {
		p := mustNew(t, Config{Size: 24, Blur: blur})
		make2 := func(seed uint64) (a, b []float32) {
			a, b = make([]float32, p.ViewLen()), make([]float32, p.ViewLen())
			p.Pair(a, b, src, rand.New(rand.NewPCG(seed, 99)))
			return a, b
		}
		a1, b1 := make2(1)
		a2, b2 := make2(1)
		if !slices.Equal(a1, a2) || !slices.Equal(b1, b2) {
			t.Errorf("blur %v: the same seed gave different views", blur)
		}
		a3, b3 := make2(2)
		if slices.Equal(a1, a3) || slices.Equal(b1, b3) {
			t.Errorf("blur %v: different seeds gave the same views", blur)
		}
		if slices.Equal(a1, b1) {
			t.Errorf("blur %v: the two views of a pair are equal", blur)
		}
		for _, v := range slices.Concat(a1, b1, a3, b3) {
			if !(v >= 0 && v <= 1) {
				t.Fatalf("blur %v: value %v outside [0, 1]", blur, v)
			}
		}
	}
}

func TestApplyFlipExact(t *testing.T) {
	const n = 9
	src := randomNRGBA(rand.New(rand.NewPCG(6, 6)), n, n)
	p := mustNew(t, Config{Size: n})
	plain := make([]float32, p.ViewLen())
	ToCHW(plain, src)
	got := make([]float32, p.ViewLen())
	p.Apply(got, src, Params{Crop: src.Bounds(), Flip: true})
	for c := range 3 {
		for y := range n {
			for x := range n {
				if g, w := got[c*n*n+y*n+x], plain[c*n*n+y*n+n-1-x]; g != w {
					t.Fatalf("channel %d (%d, %d) = %v, want %v", c, x, y, g, w)
				}
			}
		}
	}
	// A flip of a resized crop is the mirror of the unflipped one.
	big := randomNRGBA(rand.New(rand.NewPCG(7, 7)), 40, 30)
	crop := image.Rect(3, 2, 33, 27)
	p.Apply(plain, big, Params{Crop: crop})
	p.Apply(got, big, Params{Crop: crop, Flip: true})
	for i := range got {
		row, x := i/n, i%n
		if got[row*n+n-1-x] != plain[i] {
			t.Fatalf("resized flip: element %d = %v, want %v", row*n+n-1-x, got[row*n+n-1-x], plain[i])
		}
	}
}

func TestApplyResizeIsAntialiasedBilinear(t *testing.T) {
	// Columns 0, 70, 140, 210 shrunk to 2: PIL's antialiased bilinear
	// weights (support 2) are 3/7, 3/7, 1/7 for output 0 and 1/7, 3/7, 3/7
	// for output 1, giving 50 and 160.
	src := image.NewGray(image.Rect(0, 0, 4, 4))
	for y := range 4 {
		for x := range 4 {
			src.Pix[y*4+x] = uint8(70 * x)
		}
	}
	p := mustNew(t, Config{Size: 2})
	got := make([]float32, p.ViewLen())
	p.Apply(got, src, Params{Crop: src.Bounds()})
	want := []float32{50.0 / 255, 160.0 / 255}
	for i, v := range got {
		if v != want[i%2] {
			t.Fatalf("element %d = %v, want %v (got %v)", i, v, want[i%2], got)
		}
	}
}

func TestApplyJitterOrder(t *testing.T) {
	const n = 6
	src := randomNRGBA(rand.New(rand.NewPCG(8, 8)), n, n)
	p := mustNew(t, Config{Size: n})
	v := Params{Crop: src.Bounds(), Jitter: true, Order: [4]int{OpHue, OpContrast, OpBrightness, OpSaturation},
		Brightness: 1.3, Contrast: 0.6, Saturation: 1.7, Hue: -0.15, Gray: false}
	got := make([]float32, p.ViewLen())
	p.Apply(got, src, v)
	want := make([]float32, p.ViewLen())
	ToCHW(want, src)
	Hue(want, -0.15)
	Contrast(want, 0.6)
	Brightness(want, 1.3)
	Saturation(want, 1.7)
	if !slices.Equal(got, want) {
		t.Error("Apply did not run the colour operations in Params.Order")
	}
	v.Gray = true
	p.Apply(got, src, v)
	Grayscale(want)
	if !slices.Equal(got, want) {
		t.Error("Apply did not convert to grey after the colour jitter")
	}
}

func TestDrawDistribution(t *testing.T) {
	p := mustNew(t, Config{Size: 32, Blur: true, JitterStrength: 0.5})
	rng := rand.New(rand.NewPCG(9, 9))
	const n = 20000
	var flips, jitters, grays, blurs int
	bounds := image.Rect(10, 20, 110, 100)
	for range n {
		v := p.Draw(rng, bounds)
		if !v.Crop.In(bounds) || v.Crop.Empty() {
			t.Fatalf("crop %v outside %v", v.Crop, bounds)
		}
		if v.Flip {
			flips++
		}
		if v.Gray {
			grays++
		}
		if v.Blur {
			blurs++
			if v.Sigma < 0.1 || v.Sigma >= 2 {
				t.Fatalf("sigma %v outside [0.1, 2)", v.Sigma)
			}
		}
		if v.Jitter {
			jitters++
			order := v.Order
			slices.Sort(order[:])
			if order != [4]int{0, 1, 2, 3} {
				t.Fatalf("order %v is not a permutation", v.Order)
			}
			// s = 0.5: factors in [0.6, 1.4], hue in [-0.1, 0.1].
			for _, f := range []float64{v.Brightness, v.Contrast, v.Saturation} {
				if f < 0.6 || f >= 1.4 {
					t.Fatalf("factor %v outside [0.6, 1.4)", f)
				}
			}
			if math.Abs(v.Hue) > 0.1 {
				t.Fatalf("hue %v outside [-0.1, 0.1]", v.Hue)
			}
		}
	}
	rates := []struct {
		name  string
		count int
		p     float64
	}{{"flip", flips, FlipProb}, {"jitter", jitters, JitterProb}, {"grayscale", grays, GrayProb}, {"blur", blurs, BlurProb}}
	for _, r := range rates {
		// Five standard deviations of a binomial proportion.
		tol := 5 * math.Sqrt(r.p*(1-r.p)/n)
		if got := float64(r.count) / n; math.Abs(got-r.p) > tol {
			t.Errorf("%s rate %.4f, want %.2f within %.4f", r.name, got, r.p, tol)
		}
	}
	noJitter := mustNew(t, Config{Size: 32, JitterStrength: -1})
	for range 1000 {
		if v := noJitter.Draw(rng, bounds); v.Jitter || v.Blur {
			t.Fatal("jitter or blur drawn with both disabled")
		}
	}
}

func TestGrayInputGivesEqualChannels(t *testing.T) {
	src := image.NewGray(image.Rect(0, 0, 28, 28))
	for i := range src.Pix {
		src.Pix[i] = uint8(i * 7)
	}
	p := mustNew(t, Config{Size: 28})
	rng := rand.New(rand.NewPCG(10, 10))
	dst := make([]float32, p.ViewLen())
	for range 200 {
		p.View(dst, src, rng)
		n := 28 * 28
		for i := range n {
			if dst[i] != dst[n+i] || dst[i] != dst[2*n+i] {
				t.Fatalf("pixel %d channels %v %v %v differ", i, dst[i], dst[n+i], dst[2*n+i])
			}
		}
	}
}

func TestEval(t *testing.T) {
	t.Run("same size", func(t *testing.T) {
		src := randomNRGBA(rand.New(rand.NewPCG(1, 2)), 16, 16)
		p := mustNew(t, Config{Size: 16})
		got, want := make([]float32, p.ViewLen()), make([]float32, p.ViewLen())
		p.Eval(got, src)
		ToCHW(want, src)
		if !slices.Equal(got, want) {
			t.Error("Eval of an image of the output size changed it")
		}
	})
	t.Run("centre crop", func(t *testing.T) {
		// 25x10 at size 10: Resize keeps 25x10; the crop starts at
		// round(7.5) = 8 (half to even, as Python's round).
		src := image.NewGray(image.Rect(0, 0, 25, 10))
		for y := range 10 {
			for x := range 25 {
				src.Pix[y*25+x] = uint8(x * 10)
			}
		}
		p := mustNew(t, Config{Size: 10})
		got := make([]float32, p.ViewLen())
		p.Eval(got, src)
		for x := range 10 {
			if want := float32((x+8)*10) / 255; got[x] != want {
				t.Fatalf("column %d = %v, want %v", x, got[x], want)
			}
		}
	})
	t.Run("downscale", func(t *testing.T) {
		// 8x4 of constant colour shrinks to 4x2 then crops the middle 2x2:
		// still constant.
		src := image.NewNRGBA(image.Rect(0, 0, 8, 4))
		for i := 0; i < len(src.Pix); i += 4 {
			copy(src.Pix[i:], []uint8{200, 100, 50, 255})
		}
		p := mustNew(t, Config{Size: 2})
		got := make([]float32, p.ViewLen())
		p.Eval(got, src)
		want := []float32{200.0 / 255, 100.0 / 255, 50.0 / 255}
		for i, v := range got {
			if v != want[i/4] {
				t.Fatalf("element %d = %v, want %v", i, v, want[i/4])
			}
		}
	})
}

func TestResizeShorter(t *testing.T) {
	tests := []struct{ w, h, size, nw, nh int }{
		{500, 375, 224, 298, 224},
		{375, 500, 224, 224, 298},
		{32, 32, 28, 28, 28},
		{10, 30, 7, 7, 21},
	}
	for _, tc := range tests {
		if nw, nh := ResizeShorter(tc.w, tc.h, tc.size); nw != tc.nw || nh != tc.nh {
			t.Errorf("ResizeShorter(%d, %d, %d) = %d, %d; want %d, %d", tc.w, tc.h, tc.size, nw, nh, tc.nw, tc.nh)
		}
	}
}

// BenchmarkView reports one view per operation: ns/op is the time per view
// on one core.
func BenchmarkView(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	gray := image.NewGray(image.Rect(0, 0, 28, 28))
	for i := range gray.Pix {
		gray.Pix[i] = uint8(i)
	}
	tests := []struct {
		name string
		src  image.Image
		cfg  Config
	}{
		{"fmnist-gray28-to28", gray, Config{Size: 28}},
		{"cifar-nrgba32-to32", randomNRGBA(rng, 32, 32), Config{Size: 32}},
		{"jpeg-ycbcr500x375-to224", photoYCbCr(b, 500, 375), Config{Size: 224}},
		{"jpeg-ycbcr500x375-to224-blur", photoYCbCr(b, 500, 375), Config{Size: 224, Blur: true}},
		{"jpeg-ycbcr500x375-to64", photoYCbCr(b, 500, 375), Config{Size: 64}},
		{"jpeg-ycbcr32x32-to32", photoYCbCr(b, 32, 32), Config{Size: 32}},
	}
	for _, tc := range tests {
		b.Run(tc.name, func(b *testing.B) {
			p := mustNew(b, tc.cfg)
			dst := make([]float32, p.ViewLen())
			r := rand.New(rand.NewPCG(2, 2))
			b.ReportAllocs()
			for b.Loop() {
				p.View(dst, tc.src, r)
			}
		})
	}
}

func BenchmarkEval224(b *testing.B) {
	src := photoYCbCr(b, 500, 375)
	p := mustNew(b, Config{Size: 224})
	dst := make([]float32, p.ViewLen())
	b.ReportAllocs()
	for b.Loop() {
		p.Eval(dst, src)
	}
}

// plainImage hides the SubImage method of the image it wraps.
type plainImage struct{ image.Image }

func TestViewOfImageWithoutSubImage(t *testing.T) {
	src := randomNRGBA(rand.New(rand.NewPCG(12, 12)), 40, 30)
	p := mustNew(t, Config{Size: 16, JitterStrength: -1})
	want, got := make([]float32, p.ViewLen()), make([]float32, p.ViewLen())
	for seed := range uint64(20) {
		p.View(want, src, rand.New(rand.NewPCG(seed, 0)))
		p.View(got, plainImage{src}, rand.New(rand.NewPCG(seed, 0)))
		for i := range want {
			if math.Abs(float64(got[i]-want[i])) > 1.0/255+1e-6 {
				t.Fatalf("seed %d element %d = %v, want %v", seed, i, got[i], want[i])
			}
		}
	}
}
