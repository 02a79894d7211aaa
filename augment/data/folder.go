package data

import (
	"errors"
	"fmt"
	"image"
	_ "image/gif"  // register the GIF decoder
	_ "image/jpeg" // register the JPEG decoder (the fallback of libjpeg-turbo)
	_ "image/png"  // register the PNG decoder
	"os"
	"path/filepath"
	"slices"
	"strings"

	_ "golang.org/x/image/bmp"  // register the BMP decoder
	_ "golang.org/x/image/webp" // register the WebP decoder
)

// Extensions is the set of file extensions (lower case) an image folder
// lists; BMP and WebP are decoded by golang.org/x/image.
var Extensions = []string{".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp"}

// Folder is an image folder laid out as ROOT/CLASS/.../IMAGE, read like
// torchvision's ImageFolder: classes are the subdirectories of ROOT in
// sorted order, images are found recursively (following symbolic links),
// directories visited in sorted path order and files sorted within each.
type Folder struct {
	root    string
	classes []string
	files   []string
	labels  []int
	dec     imageDecoder
}

// Split directories of an image folder: the train split's, and the names a
// test split goes by (ImageNet, Imagenette and most ImageFolder datasets
// call it val).
const trainDir = "train"

var testDirs = []string{"test", "val", "validation"}

// OpenFolder opens the split of the image folder at root. If root holds a
// split directory (train, test, val or validation), the split is one of
// them and root's other directories are not classes: root/train for the
// train split, and for the test split whichever of root/test, root/val and
// root/validation exists (more than one is an error that says how to pick
// one). The test split's images are labelled by the train split's classes
// when root/train exists, so that labels mean the same in both. Otherwise
// root itself is the train split and there is no test split; OpenFolderDir
// opens any directory as a split.
func OpenFolder(root, split string, opts Options) (*Folder, error) {
	if split != Train && split != Test {
		return nil, fmt.Errorf("data: unknown split %q of image folder %s: use %q or %q", split, root, Train, Test)
	}
	opts, err := opts.check()
	if err != nil {
		return nil, err
	}
	dir, classRoot, err := folderSplitDir(root, split)
	if err != nil {
		return nil, err
	}
	var classes []string
	if classRoot != "" {
		if classes, err = subdirs(classRoot); err != nil {
			return nil, err
		}
	}
	return openFolder(dir, classes, opts)
}

// OpenFolderDir opens dir itself as one split of an image folder laid out
// as DIR/CLASS/.../IMAGE, whatever dir is called: for a test split kept
// apart from the train split (eval's --test-data). With classes nil, dir's
// class folders are the classes, as for OpenFolder. With classes (the train
// split's ClassNames), every class folder of dir must be one of them and
// its images get that class's label, so that labels mean the same in both
// splits; a class without a folder in dir has no images. A dir that holds
// split directories (train, val, ...) rather than class folders (only
// them, or, with classes, ones that are not classes) is an error that
// names the one to pass.
func OpenFolderDir(dir string, classes []string, opts Options) (*Folder, error) {
	opts, err := opts.check()
	if err != nil {
		return nil, err
	}
	dirs, err := subdirs(dir)
	if err != nil {
		return nil, err
	}
	var splits []string
	classSplit := false // a split name that is also a class of classes
	for _, d := range dirs {
		if d == trainDir || slices.Contains(testDirs, d) {
			splits = append(splits, d)
			classSplit = classSplit || slices.Contains(classes, d)
		}
	}
	if len(splits) > 0 && (len(splits) == len(dirs) || classes != nil && !classSplit) {
		return nil, fmt.Errorf("data: %s holds split directories (%s), not class folders: pass the split itself, e.g. %s", dir, strings.Join(splits, ", "), filepath.Join(dir, splits[len(splits)-1]))
	}
	return openFolder(dir, classes, opts)
}

// openFolder lists the images of dir's class folders; see OpenFolderDir
// for classes.
func openFolder(dir string, classes []string, opts Options) (*Folder, error) {
	dec, err := newImageDecoder(opts)
	if err != nil {
		return nil, err
	}
	found, err := subdirs(dir)
	if err != nil {
		return nil, err
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("data: %s has no class folders: lay images out as %s/CLASS/IMAGE", dir, dir)
	}
	f := &Folder{root: dir, classes: found, dec: dec}
	if classes != nil {
		var unknown []string
		for _, c := range found {
			if !slices.Contains(classes, c) {
				unknown = append(unknown, c)
			}
		}
		if len(unknown) > 0 {
			return nil, fmt.Errorf("data: class folders %s of %s are not classes of the train split (%s): a split's labels must be the train split's classes; rename or remove those folders", strings.Join(unknown, ", "), dir, strings.Join(classes, ", "))
		}
		f.classes = slices.Clone(classes)
	}
	var empty []string
	for _, class := range found {
		files, err := listImages(filepath.Join(dir, class))
		if err != nil {
			return nil, err
		}
		if len(files) == 0 {
			empty = append(empty, class)
		}
		label := slices.Index(f.classes, class)
		f.files = append(f.files, files...)
		for range files {
			f.labels = append(f.labels, label)
		}
	}
	if len(empty) > 0 {
		return nil, fmt.Errorf("data: class folders %s of %s hold no image files (%s): add images or remove the folders", strings.Join(empty, ", "), dir, strings.Join(Extensions, " "))
	}
	return f, nil
}

