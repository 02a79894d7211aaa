package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/simclr-ort/simclr-ort/runtime/export"
)

// TestExportFormat runs `export --format` as a user would; the weights
// themselves are checked against torchvision in runtime/export.
func TestExportFormat(t *testing.T) {
	base := []string{"export", "--random-init", "--arch", "resnet18", "--stem", "cifar", "--image-size", "16"}
	tests := []struct {
		name  string
		args  []string
		code  int
		files map[string]int // file -> tensors in it
	}{
		{"safetensors", []string{"--format", "safetensors", "--out", "w.safetensors"}, 0, map[string]int{"w.safetensors": 120}},
		{"default name", []string{"--format", "safetensors"}, 0, map[string]int{"encoder.safetensors": 120}},
		{"with projector", []string{"--format", "safetensors", "--with-projector", "--out", "p.safetensors"}, 0,
			map[string]int{"p.safetensors": 120, "p.projector.safetensors": 2}},
		{"unknown format", []string{"--format", "pt"}, 2, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Chdir(t.TempDir())
			if code := run(context.Background(), append(append([]string(nil), base...), tt.args...)); code != tt.code {
				t.Fatalf("exit status %d, want %d", code, tt.code)
			}
			entries, _ := os.ReadDir(".")
			if len(entries) != len(tt.files) {
				t.Errorf("wrote %d files, want %v", len(entries), tt.files)
			}
			for name, n := range tt.files {
				tensors, meta, err := export.ReadSafetensors(filepath.Join(".", name))
				if err != nil {
					t.Fatal(err)
				}
				if len(tensors) != n || meta[export.KeyStem] != "cifar" || meta[export.KeySteps] != "0" {
					t.Errorf("%s: %d tensors, metadata %v; want %d tensors of a cifar-stem encoder at step 0", name, len(tensors), meta, n)
				}
			}
		})
	}
}
