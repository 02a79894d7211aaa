// Command viewdump writes SimCLR views of Fashion-MNIST images made by
// simclr-ort's augmentation, with the random decisions behind each, so that
// tools/study/compare_views.py can remake every view with torchvision's
// functional transforms (the PyTorch reference's path, on PIL images) and
// measure how far the two implementations' pixels are apart.
//
//	go run ./tools/study/viewdump -data fmnist:/usr/share/datasets/fashion-mnist -n 512 -out DIR
//
// DIR/views.npy is float32 [n,3,size,size]; DIR/params.json holds, per
// view, the image index and augment.Params (crop rectangle, flip, jitter
// order and factors, grayscale).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/simclr-ort/simclr-ort/augment"
	"github.com/simclr-ort/simclr-ort/augment/data"
	"github.com/simclr-ort/simclr-ort/internal/npy"
)

type view struct {
	Index  int            `json:"index"`
	Params augment.Params `json:"params"`
}

func main() {
	spec := flag.String("data", "fmnist:/usr/share/datasets/fashion-mnist", "dataset (train split)")
	n := flag.Int("n", 512, "views to write (one per image, the first n images)")
	size := flag.Int("size", 28, "view side")
	scaleMin := flag.Float64("crop-scale-min", 0.2, "RandomResizedCrop smallest area fraction")
	strength := flag.Float64("jitter-strength", 0.5, "colour jitter strength s")
	seed := flag.Uint64("seed", 1, "seed of the random decisions")
	out := flag.String("out", "views", "output directory")
	flag.Parse()
	if err := run(*spec, *n, *size, *scaleMin, *strength, *seed, *out); err != nil {
		fmt.Fprintln(os.Stderr, "viewdump:", err)
		os.Exit(1)
	}
}

func run(spec string, n, size int, scaleMin, strength float64, seed uint64, out string) error {
	ds, err := data.Open(spec, data.Train)
	if err != nil {
		return err
	}
	n = min(n, ds.Len())
	p, err := augment.New(augment.Config{Size: size, ScaleMin: scaleMin, ScaleMax: 1, JitterStrength: strength})
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(seed, 0))
	views := make([]float32, n*p.ViewLen())
	meta := make([]view, n)
	for i := range n {
		img, err := ds.Image(i)
		if err != nil {
			return fmt.Errorf("image %d: %w", i, err)
		}
		meta[i] = view{Index: i, Params: p.View(views[i*p.ViewLen():(i+1)*p.ViewLen()], img, rng)}
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if err := npy.SaveFloat32(filepath.Join(out, "views.npy"), []int64{int64(n), 3, int64(size), int64(size)}, views); err != nil {
		return err
	}
	b, err := json.MarshalIndent(meta, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, "params.json"), b, 0o644)
}
