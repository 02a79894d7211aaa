package data

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"runtime"
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
	ds, err := OpenFolder(root, Train, Options{JPEGDecoder: JPEGTurbo})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ds.JPEGDecoder(), "libjpeg-turbo") {
		t.Errorf("folder's JPEG decoder %q, want libjpeg-turbo", ds.JPEGDecoder())
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
	ds, err := OpenFolder(root, Train, Options{JPEGDecoder: JPEGTurbo})
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

// TestJPEGDecoderChoice: the JPEG decoder is an explicit option, checked
// when a folder opens, and the folder says which one runs.
func TestJPEGDecoderChoice(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "a", "x.jpg"), encode(t, solid(9, 7, color.NRGBA{200, 30, 10, 255}), ".jpg"))
	turboErr := turbojpeg.Load()
	tests := []struct {
		choice string
		want   string // in the description, or in the error when wantErr
		turbo  bool   // decodes with libjpeg-turbo
		err    bool
	}{
		{"", "libjpeg-turbo", true, false},
		{JPEGAuto, "libjpeg-turbo", true, false},
		{JPEGTurbo, "libjpeg-turbo", true, false},
		{JPEGGo, `Go's image/jpeg (JPEG decoder "go" chosen)`, false, false},
		{"pil", `unknown JPEG decoder "pil": use auto`, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.choice, func(t *testing.T) {
			if turboErr != nil && tc.turbo {
				switch tc.choice {
				case JPEGTurbo:
					tc.want, tc.err = "turbojpeg: load", true
				default:
					tc.want, tc.turbo = "Go's image/jpeg, about 3x slower", false
				}
			}
			desc, err := JPEGDecoderFor(tc.choice)
			ds, openErr := OpenWith("folder:"+root, Train, Options{JPEGDecoder: tc.choice})
			if tc.err {
				for _, e := range []error{err, openErr} {
					if e == nil || !strings.Contains(e.Error(), tc.want) || !strings.HasPrefix(e.Error(), "data: ") {
						t.Errorf("error %v, want one containing %q", e, tc.want)
					}
				}
				return
			}
			if err != nil || openErr != nil {
				t.Fatalf("JPEGDecoderFor: %v; OpenWith: %v", err, openErr)
			}
			f := ds.(*Folder)
			if !strings.Contains(desc, tc.want) || f.JPEGDecoder() != desc {
				t.Errorf("JPEGDecoderFor = %q, folder's %q; want both containing %q", desc, f.JPEGDecoder(), tc.want)
			}
			img, err := f.Image(0)
			if err != nil {
				t.Fatal(err)
			}
			if _, isNRGBA := img.(*image.NRGBA); isNRGBA != tc.turbo {
				t.Errorf("decoded a %T; want libjpeg-turbo's *image.NRGBA: %v", img, tc.turbo)
			}
		})
	}
	if desc, err := JPEGDecoder(); err != nil || desc != func() string { d, _ := JPEGDecoderFor(JPEGAuto); return d }() {
		t.Errorf("JPEGDecoder() = %q, %v; want the auto choice's description", desc, err)
	}
}

// hugeHeaders returns tiny image files (under 1 KB) whose headers declare
// far more pixels than the default limit, keyed by extension.
func hugeHeaders(t testing.TB) map[string][]byte {
	t.Helper()
	small := solid(8, 8, color.NRGBA{10, 20, 30, 255})
	out := map[string][]byte{}
	// JPEG: the baseline start-of-frame (FF C0, length, precision,
	// height, width) declares 20000x20000.
	j := encode(t, small, ".jpg")
	sof := bytes.Index(j, []byte{0xFF, 0xC0})
	binary.BigEndian.PutUint16(j[sof+5:], 20000)
	binary.BigEndian.PutUint16(j[sof+7:], 20000)
	out[".jpg"] = j
	// PNG: IHDR declares 20000x20000, with its CRC fixed.
	p := encode(t, small, ".png")
	binary.BigEndian.PutUint32(p[16:], 20000)
	binary.BigEndian.PutUint32(p[20:], 20000)
	binary.BigEndian.PutUint32(p[29:], crc32.ChecksumIEEE(p[12:29]))
	out[".png"] = p
	// GIF: the logical screen declares 20000x20000.
	g := encode(t, small, ".gif")
	binary.LittleEndian.PutUint16(g[6:], 20000)
	binary.LittleEndian.PutUint16(g[8:], 20000)
	out[".gif"] = g
	// BMP: the info header declares 20000x20000.
	b := encode(t, small, ".bmp")
	binary.LittleEndian.PutUint32(b[18:], 20000)
	binary.LittleEndian.PutUint32(b[22:], 20000)
	out[".bmp"] = b
	// WebP (lossless): a VP8L header declaring 16000x16000.
	bits := uint32(16000-1) | uint32(16000-1)<<14
	vp8l := binary.LittleEndian.AppendUint32([]byte{0x2f}, bits)
	vp8l = append(vp8l, make([]byte, 16)...)
	w := []byte("RIFF")
	w = binary.LittleEndian.AppendUint32(w, uint32(4+8+len(vp8l)))
	w = append(w, "WEBPVP8L"...)
	w = binary.LittleEndian.AppendUint32(w, uint32(len(vp8l)))
	out[".webp"] = append(w, vp8l...)
	for ext, f := range out {
		if len(f) > 1024 {
			t.Fatalf("%s header file has %d bytes, want a tiny one", ext, len(f))
		}
	}
	return out
}

