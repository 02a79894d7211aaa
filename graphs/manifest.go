// Package graphs holds the generated SimCLR graphs (written by
// `go generate ./gen`) and the manifest that describes them: the contract
// between the generator and the runtime. A manifest lists every parameter
// and BatchNorm running statistic in the order the graphs take them, with
// shape, role, initialiser and whether LARS excludes it from weight decay
// and trust-ratio adaptation.
package graphs

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"sort"
	"strings"
)

// Files holds the default set of generated graphs and manifests (and, so
// the pattern never matches nothing, the package source).
//
//go:embed *
var Files embed.FS

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
		return fmt.Errorf("graphs: invalid configuration: %s", strings.Join(errs, "; "))
	}
	return nil
}

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

// Init says how a tensor is initialised.
type Init struct {
	// Dist is "normal" (mean 0, Std), "uniform" (in [-Bound, Bound]) or
	// "constant" (Value).
	Dist  string  `json:"dist"`
	Std   float64 `json:"std,omitempty"`
	Bound float64 `json:"bound,omitempty"`
	Value float64 `json:"value,omitempty"`
}

// Tensor is one parameter or running statistic.
type Tensor struct {
	// Name is PyTorch's state_dict name, e.g. "encoder.layer1.0.conv1.weight".
	Name  string  `json:"name"`
	Shape []int64 `json:"shape"`
	// Role is conv_weight, bn_weight, bn_bias, linear_weight, bn_running_mean
	// or bn_running_var.
	Role string `json:"role"`
	Init Init   `json:"init"`
	// LARSExclude is true for BatchNorm parameters and biases: no weight
	// decay and no trust-ratio adaptation.
	LARSExclude bool `json:"lars_exclude,omitempty"`
	// Output is the training graph output holding this parameter's gradient
	// or this running statistic's new value.
	Output string `json:"output"`
}

// Size is the number of elements.
func (t Tensor) Size() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Manifest describes the graphs of one configuration.
type Manifest struct {
	Config Config `json:"config"`
	// FeatureDim is the size of the encoder's feature h.
	FeatureDim int `json:"feature_dim"`
	// TrainGraph computes loss, gradients and new running statistics.
	TrainGraph string `json:"train_graph"`
	// InferenceGraph maps images to features with eval-mode BatchNorm.
	InferenceGraph string `json:"inference_graph"`
	// TrainSHA256 and InferenceSHA256 identify the graph files' bytes.
	TrainSHA256     string `json:"train_sha256"`
	InferenceSHA256 string `json:"inference_sha256"`
	// Input is the training graph's batch input, [2N,3,H,W]: view 1 of image
	// i at row i, view 2 at row i+N; with Config.Shards > 1, rank-major
	// blocks of 2n rows, n = N/Shards, each laid out so.
	Input string `json:"input"`
	// InferenceInput and InferenceOutput name the inference graph's image
	// input [batch,3,H,W] and feature output [batch,FeatureDim].
	InferenceInput  string `json:"inference_input"`
	InferenceOutput string `json:"inference_output"`
	// Loss is the training graph's loss output, shape [1].
	Loss string `json:"loss"`
	// Params are the trainable tensors, in graph-input order; the graph
	// inputs are Input, then Params, then Buffers.
	Params []Tensor `json:"params"`
	// Buffers are the BatchNorm running statistics.
	Buffers []Tensor `json:"buffers"`
	// BNMomentum and BNEpsilon are PyTorch's BatchNorm settings.
	BNMomentum float64 `json:"bn_momentum"`
	BNEpsilon  float64 `json:"bn_epsilon"`
}

