package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"

	"github.com/simclr-ort/simclr-ort/gen"
	"github.com/simclr-ort/simclr-ort/graphs"
	"github.com/simclr-ort/simclr-ort/runtime/checkpoint"
	"github.com/simclr-ort/simclr-ort/runtime/export"
	"github.com/simclr-ort/simclr-ort/runtime/optim"
	"github.com/simclr-ort/simclr-ort/runtime/step"
	"github.com/spf13/pflag"
)

type exportOptions struct {
	checkpoint    string
	out           string
	format        string
	withProjector bool
	randomInit    bool
	seed          uint64
	config        graphs.Config
}

func exportFlags(fs *pflag.FlagSet) func(context.Context) error {
	var o exportOptions
	fs.StringVar(&o.checkpoint, "checkpoint", "", "checkpoint to export (RUNDIR/checkpoint.ckpt)")
	fs.StringVar(&o.out, "out", "encoder.onnx", "the file to write (default encoder.safetensors with --format safetensors)")
	fs.StringVar(&o.format, "format", "onnx", "onnx: a standalone ONNX model; safetensors: the weights under torchvision's state_dict names, for PyTorch (resnet18().load_state_dict(sd, strict=False) misses only fc)")
	fs.BoolVar(&o.withProjector, "with-projector", false, "also output the projection z (onnx), or write the projector's weights to OUT.projector.safetensors (safetensors)")
	fs.BoolVar(&o.randomInit, "random-init", false, "export freshly initialised weights (a baseline) for the configuration given by the flags below, instead of a checkpoint")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the weights with --random-init")
	addConfigFlags(fs, &o.config)
	return func(ctx context.Context) error {
		if o.format == "safetensors" && !fs.Changed("out") {
			o.out = "encoder.safetensors"
		}
		if !o.randomInit {
			// A checkpoint knows its configuration; flags that would
			// describe another one were silently ignored before.
			var given []string
			for _, name := range append(configFlagNames, "seed") {
				if fs.Changed(name) {
					given = append(given, "--"+name)
				}
			}
			if len(given) > 0 {
				return usageError{fmt.Errorf("export: %s describe a configuration, which only --random-init takes; a --checkpoint exports the configuration it was trained with: drop them", strings.Join(given, ", "))}
			}
		}
		return runExport(ctx, o)
	}
}

func runExport(_ context.Context, o exportOptions) error {
	if o.format != "onnx" && o.format != "safetensors" {
		return usageError{fmt.Errorf("export: unknown --format %q; use onnx or safetensors", o.format)}
	}
	var ck *checkpoint.Checkpoint
	switch {
	case o.randomInit && o.checkpoint != "":
		return usageError{fmt.Errorf("export: give --checkpoint or --random-init, not both")}
	case o.randomInit:
		var err error
		if ck, err = randomCheckpoint(o.config, o.seed); err != nil {
			return err
		}
	case o.checkpoint != "":
		var err error
		if ck, err = checkpoint.Load(o.checkpoint); err != nil {
			return err
		}
	default:
		return usageError{fmt.Errorf("export: --checkpoint PATH is required (or --random-init for an untrained baseline)")}
	}
	if o.format == "safetensors" {
		files, err := export.WriteSafetensors(o.out, ck, export.Options{WithProjector: o.withProjector})
		if err != nil {
			return err
		}
		fmt.Printf("wrote %s: %s weights at step %d under torchvision's state_dict names\n", strings.Join(files, " and "), ck.Config.Name(), ck.Step)
		return nil
	}
	model, err := export.Encoder(ck, export.Options{WithProjector: o.withProjector})
	if err != nil {
		return err
	}
	if err := writeAtomically(o.out, model); err != nil {
		return err
	}
	fmt.Printf("wrote %s: %s encoder at step %d, %d MB, input images [N,3,%d,%d], output features [N,%d]\n",
		o.out, ck.Config.Name(), ck.Step, len(model)>>20, ck.Config.ImageSize, ck.Config.ImageSize, graphs.FeatureDim(ck.Config.Arch))
	return nil
}

// randomCheckpoint initialises a configuration's weights as training would.
func randomCheckpoint(cfg graphs.Config, seed uint64) (*checkpoint.Checkpoint, error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, usageError{err}
	}
	b, err := gen.Build(cfg)
	if err != nil {
		return nil, err
	}
	r := rand.New(rand.NewPCG(seed, 0x51c1))
	m := b.Manifest
	return checkpoint.New(m, step.NewTensors(m.Params, r), step.NewTensors(m.Buffers, r), optim.State{})
}

// writeAtomically writes data to a temporary file beside path and renames it.
func writeAtomically(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
