package augment

import (
	"bytes"
	"image"
	"image/color"
	"image/color/palette"
	"image/jpeg"
	"math/rand/v2"
	"testing"
)

// randomNRGBA returns an opaque w x h image with random colours.
func randomNRGBA(rng *rand.Rand, w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(rng.IntN(256))
		if i%4 == 3 {
			img.Pix[i] = 0xff
		}
	}
	return img
}

// randomYCbCr returns a w x h YCbCr image with random samples.
func randomYCbCr(rng *rand.Rand, r image.Rectangle, ratio image.YCbCrSubsampleRatio) *image.YCbCr {
	img := image.NewYCbCr(r, ratio)
	for _, p := range [][]uint8{img.Y, img.Cb, img.Cr} {
		for i := range p {
			p[i] = uint8(rng.IntN(256))
		}
	}
	return img
}

// photoYCbCr returns a w x h 4:2:0 image decoded from a JPEG of smooth
// gradients with mild noise, closer to a photograph than random samples
// (whose colours mostly fall outside the RGB cube and clip).
func photoYCbCr(tb testing.TB, w, h int) *image.YCbCr {
	rng := rand.New(rand.NewPCG(uint64(w), uint64(h)))
	src := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			i := src.PixOffset(x, y)
			n := uint8(rng.IntN(16))
			src.Pix[i] = uint8(255*x/w)/2 + n
			src.Pix[i+1] = uint8(255*y/h)/2 + 40 + n
			src.Pix[i+2] = uint8(255*(x+y)/(w+h))/2 + 20 + n
			src.Pix[i+3] = 0xff
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, src, &jpeg.Options{Quality: 90}); err != nil {
		tb.Fatal(err)
	}
	img, err := jpeg.Decode(&buf)
	if err != nil {
		tb.Fatal(err)
	}
	return img.(*image.YCbCr)
}

// wantCHW converts img pixel by pixel from 8-bit straight RGB values given
// by rgb.
func wantCHW(b image.Rectangle, rgb func(x, y int) (r, g, bl uint8)) []float32 {
	w, h := b.Dx(), b.Dy()
	out := make([]float32, 3*w*h)
	for y := range h {
		for x := range w {
			r, g, bl := rgb(b.Min.X+x, b.Min.Y+y)
			i := y*w + x
			out[i], out[w*h+i], out[2*w*h+i] = float32(r)/255, float32(g)/255, float32(bl)/255
		}
	}
	return out
}

