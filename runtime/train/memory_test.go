package train

import (
	"testing"

	"github.com/simclr-ort/simclr-ort/graphs"
)

func TestStepMemory(t *testing.T) {
	small := StepMemory(graphs.Config{Arch: "resnet18", Stem: "imagenet", ImageSize: 28, Pairs: 128})
	// Measured: a ResNet18 28 px batch-128 step peaks at 0.6-0.75 GB RSS
	// with ONNX Runtime; the bound must stay below that.
	if small <= 10<<20 || small > 600<<20 {
		t.Errorf("ResNet18 28 px batch 128: %d MB, want a lower bound between 10 and 600 MB", small>>20)
	}
	huge := StepMemory(graphs.Config{Arch: "resnet18", Stem: "imagenet", ImageSize: 100000, Pairs: 128})
	if huge < 1<<40 {
		t.Errorf("100000 px: %d GB, want more than a terabyte", huge>>30)
	}
	if r50 := StepMemory(graphs.Config{Arch: "resnet50", Stem: "imagenet", ImageSize: 28, Pairs: 128}); r50 <= small {
		t.Errorf("ResNet50 (%d MB) needs no more than ResNet18 (%d MB)", r50>>20, small>>20)
	}
}
