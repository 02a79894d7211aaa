package metrics

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// FileName is the name of the metrics file in the run directory.
const FileName = "metrics.jsonl"

// JSONLWriter appends one JSON object per step, one per line, to a file.
//
// Every record goes to the file in a single write(2) as soon as it is
// written: the per-step cost is one system call, about a microsecond or two
// (BenchmarkJSONL), negligible next to a training step, and a crash of the
// process loses nothing already written. Records are not fsynced; a crash of
// the machine may lose what the kernel had not yet written back.
//
// A JSONLWriter is not safe for concurrent use.
type JSONLWriter struct {
	f    *os.File
	path string
	buf  []byte
}

// OpenJSONL opens dir/metrics.jsonl for appending, creating dir and the file
// when they do not exist, so that a resumed run continues the file of the
// run it resumes. When the file does not end in a newline (a previous run
// died in the middle of a line), a newline is written first so that the new
// records start on a line of their own.
//
// A resumed run repeats the steps between its checkpoint and the point where
// the previous run stopped: readers should keep the last record of each step
// number.
func OpenJSONL(dir string) (*JSONLWriter, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("metrics: create run directory for %s: %w", FileName, err)
	}
	return OpenJSONLFile(filepath.Join(dir, FileName))
}

// OpenJSONLFile is OpenJSONL for a file path of the caller's choice.
func OpenJSONLFile(path string) (*JSONLWriter, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("metrics: open %s for appending: %w", path, err)
	}
	if err := terminateLastLine(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("metrics: append to %s: %w", path, err)
	}
	return &JSONLWriter{f: f, path: path, buf: make([]byte, 0, 512)}, nil
}

// terminateLastLine writes a newline to f when f is not empty and does not
// end in one.
func terminateLastLine(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() == 0 {
		return nil
	}
	var last [1]byte
	if _, err := f.ReadAt(last[:], fi.Size()-1); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if last[0] == '\n' {
		return nil
	}
	_, err = f.Write([]byte{'\n'})
	return err
}

// Path returns the path of the file.
func (w *JSONLWriter) Path() string { return w.path }

// Write appends s as one line. It does not allocate.
func (w *JSONLWriter) Write(s Step) error {
	if w.f == nil {
		return fmt.Errorf("metrics: write step %d to %s: writer is closed", s.Step, w.path)
	}
	w.buf = s.AppendJSON(w.buf[:0])
	w.buf = append(w.buf, '\n')
	if _, err := w.f.Write(w.buf); err != nil {
		return fmt.Errorf("metrics: write step %d to %s: %w", s.Step, w.path, err)
	}
	return nil
}

// Close closes the file. Closing a closed writer does nothing and returns nil.
func (w *JSONLWriter) Close() error {
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	if err != nil {
		return fmt.Errorf("metrics: close %s: %w", w.path, err)
	}
	return nil
}