// Identity is a digest of the parameter layout and configuration: two
// manifests with the same Identity take the same checkpoints.
func (m *Manifest) Identity() string {
	h := sha256.New()
	fmt.Fprintf(h, "%+v|", identityConfig(m.Config))
	for _, t := range append(append([]Tensor(nil), m.Params...), m.Buffers...) {
		fmt.Fprintf(h, "%s%v%s|", t.Name, t.Shape, t.Role)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// identityConfig is what Identity hashes of a configuration: the Config
// itself, except that one shard is printed as before Shards existed, so the
// identities (and checkpoints) of earlier configurations stay valid.
func identityConfig(c Config) any {
	if c.ConvGrad != "" {
		return c
	}
	if c.Shards != 0 {
		return struct {
			Arch          string
			Stem          string
			ImageSize     int
			Pairs         int
			ProjectionDim int
			Temperature   float64
			BNGroups      int
			BNLowering    string
			Shards        int
		}{c.Arch, c.Stem, c.ImageSize, c.Pairs, c.ProjectionDim, c.Temperature, c.BNGroups, c.BNLowering, c.Shards}
	}
	return struct {
		Arch          string
		Stem          string
		ImageSize     int
		Pairs         int
		ProjectionDim int
		Temperature   float64
		BNGroups      int
		BNLowering    string
	}{c.Arch, c.Stem, c.ImageSize, c.Pairs, c.ProjectionDim, c.Temperature, c.BNGroups, c.BNLowering}
}

// Encode writes the manifest as indented JSON.
func (m *Manifest) Encode() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("graphs: encode manifest: %w", err)
	}
	return append(b, '\n'), nil
}

// Decode parses a manifest.
func Decode(b []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("graphs: decode manifest: %w", err)
	}
	return &m, nil
}

// SHA256 is the hex digest of b, as stored in manifests.
func SHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Default lists the configurations whose graphs are in this package.
func Default() []Config {
	var cs []Config
	for _, arch := range []string{"resnet18", "resnet50"} {
		for _, v := range []struct {
			stem string
			size int
		}{{"cifar", 32}, {"imagenet", 224}} {
			cs = append(cs, Config{Arch: arch, Stem: v.stem, ImageSize: v.size}.Defaults())
		}
	}
	return cs
}

// Lookup returns the embedded manifest and graphs of a configuration, or
// ok=false when it is not in the default set.
func Lookup(c Config) (m *Manifest, train, inference []byte, ok bool, err error) {
	b, err := fs.ReadFile(Files, c.Name()+".json")
	if err != nil {
		return nil, nil, nil, false, nil
	}
	if m, err = Decode(b); err != nil {
		return nil, nil, nil, false, err
	}
	if train, err = fs.ReadFile(Files, m.TrainGraph); err != nil {
		return nil, nil, nil, false, fmt.Errorf("graphs: %s names missing %s: %w", c.Name(), m.TrainGraph, err)
	}
	if inference, err = fs.ReadFile(Files, m.InferenceGraph); err != nil {
		return nil, nil, nil, false, fmt.Errorf("graphs: %s names missing %s: %w", c.Name(), m.InferenceGraph, err)
	}
	return m, train, inference, true, nil
}

// Names lists the embedded manifests' configuration names, sorted.
func Names() []string {
	entries, _ := fs.Glob(Files, "*.json")
	for i, e := range entries {
		entries[i] = strings.TrimSuffix(e, ".json")
	}
	sort.Strings(entries)
	return entries
}

// Reductions across ranks named in a Distributed manifest.
const (
	// ReduceSum: all-reduce with sum, no scaling.
	ReduceSum = "sum"
	// ReduceMean: all-reduce with sum, then divide by the number of ranks.
	ReduceMean = "mean"
)

