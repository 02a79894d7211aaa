package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteFileReplacesWholeOrNotAtAll(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.onnx")
	if err := WriteFile(path, []byte("first"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		write func(io.Writer) error
		want  string
		fails bool
	}{
		{"complete", func(w io.Writer) error { _, err := w.Write([]byte("second")); return err }, "second", false},
		{"writer fails halfway", func(w io.Writer) error { w.Write([]byte("thi")); return errors.New("disk on fire") }, "second", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := WriteFunc(path, 0o644, tc.write)
			if (err != nil) != tc.fails {
				t.Fatalf("WriteFunc: %v", err)
			}
			if tc.fails && !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != tc.want {
				t.Errorf("content %q (%v), want %q", got, err, tc.want)
			}
			if left := temps(t, dir); len(left) > 0 {
				t.Errorf("temporary files left: %v", left)
			}
		})
	}
}

func TestBeforeRenameFailureKeepsThePreviousFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ck")
	if err := WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Create(path, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("new"))
	var saw string
	f.BeforeRename = func(tmp string) error {
		saw = tmp
		if b, err := os.ReadFile(tmp); err != nil || string(b) != "new" {
			t.Errorf("before the rename the temporary file holds %q (%v)", b, err)
		}
		return errors.New("killed")
	}
	if err := f.Commit(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("Commit: %v, want the injected error", err)
	}
	if !strings.HasPrefix(filepath.Base(saw), "ck.tmp-") {
		t.Errorf("temporary file %s is not named ck.tmp-*", saw)
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Errorf("the file holds %q after a failed commit, want the old content", b)
	}
	if left := temps(t, dir); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestRemoveStaleOnlyTouchesItsOwnPattern(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ck")
	for _, name := range []string{"ck.tmp-123-0badf00d", "ck.tmp-notmine", "ck.tmp-1-XYZ12345", "other.tmp-1-0badf00d", "ck"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	RemoveStale(path)
	var left []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		left = append(left, e.Name())
	}
	if strings.Join(left, " ") != "ck ck.tmp-1-XYZ12345 ck.tmp-notmine other.tmp-1-0badf00d" {
		t.Errorf("left %v", left)
	}
}

func temps(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			out = append(out, e.Name())
		}
	}
	return out
}
