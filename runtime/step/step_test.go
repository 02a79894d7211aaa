package step_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/simclr-ort/simclr-ort/gen"
	"github.com/simclr-ort/simclr-ort/graphs"
	"github.com/simclr-ort/simclr-ort/internal/gradcheck"
	"github.com/simclr-ort/simclr-ort/runtime/ort"
	"github.com/simclr-ort/simclr-ort/runtime/step"
)

// initialLossTolerance: at initialisation every projection is alike, so
// all 2N-1 logits of a row are nearly equal and the loss is ln(2N-1).
const initialLossTolerance = 0.01

func TestInitialLossIsLogOfNegativesPlusOne(t *testing.T) {
	gradcheck.InitORT(t)
	for _, cfg := range []graphs.Config{
		{Arch: "resnet18", Stem: "cifar", ImageSize: 16, Pairs: 32},
		{Arch: "resnet18", Stem: "imagenet", ImageSize: 64, Pairs: 32, BNGroups: 2},
		{Arch: "resnet50", Stem: "imagenet", ImageSize: 64, Pairs: 32, BNLowering: "primitive"},
		{Arch: "resnet18", Stem: "cifar", ImageSize: 32, Pairs: 128},
	} {
		cfg = cfg.Defaults()
		t.Run(cfg.Name(), func(t *testing.T) {
			built, err := gen.Build(cfg)
			if err != nil {
				t.Fatal(err)
			}
			md, err := step.New(built.Manifest, built.Train, ort.Options{IntraOpThreads: 2})
			if err != nil {
				t.Fatal(err)
			}
			defer md.Close()
			r := rand.New(rand.NewPCG(1, 2))
			md.Initialize(r)
			for i := range md.Views {
				md.Views[i] = r.Float32()
			}
			loss, err := md.Run()
			if err != nil {
				t.Fatal(err)
			}
			want := math.Log(float64(2*cfg.Pairs - 1))
			if rel := math.Abs(float64(loss)-want) / want; rel > initialLossTolerance {
				t.Errorf("initial loss %.5f, want ln(%d) = %.5f within %.0f%% (off by %.2f%%)", loss, 2*cfg.Pairs-1, want, 100*initialLossTolerance, 100*rel)
			} else {
				t.Logf("initial loss %.5f, ln(%d) = %.5f (%.3f%% off)", loss, 2*cfg.Pairs-1, want, 100*rel)
			}
			for i, g := range md.Grads {
				for _, x := range g {
					if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
						t.Fatalf("gradient of %s is not finite", built.Manifest.Params[i].Name)
					}
				}
			}
		})
	}
}
