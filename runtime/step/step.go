// Package step runs one SimCLR training step on ONNX Runtime: a generated
// training graph bound, once, to Go buffers for the batch, every parameter,
// every running statistic, the loss, the gradients and the new running
// statistics. The optimizer reads Grads and updates Params in place; nothing
// is allocated per step.
package step

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/simclr-ort/simclr-ort/graphs"
	"github.com/simclr-ort/simclr-ort/runtime/ort"
)

// Model is a training graph bound to its buffers.
type Model struct {
	Manifest *graphs.Manifest
	// Views is the batch, [2N,3,H,W]: view 1 of image i at row i, view 2 at
	// row i+N. Fill it before Run.
	Views []float32
	// Params and Buffers are the inputs, in manifest order.
	Params, Buffers [][]float32
	// Grads and NewBuffers are the outputs, in manifest order.
	Grads, NewBuffers [][]float32
	// Loss is the loss output, one value.
	Loss []float32

	session *ort.Session
}

// New allocates every buffer and binds the training graph to them.
// ort.Init must have succeeded.
func New(m *graphs.Manifest, trainGraph []byte, opts ort.Options) (*Model, error) {
	c := m.Config
	viewsShape := []int64{2 * int64(c.Pairs), 3, int64(c.ImageSize), int64(c.ImageSize)}
	md := &Model{
		Manifest: m,
		Views:    make([]float32, 2*c.Pairs*3*c.ImageSize*c.ImageSize),
		Loss:     make([]float32, 1),
	}
	inputs := []ort.Binding{{Name: m.Input, Shape: viewsShape, Data: md.Views}}
	outputs := []ort.Binding{{Name: m.Loss, Shape: []int64{1}, Data: md.Loss}}
	for _, t := range m.Params {
		p, g := make([]float32, t.Size()), make([]float32, t.Size())
		md.Params, md.Grads = append(md.Params, p), append(md.Grads, g)
		inputs = append(inputs, ort.Binding{Name: t.Name, Shape: t.Shape, Data: p})
		outputs = append(outputs, ort.Binding{Name: t.Output, Shape: t.Shape, Data: g})
	}
	for _, t := range m.Buffers {
		b, nb := make([]float32, t.Size()), make([]float32, t.Size())
		md.Buffers, md.NewBuffers = append(md.Buffers, b), append(md.NewBuffers, nb)
		inputs = append(inputs, ort.Binding{Name: t.Name, Shape: t.Shape, Data: b})
		outputs = append(outputs, ort.Binding{Name: t.Output, Shape: t.Shape, Data: nb})
	}
	s, err := ort.NewSession(trainGraph, inputs, outputs, opts)
	if err != nil {
		return nil, fmt.Errorf("step: bind %s: %w", m.TrainGraph, md.explainOOM(err))
	}
	md.session = s
	return md, nil
}

// Initialize sets every parameter and running statistic from the
// manifest's initialisers, drawing from r.
func (md *Model) Initialize(r *rand.Rand) {
	for i, t := range md.Manifest.Params {
		Fill(md.Params[i], t.Init, r)
	}
	for i, t := range md.Manifest.Buffers {
		Fill(md.Buffers[i], t.Init, r)
	}
}

// NewTensors allocates the tensors ts and draws each from its initialiser,
// for a fresh model outside a session (a random-init baseline, tests).
func NewTensors(ts []graphs.Tensor, r *rand.Rand) [][]float32 {
	out := make([][]float32, len(ts))
	for i, t := range ts {
		out[i] = make([]float32, t.Size())
		Fill(out[i], t.Init, r)
	}
	return out
}

// Fill draws dst from the initialiser.
func Fill(dst []float32, init graphs.Init, r *rand.Rand) {
	switch init.Dist {
	case "normal":
		for i := range dst {
			dst[i] = float32(r.NormFloat64() * init.Std)
		}
	case "uniform":
		for i := range dst {
			dst[i] = float32((2*r.Float64() - 1) * init.Bound)
		}
	case "constant":
		for i := range dst {
			dst[i] = float32(init.Value)
		}
	default:
		panic(fmt.Sprintf("step: unknown initialiser %q", init.Dist))
	}
}

// ErrNonFinite is what Run's error wraps when the loss is NaN or infinite:
// the run diverged (the other errors are ONNX Runtime's).
var ErrNonFinite = errors.New("the loss is not finite")

// Run executes the step: Loss, Grads and NewBuffers are overwritten. It
// returns the loss, and an error wrapping ErrNonFinite if it is not finite.
func (md *Model) Run() (float32, error) {
	if err := md.session.Run(); err != nil {
		return 0, fmt.Errorf("step: %w", md.explainOOM(err))
	}
	loss := md.Loss[0]
	if math.IsNaN(float64(loss)) || math.IsInf(float64(loss), 0) {
		return loss, fmt.Errorf("step: %w (%v)", ErrNonFinite, loss)
	}
	return loss, nil
}

// explainOOM turns an out-of-memory error into one that names the batch
// that did not fit and what to lower.
func (md *Model) explainOOM(err error) error {
	if !ort.IsOutOfMemory(err) {
		return err
	}
	c := md.Manifest.Config
	return fmt.Errorf("out of memory with --batch-size %d (%d views of %dx%d, %s): lower --batch-size (or --image-size); "+
		"on a GPU also check that no other process holds its memory (nvidia-smi): %w",
		c.Pairs, 2*c.Pairs, c.ImageSize, c.ImageSize, c.Arch, err)
}

// CommitRunningStats makes the step's new running statistics current.
func (md *Model) CommitRunningStats() {
	for i := range md.Buffers {
		copy(md.Buffers[i], md.NewBuffers[i])
	}
}

// Close releases the session.
func (md *Model) Close() error {
	if md.session == nil {
		return nil
	}
	err := md.session.Close()
	md.session = nil
	return err
}
