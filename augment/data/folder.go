package data

import (
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
}

// OpenFolder opens the split of the image folder at root. If root holds
// only split directories (train, test, val, validation), the split's
// directory is used (test, else val, else validation, for the test split);
// otherwise root
// itself is the train split and there is no test split.
func OpenFolder(root, split string) (*Folder, error) {
	dir, err := folderSplitDir(root, split)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("augment/data: read image folder: %w", err)
	}
	f := &Folder{root: dir}
	for _, e := range entries {
		if isDir(filepath.Join(dir, e.Name()), e) {
			f.classes = append(f.classes, e.Name())
		}
	}
	if len(f.classes) == 0 {
		return nil, fmt.Errorf("augment/data: %s has no class folders: lay images out as %s/CLASS/IMAGE", dir, dir)
	}
	var empty []string
	for label, class := range f.classes {
		files, err := listImages(filepath.Join(dir, class))
		if err != nil {
			return nil, err
		}
		if len(files) == 0 {
			empty = append(empty, class)
		}
		f.files = append(f.files, files...)
		for range files {
			f.labels = append(f.labels, label)
		}
	}
	if len(empty) > 0 {
		return nil, fmt.Errorf("augment/data: class folders %s of %s hold no image files (%s): add images or remove the folders", strings.Join(empty, ", "), dir, strings.Join(Extensions, " "))
	}
	return f, nil
}

// folderSplitDir picks the directory of split under root.
func folderSplitDir(root, split string) (string, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return "", fmt.Errorf("augment/data: read image folder: %w", err)
	}
	var dirs []string
	for _, e := range entries {
		if isDir(filepath.Join(root, e.Name()), e) {
			dirs = append(dirs, e.Name())
		}
	}
	splitLayout := len(dirs) > 0
	for _, d := range dirs {
		if !slices.Contains([]string{"train", "test", "val", "validation"}, d) {
			splitLayout = false
		}
	}
	if splitLayout {
		candidates := []string{"train"}
		if split == Test {
			candidates = []string{"test", "val", "validation"}
		}
		for _, name := range candidates {
			if slices.Contains(dirs, name) {
				return filepath.Join(root, name), nil
			}
		}
		return "", fmt.Errorf("augment/data: image folder %s has no %s directory (want one of %s): %w", root, split, strings.Join(candidates, ", "), ErrNoSplit)
	}
	if split == Test {
		return "", fmt.Errorf("augment/data: image folder %s has no test split: lay it out as %s/train/CLASS/IMAGE and %s/test/CLASS/IMAGE, or pass the test folder itself: %w", root, root, root, ErrNoSplit)
	}
	return root, nil
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
			return fmt.Errorf("augment/data: list images: %w", err)
		}
		for _, a := range ancestors {
			if os.SameFile(a, st) {
				return nil // a symbolic link loop
			}
		}
		entries, err := os.ReadDir(path)
		if err != nil {
			return fmt.Errorf("augment/data: list images: %w", err)
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
// where it loads (PIL's pixels, as an opaque *image.NRGBA; see
// JPEGDecoder), everything else by the registered Go decoders.
func (f *Folder) Image(i int) (image.Image, error) {
	return f.imageScratch(i, nil)
}

// imageScratch is Image decoding JPEG files into a caller's scratch image
// (see scratchImager).
func (f *Folder) imageScratch(i int, scratch **image.NRGBA) (image.Image, error) {
	b, err := os.ReadFile(f.files[i])
	if err != nil {
		return nil, fmt.Errorf("augment/data: %w", err)
	}
	img, err := decodeImage(b, scratch)
	if err != nil {
		return nil, fmt.Errorf("augment/data: decode %s: %w; the file is corrupt or not an image", f.files[i], err)
	}
	if img.Bounds().Empty() {
		return nil, fmt.Errorf("augment/data: decode %s: empty image", f.files[i])
	}
	return img, nil
}

// ClassNames returns the class folder names, sorted.
func (f *Folder) ClassNames() []string { return f.classes }

// String describes the dataset.
func (f *Folder) String() string {
	return fmt.Sprintf("folder:%s (%d images, %d classes)", f.root, len(f.files), len(f.classes))
}
