package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/simclr-ort/simclr-ort/gen"
	"github.com/simclr-ort/simclr-ort/graphs"
	"github.com/simclr-ort/simclr-ort/internal/atomicfile"
	"github.com/spf13/pflag"
)

type generateOptions struct {
	config  graphs.Config
	kernels string
	out     string
}

func generateFlags(fs *pflag.FlagSet) func(context.Context) error {
	var o generateOptions
	addConfigFlags(fs, &o.config)
	fs.StringVar(&o.kernels, "kernels", gen.KernelsONNX, "the training graph's variant: onnx (standard ONNX ops, any ONNX Runtime; what graphs/ holds) or native (convolutions, MaxPool, ReLU and BatchNorm as ops of simclr-ort's domain ai.simclr_ort, which only simclr-ort's runtime registers; written as NAME.native.train.onnx and NAME.native.json)")
	fs.StringVar(&o.out, "out", ".", "directory to write NAME.train.onnx, NAME.infer.onnx and NAME.json into")
	return func(ctx context.Context) error { return runGenerate(ctx, o) }
}

func runGenerate(_ context.Context, o generateOptions) error {
	switch {
	case o.kernels != gen.KernelsONNX && o.kernels != gen.KernelsNative:
		return usageError{fmt.Errorf("generate: --kernels %q: use onnx or native", o.kernels)}
	case o.kernels == gen.KernelsNative && o.config.ConvGrad == "gpu":
		return usageError{fmt.Errorf("generate: --kernels native with --conv-grad gpu: the native kernels run on the CPU; drop one of them")}
	}
	b, err := gen.BuildWith(o.config, gen.Options{Kernels: o.kernels})
	if err != nil {
		return err
	}
	manifestName := b.Manifest.Config.Name() + ".json"
	if o.kernels == gen.KernelsNative {
		// Its own names, so that it never passes for the standard graph
		// (graphs/ holds those).
		b.Manifest.TrainGraph = b.Manifest.Config.Name() + ".native.train.onnx"
		manifestName = b.Manifest.Config.Name() + ".native.json"
	}
	manifest, err := b.Manifest.Encode()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	for name, data := range map[string][]byte{
		b.Manifest.TrainGraph:     b.Train,
		b.Manifest.InferenceGraph: b.Inference,
		manifestName:              manifest,
	} {
		if err := atomicfile.WriteFile(filepath.Join(o.out, name), data, 0o644); err != nil {
			return fmt.Errorf("generate: %w", err)
		}
		fmt.Println(filepath.Join(o.out, name))
	}
	return nil
}
