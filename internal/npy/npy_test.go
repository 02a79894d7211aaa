package npy

import (
	"bytes"
	"encoding/binary"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name  string
		shape []int64
		data  []float32
	}{
		{"vector", []int64{3}, []float32{1, -2.5, 3e-8}},
		{"matrix", []int64{2, 2}, []float32{1, 2, 3, 4}},
		{"one", []int64{1}, []float32{5.5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "a.npy")
			if err := SaveFloat32(path, tc.shape, tc.data); err != nil {
				t.Fatal(err)
			}
			shape, data, err := LoadFloat32(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(shape) != len(tc.shape) || len(data) != len(tc.data) {
				t.Fatalf("got shape %v data %v", shape, data)
			}
			for i := range data {
				if data[i] != tc.data[i] {
					t.Fatalf("element %d: got %v want %v", i, data[i], tc.data[i])
				}
			}
		})
	}
}

func TestWriteRejectsWrongSize(t *testing.T) {
	if err := SaveFloat32(filepath.Join(t.TempDir(), "a.npy"), []int64{2, 2}, []float32{1}); err == nil {
		t.Fatal("want an error for 1 value in shape [2 2]")
	}
}

// FuzzParseFloat32: no file makes the reader panic or allocate more than
// the file holds; what it accepts has as many values as its shape says,
// and writes back to an equal array.
//
//	go test -run='^$' -fuzz=FuzzParseFloat32 -fuzztime=3m ./internal/npy
func FuzzParseFloat32(f *testing.F) {
	for _, tc := range []struct {
		shape []int64
		data  []float32
	}{
		{[]int64{3}, []float32{1, -2.5, 3e-8}},
		{[]int64{2, 2}, []float32{1, 2, 3, 4}},
		{[]int64{0}, nil},
		{[]int64{}, []float32{7}},
	} {
		var b bytes.Buffer
		if err := WriteFloat32(&b, tc.shape, tc.data); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
	}
	var i64 bytes.Buffer
	if err := WriteInt64(&i64, []int64{2}, []int64{1, 2}); err != nil {
		f.Fatal(err)
	}
	f.Add(i64.Bytes())
	for _, tc := range parseCases() {
		f.Add(tc.file)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var shape []int64
		var data []float32
		var err error
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		parseInt64(b, "fuzz.npy") // must not panic either
		shape, data, err = parseFloat32(b, "fuzz.npy")
		runtime.ReadMemStats(&after)
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20+4*uint64(len(b)) {
			t.Fatalf("parsing %d bytes allocated %d bytes (err %v)", len(b), grew, err)
		}
		if err != nil {
			return
		}
		n := int64(1)
		for _, d := range shape {
			n *= d
		}
		if n != int64(len(data)) {
			t.Fatalf("shape %v with %d values", shape, len(data))
		}
		var out bytes.Buffer
		if err := WriteFloat32(&out, shape, data); err != nil {
			t.Fatalf("write back: %v", err)
		}
		shape2, data2, err := parseFloat32(out.Bytes(), "again.npy")
		if err != nil || !slices.Equal(shape, shape2) || len(data) != len(data2) {
			t.Fatalf("read back: %v, shape %v, want %v", err, shape2, shape)
		}
	})
}

// npyFile returns a version 1.0 .npy file with the given header dictionary
// and body.
func npyFile(dict string, body []byte) []byte {
	b := append([]byte(nil), magic...)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(dict)))
	return append(append(b, dict...), body...)
}

type parseCase struct {
	name string
	file []byte
	want string // in the error
}

// parseCases are damaged files, among them the ones fuzzing and review
// found: a version 2 file cut inside its header length panicked, and
// shapes whose value count overflows (2^62 x 2 values claim 0 bytes, so
// an empty body passed the length check) made the reader allocate 2^62
// floats and panic.
func parseCases() []parseCase {
	dict := func(shape string) string {
		return "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }\n"
	}
	return []parseCase{
		{"version 2 cut in its header length", []byte("\x93NUMPY\x030000"), "truncated inside its header length"},
		{"not npy", []byte("PK\x03\x04 a zip file"), "is not a .npy file"},
		{"unknown version", []byte("\x93NUMPY\x09\x00\x00\x00"), "unsupported version 9"},
		{"header cut", npyFile(dict("(2,)"), nil)[:20], "is truncated"},
		{"float64", npyFile("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }\n", make([]byte, 8)), "must be little-endian float32"},
		{"fortran order", npyFile("{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }\n", make([]byte, 4)), "must be little-endian float32"},
		{"bad dimension", npyFile(dict("(2x,)"), make([]byte, 8)), "bad shape"},
		{"negative dimension", npyFile(dict("(0, -5)"), nil), "negative dimension"},
		{"count overflows to zero bytes", npyFile(dict("(4611686018427387904, 2)"), nil), "more values than memory holds"},
		{"count overflows to four bytes", npyFile(dict("(4611686018427387905,)"), make([]byte, 4)), "more values than memory holds"},
		{"short body", npyFile(dict("(3,)"), make([]byte, 8)), "holds 8 bytes for shape [3] (12 expected)"},
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range parseCases() {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parseFloat32(tc.file, "x.npy")
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "npy: x.npy") {
				t.Errorf("error %v, want one naming x.npy and containing %q", err, tc.want)
			}
			// The int64 reader shares the header checks (every case is
			// also wrong for it, if only by its float32 dtype).
			if _, _, err := parseInt64(tc.file, "x.npy"); err == nil || !strings.HasPrefix(err.Error(), "npy: x.npy") {
				t.Errorf("int64: error %v, want one naming x.npy", err)
			}
		})
	}
}
