package augment

import (
	"image"
	"math"
	"math/rand/v2"
	"testing"
)

func TestCropParamsBounds(t *testing.T) {
	tests := []struct {
		name         string
		w, h         int
		scale, ratio [2]float64
		allFit       bool    // every draw fits, so none is rejected
		maxScale     float64 // the largest scale a crop within the ratio range can have
	}{
		{"default square", 500, 500, [2]float64{0.08, 1}, [2]float64{3.0 / 4, 4.0 / 3}, false, 1},
		// At most 480x360 (ratio 4/3) of 640x360.
		{"default landscape", 640, 360, [2]float64{0.08, 1}, [2]float64{3.0 / 4, 4.0 / 3}, false, 0.75},
		{"narrow scale", 800, 600, [2]float64{0.5, 0.6}, [2]float64{3.0 / 4, 4.0 / 3}, true, 0.6},
		{"wide ratio", 800, 800, [2]float64{0.2, 0.3}, [2]float64{0.5, 2}, true, 0.3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(11, 12))
			const n = 20000
			area := float64(tc.w * tc.h)
			var sumLogRatio, sumScale float64
			minScale, maxScale := math.Inf(1), 0.0
			for range n {
				r := CropParams(rng, tc.w, tc.h, tc.scale, tc.ratio)
				if r.Empty() || !r.In(image.Rect(0, 0, tc.w, tc.h)) {
					t.Fatalf("crop %v outside %dx%d", r, tc.w, tc.h)
				}
				// Rounding each side to an integer moves the area and ratio by
				// at most about one pixel per side.
				dw, dh := float64(r.Dx()), float64(r.Dy())
				ratio := dw / dh
				lo := tc.ratio[0] * (dw - 0.5) / dw * dh / (dh + 0.5)
				hi := tc.ratio[1] * (dw + 0.5) / dw * dh / (dh - 0.5)
				if ratio < lo || ratio > hi {
					t.Fatalf("crop %v has ratio %.4f outside [%.4f, %.4f]", r, ratio, lo, hi)
				}
				s := dw * dh / area
				slo := tc.scale[0] * (dw - 0.5) * (dh - 0.5) / (dw * dh)
				shi := tc.scale[1] * (dw + 0.5) * (dh + 0.5) / (dw * dh)
				if s < slo || s > shi {
					t.Fatalf("crop %v has scale %.4f outside [%.4f, %.4f]", r, s, slo, shi)
				}
				sumLogRatio += math.Log(ratio)
				sumScale += s
				minScale, maxScale = min(minScale, s), max(maxScale, s)
			}
			// The whole scale range is reached.
			if minScale > tc.scale[0]+0.01 || maxScale < tc.maxScale-0.01 || maxScale > tc.maxScale+0.01 {
				t.Errorf("scales drawn span [%.4f, %.4f], want about [%g, %g]", minScale, maxScale, tc.scale[0], tc.maxScale)
			}
			// Draws are uniform in scale and log-uniform in ratio; where
			// none is rejected the means lie at the middle of the ranges.
			if !tc.allFit {
				return
			}
			meanLog := sumLogRatio / n
			midLog := (math.Log(tc.ratio[0]) + math.Log(tc.ratio[1])) / 2
			if math.Abs(meanLog-midLog) > 0.05 {
				t.Errorf("mean log ratio %.4f, want about %.4f", meanLog, midLog)
			}
			meanScale := sumScale / n
			if math.Abs(meanScale-(tc.scale[0]+tc.scale[1])/2) > 0.02 {
				t.Errorf("mean scale %.4f, want about %.4f", meanScale, (tc.scale[0]+tc.scale[1])/2)
			}
		})
	}
}

func TestCropParamsFallback(t *testing.T) {
	// No attempt fits: 0.9 of the area at a ratio of at most 4/3 is taller
	// than the image (or wider), so torchvision's centre-crop fallback is
	// taken: the whole image clamped to the ratio range.
	tests := []struct {
		name string
		w, h int
		want image.Rectangle
	}{
		// in_ratio 10 > 4/3: h = 10, w = round(10*4/3) = 13, j = (100-13)//2.
		{"wide", 100, 10, image.Rect(43, 0, 56, 10)},
		// in_ratio 0.1 < 3/4: w = 10, h = round(10/(3/4)) = 13.
		{"tall", 10, 100, image.Rect(0, 43, 10, 56)},
	}
	for _, tc := range tests {
		rng := rand.New(rand.NewPCG(1, 1))
		got := CropParams(rng, tc.w, tc.h, [2]float64{0.9, 1}, [2]float64{3.0 / 4, 4.0 / 3})
		if got != tc.want {
			t.Errorf("%s: CropParams(%dx%d) = %v, want %v", tc.name, tc.w, tc.h, got, tc.want)
		}
	}
	// A ratio range containing the image's ratio falls back to the whole
	// image; a 1x1 image always gives the whole image.
	rng := rand.New(rand.NewPCG(1, 1))
	if got := CropParams(rng, 1, 1, [2]float64{0.08, 0.09}, [2]float64{3.0 / 4, 4.0 / 3}); got != image.Rect(0, 0, 1, 1) {
		t.Errorf("1x1 image: crop %v, want the whole image", got)
	}
}
