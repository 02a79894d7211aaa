package main

import (
	"os"
	"strings"

	"github.com/simclr-ort/simclr-ort/graphs"
	"github.com/simclr-ort/simclr-ort/runtime/ort"
	"github.com/spf13/pflag"
)

// configFlagNames are the flags addConfigFlags registers.
var configFlagNames = []string{"arch", "stem", "image-size", "batch-size", "projection-dim", "temperature", "bn-groups", "bn-lowering", "conv-grad"}

// addConfigFlags registers the flags that choose a graph configuration.
func addConfigFlags(fs *pflag.FlagSet, c *graphs.Config) {
	fs.StringVar(&c.Arch, "arch", "resnet18", "encoder: resnet18 or resnet50")
	fs.StringVar(&c.Stem, "stem", "imagenet", "first layers: imagenet (7x7 stride-2 conv and max-pool) or cifar (3x3 stride-1 conv)")
	fs.IntVar(&c.ImageSize, "image-size", 224, "side of the square views in pixels")
	fs.IntVar(&c.Pairs, "batch-size", 128, "images per batch (each gives two views)")
	fs.IntVar(&c.ProjectionDim, "projection-dim", 64, "size of the projection z")
	fs.Float64Var(&c.Temperature, "temperature", 0.5, "NT-Xent temperature")
	fs.IntVar(&c.BNGroups, "bn-groups", 1, "BatchNorm groups over the 2N views: 1 (all views together) or 2 (each view apart, as the PyTorch reference)")
	fs.StringVar(&c.BNLowering, "bn-lowering", "", "training BatchNorm as onnx (BatchNormalization) or primitive ops, for providers that refuse training mode (default: onnx, primitive with --ep cuda)")
	fs.StringVar(&c.ConvGrad, "conv-grad", "", "convolution gradients formulated for the cpu or the gpu: ConvTranspose, patches and Gemm, no Slice (default: cpu, gpu with --ep cuda)")
}

// addConvAsGemmFlag registers --conv-as-gemm, whose value is true unless
// the user turns the rewrite off.
func addConvAsGemmFlag(fs *pflag.FlagSet, on *bool) {
	fs.BoolVar(on, "conv-as-gemm", true, "on the CPU, compute convolutions with small output maps as patches and one Gemm (faster); "+
		"--conv-as-gemm=false keeps Conv nodes, whose results per view do not depend on the batch, so data-parallel ranks match one process bit for bit")
}

// addORTLogFlag registers --ort-log-level.
func addORTLogFlag(fs *pflag.FlagSet, level *string) {
	fs.StringVar(level, "ort-log-level", "error", "ONNX Runtime's log level: "+strings.Join(ort.LogLevels, ", ")+" (warning says, e.g., which nodes an execution provider left to the CPU)")
}

// ortLibrary is the ONNX Runtime library a command loads: --ort-lib, else
// $ONNXRUNTIME_SHARED_LIBRARY_PATH (read here, in the command, never in the
// libraries), else "" for ort.FindLibrary's search.
func ortLibrary(flag string) string {
	if flag != "" {
		return flag
	}
	return os.Getenv(ort.LibraryEnv)
}

// addKernelsFlag registers --kernels.
func addKernelsFlag(fs *pflag.FlagSet, kernels *string, def string) {
	fs.StringVar(kernels, "kernels", def, "what computes the convolutions on the CPU: native (simclr-ort's oneDNN kernels, Debian's libdnnl2), onnx (standard ONNX ops, any ONNX Runtime) or auto (native where oneDNN loads)")
}
