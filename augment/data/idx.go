package data

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Class names of MNIST and Fashion-MNIST, as torchvision names them.
var (
	mnistClasses = []string{"0 - zero", "1 - one", "2 - two", "3 - three", "4 - four",
		"5 - five", "6 - six", "7 - seven", "8 - eight", "9 - nine"}
	fashionClasses = []string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
		"Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}
)

// IDX is MNIST or Fashion-MNIST held in memory, one *image.Gray per image.
type IDX struct {
	name    string
	rows    int
	cols    int
	pixels  []byte
	labels  []byte
	classes []string
}

// idxPrefixes maps a split to the file-name prefix of its images and labels.
var idxPrefixes = map[string][2]string{
	Train: {"train-images", "train-labels"},
	Test:  {"t10k-images", "t10k-labels"},
}

// findIDX returns the image and label files of split under dir, looking in
// dir, dir/raw and torchvision's dir/FashionMNIST/raw and dir/MNIST/raw,
// with names such as train-images-idx3-ubyte, train-images.idx3-ubyte and
// either with .gz.
func findIDX(dir, split string) (images, labels string, err error) {
	p := idxPrefixes[split]
	for _, d := range []string{dir, filepath.Join(dir, "raw"), filepath.Join(dir, "FashionMNIST", "raw"), filepath.Join(dir, "MNIST", "raw")} {
		images = findFile(d, p[0], "idx3-ubyte")
		labels = findFile(d, p[1], "idx1-ubyte")
		if images != "" && labels != "" {
			return images, labels, nil
		}
	}
	return "", "", fmt.Errorf("data: no %s split in %s: want %s-idx3-ubyte[.gz] and %s-idx1-ubyte[.gz]: %w", split, dir, p[0], p[1], ErrNoSplit)
}

// findFile returns the first of dir/prefix-suffix, dir/prefix.suffix and
// their .gz forms that exists, or "".
func findFile(dir, prefix, suffix string) string {
	for _, name := range []string{prefix + "-" + suffix, prefix + "." + suffix, prefix + "-" + suffix + ".gz", prefix + "." + suffix + ".gz"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p
		}
	}
	return ""
}

// OpenIDX reads the split of MNIST (fashion false) or Fashion-MNIST
// (fashion true) from the idx files in dir. Every file is read to its end:
// a gzipped file's CRC-32 and length are checked, and bytes after the data
// a header announces are an error.
func OpenIDX(dir, split string, fashion bool) (*IDX, error) {
	imagesPath, labelsPath, err := findIDX(dir, split)
	if err != nil {
		return nil, err
	}
	dims, pixels, err := readIDX(imagesPath, 3)
	if err != nil {
		return nil, err
	}
	ldims, labels, err := readIDX(labelsPath, 1)
	if err != nil {
		return nil, err
	}
	name := "mnist"
	if fashion {
		name = "fmnist"
	}
	return newIDX(fmt.Sprintf("%s:%s (%s, %%d images %%dx%%d)", name, dir, split), dims, pixels, imagesPath, ldims, labels, labelsPath, fashion)
}

// newIDX checks decoded image and label files against each other and
// returns the dataset; title is a format for the image count, width and
// height.
func newIDX(title string, dims []int, pixels []byte, imagesPath string, ldims []int, labels []byte, labelsPath string, fashion bool) (*IDX, error) {
	if dims[0] != ldims[0] {
		return nil, fmt.Errorf("data: %s has %d images but %s has %d labels: the files belong to different sets; %s", imagesPath, dims[0], labelsPath, ldims[0], redownload(imagesPath))
	}
	classes := mnistClasses
	if fashion {
		classes = fashionClasses
	}
	for i, l := range labels {
		if int(l) >= len(classes) {
			return nil, fmt.Errorf("data: %s: label %d of image %d is not a class (want 0-%d): the file is corrupt; %s", labelsPath, l, i, len(classes)-1, redownload(labelsPath))
		}
	}
	return &IDX{
		name:    fmt.Sprintf(title, dims[0], dims[2], dims[1]),
		rows:    dims[1],
		cols:    dims[2],
		pixels:  pixels,
		labels:  labels,
		classes: classes,
	}, nil
}

// redownload says how to replace the damaged dataset file path: reinstall
// the Debian package for Debian's copy of Fashion-MNIST, else download it
// again.
func redownload(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	switch {
	case strings.HasPrefix(path, "/usr/share/datasets/fashion-mnist/"):
		return "reinstall it: sudo apt-get install --reinstall dataset-fashion-mnist"
	case strings.HasPrefix(path, "/usr/share/"):
		return "reinstall the package that installed it (dpkg -S " + path + " names it; then sudo apt-get install --reinstall PACKAGE)"
	}
	return "download it again"
}

// gzipMagic starts every gzip file.
var gzipMagic = []byte{0x1f, 0x8b}

// readIDX reads an unsigned-byte idx file with ndims dimensions, gzipped or
// not, and returns its dimensions and data.
func readIDX(path string, ndims int) ([]int, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("data: %w", err)
	}
	defer f.Close()
	hint := int64(-1)
	if st, err := f.Stat(); err == nil {
		hint = st.Size()
		// A gzip file ends with its data's length mod 2^32, exact for
		// every idx file of MNIST's size; it only sizes the buffer.
		var isize [4]byte
		if _, err := f.ReadAt(isize[:], st.Size()-4); err == nil && hasGzipMagic(f) {
			hint = int64(binary.LittleEndian.Uint32(isize[:]))
		}
	}
	return decodeIDX(f, path, ndims, hint)
}

