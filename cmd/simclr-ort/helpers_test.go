package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// smallFolder writes 2 classes of 12 distinct 12x12 PNG images.
func smallFolder(t *testing.T) string {
	t.Helper()
	data := t.TempDir()
	for c := range 2 {
		dir := filepath.Join(data, fmt.Sprintf("class%d", c))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i := range 12 {
			img := image.NewNRGBA(image.Rect(0, 0, 12, 12))
			for p := range img.Pix {
				img.Pix[p] = uint8(p*7 + i*31 + c*90 + p*p*i%13)
			}
			f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%d.png", i)))
			if err != nil {
				t.Fatal(err)
			}
			png.Encode(f, img)
			f.Close()
		}
	}
	return data
}

func trainArgs(data, out string, extra ...string) []string {
	return append([]string{"train", "--data", "folder:" + data, "--arch", "resnet18", "--stem", "cifar", "--image-size", "12",
		"--projection-dim", "8", "--log-every", "1", "--threads", "1", "--workers", "1", "--seed", "5", "--out", out}, extra...)
}

// losses reads the per-step losses of a run's metrics.jsonl.
func losses(t *testing.T, dir string) map[int64]float64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]float64{}
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var r struct {
			Step int64   `json:"step"`
			Loss float64 `json:"loss"`
		}
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("metrics.jsonl: %v", err)
		}
		out[r.Step] = r.Loss
	}
	return out
}
