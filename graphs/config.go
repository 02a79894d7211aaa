package graphs

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// Config identifies one SimCLR training configuration; every field changes
// the training graph.
type Config struct {
	// Arch is "resnet18" or "resnet50".
	Arch string `json:"arch"`
	// Stem is "imagenet" (7x7 stride-2 conv and max-pool) or "cifar"
	// (3x3 stride-1 conv, no max-pool).
	Stem string `json:"stem"`
	// ImageSize is the side of the square input views.
	ImageSize int `json:"image_size"`
	// Pairs is N, the number of images per batch (2N views).
	Pairs int `json:"pairs"`
	// ProjectionDim is the size of z.
	ProjectionDim int `json:"projection_dim"`
	// Temperature divides the cosine similarities in NT-Xent.
	Temperature float64 `json:"temperature"`
	// BNGroups is how many equal groups of the 2N views BatchNorm normalises
	// separately: 1 normalises all views together (one encoder pass), 2
	// normalises the two views apart, as the PyTorch reference's two passes.
	BNGroups int `json:"bn_groups"`
	// BNLowering is "onnx" (BatchNormalization in training mode) or
	// "primitive" (ReduceMean, Sub, Mul, Sqrt, Reciprocal) for execution
	// providers that refuse training-mode BatchNormalization.
	BNLowering string `json:"bn_lowering"`
	// Shards lays one process's batch out as Shards data-parallel ranks
	// would hold it, so that one process computes exactly what Shards ranks
	// with Pairs/Shards pairs each compute together (Distributed). The 2N
	// views are Shards consecutive blocks of 2n rows, n = N/Shards ("rank
	// major"): block s holds view 1 of its n images, then view 2 of them.
	// BatchNorm normalises each block (each of its BNGroups groups) apart;
	// the running statistics are updated, once per group, with the mean over
	// blocks of that group's batch statistics (the ranks' new running
	// statistics averaged); NT-Xent's positives stay within a block (view i
	// and view i±n of it) and every other view of the batch is a negative.
	// 0 and 1 both mean one block, the ordinary layout; Defaults stores one
	// block as 0 so that names, manifests and checkpoints stay as they were.
	Shards int `json:"shards,omitempty"`
	// ConvGrad chooses how convolution gradients are formulated: "cpu"
	// (the default, stored as ""), the formulations measured fastest on
	// ONNX Runtime's CPU provider, or "gpu": ConvTranspose for every input
	// gradient (cuDNN's backward-data), patches and one Gemm for every
	// weight gradient, and no Slice (the CUDA provider's Slice kernel fails
	// on the kernel flip the CPU formulation uses).
	ConvGrad string `json:"conv_grad,omitempty"`
}

// ShardCount is the number of blocks the batch is laid out in (Shards, at
// least 1).
func (c Config) ShardCount() int { return max(c.Shards, 1) }

// For resolves the graph variant an execution provider runs where c leaves
// it open (empty BNLowering or ConvGrad): the CPU provider runs ONNX
// BatchNormalization and the CPU formulation of convolution gradients; the
// CUDA provider refuses training-mode BatchNormalization at opset 14 and
// more (ONNX Runtime 1.29: "Training mode does not support BN opset 14 (or
// higher) yet") and its Slice fails on the kernel flip of the CPU
// formulation, so it runs primitive BatchNorm and the GPU formulation.
// Fields already set are kept.
func (c Config) For(provider string) Config {
	if provider == "cuda" {
		if c.BNLowering == "" {
			c.BNLowering = "primitive"
		}
		if c.ConvGrad == "" {
			c.ConvGrad = "gpu"
		}
	}
	return c.Defaults()
}