// Distributed describes the three graphs of one data-parallel SimCLR step
// with global negatives over World ranks, each holding n = Config.Pairs
// pairs (2n views). The step is split at the projection z:
//
//  1. Forward (each rank): inputs Views [2n,3,H,W] (view 1 of its image i at
//     row i, view 2 at row i+n), every parameter and every running statistic
//     (named as in Params and Buffers); outputs Projection z [2n,p], each
//     Buffers[i].Output (the rank's new running statistics) and each Saved
//     activation.
//  2. Loss (every rank, identical): input Gathered z_all [2nW,p], the ranks'
//     z concatenated in rank order; outputs Loss [1], the NT-Xent loss over
//     all 2nW views (positives within each rank's block, every other view a
//     negative, mean over the 2nW anchors), and GatheredGrad dL/dz_all
//     [2nW,p].
//  3. Backward (each rank): inputs Views (the same batch), every parameter,
//     every Saved activation (as the forward wrote it) and ProjectionGrad dz
//     [2n,p], rows [2nr, 2n(r+1)) of GatheredGrad for rank r; outputs each
//     Params[i].Output, this rank's part of dL/dparam.
//
// Reducing Params' outputs with GradientReduction (sum) gives exactly
// dL/dparam of the global loss; reducing Buffers' outputs with
// BufferReduction (mean) gives the new running statistics. Both equal, up to
// rounding, the training graph of Equivalent() on all ranks' views in rank
// order.
type Distributed struct {
	// Config is one rank's configuration: Pairs is n, the pairs per rank.
	Config Config `json:"config"`
	// World is the number of ranks.
	World int `json:"world"`
	// FeatureDim is the size of the encoder's feature h.
	FeatureDim int `json:"feature_dim"`
	// The graph files and the SHA-256 of their bytes.
	ForwardGraph   string `json:"forward_graph"`
	LossGraph      string `json:"loss_graph"`
	BackwardGraph  string `json:"backward_graph"`
	ForwardSHA256  string `json:"forward_sha256"`
	LossSHA256     string `json:"loss_sha256"`
	BackwardSHA256 string `json:"backward_sha256"`
	// Views is the forward and backward graphs' batch input [2n,3,H,W].
	Views string `json:"views"`
	// Projection is the forward graph's output z [2n,p].
	Projection string `json:"projection"`
	// Saved are the forward graph's outputs that the backward graph takes
	// as inputs under the same names: the activations the gradient needs,
	// all float32.
	Saved []Activation `json:"saved"`
	// Gathered is the loss graph's input z_all [2nW,p].
	Gathered string `json:"gathered"`
	// Loss is the loss graph's output [1]: the global loss, the same on
	// every rank; it needs no reduction.
	Loss string `json:"loss"`
	// GatheredGrad is the loss graph's output dL/dz_all [2nW,p].
	GatheredGrad string `json:"gathered_grad"`
	// ProjectionGrad is the backward graph's input dz [2n,p].
	ProjectionGrad string `json:"projection_grad"`
	// Params are the trainable tensors in Manifest order; Output names the
	// backward graph's output of this rank's part of the gradient.
	Params []Tensor `json:"params"`
	// Buffers are the BatchNorm running statistics; Output names the
	// forward graph's output of this rank's new value.
	Buffers []Tensor `json:"buffers"`
	// GradientReduction is how Params' outputs combine across ranks
	// (ReduceSum).
	GradientReduction string `json:"gradient_reduction"`
	// BufferReduction is how Buffers' outputs combine across ranks
	// (ReduceMean).
	BufferReduction string `json:"buffer_reduction"`
	// BNMomentum and BNEpsilon are PyTorch's BatchNorm settings.
	BNMomentum float64 `json:"bn_momentum"`
	BNEpsilon  float64 `json:"bn_epsilon"`
}

// Activation is a tensor that one graph writes and another reads.
type Activation struct {
	Name  string  `json:"name"`
	Shape []int64 `json:"shape"`
}

// Size is the number of elements.
func (a Activation) Size() int64 { return Tensor{Shape: a.Shape}.Size() }

// DistributedName is the file-name stem of the distributed graphs of a
// rank's configuration over world ranks, e.g.
// "resnet18-cifar-32px-n64-p64-t0.5-world2".
func DistributedName(c Config, world int) string {
	return fmt.Sprintf("%s-world%d", c.Name(), world)
}

// Equivalent is the single-process configuration that computes the same
// loss, gradients and running statistics: all World·n pairs in World shards.
func (d *Distributed) Equivalent() Config {
	c := d.Config
	c.Pairs *= d.World
	c.Shards = d.World
	return c.Defaults()
}

// Identity is the Identity of the Equivalent configuration's manifest: a
// checkpoint of either resumes the other.
func (d *Distributed) Identity() string {
	return (&Manifest{Config: d.Equivalent(), Params: d.Params, Buffers: d.Buffers}).Identity()
}

// SavedSize is the number of float32 values of the Saved activations.
func (d *Distributed) SavedSize() int64 {
	var n int64
	for _, a := range d.Saved {
		n += a.Size()
	}
	return n
}

// Encode writes the manifest as indented JSON.
func (d *Distributed) Encode() ([]byte, error) {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("graphs: encode distributed manifest: %w", err)
	}
	return append(b, '\n'), nil
}
