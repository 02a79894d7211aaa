package checkpoint

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
)

// beforeRename, when set by a test, runs after the temporary file is
// complete and before it is renamed over the checkpoint; an error it
// returns fails the Save.
var beforeRename func(tmp string) error

// Save writes ck to path atomically: to a temporary file in path's
// directory, synced, then renamed over path, then the directory synced. A
// crash at any moment leaves at path either its previous content or the
// complete new checkpoint. On error the temporary file is removed and path
// is untouched. Save first removes temporary files that an interrupted Save
// to the same path left behind, so concurrent Saves to one path are not
// supported. A zero ck.Saved is recorded as the time now. Save does not
// modify ck.
func Save(path string, ck *Checkpoint) (err error) {
	head, err := prepare(ck)
	if err != nil {
		return fmt.Errorf("checkpoint: save %s: %w", path, err)
	}
	removeStale(path)
	f, tmp, err := createTemp(path)
	if err != nil {
		return fmt.Errorf("checkpoint: save %s: %w; check that the directory exists and is writable", path, err)
	}
	closed := false
	defer func() {
		if err != nil {
			if !closed {
				f.Close()
			}
			os.Remove(tmp)
		}
	}()
	if err := write(f, ck, head); err != nil {
		return fmt.Errorf("checkpoint: save %s: write %s: %w", path, tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("checkpoint: save %s: sync %s: %w", path, tmp, err)
	}
	closed = true
	if err := f.Close(); err != nil {
		return fmt.Errorf("checkpoint: save %s: close %s: %w", path, tmp, err)
	}
	if beforeRename != nil {
		if err := beforeRename(tmp); err != nil {
			return fmt.Errorf("checkpoint: save %s: %w", path, err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("checkpoint: save %s: %w", path, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("checkpoint: save %s: the checkpoint is written but may not survive a power loss: sync directory: %w", path, err)
	}
	return nil
}

// tempPrefix is the start of the names of path's temporary files.
func tempPrefix(path string) string { return path + ".tmp-" }

// createTemp creates a new temporary file next to path, named
// path.tmp-<pid>-<random>, with the permissions os.Create gives.
func createTemp(path string) (*os.File, string, error) {
	for range 100 {
		name := fmt.Sprintf("%s%d-%08x", tempPrefix(path), os.Getpid(), rand.Uint32())
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		return f, name, err
	}
	return nil, "", fmt.Errorf("create a temporary file next to %s: too many name collisions", path)
}

// removeStale removes temporary files of path that an interrupted Save
// left, recognised by their exact name pattern. It is best effort.
func removeStale(path string) {
	dir, prefix := filepath.Dir(path), filepath.Base(tempPrefix(path))
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

// Load reads and checks the checkpoint at path. A file that is truncated,
// damaged or not a checkpoint gives an error that says so and matches
// ErrCorrupt.
func Load(path string) (*Checkpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: load: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("checkpoint: load: %w", err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("checkpoint: load %s: it is a directory; pass the checkpoint file", path)
	}
	return decode(bufio.NewReaderSize(f, bufSize), st.Size(), path)
}
