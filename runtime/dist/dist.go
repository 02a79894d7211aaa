package dist

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/simclr-ort/simclr-ort/graphs"
	"github.com/simclr-ort/simclr-ort/runtime/mpi"
	"github.com/simclr-ort/simclr-ort/runtime/step"
)

// BucketFloats is the size of the gradient all-reduce's buckets, in
// float32 values: runtime/mpi measured 1M-float buckets, all in flight, at
// half the time of one all-reduce of the whole buffer.
const BucketFloats = 1 << 20

// Step is one rank's data-parallel training step: a step.Split and the
// communicator it exchanges z, gradients and running statistics over.
type Step struct {
	// Model holds the buffers: fill Model.Views before Run; after Run,
	// Model.Grads hold the summed gradients and Model.NewBuffers the
	// averaged running statistics.
	Model *step.Split

	comm    *mpi.Comm
	buckets [][]float32
	phases  Phases
}

// Phases are the wall times of a step's phases on this rank, summed over
// the steps Run ran; the collectives' times include waiting for the
// slowest rank.
type Phases struct {
	Steps                               int64
	Forward, Gather, Loss, Backward     time.Duration
	ReduceGradients, ReduceRunningStats time.Duration
}

// String gives the mean per step of every phase.
func (p Phases) String() string {
	if p.Steps == 0 {
		return "no steps"
	}
	mean := func(d time.Duration) string {
		return (d / time.Duration(p.Steps)).Round(10 * time.Microsecond).String()
	}
	return fmt.Sprintf("forward %s, all-gather z %s, loss %s, backward %s, gradient all-reduce %s, running-statistics all-reduce %s (means over %d steps)",
		mean(p.Forward), mean(p.Gather), mean(p.Loss), mean(p.Backward), mean(p.ReduceGradients), mean(p.ReduceRunningStats), p.Steps)
}

// Phases returns the phase times of the steps run so far.
func (s *Step) Phases() Phases { return s.phases }

// New returns the step of comm's rank over model, whose manifest must be
// for comm's world size.
func New(comm *mpi.Comm, model *step.Split) (*Step, error) {
	m := model.Manifest
	if m.World != comm.Size() || model.Rank != comm.Rank() {
		return nil, fmt.Errorf("dist: graphs for rank %d of %d, but this process is rank %d of %d", model.Rank, m.World, comm.Rank(), comm.Size())
	}
	if m.GradientReduction != graphs.ReduceSum || m.BufferReduction != graphs.ReduceMean {
		return nil, fmt.Errorf("dist: graphs want gradients reduced by %q and buffers by %q; this simclr-ort knows sum and mean: regenerate them with this version", m.GradientReduction, m.BufferReduction)
	}
	s := &Step{Model: model, comm: comm}
	for off := 0; off < len(model.GradData); off += BucketFloats {
		s.buckets = append(s.buckets, model.GradData[off:min(off+BucketFloats, len(model.GradData))])
	}
	return s, nil
}

// Run runs one step on Model.Views and returns the global loss (the same on
// every rank). stop is this rank's wish to end the run after this step (an
// interruption); the returned stopAll is true when any rank wished so, on
// every rank, so that all ranks leave the loop at the same step.
//
// A non-finite loss is an error on every rank alike, returned before the
// gradients are exchanged; any other error means the ranks are out of step
// and the caller should abort the job (mpi.Comm.Abort).
func (s *Step) Run(stop bool) (loss float32, stopAll bool, err error) {
	md := s.Model
	t0 := time.Now()
	if err := md.Forward(); err != nil {
		return 0, false, err
	}
	t1 := time.Now()
	if err := s.comm.Allgather(md.Gathered, md.Projection); err != nil {
		return 0, false, fmt.Errorf("dist: gather projections: %w", err)
	}
	t2 := time.Now()
	loss, err = md.GlobalLoss()
	if err != nil {
		return loss, false, err
	}
	t3 := time.Now()
	if err := md.Backward(); err != nil {
		return loss, false, err
	}
	t4 := time.Now()
	if err := s.comm.AllreduceSumBuckets(s.buckets, nil); err != nil {
		return loss, false, fmt.Errorf("dist: all-reduce gradients: %w", err)
	}
	t5 := time.Now()
	flag := &md.NewBufferData[len(md.NewBufferData)-1]
	*flag = 0
	if stop {
		*flag = 1
	}
	if err := s.comm.AllreduceMean(md.NewBufferData); err != nil {
		return loss, false, fmt.Errorf("dist: all-reduce running statistics: %w", err)
	}
	t6 := time.Now()
	p := &s.phases
	p.Steps++
	p.Forward += t1.Sub(t0)
	p.Gather += t2.Sub(t1)
	p.Loss += t3.Sub(t2)
	p.Backward += t4.Sub(t3)
	p.ReduceGradients += t5.Sub(t4)
	p.ReduceRunningStats += t6.Sub(t5)
	return loss, *flag > 0, nil
}

