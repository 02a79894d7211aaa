package simclr

import (
	"bytes"
	"strings"
	"testing"

	"github.com/simclr-ort/simclr-ort/graphs"
)

// TestDecisionOutputs checks that Options.Decisions records one output per
// call of every ReLU module and the stem's MaxPool, named after the
// PyTorch modules, in forward order, and changes nothing else.
func TestDecisionOutputs(t *testing.T) {
	for _, tc := range []struct {
		cfg            graphs.Config
		relus, maxpool int
	}{
		// Stem, two per BasicBlock, projector.
		{graphs.Config{Arch: "resnet18", Stem: "cifar", ImageSize: 16, Pairs: 2}, 1 + 8*2 + 1, 0},
		{graphs.Config{Arch: "resnet18", Stem: "imagenet", ImageSize: 32, Pairs: 2}, 1 + 8*2 + 1, 1},
		{graphs.Config{Arch: "resnet18", Stem: "imagenet", ImageSize: 32, Pairs: 2, ConvGrad: "gpu", BNLowering: "primitive"}, 1 + 8*2 + 1, 1},
		// Three per Bottleneck.
		{graphs.Config{Arch: "resnet50", Stem: "cifar", ImageSize: 8, Pairs: 2}, 1 + 16*3 + 1, 0},
	} {
		t.Run(tc.cfg.Defaults().Name(), func(t *testing.T) {
			plain, err := BuildWith(tc.cfg, "test", Options{})
			if err != nil {
				t.Fatal(err)
			}
			probed, err := BuildWith(tc.cfg, "test", Options{Decisions: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(plain.Decisions) != 0 {
				t.Errorf("a graph without Options.Decisions lists %d decisions", len(plain.Decisions))
			}
			relus, maxpool := 0, 0
			for _, d := range probed.Decisions {
				switch d.Kind {
				case "relu":
					relus++
				case "maxpool":
					maxpool++
				}
				if !strings.HasPrefix(d.Output, "decision."+d.Kind+"."+d.Module+".") || d.Call < 1 || len(d.Shape) < 2 {
					t.Errorf("decision %+v", d)
				}
			}
			if relus != tc.relus || maxpool != tc.maxpool {
				t.Errorf("%d ReLU and %d MaxPool decisions, want %d and %d", relus, maxpool, tc.relus, tc.maxpool)
			}
			first, last := probed.Decisions[0], probed.Decisions[len(probed.Decisions)-1]
			if first.Module != "encoder.relu" || last.Module != "projector.1" {
				t.Errorf("decisions run from %s to %s, want encoder.relu to projector.1", first.Module, last.Module)
			}
			if !bytes.Equal(plain.Inference, probed.Inference) || plain.Manifest.TrainSHA256 == probed.Manifest.TrainSHA256 {
				t.Error("decisions must add outputs to the training graph only")
			}
		})
	}
}

// TestMutantsChangeTheGraph checks that every mutant builds, changes the
// training graph, and that an unknown name is refused.
func TestMutantsChangeTheGraph(t *testing.T) {
	cfg := graphs.Config{Arch: "resnet18", Stem: "imagenet", ImageSize: 32, Pairs: 2}
	plain, err := BuildWith(cfg, "test", Options{})
	if err != nil {
		t.Fatal(err)
	}
	for name := range Mutants() {
		b, err := BuildWith(cfg, "test", Options{Mutant: name})
		if err != nil {
			t.Fatalf("mutant %s: %v", name, err)
		}
		if bytes.Equal(b.Train, plain.Train) {
			t.Errorf("mutant %s leaves the training graph unchanged", name)
		}
	}
	if _, err := BuildWith(cfg, "test", Options{Mutant: "no-such-rule"}); err == nil {
		t.Error("an unknown mutant was accepted")
	}
}
