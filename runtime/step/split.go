package step

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/simclr-ort/simclr-ort/graphs"
	"github.com/simclr-ort/simclr-ort/runtime/ort"
)

// Split is one rank's data-parallel training step: the forward, loss and
// backward graphs of a graphs.Distributed manifest bound, once, to Go
// buffers. It runs the graphs; exchanging Projection, the gradients and the
// running statistics between ranks is the caller's job (runtime/dist).
//
// Every group of tensors lives in one contiguous backing array (ParamData,
// GradData, BufferData, NewBufferData) that the per-tensor slices alias,
// so a collective moves each group with one call. The forward graph's
// Saved outputs and the backward graph's Saved inputs are the same slices,
// and the backward graph's dz input is this rank's rows of GatheredGrad:
// nothing is copied between the graphs and nothing is allocated per step.
type Split struct {
	Manifest *graphs.Distributed
	// Rank is the rank whose rows of GatheredGrad the backward graph reads.
	Rank int
	// Views is the rank's batch, [2n,3,H,W]: view 1 of its image i at row
	// i, view 2 at row i+n. Fill it before Forward; keep it until Backward.
	Views []float32
	// Params and Buffers are the inputs, in manifest order; ParamData and
	// BufferData are their backing arrays.
	Params, Buffers       [][]float32
	ParamData, BufferData []float32
	// Grads are the backward graph's outputs, this rank's part of each
	// gradient (the sum over ranks is the gradient); GradData backs them.
	Grads    [][]float32
	GradData []float32
	// NewBuffers are the forward graph's new running statistics, this
	// rank's (their mean over ranks is the new value); NewBufferData backs
	// them and has Extra more values after them, bound to nothing, for the
	// caller to reduce along with them.
	NewBuffers    [][]float32
	NewBufferData []float32
	// Projection is the forward graph's output z [2n,p].
	Projection []float32
	// Gathered is the loss graph's input z_all [2nW,p]: every rank's
	// Projection in rank order.
	Gathered []float32
	// GatheredGrad is the loss graph's output dL/dz_all [2nW,p].
	GatheredGrad []float32
	// Loss is the loss graph's output, one value.
	Loss []float32
	// Saved are the activations the forward graph writes and the backward
	// graph reads, in manifest order.
	Saved [][]float32

	fwd, loss, bwd *ort.Session
}

// SplitExtra is the number of values NewBufferData holds after the running
// statistics (see Split.NewBuffers).
const SplitExtra = 1

