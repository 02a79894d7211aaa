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
	// i at row i, view 2 at row i+N.
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
	fmt.Fprintf(h, "%+v|", m.Config)
	for _, t := range append(append([]Tensor(nil), m.Params...), m.Buffers...) {
		fmt.Fprintf(h, "%s%v%s|", t.Name, t.Shape, t.Role)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
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
