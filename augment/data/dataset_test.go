package data

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"golang.org/x/image/bmp"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// writeFile writes b to path, creating directories.
func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// solid returns a w x h NRGBA image of one colour.
func solid(w, h int, c color.NRGBA) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = c.R, c.G, c.B, c.A
	}
	return img
}

// encode encodes img in the format named by ext.
func encode(t testing.TB, img image.Image, ext string) []byte {
	t.Helper()
	var buf bytes.Buffer
	var err error
	switch strings.ToLower(ext) {
	case ".png":
		err = png.Encode(&buf, img)
	case ".jpg", ".jpeg":
		err = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95})
	case ".gif":
		err = gif.Encode(&buf, img, &gif.Options{NumColors: 256, Quantizer: nil, Drawer: nil})
	case ".bmp":
		err = bmp.Encode(&buf, img)
	default:
		t.Fatalf("no encoder for %s", ext)
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// makeFolder lays out an image folder and returns its root and the files
// in torchvision's order.
func makeFolder(t *testing.T) (root string, want []string) {
	root = t.TempDir()
	red := solid(12, 10, color.NRGBA{200, 10, 10, 255})
	files := []string{
		// Created out of order; torchvision's order is checked below.
		"b_dogs/z.png", "b_dogs/a.jpg", "a_cats/sub/y.gif", "a_cats/sub-b/x.PNG",
		"a_cats/z.jpeg", "a_cats/a.png", "a_cats/sub/deeper/w.png", "c_empty_but_nested/n/m.png",
	}
	for _, f := range files {
		writeFile(t, filepath.Join(root, f), encode(t, red, filepath.Ext(f)))
	}
	writeFile(t, filepath.Join(root, "a_cats", "notes.txt"), []byte("not an image"))
	writeFile(t, filepath.Join(root, "b_dogs", "broken.png"), []byte("\x89PNG\r\n\x1a\nthis is not a png"))
	writeFile(t, filepath.Join(root, "README"), []byte("top-level files are ignored"))
	want = []string{
		"a_cats/a.png", "a_cats/z.jpeg", // a_cats
		"a_cats/sub/y.gif",        // a_cats/sub: a prefix of the next
		"a_cats/sub-b/x.PNG",      // a_cats/sub-b sorts before a_cats/sub/deeper ('-' < '/')
		"a_cats/sub/deeper/w.png", // a_cats/sub/deeper
		"b_dogs/a.jpg", "b_dogs/broken.png", "b_dogs/z.png",
		"c_empty_but_nested/n/m.png",
	}
	return root, want
}

func TestFolder(t *testing.T) {
	root, want := makeFolder(t)
	for _, spec := range []string{"folder:" + root, root} {
		ds, err := Open(spec, Train)
		if err != nil {
			t.Fatal(err)
		}
		f := ds.(*Folder)
		if got := f.ClassNames(); !slices.Equal(got, []string{"a_cats", "b_dogs", "c_empty_but_nested"}) {
			t.Errorf("%s: classes %v", spec, got)
		}
		var got []string
		for i := range f.Len() {
			rel, _ := filepath.Rel(root, f.Path(i))
			got = append(got, filepath.ToSlash(rel))
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: files\n%v\nwant torchvision's order\n%v", spec, got, want)
		}
		for i := range f.Len() {
			wantLabel := map[string]int{"a_cats": 0, "b_dogs": 1, "c_empty_but_nested": 2}[strings.Split(want[i], "/")[0]]
			if f.Label(i) != wantLabel {
				t.Errorf("label of %s = %d, want %d", want[i], f.Label(i), wantLabel)
			}
			img, err := f.Image(i)
			if strings.Contains(want[i], "broken") {
				if err == nil || !strings.Contains(err.Error(), "broken.png") {
					t.Errorf("Image(%s) error = %v, want a decode error naming the file", want[i], err)
				}
				continue
			}
			if err != nil {
				t.Errorf("Image(%s): %v", want[i], err)
				continue
			}
			if img.Bounds() != image.Rect(0, 0, 12, 10) {
				t.Errorf("Image(%s) bounds %v", want[i], img.Bounds())
			}
			r, g, b, _ := img.At(5, 5).RGBA()
			if r>>8 < 180 || g>>8 > 40 || b>>8 > 40 {
				t.Errorf("Image(%s) pixel = %d %d %d, want about 200 10 10", want[i], r>>8, g>>8, b>>8)
			}
		}
	}
	if _, err := Open(root, Test); !errors.Is(err, ErrNoSplit) || !strings.Contains(err.Error(), "train/CLASS") {
		t.Errorf("test split of a flat folder: error %v, want ErrNoSplit saying how to lay it out", err)
	}
}

