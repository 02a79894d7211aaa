package npy

import (
	"path/filepath"
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
