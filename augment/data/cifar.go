package data

import (
	"bufio"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"strings"
)

// CIFAR-10 binary record layout: one label byte, then 32x32 red, green and
// blue planes.
const (
	cifarSide   = 32
	cifarPlane  = cifarSide * cifarSide
	cifarRecord = 1 + 3*cifarPlane
)

var cifar10Classes = []string{"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}

// CIFAR10 is a split of CIFAR-10's binary version held in memory.
type CIFAR10 struct {
	name    string
	records []byte
	classes []string
}

// cifarDir returns the directory holding CIFAR-10 batches: dir itself or
// dir/cifar-10-batches-bin, or "" if neither has any.
func cifarDir(dir string) string {
	for _, d := range []string{dir, filepath.Join(dir, "cifar-10-batches-bin")} {
		for _, f := range []string{"data_batch_1.bin", "test_batch.bin"} {
			if st, err := os.Stat(filepath.Join(d, f)); err == nil && st.Mode().IsRegular() {
				return d
			}
		}
	}
	return ""
}

// OpenCIFAR10 reads the split of CIFAR-10 (data_batch_1.bin to
// data_batch_5.bin for train, test_batch.bin for test) from dir or
// dir/cifar-10-batches-bin. Class names come from batches.meta.txt when it
// is there.
func OpenCIFAR10(dir, split string) (*CIFAR10, error) {
	d := cifarDir(dir)
	if d == "" {
		return nil, fmt.Errorf("data: no CIFAR-10 binary batches in %s: want data_batch_1.bin ... data_batch_5.bin and test_batch.bin (the \"binary version\" of CIFAR-10), here or in %s", dir, filepath.Join(dir, "cifar-10-batches-bin"))
	}
	files := []string{"test_batch.bin"}
	if split == Train {
		files = []string{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"}
	}
	var records []byte
	for _, f := range files {
		p := filepath.Join(d, f)
		b, err := os.ReadFile(p)
		if err != nil {
			if os.IsNotExist(err) {
				return nil, fmt.Errorf("data: CIFAR-10 %s split incomplete in %s: %s is missing: %w", split, d, f, ErrNoSplit)
			}
			return nil, fmt.Errorf("data: %w", err)
		}
		if err := checkCIFARBatch(b, p); err != nil {
			return nil, err
		}
		if records == nil {
			records = make([]byte, 0, len(b)*len(files))
		}
		records = append(records, b...)
	}
	return &CIFAR10{
		name:    fmt.Sprintf("cifar10:%s (%s, %d images 32x32)", dir, split, len(records)/cifarRecord),
		records: records,
		classes: readMeta(filepath.Join(d, "batches.meta.txt"), cifar10Classes),
	}, nil
}

// checkCIFARBatch checks that b, the content of the batch file name, is a
// whole number of CIFAR-10 records with labels 0-9.
func checkCIFARBatch(b []byte, name string) error {
	if len(b) == 0 || len(b)%cifarRecord != 0 {
		return fmt.Errorf("data: %s has %d bytes, not a whole number of %d-byte CIFAR-10 records: the file is corrupt or from CIFAR-100; download the CIFAR-10 binary version again", name, len(b), cifarRecord)
	}
	for off := 0; off < len(b); off += cifarRecord {
		if b[off] >= byte(len(cifar10Classes)) {
			return fmt.Errorf("data: %s: record %d has label %d, want 0-9: the file is corrupt or from CIFAR-100; download the CIFAR-10 binary version again", name, off/cifarRecord, b[off])
		}
	}
	return nil
}

// readMeta returns the non-empty lines of path if there are exactly
// len(def) of them, else def.
func readMeta(path string, def []string) []string {
	f, err := os.Open(path)
	if err != nil {
		return def
	}
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if s := strings.TrimSpace(sc.Text()); s != "" {
			names = append(names, s)
		}
	}
	if sc.Err() != nil || len(names) != len(def) {
		return def
	}
	return names
}

// Len returns the number of images.
func (d *CIFAR10) Len() int { return len(d.records) / cifarRecord }

// Label returns the class of image i.
func (d *CIFAR10) Label(i int) int { return int(d.records[i*cifarRecord]) }

// Image returns image i as a new opaque *image.NRGBA.
func (d *CIFAR10) Image(i int) (image.Image, error) {
	rec := d.records[i*cifarRecord+1 : (i+1)*cifarRecord]
	r, g, b := rec[:cifarPlane], rec[cifarPlane:2*cifarPlane], rec[2*cifarPlane:]
	img := image.NewNRGBA(image.Rect(0, 0, cifarSide, cifarSide))
	pix := img.Pix[:4*cifarPlane]
	for j := range cifarPlane {
		p := pix[4*j : 4*j+4 : 4*j+4]
		p[0], p[1], p[2], p[3] = r[j], g[j], b[j], 0xff
	}
	return img, nil
}

// ClassNames returns the class names.
func (d *CIFAR10) ClassNames() []string { return d.classes }

// String describes the dataset.
func (d *CIFAR10) String() string { return d.name }