func TestFolderSplits(t *testing.T) {
	root := t.TempDir()
	img := encode(t, solid(4, 4, color.NRGBA{1, 2, 3, 255}), ".png")
	writeFile(t, filepath.Join(root, "train", "x", "1.png"), img)
	writeFile(t, filepath.Join(root, "train", "y", "1.png"), img)
	writeFile(t, filepath.Join(root, "val", "x", "1.png"), img)
	writeFile(t, filepath.Join(root, "val", "y", "1.png"), img)
	writeFile(t, filepath.Join(root, "val", "y", "2.png"), img)
	tr, err := Open("folder:"+root, Train)
	if err != nil {
		t.Fatal(err)
	}
	te, err := Open("folder:"+root, Test)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Len() != 2 || te.Len() != 3 || !slices.Equal(te.ClassNames(), []string{"x", "y"}) {
		t.Errorf("train %d images, test (val) %d images, classes %v; want 2, 3, [x y]", tr.Len(), te.Len(), te.ClassNames())
	}
}

func TestFolderErrors(t *testing.T) {
	img := encode(t, solid(4, 4, color.NRGBA{1, 2, 3, 255}), ".png")
	noClasses := t.TempDir()
	writeFile(t, filepath.Join(noClasses, "a.png"), img)
	emptyClass := t.TempDir()
	writeFile(t, filepath.Join(emptyClass, "full", "a.png"), img)
	writeFile(t, filepath.Join(emptyClass, "empty", "a.txt"), []byte("x"))
	tests := []struct {
		name, root, want string
	}{
		{"no class folders", noClasses, "has no class folders"},
		{"empty class", emptyClass, "class folders empty of " + emptyClass + " hold no image files"},
	}
	for _, tc := range tests {
		_, err := OpenFolder(tc.root, Train, Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

// idxBytes encodes an unsigned-byte idx file.
func idxBytes(dims []int, data []byte) []byte {
	var b bytes.Buffer
	b.Write([]byte{0, 0, 8, byte(len(dims))})
	for _, d := range dims {
		binary.Write(&b, binary.BigEndian, uint32(d))
	}
	b.Write(data)
	return b.Bytes()
}

func gzipped(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestIDX(t *testing.T) {
	// Three 2x3 images whose pixels encode image and position, and a test
	// split of one.
	pix := make([]byte, 3*6)
	for i := range pix {
		pix[i] = byte(10*(i/6) + i%6)
	}
	for _, gz := range []bool{false, true} {
		dir := filepath.Join(t.TempDir(), "my-fashion-data")
		enc := func(b []byte) []byte { return b }
		suffix := ""
		if gz {
			enc, suffix = func(b []byte) []byte { return gzipped(t, b) }, ".gz"
		}
		writeFile(t, filepath.Join(dir, "train-images-idx3-ubyte"+suffix), enc(idxBytes([]int{3, 2, 3}, pix)))
		writeFile(t, filepath.Join(dir, "train-labels-idx1-ubyte"+suffix), enc(idxBytes([]int{3}, []byte{9, 0, 4})))
		writeFile(t, filepath.Join(dir, "t10k-images-idx3-ubyte"+suffix), enc(idxBytes([]int{1, 2, 3}, pix[:6])))
		writeFile(t, filepath.Join(dir, "t10k-labels-idx1-ubyte"+suffix), enc(idxBytes([]int{1}, []byte{7})))
		for _, spec := range []string{"fmnist:" + dir, dir} {
			ds, err := Open(spec, Train)
			if err != nil {
				t.Fatalf("gz %v, %s: %v", gz, spec, err)
			}
			if ds.Len() != 3 || ds.Label(0) != 9 || ds.Label(2) != 4 || ds.ClassNames()[9] != "Ankle boot" {
				t.Errorf("gz %v, %s: len %d labels %d %d class 9 %q", gz, spec, ds.Len(), ds.Label(0), ds.Label(2), ds.ClassNames()[9])
			}
			img, err := ds.Image(2)
			if err != nil {
				t.Fatal(err)
			}
			g := img.(*image.Gray)
			if g.Bounds() != image.Rect(0, 0, 3, 2) || g.GrayAt(2, 1).Y != 25 || g.GrayAt(0, 0).Y != 20 {
				t.Errorf("gz %v: image 2 bounds %v, (2,1) = %d, (0,0) = %d; want 3x2, 25, 20", gz, g.Bounds(), g.GrayAt(2, 1).Y, g.GrayAt(0, 0).Y)
			}
		}
		te, err := Open("mnist:"+dir, Test)
		if err != nil {
			t.Fatal(err)
		}
		if te.Len() != 1 || te.Label(0) != 7 || te.ClassNames()[7] != "7 - seven" {
			t.Errorf("mnist test split: len %d label %d class %q", te.Len(), te.Label(0), te.ClassNames()[7])
		}
	}
}

func TestIDXErrors(t *testing.T) {
	pix := make([]byte, 12)
	tests := []struct {
		name           string
		images, labels []byte
		want           string
	}{
		{"count mismatch", idxBytes([]int{2, 2, 3}, pix), idxBytes([]int{3}, []byte{1, 2, 3}), "2 images but"},
		{"bad magic", append([]byte{0, 0, 9, 3}, idxBytes([]int{2, 2, 3}, pix)[4:]...), idxBytes([]int{2}, []byte{1, 2}), "not an idx file"},
		{"truncated", idxBytes([]int{2, 2, 3}, pix[:7]), idxBytes([]int{2}, []byte{1, 2}), "truncated"},
		{"trailing bytes", idxBytes([]int{2, 2, 3}, append(pix, 0)), idxBytes([]int{2}, []byte{1, 2}), "1 bytes follow the 12 data bytes"},
		{"bad label", idxBytes([]int{2, 2, 3}, pix), idxBytes([]int{2}, []byte{1, 12}), "label 12 of image 1"},
	}
	for _, tc := range tests {
		dir := filepath.Join(t.TempDir(), "mnist")
		writeFile(t, filepath.Join(dir, "train-images-idx3-ubyte"), tc.images)
		writeFile(t, filepath.Join(dir, "train-labels-idx1-ubyte"), tc.labels)
		_, err := Open(dir, Train)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
	// idx files in a directory whose name does not say which dataset.
	dir := filepath.Join(t.TempDir(), "digits")
	writeFile(t, filepath.Join(dir, "train-images-idx3-ubyte"), idxBytes([]int{2, 2, 3}, pix))
	writeFile(t, filepath.Join(dir, "train-labels-idx1-ubyte"), idxBytes([]int{2}, []byte{1, 2}))
	if _, err := Open(dir, Train); err == nil || !strings.Contains(err.Error(), "fmnist:"+dir) {
		t.Errorf("ambiguous idx: error %v, want one suggesting fmnist:%s", err, dir)
	}
	if _, err := Open("mnist:"+dir, Test); !errors.Is(err, ErrNoSplit) {
		t.Errorf("missing test split: error %v, want ErrNoSplit", err)
	}
}

// cifarBatch returns n CIFAR-10 records whose label is (first+k)%10 and
// whose red, green and blue planes hold first+k, 2 and 3.
func cifarBatch(first, n int) []byte {
	var b []byte
	for k := range n {
		rec := make([]byte, cifarRecord)
		rec[0] = byte((first + k) % 10)
		for j := range cifarPlane {
			rec[1+j] = byte(first + k)
			rec[1+cifarPlane+j] = 2
			rec[1+2*cifarPlane+j] = 3
		}
		b = append(b, rec...)
	}
	return b
}

func TestCIFAR10(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "cifar-10-batches-bin")
	for i := range 5 {
		writeFile(t, filepath.Join(dir, "data_batch_"+string(rune('1'+i))+".bin"), cifarBatch(2*i, 2))
	}
	writeFile(t, filepath.Join(dir, "test_batch.bin"), cifarBatch(100, 3))
	for _, spec := range []string{root, "cifar10:" + root, dir} {
		ds, err := Open(spec, Train)
		if err != nil {
			t.Fatal(err)
		}
		if ds.Len() != 10 || ds.Label(7) != 7 || ds.ClassNames()[1] != "automobile" {
			t.Errorf("%s: len %d label 7 = %d class 1 %q", spec, ds.Len(), ds.Label(7), ds.ClassNames()[1])
		}
		img, _ := ds.Image(7)
		if c := img.(*image.NRGBA).NRGBAAt(31, 31); c != (color.NRGBA{7, 2, 3, 255}) {
			t.Errorf("%s: image 7 pixel %v, want {7 2 3 255}", spec, c)
		}
	}
	te, err := Open(root, Test)
	if err != nil {
		t.Fatal(err)
	}
	if te.Len() != 3 || te.Label(2) != 2 {
		t.Errorf("test split: len %d label 2 = %d", te.Len(), te.Label(2))
	}
	writeFile(t, filepath.Join(dir, "batches.meta.txt"), []byte("a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\n"))
	ds, _ := Open(root, Test)
	if ds.ClassNames()[9] != "j" {
		t.Errorf("class names from batches.meta.txt: %v", ds.ClassNames())
	}
	writeFile(t, filepath.Join(dir, "data_batch_3.bin"), cifarBatch(0, 1)[:100])
	if _, err := Open(root, Train); err == nil || !strings.Contains(err.Error(), "data_batch_3.bin has 100 bytes") {
		t.Errorf("truncated batch: error %v", err)
	}
	os.Remove(filepath.Join(dir, "data_batch_3.bin"))
	if _, err := Open(root, Train); !errors.Is(err, ErrNoSplit) || !strings.Contains(err.Error(), "data_batch_3.bin is missing") {
		t.Errorf("missing batch: error %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f.png")
	writeFile(t, file, []byte("x"))
	empty := t.TempDir()
	tests := []struct {
		spec, split, want string
	}{
		{"/no/such/dir", Train, "check the data path"},
		{"fmnist:/no/such/dir", Train, "check the data path"},
		{"imagenet:/data", Train, `unknown dataset kind "imagenet"`},
		{file, Train, "is a file"},
		{empty, Train, "found no dataset"},
		{empty, "validation", `unknown split "validation"`},
		{"fmnist:", Train, "names no path"},
		{"folder:" + empty, Train, "has no class folders"},
		{"fmnist:" + empty, Train, "no train split"},
		{"cifar10:" + empty, Train, "no CIFAR-10 binary batches"},
	}
	for _, tc := range tests {
		ds, err := Open(tc.spec, tc.split)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "data: ") {
			t.Errorf("Open(%q, %q) error = %v, want one containing %q", tc.spec, tc.split, err, tc.want)
		}
		if ds != nil {
			t.Errorf("Open(%q, %q) returned the Dataset %#v with its error, want nil", tc.spec, tc.split, ds)
		}
	}
}

func TestFashionMNISTFromDebian(t *testing.T) {
	const dir = "/usr/share/datasets/fashion-mnist"
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("Fashion-MNIST not installed at %s (apt-get install dataset-fashion-mnist): %v", dir, err)
	}
	for _, tc := range []struct {
		split string
		n     int
	}{{Train, 60000}, {Test, 10000}} {
		ds, err := Open(dir, tc.split)
		if err != nil {
			t.Fatal(err)
		}
		if ds.Len() != tc.n || ds.ClassNames()[0] != "T-shirt/top" {
			t.Errorf("%s: %d images, class 0 %q; want %d, T-shirt/top", tc.split, ds.Len(), ds.ClassNames()[0], tc.n)
		}
		counts := make([]int, 10)
		for i := range ds.Len() {
			counts[ds.Label(i)]++
		}
		for c, k := range counts {
			if k != tc.n/10 {
				t.Errorf("%s: class %d has %d images, want %d", tc.split, c, k, tc.n/10)
			}
		}
		img, _ := ds.Image(0)
		if img.Bounds() != image.Rect(0, 0, 28, 28) {
			t.Errorf("%s: image bounds %v", tc.split, img.Bounds())
		}
	}
}

// TestFolderDecodesBMP reads a real BMP file through the registered decoder.
func TestFolderDecodesBMP(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "a", "x.bmp"), encode(t, solid(5, 4, color.NRGBA{200, 10, 30, 255}), ".bmp"))
	ds, err := OpenFolder(root, Train, Options{})
	if err != nil {
		t.Fatal(err)
	}
	img, err := ds.Image(0)
	if err != nil {
		t.Fatalf("bmp: %v", err)
	}
	if r, _, _, _ := img.At(1, 1).RGBA(); r>>8 != 200 || img.Bounds().Dx() != 5 {
		t.Errorf("bmp decoded wrong: bounds %v, red %d", img.Bounds(), r>>8)
	}
}

// TestIDXGzipVerified: a gzipped idx file is read to its end, so its
// CRC-32 and length are checked: a flipped byte in the compressed data, a
// cut, or bytes appended after the stream are errors naming the file,
// never images silently altered.
func TestIDXGzipVerified(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 3))
	pix := make([]byte, 20*8*8)
	for i := range pix {
		pix[i] = uint8(rng.IntN(256))
	}
	raw := idxBytes([]int{20, 8, 8}, pix)
	gz := gzipped(t, raw)
	labels := gzipped(t, idxBytes([]int{20}, make([]byte, 20)))
	mid := 10 + (len(gz)-18)/2 // a byte inside the deflate data
	flip := func(i int) []byte {
		b := bytes.Clone(gz)
		b[i] ^= 0x20
		return b
	}
	second := gzipped(t, []byte{1, 2, 3})
	tests := []struct {
		name   string
		images []byte
		want   string
	}{
		{"flipped byte in the compressed data", flip(mid), "the file is corrupt"},
		{"flipped byte in the CRC-32", flip(len(gz) - 6), "does not match the stream's CRC-32"},
		{"flipped byte in the length", flip(len(gz) - 2), "does not match the stream's CRC-32"},
		{"cut inside the data", gz[:mid], "truncated"},
		{"cut before the trailer", gz[:len(gz)-8], "truncated"},
		{"cut inside the trailer", gz[:len(gz)-3], "truncated"},
		{"garbage appended", append(bytes.Clone(gz), "garbage"...), "7 bytes that are not gzip data follow the gzip stream"},
		{"one byte appended", append(bytes.Clone(gz), 0), "1 bytes that are not gzip data follow"},
		{"a damaged second stream appended", append(bytes.Clone(gz), second[:len(second)-1]...), "truncated"},
		{"a second gzip stream appended", append(bytes.Clone(gz), second...), "3 bytes follow the 1280 data bytes"},
		{"uncompressed, bytes appended", append(bytes.Clone(raw), 0, 0), "2 bytes follow the 1280 data bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "fashion")
			images := filepath.Join(dir, "train-images-idx3-ubyte.gz")
			writeFile(t, images, tc.images)
			writeFile(t, filepath.Join(dir, "train-labels-idx1-ubyte.gz"), labels)
			_, err := Open(dir, Train)
			if err == nil || !strings.Contains(err.Error(), images) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "download it again") {
				t.Errorf("error %v, want one naming %s, containing %q and saying to download it again", err, images, tc.want)
			}
		})
	}
	// Whatever byte after the gzip header is flipped, the images are
	// refused or, where the flip changes nothing (padding bits), equal.
	refused := 0
	for i := 10; i < len(gz); i++ {
		_, got, err := decodeIDX(bytes.NewReader(flip(i)), "x.gz", 3, -1)
		switch {
		case err != nil:
			refused++
		case !bytes.Equal(got, pix):
			t.Fatalf("flipping byte %d of %d gave other images without an error", i, len(gz))
		}
	}
	if refused < len(gz)-10-2 {
		t.Errorf("only %d of %d flipped bytes were refused", refused, len(gz)-10)
	}
	t.Logf("%d of %d flipped bytes refused, the others changed nothing", refused, len(gz)-10)
}

