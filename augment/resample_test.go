package augment

import (
	"image"
	"image/color"
	"math/rand/v2"
	"testing"

	"github.com/disintegration/gift"
)

// TestResampleMatchesGift: the direct resize of opaque NRGBA crops gives
// gift's LinearResampling result within one 8-bit level, for downscales,
// upscales, mixed and odd-offset crops. Integer images resized by round
// factors land on exact half levels often (10x: up to 9% of samples), and
// float32 sums in another order break those ties either way; elsewhere the
// results are equal.
func TestResampleMatchesGift(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	src := image.NewNRGBA(image.Rect(0, 0, 500, 375))
	for y := range 375 {
		for x := range 500 {
			// Smooth gradients plus noise: both exercise the filter.
			src.SetNRGBA(x, y, color.NRGBA{uint8(x * 255 / 500), uint8(y * 255 / 375), uint8(rng.IntN(256)), 255})
		}
	}
	cases := []struct {
		name string
		crop image.Rectangle
		out  int
	}{
		{"down 10x", image.Rect(17, 9, 337, 329), 32},
		{"down odd", image.Rect(3, 5, 144, 106), 32},
		{"whole image", src.Bounds(), 224},
		{"up", image.Rect(100, 100, 120, 115), 32},
		{"mixed", image.Rect(0, 200, 300, 220), 64},
		{"one pixel", image.Rect(10, 10, 11, 11), 8},
		{"height only", image.Rect(5, 7, 37, 31), 32},
		{"width only", image.Rect(9, 3, 49, 35), 32},
	}
	var r resampler
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sub := src.SubImage(c.crop).(*image.NRGBA)
			got := image.NewNRGBA(image.Rect(0, 0, c.out, c.out))
			want := image.NewNRGBA(image.Rect(0, 0, c.out, c.out))
			if !r.resize(got, sub) {
				t.Fatal("an opaque image was reported translucent")
			}
			g := gift.New(gift.Resize(c.out, c.out, gift.LinearResampling))
			g.SetParallelization(false)
			g.Draw(want, sub)
			worst, differ := 0, 0
			for i := range got.Pix {
				d := int(got.Pix[i]) - int(want.Pix[i])
				if d != 0 {
					differ++
				}
				worst = max(worst, d, -d)
			}
			if worst > 1 || differ > len(got.Pix)/10 {
				t.Errorf("%d of %d samples differ from gift's, by up to %d levels (want at most 10%% and 1 level)", differ, len(got.Pix), worst)
			}
		})
	}
}

// TestResampleRefusesTranslucentPixels: a translucent pixel inside the
// crop sends the resize back to gift (which weights colours by alpha); one
// outside the crop does not.
func TestResampleRefusesTranslucentPixels(t *testing.T) {
	src := image.NewNRGBA(image.Rect(0, 0, 40, 40))
	for i := range src.Pix {
		src.Pix[i] = 0xff
	}
	src.Pix[src.PixOffset(30, 30)+3] = 0x80
	dst := image.NewNRGBA(image.Rect(0, 0, 8, 8))
	var r resampler
	if !r.resize(dst, src.SubImage(image.Rect(0, 0, 20, 20)).(*image.NRGBA)) {
		t.Error("crop without the translucent pixel refused")
	}
	if r.resize(dst, src.SubImage(image.Rect(10, 10, 40, 40)).(*image.NRGBA)) {
		t.Error("crop with a translucent pixel accepted")
	}
}

// BenchmarkResize32 compares the direct resize with gift's on a typical
// RandomResizedCrop of a photo-sized image to 32x32.
func BenchmarkResize32(b *testing.B) {
	src := image.NewNRGBA(image.Rect(0, 0, 500, 375))
	for i := range src.Pix {
		src.Pix[i] = uint8(i * 31)
		if i%4 == 3 {
			src.Pix[i] = 255
		}
	}
	sub := src.SubImage(image.Rect(40, 30, 340, 290)).(*image.NRGBA)
	dst := image.NewNRGBA(image.Rect(0, 0, 32, 32))
	b.Run("direct", func(b *testing.B) {
		var r resampler
		for b.Loop() {
			if !r.resize(dst, sub) {
				b.Fatal("translucent")
			}
		}
	})
	b.Run("gift", func(b *testing.B) {
		g := gift.New(gift.Resize(32, 32, gift.LinearResampling))
		g.SetParallelization(false)
		for b.Loop() {
			g.Draw(dst, sub)
		}
	})
}