// subdirs lists the names of dir's subdirectories (following symbolic
// links), sorted: an image folder's classes, in ImageFolder's order.
func subdirs(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("data: read image folder: %w", err)
	}
	var dirs []string
	for _, e := range entries {
		if isDir(filepath.Join(dir, e.Name()), e) {
			dirs = append(dirs, e.Name())
		}
	}
	return dirs, nil
}

// folderSplitDir picks the directory of split under root, and the
// directory whose class folders label it ("" for the split's own).
func folderSplitDir(root, split string) (dir, classRoot string, err error) {
	dirs, err := subdirs(root)
	if err != nil {
		return "", "", err
	}
	hasTrain := slices.Contains(dirs, trainDir)
	var tests []string
	for _, d := range testDirs {
		if slices.Contains(dirs, d) {
			tests = append(tests, d)
		}
	}
	if !hasTrain && len(tests) == 0 {
		if split == Test {
			return "", "", fmt.Errorf("data: image folder %s has no test split: lay it out as %s/train/CLASS/IMAGE and %s/test/CLASS/IMAGE (or val), or open the test folder on its own (eval --test-data DIR): %w", root, root, root, ErrNoSplit)
		}
		return root, "", nil
	}
	if split == Train {
		if !hasTrain {
			return "", "", fmt.Errorf("data: image folder %s has a %s directory but no train directory: put the training images in %s/train/CLASS/IMAGE: %w", root, tests[0], root, ErrNoSplit)
		}
		return filepath.Join(root, trainDir), "", nil
	}
	switch len(tests) {
	case 0:
		return "", "", fmt.Errorf("data: image folder %s has a train directory but no test split (want one of %s), or open the test folder on its own (eval --test-data DIR): %w", root, strings.Join(testDirs, ", "), ErrNoSplit)
	case 1:
	default:
		return "", "", fmt.Errorf("data: image folder %s has %s directories: it is not clear which is the test split; open one on its own (eval --test-data %s) or remove the others", root, strings.Join(tests, " and "), filepath.Join(root, tests[0]))
	}
	if hasTrain {
		classRoot = filepath.Join(root, trainDir)
	}
	return filepath.Join(root, tests[0]), classRoot, nil
}

// listImages lists the image files under dir as torchvision's make_dataset
// does: sorted(os.walk(dir, followlinks=True)), files sorted in each.
func listImages(dir string) ([]string, error) {
	type dirFiles struct {
		path  string
		files []string
	}
	var all []dirFiles
	var walk func(path string, ancestors []os.FileInfo) error
	walk = func(path string, ancestors []os.FileInfo) error {
		st, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("data: list images: %w", err)
		}
		for _, a := range ancestors {
			if os.SameFile(a, st) {
				return nil // a symbolic link loop
			}
		}
		entries, err := os.ReadDir(path)
		if err != nil {
			return fmt.Errorf("data: list images: %w", err)
		}
		df := dirFiles{path: path}
		var subdirs []string
		for _, e := range entries {
			p := filepath.Join(path, e.Name())
			if isDir(p, e) {
				subdirs = append(subdirs, p)
			} else if slices.Contains(Extensions, strings.ToLower(filepath.Ext(e.Name()))) {
				df.files = append(df.files, p)
			}
		}
		all = append(all, df)
		for _, s := range subdirs {
			if err := walk(s, append(ancestors, st)); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(dir, nil); err != nil {
		return nil, err
	}
	slices.SortFunc(all, func(a, b dirFiles) int { return strings.Compare(a.path, b.path) })
	var files []string
	for _, df := range all {
		slices.Sort(df.files)
		files = append(files, df.files...)
	}
	return files, nil
}

// Len returns the number of images.
func (f *Folder) Len() int { return len(f.files) }

// Label returns the class of image i.
func (f *Folder) Label(i int) int { return f.labels[i] }

// Path returns the file of image i.
func (f *Folder) Path(i int) string { return f.files[i] }

// Image reads and decodes image i. JPEG files are decoded by libjpeg-turbo
// where it loads and Options.JPEGDecoder allows (PIL's pixels, as an
// opaque *image.NRGBA; see JPEGDecoder), everything else by the registered
// Go decoders. A file whose header declares more pixels than
// Options.MaxImagePixels is an error matching ErrImageTooLarge, before any
// decoding.
func (f *Folder) Image(i int) (image.Image, error) {
	return f.imageScratch(i, nil)
}

// imageScratch is Image decoding JPEG files into a caller's scratch image
// (see scratchImager).
func (f *Folder) imageScratch(i int, scratch **image.NRGBA) (image.Image, error) {
	b, err := os.ReadFile(f.files[i])
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	img, err := f.dec.decode(b, scratch)
	if errors.Is(err, ErrImageTooLarge) {
		return nil, fmt.Errorf("data: %s: %w", f.files[i], err)
	}
	if err != nil {
		return nil, fmt.Errorf("data: decode %s: %w; the file is corrupt or not an image", f.files[i], err)
	}
	if img.Bounds().Empty() {
		return nil, fmt.Errorf("data: decode %s: empty image", f.files[i])
	}
	return img, nil
}

// ClassNames returns the class folder names, sorted (for a split opened
// with the train split's classes, those).
func (f *Folder) ClassNames() []string { return f.classes }

// JPEGDecoder says which decoder reads the folder's JPEG files, for a line
// in a program's log.
func (f *Folder) JPEGDecoder() string { return f.dec.desc }

// String describes the dataset.
func (f *Folder) String() string {
	return fmt.Sprintf("folder:%s (%d images, %d classes)", f.root, len(f.files), len(f.classes))
}