func TestToCHW(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	nrgba := randomNRGBA(rng, 7, 5)
	rgba := image.NewRGBA(image.Rect(0, 0, 7, 5))
	for i := range rgba.Pix {
		rgba.Pix[i] = uint8(rng.IntN(256))
	}
	// Some translucent and transparent pixels: premultiplied colour <= alpha.
	for i := 0; i < len(rgba.Pix); i += 4 {
		a := []uint8{0xff, 0x80, 0, 0xff}[i/4%4]
		rgba.Pix[i+3] = a
		for c := range 3 {
			rgba.Pix[i+c] = uint8(int(rgba.Pix[i+c]) * int(a) / 255)
		}
	}
	gray := image.NewGray(image.Rect(2, 3, 9, 8))
	for i := range gray.Pix {
		gray.Pix[i] = uint8(rng.IntN(256))
	}
	paletted := image.NewPaletted(image.Rect(0, 0, 6, 4), palette.Plan9)
	for i := range paletted.Pix {
		paletted.Pix[i] = uint8(rng.IntN(256))
	}
	nrgbaRGB := func(img image.Image) func(x, y int) (uint8, uint8, uint8) {
		return func(x, y int) (uint8, uint8, uint8) {
			c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
			return c.R, c.G, c.B
		}
	}
	ycbcrRGB := func(img *image.YCbCr) func(x, y int) (uint8, uint8, uint8) {
		return func(x, y int) (uint8, uint8, uint8) {
			c := img.YCbCrAt(x, y)
			return color.YCbCrToRGB(c.Y, c.Cb, c.Cr)
		}
	}
	tests := []struct {
		name string
		img  image.Image
		rgb  func(x, y int) (uint8, uint8, uint8)
	}{
		{"NRGBA", nrgba, nrgbaRGB(nrgba)},
		{"NRGBA sub-image", nrgba.SubImage(image.Rect(1, 1, 6, 4)), nrgbaRGB(nrgba)},
		{"RGBA translucent", rgba, nrgbaRGB(rgba)},
		{"Gray", gray, nrgbaRGB(gray)},
		{"Gray sub-image", gray.SubImage(image.Rect(3, 4, 8, 7)), nrgbaRGB(gray)},
		{"Paletted (generic)", paletted, nrgbaRGB(paletted)},
	}
	ratios := []image.YCbCrSubsampleRatio{
		image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio420,
		image.YCbCrSubsampleRatio440, image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410,
	}
	for _, ratio := range ratios {
		img := randomYCbCr(rng, image.Rect(1, 3, 18, 12), ratio)
		tests = append(tests, struct {
			name string
			img  image.Image
			rgb  func(x, y int) (uint8, uint8, uint8)
		}{"YCbCr " + ratio.String(), img, ycbcrRGB(img)})
		sub := img.SubImage(image.Rect(3, 4, 16, 11)).(*image.YCbCr)
		tests = append(tests, struct {
			name string
			img  image.Image
			rgb  func(x, y int) (uint8, uint8, uint8)
		}{"YCbCr sub-image " + ratio.String(), sub, ycbcrRGB(sub)})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.img.Bounds()
			want := wantCHW(b, tc.rgb)
			got := make([]float32, len(want))
			ToCHW(got, tc.img)
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("element %d (channel %d) = %v, want %v", i, i/(b.Dx()*b.Dy()), got[i], want[i])
				}
			}
			// Flipped: column x goes to w-1-x, exactly.
			flipped := make([]float32, len(want))
			toCHW(flipped, tc.img, true)
			w := b.Dx()
			for i := range want {
				row, x := i/w, i%w
				if flipped[row*w+w-1-x] != want[i] {
					t.Fatalf("flipped element %d = %v, want %v", row*w+w-1-x, flipped[row*w+w-1-x], want[i])
				}
			}
		})
	}
}

func TestToCHWPanicsOnSize(t *testing.T) {
	defer func() {
		if r := recover(); r == nil {
			t.Error("ToCHW with a short dst did not panic")
		}
	}()
	ToCHW(make([]float32, 10), image.NewGray(image.Rect(0, 0, 2, 2)))
}

func benchmarkToCHW(b *testing.B, img image.Image) {
	dst := make([]float32, 3*img.Bounds().Dx()*img.Bounds().Dy())
	b.SetBytes(int64(img.Bounds().Dx() * img.Bounds().Dy()))
	b.ReportAllocs()
	for b.Loop() {
		ToCHW(dst, img)
	}
}

func BenchmarkToCHW(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	r := image.Rect(0, 0, 224, 224)
	nrgba := randomNRGBA(rng, 224, 224)
	rgba := image.NewRGBA(r)
	copy(rgba.Pix, nrgba.Pix)
	gray := image.NewGray(r)
	for i := range gray.Pix {
		gray.Pix[i] = uint8(i)
	}
	paletted := image.NewPaletted(r, palette.Plan9)
	for i := range paletted.Pix {
		paletted.Pix[i] = uint8(i)
	}
	b.Run("YCbCr420-224-jpeg", func(b *testing.B) { benchmarkToCHW(b, photoYCbCr(b, 224, 224)) })
	b.Run("YCbCr420-224-random", func(b *testing.B) { benchmarkToCHW(b, randomYCbCr(rng, r, image.YCbCrSubsampleRatio420)) })
	b.Run("NRGBA-224", func(b *testing.B) { benchmarkToCHW(b, nrgba) })
	b.Run("RGBA-224", func(b *testing.B) { benchmarkToCHW(b, rgba) })
	b.Run("Gray-224", func(b *testing.B) { benchmarkToCHW(b, gray) })
	b.Run("generic-Paletted-224", func(b *testing.B) { benchmarkToCHW(b, paletted) })
}