func TestRedownloadAdvice(t *testing.T) {
	for _, tc := range []struct{ path, want string }{
		{"/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", "sudo apt-get install --reinstall dataset-fashion-mnist"},
		{"/usr/share/datasets/mnist/train-images-idx3-ubyte.gz", "dpkg -S /usr/share/datasets/mnist/train-images-idx3-ubyte.gz"},
		{"/home/me/data/train-images-idx3-ubyte.gz", "download it again"},
	} {
		if got := redownload(tc.path); !strings.Contains(got, tc.want) {
			t.Errorf("redownload(%s) = %q, want it to contain %q", tc.path, got, tc.want)
		}
	}
}

// TestFolderSplitLayouts: an image folder's test split is root/test,
// root/val or root/validation, whichever exists (ImageNet and Imagenette
// call it val); more than one is ambiguous; other directories beside the
// splits (a run directory, say) are not classes; and the test split is
// labelled by the train split's classes.
func TestFolderSplitLayouts(t *testing.T) {
	png := encode(t, solid(4, 4, color.NRGBA{1, 2, 3, 255}), ".png")
	jpg := encode(t, solid(5, 3, color.NRGBA{200, 100, 50, 255}), ".jpg")
	tests := []struct {
		name      string
		files     []string
		trainErr  string // "" when the train split opens
		testErr   string // "" when the test split opens
		noSplit   bool   // the test error matches ErrNoSplit
		testFiles []string
		testLabel []int
	}{
		{name: "train and val", files: []string{"train/x/1.png", "train/y/1.jpg", "val/x/2.jpg", "val/y/2.png"},
			testFiles: []string{"val/x/2.jpg", "val/y/2.png"}, testLabel: []int{0, 1}},
		{name: "train and test", files: []string{"train/x/1.png", "train/y/1.jpg", "test/y/2.png"},
			testFiles: []string{"test/y/2.png"}, testLabel: []int{1}},
		{name: "train and validation", files: []string{"train/x/1.png", "validation/x/2.png"},
			testFiles: []string{"validation/x/2.png"}, testLabel: []int{0}},
		{name: "a run directory beside the splits", files: []string{"train/x/1.png", "train/y/1.png", "val/y/2.jpg", "run/metrics.jsonl"},
			testFiles: []string{"val/y/2.jpg"}, testLabel: []int{1}},
		{name: "val lacks a class", files: []string{"train/a/1.png", "train/b/1.png", "train/c/1.png", "val/a/2.png", "val/c/2.png"},
			testFiles: []string{"val/a/2.png", "val/c/2.png"}, testLabel: []int{0, 2}},
		{name: "val has a class train lacks", files: []string{"train/a/1.png", "val/a/2.png", "val/z/2.png"},
			testErr: "class folders z of "},
		{name: "test and val", files: []string{"train/x/1.png", "test/x/2.png", "val/x/3.png"},
			testErr: "has test and val directories: it is not clear which is the test split; open one on its own (eval --test-data "},
		{name: "train only", files: []string{"train/x/1.png"},
			testErr: "has a train directory but no test split", noSplit: true},
		{name: "val only", files: []string{"val/x/1.png"},
			trainErr: "has a val directory but no train directory", testFiles: []string{"val/x/1.png"}, testLabel: []int{0}},
		{name: "flat", files: []string{"x/1.png", "y/1.png"},
			testErr: "has no test split", noSplit: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for _, f := range tc.files {
				b := png
				switch filepath.Ext(f) {
				case ".jpg":
					b = jpg
				case ".jsonl":
					b = []byte("{}\n")
				}
				writeFile(t, filepath.Join(root, f), b)
			}
			tr, err := Open("folder:"+root, Train)
			if tc.trainErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.trainErr) || !errors.Is(err, ErrNoSplit) {
					t.Errorf("train split: error %v, want ErrNoSplit containing %q", err, tc.trainErr)
				}
			} else if err != nil {
				t.Errorf("train split: %v", err)
			} else if tr.ClassNames()[0] == "run" || tr.ClassNames()[0] == "train" {
				t.Errorf("train split classes %v", tr.ClassNames())
			}
			te, err := Open("folder:"+root, Test)
			if tc.testErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.testErr) || errors.Is(err, ErrNoSplit) != tc.noSplit {
					t.Errorf("test split: error %v, want one containing %q (ErrNoSplit: %v)", err, tc.testErr, tc.noSplit)
				}
				return
			}
			if err != nil {
				t.Fatalf("test split: %v", err)
			}
			f := te.(*Folder)
			var files []string
			var labels []int
			for i := range f.Len() {
				rel, _ := filepath.Rel(root, f.Path(i))
				files, labels = append(files, filepath.ToSlash(rel)), append(labels, f.Label(i))
				if _, err := f.Image(i); err != nil {
					t.Errorf("test image %s: %v", rel, err)
				}
			}
			if !slices.Equal(files, tc.testFiles) || !slices.Equal(labels, tc.testLabel) {
				t.Errorf("test split files %v labels %v, want %v %v", files, labels, tc.testFiles, tc.testLabel)
			}
			if tr != nil && !slices.Equal(te.ClassNames(), tr.ClassNames()) {
				t.Errorf("test split classes %v, train split's %v", te.ClassNames(), tr.ClassNames())
			}
		})
	}
}

