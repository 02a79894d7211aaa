package data

import (
	"bytes"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/simclr-ort/simclr-ort/augment/data/internal/turbojpeg"
)

// Run one target at a time, e.g.
//
//	go test -run='^$' -fuzz=FuzzDecodeImage -fuzztime=3m ./augment/data
//
// The seeds below (and any corpus files in testdata/fuzz) run in plain
// go test.

// FuzzIDX: no pair of idx files makes the reader panic, hang or allocate
// more than the files hold; what it accepts is consistent.
func FuzzIDX(f *testing.F) {
	pix := make([]byte, 3*4*5)
	for i := range pix {
		pix[i] = byte(i * 7)
	}
	images, labels := idxBytes([]int{3, 4, 5}, pix), idxBytes([]int{3}, []byte{1, 9, 0})
	f.Add(images, labels)
	f.Add(gzipped(f, images), gzipped(f, labels))
	f.Add(gzipped(f, images), labels)
	f.Add(append(gzipped(f, images[:20]), gzipped(f, images[20:])...), gzipped(f, labels))
	f.Add(images[:30], labels)
	f.Add(idxBytes([]int{1 << 20, 1 << 8, 1 << 6}, nil), labels)
	f.Add(images, idxBytes([]int{3}, []byte{1, 10, 0}))
	f.Fuzz(func(t *testing.T, images, labels []byte) {
		var dims []int
		var pixels []byte
		var err error
		// A gzip stream may expand about 1032 times.
		grew := allocated(func() { dims, pixels, err = decodeIDX(bytes.NewReader(images), "images", 3, -1) })
		if limit := 4<<20 + 2100*uint64(len(images)); grew > limit {
			t.Fatalf("decoding %d bytes allocated %d bytes (err %v)", len(images), grew, err)
		}
		if err != nil {
			return
		}
		if len(dims) != 3 || len(pixels) != dims[0]*dims[1]*dims[2] {
			t.Fatalf("dimensions %v with %d bytes", dims, len(pixels))
		}
		ldims, lbytes, err := decodeIDX(bytes.NewReader(labels), "labels", 1, -1)
		if err != nil {
			return
		}
		ds, err := newIDX("fuzz %d %d %d", dims, pixels, "images", ldims, lbytes, "labels", true)
		if err != nil {
			return
		}
		for i := range min(ds.Len(), 4) {
			img, err := ds.Image(i)
			if err != nil || img.Bounds() != image.Rect(0, 0, dims[2], dims[1]) || ds.Label(i) >= len(ds.ClassNames()) {
				t.Fatalf("image %d: %v, bounds %v, label %d", i, err, img.Bounds(), ds.Label(i))
			}
		}
	})
}

// FuzzCIFAR: no batch file makes the CIFAR-10 reader panic; every image of
// a batch it accepts is 32x32 with a label 0-9.
func FuzzCIFAR(f *testing.F) {
	f.Add(cifarBatch(0, 1))
	f.Add(cifarBatch(5, 3))
	f.Add(cifarBatch(9, 2)[:cifarRecord+100])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := checkCIFARBatch(b, "batch.bin"); err != nil {
			return
		}
		ds := &CIFAR10{records: b, classes: cifar10Classes}
		for i := range ds.Len() {
			img, err := ds.Image(i)
			if err != nil || img.Bounds() != image.Rect(0, 0, cifarSide, cifarSide) || ds.Label(i) > 9 {
				t.Fatalf("image %d: %v, bounds %v, label %d", i, err, img.Bounds(), ds.Label(i))
			}
		}
	})
}

// allocated returns the bytes of heap memory fn allocates.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// fuzzMaxPixels is the image size limit of FuzzDecodeImage: small, so that
// fuzzing runs fast; the property checked does not depend on it.
const fuzzMaxPixels = 1 << 16

// FuzzDecodeImage: no image file makes the decoders of an image folder
// (libjpeg-turbo where it loads, and Go's) panic, hang or allocate for an
// image over the size limit; an image they decode is within the limit.
func FuzzDecodeImage(f *testing.F) {
	entries, err := os.ReadDir(filepath.Join("testdata", "images"))
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("testdata", "images", e.Name()))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	small := solid(7, 5, color.NRGBA{100, 150, 200, 255})
	for _, ext := range []string{".jpg", ".png", ".gif", ".bmp"} {
		f.Add(encode(f, small, ext))
	}
	for _, b := range hugeHeaders(f) {
		f.Add(b)
	}
	decoders := []imageDecoder{{maxPixels: fuzzMaxPixels}}
	if turbojpeg.Load() == nil {
		decoders = append(decoders, imageDecoder{turbo: true, maxPixels: fuzzMaxPixels})
	}
	var scratch *image.NRGBA
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, dec := range decoders {
			for _, s := range []**image.NRGBA{nil, &scratch} {
				var img image.Image
				var err error
				// Decoding takes about 4 bytes per pixel, up to 3 times
				// that for progressive JPEG files, and GIF and WebP keep
				// a frame or two more.
				grew := allocated(func() { img, err = dec.decode(b, s) })
				if limit := 2<<20 + 64*fuzzMaxPixels + 4*uint64(len(b)); grew > limit {
					t.Fatalf("turbo %v: decoding %d bytes allocated %d bytes (err %v)", dec.turbo, len(b), grew, err)
				}
				if err != nil {
					continue
				}
				if r := img.Bounds(); r.Dx()*r.Dy() > fuzzMaxPixels {
					t.Fatalf("turbo %v decoded a %v image, over the limit of %d pixels", dec.turbo, r, fuzzMaxPixels)
				}
			}
		}
	})
}

// TestDecodeTestdataImages: the fuzz seeds in testdata/images, real files
// written by PIL (progressive, CMYK and grayscale JPEG, palette, 16-bit and
// RGBA PNG, animated GIF, BMP, lossy, lossless and alpha WebP), decode
// with either JPEG decoder to their 16x12 pixels; each cut in half is an
// error that allocates little (a cut WebP file took 6.4 MB).
func TestDecodeTestdataImages(t *testing.T) {
	entries, err := os.ReadDir(filepath.Join("testdata", "images"))
	if err != nil {
		t.Fatal(err)
	}
	for _, choice := range []string{JPEGGo, JPEGAuto} {
		dec, err := newImageDecoder(Options{JPEGDecoder: choice, MaxImagePixels: DefaultMaxImagePixels})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join("testdata", "images", e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			img, err := dec.decode(b, nil)
			if err != nil || img.Bounds() != image.Rect(0, 0, 16, 12) {
				t.Errorf("%s with %s: %v (bounds %v), want a 16x12 image", e.Name(), choice, err, img)
			}
			// An animated GIF cut after its first frame still holds that
			// frame, which is all image.Decode reads (PIL too).
			var grew uint64
			grew = allocated(func() { _, err = dec.decode(b[:len(b)/2], nil) })
			if (err == nil && e.Name() != "anim.gif") || grew > 1<<20 {
				t.Errorf("%s cut in half, with %s: error %v, %d bytes allocated; want an error and under 1 MiB", e.Name(), choice, err, grew)
			}
		}
	}
}
