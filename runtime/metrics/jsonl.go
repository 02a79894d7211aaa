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
	size int64 // of the file after the last complete record
	// Dropped is the size in bytes of a torn last line (the end of a file
	// whose writer died or failed mid-record) that OpenJSONL removed; 0
	// when the file ended cleanly.
	Dropped int64
}

// OpenJSONL opens dir/metrics.jsonl for appending, creating dir and the file
// when they do not exist, so that a resumed run continues the file of the
// run it resumes.
//
// A resumed run repeats the steps between its checkpoint and the point where
// the previous run stopped: readers should keep the last record of each step
// number. A torn last line (no final newline: a previous run died or its
// disk filled in the middle of a record) is removed; Dropped says how many
// bytes that was.
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
	size, dropped, err := dropTornLine(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("metrics: append to %s: %w", path, err)
	}
	return &JSONLWriter{f: f, path: path, buf: make([]byte, 0, 512), size: size, Dropped: dropped}, nil
}

// dropTornLine truncates f after its last newline and returns the new size
// and how many bytes it dropped.
func dropTornLine(f *os.File) (size, dropped int64, err error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	size = fi.Size()
	const chunk = 4096
	buf := make([]byte, chunk)
	for end := size; end > 0; {
		start := max(end-chunk, 0)
		n, err := f.ReadAt(buf[:end-start], start)
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, 0, err
		}
		for i := n - 1; i >= 0; i-- {
			if buf[i] == '\n' {
				keep := start + int64(i) + 1
				if keep < size {
					if err := f.Truncate(keep); err != nil {
						return 0, 0, err
					}
				}
				return keep, size - keep, nil
			}
		}
		end = start
	}
	if size > 0 {
		if err := f.Truncate(0); err != nil {
			return 0, 0, err
		}
	}
	return 0, size, nil
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
		// A short write (a full disk) would leave a torn line: cut it.
		w.f.Truncate(w.size)
		return fmt.Errorf("metrics: write step %d to %s: %w", s.Step, w.path, err)
	}
	w.size += int64(len(w.buf))
	return nil
}

// WriteEval appends an evaluation record as one line.
func (w *JSONLWriter) WriteEval(e Eval) error {
	if w.f == nil {
		return fmt.Errorf("metrics: write the evaluation of step %d to %s: writer is closed", e.Step, w.path)
	}
	w.buf = append(e.AppendJSON(w.buf[:0]), '\n')
	if _, err := w.f.Write(w.buf); err != nil {
		w.f.Truncate(w.size)
		return fmt.Errorf("metrics: write the evaluation of step %d to %s: %w", e.Step, w.path, err)
	}
	w.size += int64(len(w.buf))
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
