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
	"sort"
	"strings"
)

// Files holds the default set of generated graphs and manifests (and, so
// the pattern never matches nothing, the package source).
//
//go:embed *
var Files embed.FS

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
