package turbojpeg_test

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/jpeg"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/simclr-ort/simclr-ort/augment/data/internal/turbojpeg"
)

// decoder returns a Decoder, skipping the test where the library is
// missing.
func decoder(t *testing.T) *turbojpeg.Decoder {
	t.Helper()
	if err := turbojpeg.Load(); err != nil {
		t.Skipf("libjpeg-turbo is not installed here (%v)", err)
	}
	d, err := turbojpeg.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// photo returns a JPEG file of a smooth random colour image (4:2:0, as
// Go's encoder writes and most cameras do).
func photo(t *testing.T, w, h int, gray bool) []byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(w), uint64(h)))
	var img image.Image
	if gray {
		g := image.NewGray(image.Rect(0, 0, w, h))
		for i := range g.Pix {
			g.Pix[i] = uint8(i*7 + rng.IntN(40))
		}
		img = g
	} else {
		c := image.NewNRGBA(image.Rect(0, 0, w, h))
		for y := range h {
			for x := range w {
				c.SetNRGBA(x, y, color.NRGBA{uint8(x * 255 / w), uint8(y * 255 / h), uint8(rng.IntN(256)), 255})
			}
		}
		img = c
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestDecodeGivesPILPixels: libjpeg-turbo's pixels are PIL's
// (Image.open(...).convert("RGB"), as torchvision's ImageFolder loads
// images), byte for byte, for colour and grayscale JPEGs of odd sizes.
func TestDecodeGivesPILPixels(t *testing.T) {
	d := decoder(t)
	if err := exec.Command("/usr/bin/python3", "-c", "import PIL").Run(); err != nil {
		t.Skipf("python3 with PIL is not installed here (sudo make setup-system installs it with torchvision): %v", err)
	}
	dir := t.TempDir()
	cases := []struct {
		name string
		w, h int
		gray bool
	}{{"colour", 61, 37, false}, {"colour-large", 500, 375, false}, {"gray", 33, 20, true}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			file := filepath.Join(dir, c.name+".jpg")
			b := photo(t, c.w, c.h, c.gray)
			if err := os.WriteFile(file, b, 0o644); err != nil {
				t.Fatal(err)
			}
			img, err := d.Decode(b, nil)
			if err != nil {
				t.Fatal(err)
			}
			if img.Bounds() != image.Rect(0, 0, c.w, c.h) {
				t.Fatalf("bounds %v, want %dx%d", img.Bounds(), c.w, c.h)
			}
			out, err := exec.Command("/usr/bin/python3", "-c",
				"import sys; from PIL import Image; sys.stdout.buffer.write(Image.open(sys.argv[1]).convert('RGB').tobytes())", file).Output()
			if err != nil {
				t.Fatalf("PIL: %v", err)
			}
			if len(out) != 3*c.w*c.h {
				t.Fatalf("PIL gave %d bytes, want %d", len(out), 3*c.w*c.h)
			}
			diff := 0
			for i := range c.w * c.h {
				for ch := range 3 {
					if img.Pix[4*i+ch] != out[3*i+ch] {
						diff++
					}
				}
				if img.Pix[4*i+3] != 255 {
					t.Fatalf("pixel %d has alpha %d, want 255", i, img.Pix[4*i+3])
				}
			}
			if diff != 0 {
				t.Errorf("%d of %d samples differ from PIL's", diff, 3*c.w*c.h)
			}
		})
	}
}

// TestDecodeReusesDst: a destination with room is reused, one without is
// replaced.
func TestDecodeReusesDst(t *testing.T) {
	d := decoder(t)
	big := image.NewNRGBA(image.Rect(0, 0, 100, 100))
	img, err := d.Decode(photo(t, 40, 30, false), big)
	if err != nil {
		t.Fatal(err)
	}
	if &img.Pix[0] != &big.Pix[0] || img.Bounds() != image.Rect(0, 0, 40, 30) || img.Stride != 160 {
		t.Errorf("dst with room not reused: bounds %v stride %d", img.Bounds(), img.Stride)
	}
	small := image.NewNRGBA(image.Rect(0, 0, 2, 2))
	img, err = d.Decode(photo(t, 40, 30, false), small)
	if err != nil {
		t.Fatal(err)
	}
	if img.Bounds() != image.Rect(0, 0, 40, 30) {
		t.Errorf("bounds %v", img.Bounds())
	}
}

// TestBadFilesAreErrors: truncated, garbage and empty files are errors
// (a truncated file is one for PIL and image/jpeg too).
func TestBadFilesAreErrors(t *testing.T) {
	d := decoder(t)
	good := photo(t, 64, 48, false)
	garbage := make([]byte, 300)
	binary.LittleEndian.PutUint64(garbage, 0xdeadbeef)
	cases := []struct {
		name string
		b    []byte
	}{
		{"truncated", good[:len(good)/2]},
		{"truncated at 90%", good[:len(good)*9/10]},
		{"truncated at 99%", good[:len(good)*99/100]},
		{"header only", good[:200]},
		{"garbage", garbage},
		{"empty", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := d.Decode(c.b, nil)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.HasPrefix(err.Error(), "turbojpeg: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
	// Every cut of a photo-sized file is an error, and the decoder still
	// decodes the whole file after each.
	big := photo(t, 500, 375, false)
	for cut := len(big) / 2; cut < len(big)-1; cut += len(big) / 97 {
		if _, err := d.Decode(big[:cut], nil); err == nil {
			t.Errorf("a 500x375 file cut to %d of %d bytes decoded without error", cut, len(big))
		}
	}
	if _, err := d.Decode(big, nil); err != nil {
		t.Fatalf("whole file after cuts: %v", err)
	}
	// The decoder still works after errors.
	if _, err := d.Decode(good, nil); err != nil {
		t.Fatalf("after errors: %v", err)
	}
}

// TestHeader: Header reads the declared size without decoding, also of a
// tiny file that declares a huge image, and refuses what is not a JPEG.
func TestHeader(t *testing.T) {
	d := decoder(t)
	good := photo(t, 37, 23, false)
	huge := bytes.Clone(photo(t, 8, 8, true))
	sof := bytes.Index(huge, []byte{0xFF, 0xC0})
	binary.BigEndian.PutUint16(huge[sof+5:], 20000)
	binary.BigEndian.PutUint16(huge[sof+7:], 30000)
	tests := []struct {
		name   string
		b      []byte
		w, h   int
		errHas string
	}{
		{"photo", good, 37, 23, ""},
		{"headers and a scan's start", good[:bytes.Index(good, []byte{0xFF, 0xDA})+20], 37, 23, ""},
		{"tiny file declaring 30000x20000", huge, 30000, 20000, ""},
		{"garbage", []byte("not a jpeg at all, just text"), 0, 0, "turbojpeg: read header"},
		{"empty", nil, 0, 0, "turbojpeg: empty file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, h, err := d.Header(tc.b)
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Errorf("error %v, want one containing %q", err, tc.errHas)
				}
				return
			}
			if err != nil || w != tc.w || h != tc.h {
				t.Errorf("Header = %dx%d, %v; want %dx%d", w, h, err, tc.w, tc.h)
			}
		})
	}
	if _, err := d.Decode(good, nil); err != nil {
		t.Fatalf("decode after header errors: %v", err)
	}
}
