package main

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/simclr-ort/simclr-ort/internal/npy"
	"github.com/simclr-ort/simclr-ort/runtime/ort"
)

// wantFigure checks that base.png and base.svg were written.
func wantFigure(t *testing.T, base string) {
	t.Helper()
	for _, ext := range []string{".png", ".svg"} {
		if st, err := os.Stat(base + ext); err != nil || st.Size() < 1000 {
			t.Errorf("%s%s: %v (size %v)", base, ext, err, st)
		}
	}
}

func TestPlotRunDir(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	for s := range 40 {
		fmt.Fprintf(&b, `{"step":%d,"epoch":0,"loss":%g,"lr":0.3,"step_seconds":0.5,"data_wait_seconds":0.001,"images_per_second":128}`+"\n", s, 5-float64(s)/40)
	}
	b.WriteString(`{"step":39,"knn_top1":0.71}` + "\n")
	b.WriteString(`{"step":30,"epoch":0,"loss":4,"lr":0.3,"step_seconds":0.5,"data_wait_seconds":0.001,"images_per_second":128}` + "\n") // resumed
	if err := os.WriteFile(filepath.Join(dir, "metrics.jsonl"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if code := run(context.Background(), []string{"plot", dir}); code != 0 {
		t.Fatalf("plot RUNDIR exited %d", code)
	}
	wantFigure(t, filepath.Join(dir, "training"))
	if code := run(context.Background(), []string{"plot", t.TempDir()}); code != 1 {
		t.Errorf("plot of a directory without metrics.jsonl exited %d, want 1", code)
	}
}

func TestPlotEmbeddings(t *testing.T) {
	dir := t.TempDir()
	const n, d = 60, 8
	r := rand.New(rand.NewPCG(1, 2))
	feats := make([]float32, n*d)
	labels := make([]int64, n)
	for i := range n {
		labels[i] = int64(i % 3)
		for j := range d {
			feats[i*d+j] = float32(r.NormFloat64())
		}
		feats[i*d+int(labels[i])] += 3
	}
	path := filepath.Join(dir, "test.npy")
	if err := npy.SaveFloat32(path, []int64{n, d}, feats); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "test.labels.npy"))
	if err != nil {
		t.Fatal(err)
	}
	if err := npy.WriteInt64(f, []int64{n}, labels); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if code := run(context.Background(), []string{"plot", "--embeddings", path, "--classes", "cat,dog,fish"}); code != 0 {
		t.Fatalf("plot --embeddings exited %d", code)
	}
	wantFigure(t, filepath.Join(dir, "test.pca"))
	if code := run(context.Background(), []string{"plot", "--embeddings", path, "--labels", filepath.Join(dir, "none.npy")}); code != 1 {
		t.Errorf("plot with a missing labels file exited %d, want 1", code)
	}
}

func TestPlotBadUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"nothing to plot", []string{"plot"}},
		{"two run directories", []string{"plot", "a", "b"}},
		{"run directory and embeddings", []string{"plot", "a", "--embeddings", "x.npy"}},
		{"labels without embeddings", []string{"plot", "a", "--labels", "x.labels.npy"}},
		{"neighbours without an encoder", []string{"plot", "--neighbours", "--data", "fmnist:x"}},
		{"no neighbours", []string{"plot", "--neighbours", "--encoder", "e.onnx", "--data", "fmnist:x", "--k", "0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code := run(context.Background(), tc.args); code != 2 {
				t.Errorf("%v exited %d, want 2", tc.args, code)
			}
		})
	}
}

// TestPlotNeighbours draws the grid of a random-init encoder on a small
// image folder: dark images of class "dark", bright ones of "bright".
func TestPlotNeighbours(t *testing.T) {
	if _, err := ort.FindLibrary(""); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skipf("no ONNX Runtime library: %v", err)
	}
	root := t.TempDir()
	r := rand.New(rand.NewPCG(3, 4))
	for _, split := range []string{"train", "test"} {
		for c, class := range []string{"bright", "dark"} {
			folder := filepath.Join(root, split, class)
			if err := os.MkdirAll(folder, 0o755); err != nil {
				t.Fatal(err)
			}
			for i := range 6 {
				img := image.NewGray(image.Rect(0, 0, 16, 16))
				for p := range img.Pix {
					img.Pix[p] = uint8(200 - 150*c + r.IntN(50))
				}
				img.Set(i, i, color.Gray{Y: 128})
				f, err := os.Create(filepath.Join(folder, fmt.Sprintf("%d.png", i)))
				if err != nil {
					t.Fatal(err)
				}
				if err := png.Encode(f, img); err != nil {
					t.Fatal(err)
				}
				f.Close()
			}
		}
	}
	dir := t.TempDir()
	enc := filepath.Join(dir, "enc.onnx")
	if code := run(context.Background(), []string{"export", "--random-init", "--arch", "resnet18", "--stem", "cifar", "--image-size", "16", "--out", enc}); code != 0 {
		t.Fatalf("export exited %d", code)
	}
	out := filepath.Join(dir, "nb")
	if code := run(context.Background(), []string{"plot", "--neighbours", "--encoder", enc, "--data", "folder:" + root, "--queries", "4", "--k", "3", "--out", out}); code != 0 {
		t.Fatalf("plot --neighbours exited %d", code)
	}
	wantFigure(t, out)
	svg, err := os.ReadFile(out + ".svg")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(svg), "of 12 nearest training images") || !strings.Contains(string(svg), "bright") {
		t.Errorf("the grid does not show 4 queries x 3 neighbours with class names")
	}
}
