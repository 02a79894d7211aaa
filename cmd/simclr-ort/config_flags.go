package main

import (
	"github.com/simclr-ort/simclr-ort/graphs"
	"github.com/spf13/pflag"
)

// addConfigFlags registers the flags that choose a graph configuration.
func addConfigFlags(fs *pflag.FlagSet, c *graphs.Config) {
	fs.StringVar(&c.Arch, "arch", "resnet18", "encoder: resnet18 or resnet50")
	fs.StringVar(&c.Stem, "stem", "imagenet", "first layers: imagenet (7x7 stride-2 conv and max-pool) or cifar (3x3 stride-1 conv)")
	fs.IntVar(&c.ImageSize, "image-size", 224, "side of the square views in pixels")
	fs.IntVar(&c.Pairs, "batch-size", 128, "images per batch (each gives two views)")
	fs.IntVar(&c.ProjectionDim, "projection-dim", 64, "size of the projection z")
	fs.Float64Var(&c.Temperature, "temperature", 0.5, "NT-Xent temperature")
	fs.IntVar(&c.BNGroups, "bn-groups", 1, "BatchNorm groups over the 2N views: 1 (all views together) or 2 (each view apart, as the PyTorch reference)")
	fs.StringVar(&c.BNLowering, "bn-lowering", "onnx", "training BatchNorm as onnx (BatchNormalization) or primitive ops (for providers that refuse training mode; default with --ep cuda)")
	fs.StringVar(&c.ConvGrad, "conv-grad", "cpu", "convolution gradients formulated for the cpu or the gpu (ConvTranspose, patches and Gemm, no Slice; default with --ep cuda)")
}

// providerDefaults picks the graph variant a provider runs where the user
// did not: the CUDA provider refuses training-mode BatchNormalization at
// opset 14 and more (ONNX Runtime 1.29: "Training mode does not support BN
// opset 14 (or higher) yet"), and its Slice fails on the kernel flip of the
// CPU formulation of convolution gradients.
func providerDefaults(fs *pflag.FlagSet, c *graphs.Config, provider string) {
	if provider != "cuda" {
		return
	}
	if !fs.Changed("bn-lowering") {
		c.BNLowering = "primitive"
	}
	if !fs.Changed("conv-grad") {
		c.ConvGrad = "gpu"
	}
}
