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
	return "", "", fmt.Errorf("augment/data: no %s split in %s: want %s-idx3-ubyte[.gz] and %s-idx1-ubyte[.gz]: %w", split, dir, p[0], p[1], ErrNoSplit)
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
// (fashion true) from the idx files in dir.
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
	if dims[0] != ldims[0] {
		return nil, fmt.Errorf("augment/data: %s has %d images but %s has %d labels: the files belong to different sets; download them again", imagesPath, dims[0], labelsPath, ldims[0])
	}
	classes := mnistClasses
	name := "mnist"
	if fashion {
		classes, name = fashionClasses, "fmnist"
	}
	for i, l := range labels {
		if int(l) >= len(classes) {
			return nil, fmt.Errorf("augment/data: %s: label %d of image %d is not a class (want 0-%d): the file is corrupt; download it again", labelsPath, l, i, len(classes)-1)
		}
	}
	return &IDX{
		name:    fmt.Sprintf("%s:%s (%s, %d images %dx%d)", name, dir, split, dims[0], dims[2], dims[1]),
		rows:    dims[1],
		cols:    dims[2],
		pixels:  pixels,
		labels:  labels,
		classes: classes,
	}, nil
}

// readIDX reads an unsigned-byte idx file with ndims dimensions, gzipped or
// not, and returns its dimensions and data.
func readIDX(path string, ndims int) ([]int, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("augment/data: %w", err)
	}
	defer f.Close()
	var r io.Reader = bufio.NewReaderSize(f, 1<<16)
	br := r.(*bufio.Reader)
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("augment/data: read %s: %w; the file is corrupt, download it again", path, err)
		}
		defer zr.Close()
		r = zr
	}
	corrupt := func(err error) error {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			err = fmt.Errorf("file truncated: %w", err)
		}
		return fmt.Errorf("augment/data: read %s: %w; the file is corrupt, download it again", path, err)
	}
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, nil, corrupt(err)
	}
	if hdr[0] != 0 || hdr[1] != 0 || hdr[2] != 0x08 || int(hdr[3]) != ndims {
		return nil, nil, fmt.Errorf("augment/data: %s is not an idx file of unsigned bytes with %d dimensions (header % x): check the file name", path, ndims, hdr)
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
	buf.Grow(min(total, 64<<20))
	if n, err := io.CopyN(&buf, r, int64(total)); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, fmt.Errorf("augment/data: read %s: file truncated after %d of %d data bytes; the file is corrupt, download it again", path, n, total)
		}
		return nil, nil, corrupt(err)
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