// Defaults fills zero fields with the reference's settings: batch 128,
// projection 64, temperature 0.5, one BatchNorm group, ONNX BatchNorm.
func (c Config) Defaults() Config {
	if c.Arch == "" {
		c.Arch = "resnet18"
	}
	if c.Stem == "" {
		c.Stem = "imagenet"
	}
	if c.ImageSize == 0 {
		c.ImageSize = 224
	}
	if c.Pairs == 0 {
		c.Pairs = 128
	}
	if c.ProjectionDim == 0 {
		c.ProjectionDim = 64
	}
	if c.Temperature == 0 {
		c.Temperature = 0.5
	}
	if c.BNGroups == 0 {
		c.BNGroups = 1
	}
	if c.BNLowering == "" {
		c.BNLowering = "onnx"
	}
	if c.Shards == 1 {
		c.Shards = 0
	}
	if c.ConvGrad == "cpu" {
		c.ConvGrad = ""
	}
	return c
}

// Validate says what is wrong with a configuration, if anything.
func (c Config) Validate() error {
	var errs []string
	switch c.Arch {
	case "resnet18", "resnet50":
	default:
		errs = append(errs, fmt.Sprintf("unknown architecture %q (use resnet18 or resnet50)", c.Arch))
	}
	switch c.Stem {
	case "imagenet", "cifar":
	default:
		errs = append(errs, fmt.Sprintf("unknown stem %q (use imagenet or cifar)", c.Stem))
	}
	if c.ImageSize < 8 {
		errs = append(errs, fmt.Sprintf("image size %d is too small (at least 8)", c.ImageSize))
	}
	if c.Pairs < 2 {
		errs = append(errs, fmt.Sprintf("batch of %d pairs is too small: NT-Xent needs at least 2", c.Pairs))
	}
	if c.ProjectionDim < 1 {
		errs = append(errs, fmt.Sprintf("projection dimension %d must be positive", c.ProjectionDim))
	}
	if !(c.Temperature > 0) || math.IsInf(c.Temperature, 0) {
		errs = append(errs, fmt.Sprintf("temperature %v must be a positive number", c.Temperature))
	}
	if c.BNGroups != 1 && c.BNGroups != 2 {
		errs = append(errs, fmt.Sprintf("bn_groups %d must be 1 or 2", c.BNGroups))
	}
	if c.BNLowering != "onnx" && c.BNLowering != "primitive" {
		errs = append(errs, fmt.Sprintf("bn_lowering %q must be onnx or primitive", c.BNLowering))
	}
	if c.ConvGrad != "" && c.ConvGrad != "cpu" && c.ConvGrad != "gpu" {
		errs = append(errs, fmt.Sprintf("conv_grad %q must be cpu or gpu", c.ConvGrad))
	}
	if c.Shards < 0 {
		errs = append(errs, fmt.Sprintf("shards %d must be positive", c.Shards))
	} else if c.Pairs%c.ShardCount() != 0 {
		errs = append(errs, fmt.Sprintf("%d pairs do not split into %d equal shards (use a multiple of %d)", c.Pairs, c.ShardCount(), c.ShardCount()))
	}
	if len(errs) > 0 {
		return fmt.Errorf("graphs: %w: %s", ErrInvalid, strings.Join(errs, "; "))
	}
	return nil
}

// ErrInvalid is what Validate's errors wrap: a configuration no graph can
// be built for (a command's usage error).
var ErrInvalid = errors.New("invalid configuration")

// Name is the configuration's file-name stem, e.g.
// "resnet18-cifar-32px-n128-p64-t0.5".
func (c Config) Name() string {
	name := fmt.Sprintf("%s-%s-%dpx-n%d-p%d-t%g", c.Arch, c.Stem, c.ImageSize, c.Pairs, c.ProjectionDim, c.Temperature)
	if c.BNGroups != 1 {
		name += fmt.Sprintf("-bng%d", c.BNGroups)
	}
	if c.BNLowering != "onnx" {
		name += "-bn" + c.BNLowering
	}
	if c.ShardCount() > 1 {
		name += fmt.Sprintf("-shards%d", c.ShardCount())
	}
	if c.ConvGrad == "gpu" {
		name += "-cggpu"
	}
	return name
}