// hasGzipMagic reports whether the file f starts as a gzip file does.
func hasGzipMagic(f *os.File) bool {
	var m [2]byte
	_, err := f.ReadAt(m[:], 0)
	return err == nil && bytes.Equal(m[:], gzipMagic)
}

// errTrailing reports bytes after a gzip file's last member that do not
// start another member.
var errTrailing = errors.New("trailing bytes after the gzip stream")

// gzipMembers reads the concatenated members of a gzip file as one stream,
// as gzip.Reader does in multistream mode, except that bytes after the last
// member that do not start another are errTrailing, not a damaged header.
// zr must have multistream mode off.
type gzipMembers struct {
	zr *gzip.Reader
	br *bufio.Reader
}

func (g *gzipMembers) Read(p []byte) (int, error) {
	n, err := g.zr.Read(p)
	if err != io.EOF {
		return n, err
	}
	// The member ended and its CRC-32 and length matched.
	switch m, perr := g.br.Peek(len(gzipMagic)); {
	case len(m) == 0 && perr == io.EOF:
		return n, io.EOF
	case !bytes.Equal(m, gzipMagic):
		return n, errTrailing
	}
	if err := g.zr.Reset(g.br); err != nil {
		return n, err
	}
	g.zr.Multistream(false)
	return n, nil
}

// decodeIDX decodes an unsigned-byte idx file with ndims dimensions,
// gzipped or not, from r, reading it to its end: a gzip stream is checked
// against its CRC-32 and length (gzip.Reader checks them only at io.EOF),
// and bytes after the announced data are an error, so a damaged file is
// never half-used. name names the file in errors; sizeHint, when positive,
// is about the number of data bytes to expect (it only sizes the buffer,
// which otherwise starts at 1 MiB and grows as data arrives).
func decodeIDX(r io.Reader, name string, ndims int, sizeHint int64) ([]int, []byte, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	r = br
	gzipped := false
	if magic, err := br.Peek(2); err == nil && bytes.Equal(magic, gzipMagic) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("data: read %s: %w; the gzip file is corrupt, %s", name, err, redownload(name))
		}
		defer zr.Close()
		zr.Multistream(false)
		r, gzipped = &gzipMembers{zr: zr, br: br}, true
	}
	corrupt := func(err error) error {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			err = fmt.Errorf("file truncated: %w", err)
		}
		return fmt.Errorf("data: read %s: %w; the file is corrupt, %s", name, err, redownload(name))
	}
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, nil, corrupt(err)
	}
	if hdr[0] != 0 || hdr[1] != 0 || hdr[2] != 0x08 || int(hdr[3]) != ndims {
		return nil, nil, fmt.Errorf("data: %s is not an idx file of unsigned bytes with %d dimensions (header % x): check the file name", name, ndims, hdr)
	}
	dims := make([]int, ndims)
	total := 1
	for i := range dims {
		var d uint32
		if err := binary.Read(r, binary.BigEndian, &d); err != nil {
			return nil, nil, corrupt(err)
		}
		if d == 0 || d > 1<<28 {
			return nil, nil, corrupt(fmt.Errorf("dimension %d is %d", i, d))
		}
		dims[i] = int(d)
		total *= int(d)
		if total > 1<<34 {
			return nil, nil, corrupt(fmt.Errorf("%d dimensions of %v are too large", ndims, dims))
		}
	}
	// Grow the buffer as data arrives, so that a corrupt header cannot make
	// us allocate more than the file holds.
	var buf bytes.Buffer
	prealloc := min(int64(total), 1<<20)
	if sizeHint > 0 {
		prealloc = min(int64(total), sizeHint, 64<<20)
	}
	buf.Grow(int(prealloc))
	if n, err := io.CopyN(&buf, r, int64(total)); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, fmt.Errorf("data: read %s: file truncated after %d of %d data bytes; the file is corrupt, %s", name, n, total, redownload(name))
		}
		return nil, nil, corrupt(err)
	}
	// Read to the end: only there does gzip check its CRC-32 and length.
	extra, err := io.Copy(io.Discard, r)
	switch {
	case err != nil && gzipped:
		what := "gzip check failed"
		switch {
		case errors.Is(err, io.ErrUnexpectedEOF):
			what = "gzip check failed: file truncated inside the gzip stream or its trailer"
		case errors.Is(err, gzip.ErrChecksum):
			what = "gzip check failed: the data does not match the stream's CRC-32 and length (a damaged byte)"
		case errors.Is(err, errTrailing):
			n, _ := io.Copy(io.Discard, br)
			what = fmt.Sprintf("gzip check failed: %d bytes that are not gzip data follow the gzip stream", n)
		}
		return nil, nil, fmt.Errorf("data: read %s: %s: %w; the file is corrupt, %s", name, what, err, redownload(name))
	case err != nil:
		return nil, nil, corrupt(err)
	case extra > 0:
		return nil, nil, fmt.Errorf("data: read %s: %d bytes follow the %d data bytes its header announces (dimensions %v); the file is corrupt, %s", name, extra, total, dims, redownload(name))
	}
	return dims, buf.Bytes(), nil
}

// Len returns the number of images.
func (d *IDX) Len() int { return len(d.labels) }

// Label returns the class of image i.
func (d *IDX) Label(i int) int { return int(d.labels[i]) }

// Image returns image i as an *image.Gray sharing the dataset's memory.
func (d *IDX) Image(i int) (image.Image, error) {
	n := d.rows * d.cols
	return &image.Gray{Pix: d.pixels[i*n : (i+1)*n : (i+1)*n], Stride: d.cols, Rect: image.Rect(0, 0, d.cols, d.rows)}, nil
}

// ClassNames returns torchvision's class names.
func (d *IDX) ClassNames() []string { return d.classes }

// String describes the dataset.
func (d *IDX) String() string { return d.name }
