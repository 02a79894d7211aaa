package metrics

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// readJSONL parses every line of path, failing the test on a line that is
// not a JSON object with exactly the fields of a Step.
func readJSONL(t *testing.T, path string) []Step {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var steps []Step
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s:%d: %q does not parse: %v", path, n, sc.Text(), err)
		}
		for _, k := range jsonFields {
			if _, ok := m[k]; !ok {
				t.Errorf("%s:%d: no field %q in %s", path, n, k, sc.Text())
			}
		}
		for k := range m {
			if k != "skipped_images" && !slices.Contains(jsonFields, k) {
				t.Errorf("%s:%d: unexpected field %q", path, n, k)
			}
		}
		var s Step
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatal(err)
		}
		steps = append(steps, s)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return steps
}

func writeSteps(t *testing.T, w *JSONLWriter, from, to int64) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := w.Write(Step{Step: i, Epoch: int(i / 10), Loss: 5 - float64(i)/100, LR: 0.1, StepSeconds: 0.5, ImagesPerSecond: 256}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestJSONLAppend(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run") // does not exist yet
	w, err := OpenJSONL(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, FileName); w.Path() != want {
		t.Errorf("Path() = %q, want %q", w.Path(), want)
	}
	writeSteps(t, w, 0, 30)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readJSONL(t, w.Path()); len(got) != 30 {
		t.Fatalf("%d lines after the first run, want 30", len(got))
	}

	// A resumed run continues the file.
	w, err = OpenJSONL(dir)
	if err != nil {
		t.Fatal(err)
	}
	writeSteps(t, w, 30, 60)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got := readJSONL(t, w.Path())
	if len(got) != 60 {
		t.Fatalf("%d lines after resuming, want 60", len(got))
	}
	for i, s := range got {
		if s.Step != int64(i) {
			t.Fatalf("line %d holds step %d", i+1, s.Step)
		}
	}
}

// TestJSONLTornLastLine: a record a previous run did not finish (it died,
// or its disk filled) is removed on open, and said so; a file that is only
// a torn line becomes empty.
func TestJSONLTornLastLine(t *testing.T) {
	const whole = `{"step":0,"epoch":0,"loss":5,"lr":0.1,"step_seconds":0.5,"data_wait_seconds":0,"images_per_second":256}` + "\n"
	for _, tc := range []struct {
		name, content string
		dropped       int64
		kept          int
	}{
		{"torn after a record", whole + `{"step":1,"ep`, int64(len(`{"step":1,"ep`)), 1},
		{"only a torn line", `{"st`, 4, 0},
		{"clean", whole, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), FileName)
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			w, err := OpenJSONLFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if w.Dropped != tc.dropped {
				t.Errorf("Dropped = %d, want %d", w.Dropped, tc.dropped)
			}
			writeSteps(t, w, 1, 3)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
			if len(lines) != tc.kept+2 {
				t.Fatalf("file:\n%s\nwant %d kept and 2 new lines", b, tc.kept)
			}
			for _, l := range lines {
				if !json.Valid([]byte(l)) {
					t.Errorf("line %q is not valid JSON", l)
				}
			}
		})
	}
}

func TestJSONLClose(t *testing.T) {
	w, err := OpenJSONL(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := w.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	err = w.Write(Step{Step: 4})
	if err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Write after Close: %v, want an error saying the writer is closed", err)
	}
}

func TestOpenJSONLError(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := OpenJSONL(filepath.Join(file, "run")) // a directory under a file
	if err == nil || !strings.HasPrefix(err.Error(), "metrics: ") {
		t.Errorf("OpenJSONL under a file: %v, want a metrics: error", err)
	}
}
