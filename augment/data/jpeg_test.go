package data

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/simclr-ort/simclr-ort/augment"
	"github.com/simclr-ort/simclr-ort/augment/data/internal/turbojpeg"
)

// TestFolderJPEGDecoder: an image folder's JPEG files are decoded by
// libjpeg-turbo into opaque NRGBA images close to image/jpeg's pixels
// (they differ where image/jpeg replicates chroma instead of smoothing
// it), CMYK JPEGs, which libjpeg-turbo cannot convert to RGB, fall back to
// image/jpeg, and a truncated JPEG is an error naming the file.
func TestFolderJPEGDecoder(t *testing.T) {
	if os.Getenv(JPEGDecoderEnv) == "go" {
		t.Skipf("%s=go forces image/jpeg", JPEGDecoderEnv)
	}
	if err := turbojpeg.Load(); err != nil {
		t.Skipf("libjpeg-turbo is not installed here (%v)", err)
	}
	desc, err := JPEGDecoder()
	if err != nil || !strings.Contains(desc, "libjpeg-turbo") {
		t.Fatalf("JPEGDecoder() = %q, %v; want libjpeg-turbo", desc, err)
	}
	root := t.TempDir()
	src := image.NewNRGBA(image.Rect(0, 0, 37, 29))
	for y := range 29 {
		for x := range 37 {
			src.SetNRGBA(x, y, color.NRGBA{uint8(7 * x), uint8(9 * y), uint8(3 * (x + y)), 255})
		}
	}
	good := encode(t, src, ".jpg")
	cmyk := image.NewCMYK(image.Rect(0, 0, 8, 6))
	for i := range cmyk.Pix {
		cmyk.Pix[i] = uint8(i * 5)
	}
	var cmykJPEG bytes.Buffer
	if err := jpeg.Encode(&cmykJPEG, cmyk, nil); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "a", "1good.jpg"), good)
	writeFile(t, filepath.Join(root, "a", "2cmyk.jpg"), cmykJPEG.Bytes())
	writeFile(t, filepath.Join(root, "a", "3truncated.jpg"), good[:len(good)*2/3])
	ds, err := OpenFolder(root, Train)
	if err != nil {
		t.Fatal(err)
	}

	img, err := ds.Image(0)
	if err != nil {
		t.Fatal(err)
	}
	nrgba, ok := img.(*image.NRGBA)
	if !ok || !nrgba.Opaque() {
		t.Fatalf("decoded a %T (opaque: %v), want an opaque *image.NRGBA from libjpeg-turbo", img, ok && nrgba.Opaque())
	}
	goImg, err := jpeg.Decode(bytes.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	worst, sum := 0, 0
	for y := range 29 {
		for x := range 37 {
			r1, g1, b1, _ := nrgba.At(x, y).RGBA()
			r2, g2, b2, _ := goImg.At(x, y).RGBA()
			for _, d := range []int{int(r1>>8) - int(r2>>8), int(g1>>8) - int(g2>>8), int(b1>>8) - int(b2>>8)} {
				worst = max(worst, d, -d)
				sum += max(d, -d)
			}
		}
	}
	if mean := float64(sum) / (3 * 37 * 29); mean > 3 || worst > 32 {
		t.Errorf("libjpeg-turbo vs image/jpeg: mean difference %.2f levels, worst %d (want a mean below 3 and a worst of at most 32)", mean, worst)
	}
	t.Logf("libjpeg-turbo vs image/jpeg: mean difference %.2f levels, worst %d", float64(sum)/(3*37*29), worst)

	if img, err := ds.Image(1); err != nil || img.Bounds().Dx() != 8 {
		t.Errorf("CMYK JPEG: %v (bounds %v), want image/jpeg's decoding", err, img)
	}
	if _, err := ds.Image(2); err == nil || !strings.Contains(err.Error(), "3truncated.jpg") {
		t.Errorf("truncated JPEG: error %v, want one naming the file", err)
	}
}

// TestLoaderReusesJPEGScratch: a worker decodes JPEG files of different
// sizes into one scratch image, grown as needed; every view equals the view
// made from a freshly decoded image with the same random decisions.
func TestLoaderReusesJPEGScratch(t *testing.T) {
	if os.Getenv(JPEGDecoderEnv) == "go" {
		t.Skipf("%s=go forces image/jpeg, which has no scratch path", JPEGDecoderEnv)
	}
	if err := turbojpeg.Load(); err != nil {
		t.Skipf("libjpeg-turbo is not installed here (%v)", err)
	}
	root := t.TempDir()
	sizes := [][2]int{{40, 30}, {90, 70}, {20, 50}, {64, 64}, {33, 17}, {120, 80}}
	for i, sz := range sizes {
		img := image.NewNRGBA(image.Rect(0, 0, sz[0], sz[1]))
		for p := range img.Pix {
			img.Pix[p] = uint8(p*7 + i*31)
		}
		writeFile(t, filepath.Join(root, "c", string(rune('a'+i))+".jpg"), encode(t, img, ".jpg"))
	}
	ds, err := OpenFolder(root, Train)
	if err != nil {
		t.Fatal(err)
	}
	cfg := LoaderConfig{BatchSize: len(sizes), Workers: 1, Seed: 3, Augment: augment.Config{Size: 8}}
	l := startLoader(t, ds, cfg, 0)
	for range 2 {
		b, err := l.Next()
		if err != nil {
			t.Fatal(err)
		}
		p, err := augment.New(cfg.Augment)
		if err != nil {
			t.Fatal(err)
		}
		view := p.ViewLen()
		want1, want2 := make([]float32, view), make([]float32, view)
		for slot, idx := range b.Indices {
			img, err := ds.Image(idx) // a fresh image, no scratch
			if err != nil {
				t.Fatal(err)
			}
			// One batch per epoch: an image's position in the epoch is its slot.
			rng := rand.New(rand.NewPCG(cfg.Seed, uint64(b.Epoch)<<40|uint64(slot)))
			p.Pair(want1, want2, img, rng)
			got1 := b.Data[slot*view : (slot+1)*view]
			got2 := b.Data[(slot+len(sizes))*view : (slot+len(sizes)+1)*view]
			if !slices.Equal(got1, want1) || !slices.Equal(got2, want2) {
				t.Fatalf("step %d slot %d (image %d): views differ from those of a freshly decoded image", b.Step, slot, idx)
			}
		}
		b.Release()
	}
}