// TestOpenFolderDir: any directory of class folders opens as a split
// (eval's --test-data), labelled by the train split's classes when given.
func TestOpenFolderDir(t *testing.T) {
	png := encode(t, solid(4, 4, color.NRGBA{1, 2, 3, 255}), ".png")
	jpg := encode(t, solid(6, 5, color.NRGBA{9, 8, 7, 255}), ".jpg")
	base := t.TempDir()
	holdout := filepath.Join(base, "my holdout")
	writeFile(t, filepath.Join(holdout, "dog", "1.jpg"), jpg)
	writeFile(t, filepath.Join(holdout, "dog", "2.png"), png)
	writeFile(t, filepath.Join(holdout, "bird", "1.png"), png)
	splitRoot := filepath.Join(base, "imagenette")
	writeFile(t, filepath.Join(splitRoot, "train", "dog", "1.png"), png)
	writeFile(t, filepath.Join(splitRoot, "val", "dog", "1.png"), png)
	withRun := filepath.Join(base, "with-run")
	writeFile(t, filepath.Join(withRun, "train", "dog", "1.png"), png)
	writeFile(t, filepath.Join(withRun, "val", "dog", "1.png"), png)
	writeFile(t, filepath.Join(withRun, "run", "metrics.jsonl"), []byte("{}\n"))
	valClass := filepath.Join(base, "val-class")
	writeFile(t, filepath.Join(valClass, "dog", "1.png"), png)
	writeFile(t, filepath.Join(valClass, "val", "1.png"), png)
	tests := []struct {
		name       string
		dir        string
		classes    []string
		wantErr    string
		wantLabels []int
		wantNames  []string
	}{
		{"own classes", holdout, nil, "", []int{0, 1, 1}, []string{"bird", "dog"}},
		{"the train split's classes", holdout, []string{"bird", "cat", "dog"}, "", []int{0, 2, 2}, []string{"bird", "cat", "dog"}},
		{"a class the train split lacks", holdout, []string{"cat", "dog"}, "class folders bird of " + holdout + " are not classes of the train split (cat, dog)", nil, nil},
		{"a dataset root", splitRoot, nil, "holds split directories (train, val), not class folders: pass the split itself, e.g. " + filepath.Join(splitRoot, "val"), nil, nil},
		{"a dataset root with another directory", withRun, []string{"dog"}, "holds split directories (train, val), not class folders", nil, nil},
		{"a class called val", valClass, []string{"dog", "val"}, "", []int{0, 1}, []string{"dog", "val"}},
		{"a missing directory", filepath.Join(base, "nope"), nil, "no such file or directory", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := OpenFolderDir(tc.dir, tc.classes, Options{})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var labels []int
			for i := range f.Len() {
				labels = append(labels, f.Label(i))
				if _, err := f.Image(i); err != nil {
					t.Error(err)
				}
			}
			if !slices.Equal(labels, tc.wantLabels) || !slices.Equal(f.ClassNames(), tc.wantNames) {
				t.Errorf("labels %v classes %v, want %v %v", labels, f.ClassNames(), tc.wantLabels, tc.wantNames)
			}
		})
	}
}
