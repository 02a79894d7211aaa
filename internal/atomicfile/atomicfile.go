// Package atomicfile writes files so that a crash at any moment leaves at
// the path either its previous content or the complete new one: the data
// goes to a temporary file in the same directory (path.tmp-PID-RANDOM),
// which is synced, renamed over the path, and the directory synced. Every
// file simclr-ort writes whole (checkpoints, graphs, exported models,
// .npy files, configurations) goes through it.
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
)

// File is a file being written atomically. Write to it, then Commit; Abort
// (or a failed Commit) removes the temporary file and leaves the path as it
// was.
type File struct {
	f         *os.File
	path, tmp string
	perm      os.FileMode
	done      bool
	// BeforeRename, when set, runs after the temporary file is complete,
	// synced and closed, and before it is renamed over the path; an error
	// it returns fails the Commit (for crash tests).
	BeforeRename func(tmp string) error
}

// Create starts writing path atomically; perm is the permission the file
// gets (before the umask), as os.WriteFile's.
func Create(path string, perm os.FileMode) (*File, error) {
	for range 100 {
		tmp := fmt.Sprintf("%s%d-%08x", TempPrefix(path), os.Getpid(), rand.Uint32())
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("create the temporary file: %w; check that the directory exists and is writable", err)
		}
		return &File{f: f, path: path, tmp: tmp, perm: perm}, nil
	}
	return nil, fmt.Errorf("create a temporary file in %s: too many name collisions", filepath.Dir(path))
}

// ErrUnsynced is what Commit's error wraps when the new content is in place
// but the directory could not be synced: it may not survive a power loss,
// yet the path no longer holds the previous content.
var ErrUnsynced = errors.New("the file is written but may not survive a power loss")

// Write writes to the temporary file.
func (f *File) Write(p []byte) (int, error) { return f.f.Write(p) }

// TempName is the temporary file's path.
func (f *File) TempName() string { return f.tmp }

// Commit makes the written data the path's content: sync, close, rename,
// sync the directory. Its errors name the temporary file, not the path:
// callers say what they were writing.
func (f *File) Commit() (err error) {
	if f.done {
		return fmt.Errorf("commit %s: committed or aborted already", f.tmp)
	}
	defer func() {
		if err != nil {
			f.Abort()
		}
	}()
	if err := f.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", f.tmp, err)
	}
	err = f.f.Close()
	f.f = nil
	if err != nil {
		return fmt.Errorf("close %s: %w", f.tmp, err)
	}
	if f.BeforeRename != nil {
		if err := f.BeforeRename(f.tmp); err != nil {
			return err
		}
	}
	if err := os.Rename(f.tmp, f.path); err != nil {
		return err
	}
	f.done = true
	if err := syncDir(filepath.Dir(f.path)); err != nil {
		return fmt.Errorf("%w: sync its directory: %v", ErrUnsynced, err)
	}
	return nil
}

// Abort discards what was written; the path keeps its previous content.
// It does nothing after Commit.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	if f.f != nil {
		f.f.Close()
		f.f = nil
	}
	os.Remove(f.tmp)
}

// WriteFile writes data to path atomically.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return WriteFunc(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteFunc writes path atomically with what write writes. Its errors
// start "write PATH: ".
func WriteFunc(path string, perm os.FileMode, write func(io.Writer) error) error {
	f, err := Create(path, perm)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := write(f); err != nil {
		f.Abort()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Commit(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// TempPrefix is the start of the names of path's temporary files.
func TempPrefix(path string) string { return path + ".tmp-" }

// RemoveStale removes the temporary files of path that an interrupted
// writer left, recognised by their exact name pattern. It is best effort,
// and safe only where no other process writes path (a locked run
// directory).
func RemoveStale(path string) {
	dir, prefix := filepath.Dir(path), filepath.Base(TempPrefix(path))
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if rest, ok := strings.CutPrefix(e.Name(), prefix); ok && isTempSuffix(rest) && e.Type().IsRegular() {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// isTempSuffix reports whether s is "<decimal pid>-<8 hex digits>".
func isTempSuffix(s string) bool {
	pid, rnd, ok := strings.Cut(s, "-")
	if !ok || pid == "" || len(rnd) != 8 {
		return false
	}
	for _, c := range pid {
		if c < '0' || c > '9' {
			return false
		}
	}
	for _, c := range rnd {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// syncDir makes a rename in dir durable. File systems that cannot sync a
// directory are not an error.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be synced there; rename is durable with the file
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP) {
		return nil
	}
	return err
}
