package augment

import (
	"math"
	"testing"
)

// pixels builds a [3, 1, n] tensor from RGB triples.
func pixels(rgb ...[3]float32) []float32 {
	n := len(rgb)
	t := make([]float32, 3*n)
	for i, p := range rgb {
		t[i], t[n+i], t[2*n+i] = p[0], p[1], p[2]
	}
	return t
}

const colorTol = 2e-6

func checkPixels(t *testing.T, got []float32, want ...[3]float32) {
	t.Helper()
	w := pixels(want...)
	for i := range w {
		if math.Abs(float64(got[i]-w[i])) > colorTol {
			n := len(want)
			t.Fatalf("pixel %d channel %d = %.7f, want %.7f (got %v, want %v)", i%n, i/n, got[i], w[i], got, w)
		}
	}
}

func TestColorOps(t *testing.T) {
	tests := []struct {
		name string
		op   func([]float32)
		in   [][3]float32
		want [][3]float32
	}{
		// adjust_brightness: x*f, clamped.
		{"brightness 1.5", func(x []float32) { Brightness(x, 1.5) },
			[][3]float32{{0.2, 0.4, 0.8}}, [][3]float32{{0.3, 0.6, 1}}},
		{"brightness 0", func(x []float32) { Brightness(x, 0) },
			[][3]float32{{0.2, 0.4, 0.8}}, [][3]float32{{0, 0, 0}}},
		// adjust_contrast: grey levels 0.299 and 0.114, mean 0.2065;
		// 0.5*x + 0.5*0.2065.
		{"contrast 0.5", func(x []float32) { Contrast(x, 0.5) },
			[][3]float32{{1, 0, 0}, {0, 0, 1}},
			[][3]float32{{0.60325, 0.10325, 0.10325}, {0.10325, 0.10325, 0.60325}}},
		// Factor 2: 2*x - 0.2065, clamped.
		{"contrast 2", func(x []float32) { Contrast(x, 2) },
			[][3]float32{{1, 0, 0}, {0, 0, 1}},
			[][3]float32{{1, 0, 0}, {0, 0, 1}}},
		{"contrast 0", func(x []float32) { Contrast(x, 0) },
			[][3]float32{{1, 0, 0}, {0, 0, 1}},
			[][3]float32{{0.2065, 0.2065, 0.2065}, {0.2065, 0.2065, 0.2065}}},
		// adjust_saturation: blend with the pixel's grey level.
		{"saturation 0", func(x []float32) { Saturation(x, 0) },
			[][3]float32{{1, 0, 0}}, [][3]float32{{0.299, 0.299, 0.299}}},
		// grey = 0.299*0.5 + 0.587*0.25 + 0.114*0.25 = 0.32475; 2x - grey.
		{"saturation 2", func(x []float32) { Saturation(x, 2) },
			[][3]float32{{0.5, 0.25, 0.25}}, [][3]float32{{0.67525, 0.17525, 0.17525}}},
		// adjust_hue: red has h=0; h=0.25 gives sector 1, f=0.5: (q, v, p).
		{"hue 0.25 on red", func(x []float32) { Hue(x, 0.25) },
			[][3]float32{{1, 0, 0}}, [][3]float32{{0.5, 1, 0}}},
		// h = -0.5 wraps to 0.5: sector 3, f=0: (p, q, v) = cyan.
		{"hue -0.5 on red", func(x []float32) { Hue(x, -0.5) },
			[][3]float32{{1, 0, 0}}, [][3]float32{{0, 1, 1}}},
		// (0.5, 0.25, 0.25): h=0, s=0.5, v=0.5; h=1/3: sector 2: (p, v, t).
		{"hue 1/3 on dull red", func(x []float32) { Hue(x, 1.0/3) },
			[][3]float32{{0.5, 0.25, 0.25}}, [][3]float32{{0.25, 0.5, 0.25}}},
		// Blue: h = (4 + gc - rc)/6 = 2/3; -0.1 gives 0.5666..: sector 3,
		// f = 0.4: (p, q, v) = (0, 1-0.4, 1).
		{"hue -0.1 on blue", func(x []float32) { Hue(x, -0.1) },
			[][3]float32{{0, 0, 1}}, [][3]float32{{0, 0.6, 1}}},
		{"hue on grey", func(x []float32) { Hue(x, 0.3) },
			[][3]float32{{0.4, 0.4, 0.4}}, [][3]float32{{0.4, 0.4, 0.4}}},
		{"grayscale", Grayscale,
			[][3]float32{{1, 0.5, 0}, {0, 0, 1}}, [][3]float32{{0.5925, 0.5925, 0.5925}, {0.114, 0.114, 0.114}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := pixels(tc.in...)
			tc.op(x)
			checkPixels(t, x, tc.want...)
		})
	}
}