// TestImagePixelLimit: a tiny file whose header claims a huge image is
// refused before decoding, in every format and with either JPEG decoder,
// with an error that gives the size, the limit and how to raise it, and
// without taking the memory the header claims.
func TestImagePixelLimit(t *testing.T) {
	root := t.TempDir()
	huge := hugeHeaders(t)
	exts := slices.Sorted(maps.Keys(huge))
	for _, ext := range exts {
		writeFile(t, filepath.Join(root, "a", "huge"+ext), huge[ext])
	}
	decoders := []string{JPEGGo}
	if turbojpeg.Load() == nil {
		decoders = append(decoders, JPEGTurbo)
	}
	for _, dec := range decoders {
		f, err := OpenFolder(root, Train, Options{JPEGDecoder: dec})
		if err != nil {
			t.Fatal(err)
		}
		for i := range f.Len() {
			ext := filepath.Ext(f.Path(i))
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := f.Image(i)
			runtime.ReadMemStats(&after)
			side := "20000x20000"
			if ext == ".webp" {
				side = "16000x16000"
			}
			for _, want := range []string{f.Path(i), "the image is " + side + " pixels", "limit of 67108864 pixels (8192x8192)", "raise the limit (simclr-ort train --max-image-pixels; augment/data Options.MaxImagePixels)"} {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("%s, %s: error %v, want one containing %q", dec, ext, err, want)
				}
			}
			if !errors.Is(err, ErrImageTooLarge) {
				t.Errorf("%s, %s: error %v does not match ErrImageTooLarge", dec, ext, err)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 4<<20 {
				t.Errorf("%s, %s: refusing the image allocated %d MB", dec, ext, grew>>20)
			}
		}
	}
}

// TestImagePixelLimitOption: the limit is an option, checked when a dataset
// opens; an image at the limit decodes, one pixel row over it does not.
func TestImagePixelLimitOption(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "a", "x.png"), encode(t, solid(12, 10, color.NRGBA{1, 2, 3, 255}), ".png"))
	writeFile(t, filepath.Join(root, "a", "y.jpg"), encode(t, solid(12, 10, color.NRGBA{1, 2, 3, 255}), ".jpg"))
	tests := []struct {
		limit   int
		decodes bool
		openErr string
	}{
		{0, true, ""},
		{120, true, ""},
		{119, false, ""},
		{110, false, ""},
		{-1, false, "image pixel limit -1 is negative"},
	}
	for _, tc := range tests {
		for _, dec := range []string{JPEGAuto, JPEGGo} {
			ds, err := OpenWith(root, Train, Options{MaxImagePixels: tc.limit, JPEGDecoder: dec})
			if tc.openErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.openErr) {
					t.Errorf("limit %d: error %v, want one containing %q", tc.limit, err, tc.openErr)
				}
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			for i := range ds.Len() {
				_, err := ds.Image(i)
				if tc.decodes != (err == nil) || (err != nil && !errors.Is(err, ErrImageTooLarge)) {
					t.Errorf("limit %d, %s, image %d (12x10): error %v, want decoded: %v", tc.limit, dec, i, err, tc.decodes)
				}
			}
		}
	}
}

// TestLoaderSkipsOversizeImages: the loader skips an oversize image and
// counts it as unreadable, as it does corrupt files.
func TestLoaderSkipsOversizeImages(t *testing.T) {
	root := t.TempDir()
	for i := range 4 {
		writeFile(t, filepath.Join(root, "a", fmt.Sprintf("%d.png", i)), encode(t, solid(6, 6, color.NRGBA{uint8(i), 2, 3, 255}), ".png"))
	}
	writeFile(t, filepath.Join(root, "a", "huge.jpg"), hugeHeaders(t)[".jpg"])
	ds, err := OpenFolder(root, Train, Options{})
	if err != nil {
		t.Fatal(err)
	}
	l := startLoader(t, ds, LoaderConfig{BatchSize: ds.Len(), Workers: 1, Augment: augment.Config{Size: 4}}, 0)
	b, err := l.Next()
	if err != nil {
		t.Fatal(err)
	}
	b.Release()
	st := l.Stats()
	if b.Skipped < 1 || st.Unreadable != 1 || !errors.Is(st.LastError, ErrImageTooLarge) || !strings.Contains(st.LastError.Error(), "huge.jpg") {
		t.Errorf("skipped %d, stats %+v; want the huge file skipped and counted as unreadable", b.Skipped, st)
	}
}
