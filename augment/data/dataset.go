package data

import (
	"errors"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"strings"
)

// Dataset is a labelled image dataset. Implementations are safe for
// concurrent use.
type Dataset interface {
	// Len returns the number of images.
	Len() int
	// Label returns the class index of image i, in [0, len(ClassNames())).
	Label(i int) int
	// Image decodes image i. The image may share memory with the dataset:
	// do not modify it. An unreadable or corrupt image gives an error.
	Image(i int) (image.Image, error)
	// ClassNames returns the class names, indexed by label.
	ClassNames() []string
}

// Splits of a dataset.
const (
	Train = "train"
	Test  = "test"
)

// ErrNoSplit is wrapped by the errors Open returns when the dataset exists
// but lacks the requested split.
var ErrNoSplit = errors.New("split not found")

// Kinds of dataset, as prefixes of an Open spec.
const (
	KindFashionMNIST = "fmnist"
	KindMNIST        = "mnist"
	KindCIFAR10      = "cifar10"
	KindFolder       = "folder"
)

var kinds = []string{KindFashionMNIST, KindMNIST, KindCIFAR10, KindFolder}

// Open opens the split ("train" or "test") of the dataset spec names, with
// the default Options. spec is KIND:PATH with KIND one of fmnist, mnist,
// cifar10 and folder, or a plain PATH whose kind is detected: idx files
// (train-images-idx3-ubyte and the like, gzipped or not) in a directory
// whose path names fashion or mnist, CIFAR-10 binary batches
// (data_batch_1.bin, test_batch.bin), or class folders (see OpenFolder for
// their splits). Errors say what was expected.
func Open(spec, split string) (Dataset, error) {
	return OpenWith(spec, split, Options{})
}

// OpenWith is Open with options: the JPEG decoder and the image size limit
// of image folders. Invalid options are an error, whatever the dataset.
func OpenWith(spec, split string, opts Options) (Dataset, error) {
	opts, err := opts.check()
	if err != nil {
		return nil, err
	}
	if split != Train && split != Test {
		return nil, fmt.Errorf("data: unknown split %q: use %q or %q", split, Train, Test)
	}
	kind, path := splitSpec(spec)
	if path == "" {
		return nil, fmt.Errorf("data: dataset %q names no path: pass KIND:PATH or a path, e.g. fmnist:/usr/share/datasets/fashion-mnist", spec)
	}
	st, err := os.Stat(path)
	if err != nil {
		if i := strings.Index(spec, ":"); kind == "" && i > 0 && !strings.ContainsAny(spec[:i], `/\.`) {
			return nil, fmt.Errorf("data: unknown dataset kind %q in %q: use one of %s followed by a path", spec[:i], spec, strings.Join(kinds, ":, ")+":")
		}
		return nil, fmt.Errorf("data: open dataset: %w; check the data path", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("data: dataset path %s is a file: pass the directory that holds the dataset", path)
	}
	if kind == "" {
		if kind, err = detect(path); err != nil {
			return nil, err
		}
	}
	switch kind {
	case KindFashionMNIST, KindMNIST:
		return dataset(OpenIDX(path, split, kind == KindFashionMNIST))
	case KindCIFAR10:
		return dataset(OpenCIFAR10(path, split))
	case KindFolder:
		return dataset(OpenFolder(path, split, opts))
	}
	panic("unreachable")
}

// dataset returns ds as a Dataset, and a nil Dataset (not one holding a
// nil pointer) with an error.
func dataset[D Dataset](ds D, err error) (Dataset, error) {
	if err != nil {
		return nil, err
	}
	return ds, nil
}

// splitSpec separates a known KIND: prefix from the path.
func splitSpec(spec string) (kind, path string) {
	for _, k := range kinds {
		if rest, ok := strings.CutPrefix(spec, k+":"); ok {
			return k, rest
		}
	}
	for alias, k := range map[string]string{"fashion-mnist": KindFashionMNIST, "cifar-10": KindCIFAR10, "imagefolder": KindFolder} {
		if rest, ok := strings.CutPrefix(spec, alias+":"); ok {
			return k, rest
		}
	}
	return "", spec
}

// detect guesses the kind of the dataset in directory dir.
func detect(dir string) (string, error) {
	var found []string
	idxFile, _, err := findIDX(dir, Train)
	if err != nil {
		idxFile, _, err = findIDX(dir, Test)
	}
	if err == nil {
		found = append(found, "idx")
	}
	if d := cifarDir(dir); d != "" {
		found = append(found, KindCIFAR10)
	}
	if hasSubdirs(dir) && len(found) == 0 {
		found = append(found, KindFolder)
	}
	switch {
	case len(found) == 0:
		return "", fmt.Errorf("data: found no dataset in %s: expected MNIST-format idx files (train-images-idx3-ubyte[.gz]), CIFAR-10 binary batches (data_batch_1.bin) or class folders (ROOT/CLASS/IMAGE)", dir)
	case len(found) > 1:
		return "", fmt.Errorf("data: %s holds both idx files and CIFAR-10 batches: say which with fmnist:%s, mnist:%s or cifar10:%s", dir, dir, dir, dir)
	}
	if found[0] != "idx" {
		return found[0], nil
	}
	// The directory holding the files (which may be torchvision's
	// ROOT/FashionMNIST/raw) says which dataset it is.
	p := filepath.Dir(idxFile)
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	p = strings.ToLower(filepath.ToSlash(p))
	switch {
	case strings.Contains(p, "fashion") || strings.Contains(p, "fmnist"):
		return KindFashionMNIST, nil
	case strings.Contains(p, "mnist"):
		return KindMNIST, nil
	}
	return "", fmt.Errorf("data: %s holds MNIST-format idx files: say which dataset they are with fmnist:%s or mnist:%s", dir, dir, dir)
}

// hasSubdirs reports whether dir has at least one subdirectory.
func hasSubdirs(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if isDir(filepath.Join(dir, e.Name()), e) {
			return true
		}
	}
	return false
}

// isDir reports whether the entry is a directory, following symbolic links.
func isDir(path string, e os.DirEntry) bool {
	if e.IsDir() {
		return true
	}
	if e.Type()&os.ModeSymlink != 0 {
		st, err := os.Stat(path)
		return err == nil && st.IsDir()
	}
	return false
}