func TestHueRoundTrip(t *testing.T) {
	// rgb -> hsv -> rgb with no shift returns the pixel.
	for r := float32(0); r <= 1; r += 0.125 {
		for g := float32(0); g <= 1; g += 0.125 {
			for b := float32(0); b <= 1; b += 0.125 {
				h, s, v := rgbToHSV(r, g, b)
				r2, g2, b2 := hsvToRGB(h, s, v)
				if math.Abs(float64(r2-r)) > 1e-6 || math.Abs(float64(g2-g)) > 1e-6 || math.Abs(float64(b2-b)) > 1e-6 {
					t.Fatalf("(%v, %v, %v) -> hsv (%v, %v, %v) -> (%v, %v, %v)", r, g, b, h, s, v, r2, g2, b2)
				}
			}
		}
	}
}

func TestGaussianBlur(t *testing.T) {
	// Kernel 3, sigma 1: exp(-0.5*[1, 0, 1]) normalised.
	k0 := math.Exp(-0.5) / (1 + 2*math.Exp(-0.5))
	k1 := 1 / (1 + 2*math.Exp(-0.5))
	t.Run("impulse", func(t *testing.T) {
		const w, h = 5, 5
		img := make([]float32, 3*w*h)
		for c := range 3 {
			img[c*w*h+2*w+2] = 1
		}
		GaussianBlur(img, make([]float32, len(img)), w, h, 3, 1)
		for c := range 3 {
			for y := range h {
				for x := range w {
					want := 0.0
					dx, dy := x-2, y-2
					if dx >= -1 && dx <= 1 && dy >= -1 && dy <= 1 {
						kx, ky := k1, k1
						if dx != 0 {
							kx = k0
						}
						if dy != 0 {
							ky = k0
						}
						want = kx * ky
					}
					if got := img[c*w*h+y*w+x]; math.Abs(float64(got)-want) > 1e-6 {
						t.Fatalf("channel %d (%d, %d) = %v, want %v", c, x, y, got, want)
					}
				}
			}
		}
	})
	t.Run("reflect", func(t *testing.T) {
		const w, h = 5, 4
		// Column 1 all ones: the reflected border pixel at column 0 sees it
		// twice (columns -1 -> 1 and 1).
		img := make([]float32, 3*w*h)
		for c := range 3 {
			for y := range h {
				img[c*w*h+y*w+1] = 1
			}
		}
		GaussianBlur(img, make([]float32, len(img)), w, h, 3, 1)
		want := []float64{2 * k0, k1, k0, 0, 0}
		for c := range 3 {
			for y := range h {
				for x := range w {
					if got := img[c*w*h+y*w+x]; math.Abs(float64(got)-want[x]) > 1e-6 {
						t.Fatalf("channel %d (%d, %d) = %v, want %v", c, x, y, got, want[x])
					}
				}
			}
		}
	})
}

func TestBlurKernelSize(t *testing.T) {
	tests := []struct{ side, want int }{{224, 23}, {96, 9}, {64, 7}, {32, 3}, {28, 3}, {19, 1}, {10, 1}}
	for _, tc := range tests {
		if got := BlurKernelSize(tc.side); got != tc.want {
			t.Errorf("BlurKernelSize(%d) = %d, want %d", tc.side, got, tc.want)
		}
	}
}
