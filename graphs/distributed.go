package graphs

import (
	"encoding/json"
	"fmt"
)

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
	// Manifest is one rank's part, with the single graph's names: Config
	// is one rank's configuration (Pairs is n, the pairs per rank), Input
	// is the forward and backward graphs' batch input [2n,3,H,W], Loss the
	// loss graph's output [1] (the global loss, the same on every rank; it
	// needs no reduction), Params' Output the backward graph's output of
	// this rank's part of each gradient and Buffers' Output the forward
	// graph's output of this rank's new running statistics. The single
	// graphs' files and digests (TrainGraph, ...) are empty.
	Manifest
	// World is the number of ranks.
	World int `json:"world"`
	// The graph files and the SHA-256 of their bytes.
	ForwardGraph   string `json:"forward_graph"`
	LossGraph      string `json:"loss_graph"`
	BackwardGraph  string `json:"backward_graph"`
	ForwardSHA256  string `json:"forward_sha256"`
	LossSHA256     string `json:"loss_sha256"`
	BackwardSHA256 string `json:"backward_sha256"`
	// Projection is the forward graph's output z [2n,p].
	Projection string `json:"projection"`
	// Saved are the forward graph's outputs that the backward graph takes
	// as inputs under the same names: the activations the gradient needs,
	// all float32.
	Saved []Activation `json:"saved"`
	// Gathered is the loss graph's input z_all [2nW,p].
	Gathered string `json:"gathered"`
	// GatheredGrad is the loss graph's output dL/dz_all [2nW,p].
	GatheredGrad string `json:"gathered_grad"`
	// ProjectionGrad is the backward graph's input dz [2n,p].
	ProjectionGrad string `json:"projection_grad"`
	// GradientReduction is how Params' outputs combine across ranks
	// (ReduceSum).
	GradientReduction string `json:"gradient_reduction"`
	// BufferReduction is how Buffers' outputs combine across ranks
	// (ReduceMean).
	BufferReduction string `json:"buffer_reduction"`
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

// EquivalentManifest is the manifest of the single-process equivalent:
// the same tensors under the Equivalent configuration, hence the same
// Identity, so a checkpoint of either resumes the other. It names no
// graphs.
func (d *Distributed) EquivalentManifest() *Manifest {
	m := d.Manifest
	m.Config = d.Equivalent()
	m.Input, m.Loss = "", ""
	return &m
}

// Identity is the Identity of the Equivalent configuration's manifest: a
// checkpoint of either resumes the other.
func (d *Distributed) Identity() string { return d.EquivalentManifest().Identity() }

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