// NewSplit allocates every buffer and binds the three graphs of m for rank.
// ort.Init must have succeeded. A failure releases what was built.
func NewSplit(m *graphs.Distributed, forward, loss, backward []byte, rank int, opts ort.Options) (_ *Split, err error) {
	if rank < 0 || rank >= m.World {
		return nil, fmt.Errorf("step: rank %d is not a rank of a world of %d", rank, m.World)
	}
	c := m.Config
	pairs, p := int64(c.Pairs), int64(c.ProjectionDim)
	viewsShape := []int64{2 * pairs, 3, int64(c.ImageSize), int64(c.ImageSize)}
	zShape := []int64{2 * pairs, p}
	allShape := []int64{2 * pairs * int64(m.World), p}
	zLen := int(2 * pairs * p)
	s := &Split{
		Manifest:     m,
		Rank:         rank,
		Views:        make([]float32, 2*c.Pairs*3*c.ImageSize*c.ImageSize),
		Projection:   make([]float32, zLen),
		Gathered:     make([]float32, zLen*m.World),
		GatheredGrad: make([]float32, zLen*m.World),
		Loss:         make([]float32, 1),
	}
	s.ParamData, s.Params = backed(m.Params, 0)
	s.GradData, s.Grads = backed(m.Params, 0)
	s.BufferData, s.Buffers = backed(m.Buffers, 0)
	s.NewBufferData, s.NewBuffers = backed(m.Buffers, SplitExtra)
	for _, a := range m.Saved {
		s.Saved = append(s.Saved, make([]float32, a.Size()))
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	fwdIn := []ort.Binding{{Name: m.Input, Shape: viewsShape, Data: s.Views}}
	fwdOut := []ort.Binding{{Name: m.Projection, Shape: zShape, Data: s.Projection}}
	bwdIn := []ort.Binding{{Name: m.Input, Shape: viewsShape, Data: s.Views}}
	var bwdOut []ort.Binding
	for i, t := range m.Params {
		fwdIn = append(fwdIn, ort.Binding{Name: t.Name, Shape: t.Shape, Data: s.Params[i]})
		bwdIn = append(bwdIn, ort.Binding{Name: t.Name, Shape: t.Shape, Data: s.Params[i]})
		bwdOut = append(bwdOut, ort.Binding{Name: t.Output, Shape: t.Shape, Data: s.Grads[i]})
	}
	for i, t := range m.Buffers {
		fwdIn = append(fwdIn, ort.Binding{Name: t.Name, Shape: t.Shape, Data: s.Buffers[i]})
		fwdOut = append(fwdOut, ort.Binding{Name: t.Output, Shape: t.Shape, Data: s.NewBuffers[i]})
	}
	for i, a := range m.Saved {
		fwdOut = append(fwdOut, ort.Binding{Name: a.Name, Shape: a.Shape, Data: s.Saved[i]})
		bwdIn = append(bwdIn, ort.Binding{Name: a.Name, Shape: a.Shape, Data: s.Saved[i]})
	}
	bwdIn = append(bwdIn, ort.Binding{Name: m.ProjectionGrad, Shape: zShape, Data: s.GatheredGrad[rank*zLen : (rank+1)*zLen]})

	if s.fwd, err = ort.NewSession(forward, fwdIn, fwdOut, opts); err != nil {
		return nil, fmt.Errorf("step: bind %s: %w", m.ForwardGraph, s.explainOOM(err))
	}
	if s.loss, err = ort.NewSession(loss,
		[]ort.Binding{{Name: m.Gathered, Shape: allShape, Data: s.Gathered}},
		[]ort.Binding{{Name: m.Loss, Shape: []int64{1}, Data: s.Loss}, {Name: m.GatheredGrad, Shape: allShape, Data: s.GatheredGrad}},
		opts); err != nil {
		return nil, fmt.Errorf("step: bind %s: %w", m.LossGraph, s.explainOOM(err))
	}
	if s.bwd, err = ort.NewSession(backward, bwdIn, bwdOut, opts); err != nil {
		return nil, fmt.Errorf("step: bind %s: %w", m.BackwardGraph, s.explainOOM(err))
	}
	return s, nil
}

// backed allocates one array for the tensors ts plus extra values and
// returns it with a slice per tensor aliasing it.
func backed(ts []graphs.Tensor, extra int) ([]float32, [][]float32) {
	var total int64
	for _, t := range ts {
		total += t.Size()
	}
	data := make([]float32, total+int64(extra))
	out := make([][]float32, len(ts))
	var off int64
	for i, t := range ts {
		out[i] = data[off : off+t.Size() : off+t.Size()]
		off += t.Size()
	}
	return data, out
}

// Initialize sets every parameter and running statistic from the
// manifest's initialisers, drawing from r in the order Model.Initialize
// does, so the same seed gives the same weights in both.
func (s *Split) Initialize(r *rand.Rand) {
	for i, t := range s.Manifest.Params {
		Fill(s.Params[i], t.Init, r)
	}
	for i, t := range s.Manifest.Buffers {
		Fill(s.Buffers[i], t.Init, r)
	}
}

// Forward runs the forward graph on Views: Projection, NewBuffers and
// Saved are overwritten.
func (s *Split) Forward() error {
	if err := s.fwd.Run(); err != nil {
		return fmt.Errorf("step: forward: %w", s.explainOOM(err))
	}
	return nil
}

// GlobalLoss runs the loss graph on Gathered: Loss and GatheredGrad are
// overwritten. It returns the loss, and an error if it is not finite.
func (s *Split) GlobalLoss() (float32, error) {
	if err := s.loss.Run(); err != nil {
		return 0, fmt.Errorf("step: loss: %w", s.explainOOM(err))
	}
	loss := s.Loss[0]
	if math.IsNaN(float64(loss)) || math.IsInf(float64(loss), 0) {
		return loss, fmt.Errorf("step: %w (%v)", ErrNonFinite, loss)
	}
	return loss, nil
}

// Backward runs the backward graph on Views, Saved and this rank's rows of
// GatheredGrad: Grads are overwritten.
func (s *Split) Backward() error {
	if err := s.bwd.Run(); err != nil {
		return fmt.Errorf("step: backward: %w", s.explainOOM(err))
	}
	return nil
}

// CommitRunningStats makes the new running statistics current (after the
// caller has averaged them over the ranks).
func (s *Split) CommitRunningStats() {
	copy(s.BufferData, s.NewBufferData[:len(s.BufferData)])
}

// explainOOM names the per-rank batch that did not fit.
func (s *Split) explainOOM(err error) error {
	if !ort.IsOutOfMemory(err) {
		return err
	}
	c := s.Manifest.Config
	return fmt.Errorf("out of memory with --batch-size %d per process (%d views of %dx%d, %s, %d saved activations of %d MB): lower --batch-size (or --image-size); "+
		"on a GPU also check that no other process holds its memory (nvidia-smi): %w",
		c.Pairs, 2*c.Pairs, c.ImageSize, c.ImageSize, c.Arch, len(s.Manifest.Saved), s.Manifest.SavedSize()*4>>20, err)
}

// Close releases the sessions.
func (s *Split) Close() error {
	var first error
	for _, p := range []**ort.Session{&s.fwd, &s.loss, &s.bwd} {
		if *p == nil {
			continue
		}
		if err := (*p).Close(); err != nil && first == nil {
			first = err
		}
		*p = nil
	}
	return first
}