// SyncState copies rank 0's parameters and running statistics to every
// rank.
func (s *Step) SyncState() error {
	if err := s.comm.Broadcast(s.Model.ParamData, 0); err != nil {
		return fmt.Errorf("dist: broadcast parameters: %w", err)
	}
	if err := s.comm.Broadcast(s.Model.BufferData, 0); err != nil {
		return fmt.Errorf("dist: broadcast running statistics: %w", err)
	}
	return nil
}

// BytesPerStep is what one rank's collectives move in a step of m, in
// bytes of payload: the gathered projections it receives, the gradients
// and the running statistics (plus the stop flag) it all-reduces.
// A ring all-reduce sends and receives 2(W-1)/W times its buffer.
func BytesPerStep(m *graphs.Distributed) (gather, grads, stats int64) {
	c := m.Config
	gather = 4 * 2 * int64(c.Pairs) * int64(c.ProjectionDim) * int64(m.World-1)
	for _, t := range m.Params {
		grads += 4 * t.Size()
	}
	for _, t := range m.Buffers {
		stats += 4 * t.Size()
	}
	return gather, grads, stats + 4*step.SplitExtra
}

// ErrRootFailed is returned on ranks other than 0 when rank 0 could not
// read the file it was to send.
var ErrRootFailed = errors.New("dist: rank 0 could not read the file (see its error)")

// BroadcastFile sends the file at path, read on rank 0, to every rank and
// returns its bytes on all of them, so that a run directory need not be
// shared between the ranks' machines. When rank 0 cannot read the file it
// returns that error there and ErrRootFailed elsewhere.
func BroadcastFile(comm *mpi.Comm, path string) ([]byte, error) {
	var data []byte
	var readErr error
	head := make([]byte, 8)
	size := int64(-1)
	if comm.Rank() == 0 {
		if data, readErr = os.ReadFile(path); readErr == nil {
			size = int64(len(data))
		}
	}
	binary.LittleEndian.PutUint64(head, uint64(size))
	if err := comm.BroadcastBytes(head, 0); err != nil {
		return nil, fmt.Errorf("dist: broadcast size of %s: %w", path, err)
	}
	size = int64(binary.LittleEndian.Uint64(head))
	if size < 0 {
		if readErr != nil {
			return nil, readErr
		}
		return nil, ErrRootFailed
	}
	if comm.Rank() != 0 {
		data = make([]byte, size)
	}
	for off := int64(0); off < size; off += math.MaxInt32 {
		if err := comm.BroadcastBytes(data[off:min(off+math.MaxInt32, size)], 0); err != nil {
			return nil, fmt.Errorf("dist: broadcast %s: %w", path, err)
		}
	}
	return data, nil
}

// CopyShard copies block shard of batch into dst. batch is a loader's
// [2N,3,H,W] batch (view 1 of image i at row i, view 2 at row i+N) of
// N = shards·n images; block s is what rank s holds, [2n,3,H,W]: view 1
// of images sn..sn+n-1, then view 2 of them. viewLen is the floats of one
// view. It panics when the lengths do not match.
func CopyShard(dst, batch []float32, viewLen, shards, shard int) {
	if shards < 1 || shard < 0 || shard >= shards || len(batch)%(2*shards*viewLen) != 0 || len(dst)*shards != len(batch) {
		panic(fmt.Sprintf("dist: CopyShard: %d floats of block %d of %d from a batch of %d floats with views of %d", len(dst), shard, shards, len(batch), viewLen))
	}
	n := len(batch) / (2 * shards * viewLen)
	rows := n * viewLen
	global := shards * rows
	copy(dst[:rows], batch[shard*rows:(shard+1)*rows])
	copy(dst[rows:], batch[global+shard*rows:global+(shard+1)*rows])
}
