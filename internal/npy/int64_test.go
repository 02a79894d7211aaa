package npy

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestLoadInt64(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name  string
		shape []int64
		data  []int64
	}{
		{"vector", []int64{4}, []int64{0, 9, -1, 1 << 40}},
		{"matrix", []int64{2, 3}, []int64{1, 2, 3, 4, 5, 6}},
		{"empty", []int64{0}, []int64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name+".npy")
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := WriteInt64(f, tt.shape, tt.data); err != nil {
				t.Fatal(err)
			}
			f.Close()
			shape, data, err := LoadInt64(path)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(shape, tt.shape) || !slices.Equal(data, tt.data) {
				t.Errorf("read %v %v, wrote %v %v", shape, data, tt.shape, tt.data)
			}
		})
	}
	floats := filepath.Join(dir, "f.npy")
	if err := SaveFloat32(floats, []int64{2}, []float32{1, 2}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadInt64(floats); err == nil || !strings.Contains(err.Error(), "int64") {
		t.Errorf("a float32 file read as int64: %v", err)
	}
}
