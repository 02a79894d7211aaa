package train

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"

	"github.com/simclr-ort/simclr-ort/graphs"
	"github.com/simclr-ort/simclr-ort/runtime/checkpoint"
	"github.com/simclr-ort/simclr-ort/runtime/dist"
	"github.com/simclr-ort/simclr-ort/runtime/mpi"
	"github.com/simclr-ort/simclr-ort/runtime/ort"
	"github.com/simclr-ort/simclr-ort/runtime/step"
)

// engine is the step the loop drives: the single training graph, or one
// rank's part of a data-parallel step.
type engine interface {
	// manifest describes the parameters and buffers and is what
	// checkpoints record: for a rank, the single-process equivalent.
	manifest() *graphs.Manifest
	params() [][]float32
	buffers() [][]float32
	// grads are the gradients after run (summed over the ranks).
	grads() [][]float32
	// initialize draws the initial state (rank 0's, sent to all ranks).
	initialize(r *rand.Rand) error
	// loadCheckpoint reads the checkpoint (rank 0's file, on every rank).
	loadCheckpoint(path string) (*checkpoint.Checkpoint, error)
	// load takes this process's views from a loader batch of the global
	// batch.
	load(batch []float32)
	// run runs the step; stop asks every rank to end after it, and
	// stopAll says whether any rank asked.
	run(stop bool) (loss float32, stopAll bool, err error)
	// commit makes the new running statistics current.
	commit()
	// summary describes where the steps' time went, or is empty.
	summary() string
	close() error
}

// singleEngine is the single training graph, possibly of several BatchNorm
// shards (--shards), whose blocks load lays out from the loader's batch.
type singleEngine struct {
	md     *step.Model
	shards int
}

func newSingleEngine(cfg graphs.Config, g GraphOptions, opts ort.Options) (*singleEngine, error) {
	m, trainGraph, _, err := TrainGraph(cfg, g)
	if err != nil {
		return nil, err
	}
	md, err := step.New(m, trainGraph, opts)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	return &singleEngine{md: md, shards: cfg.ShardCount()}, nil
}

func (e *singleEngine) manifest() *graphs.Manifest { return e.md.Manifest }
func (e *singleEngine) params() [][]float32        { return e.md.Params }
func (e *singleEngine) buffers() [][]float32       { return e.md.Buffers }
func (e *singleEngine) grads() [][]float32         { return e.md.Grads }
func (e *singleEngine) commit()                    { e.md.CommitRunningStats() }
func (e *singleEngine) close() error               { return e.md.Close() }

func (e *singleEngine) initialize(r *rand.Rand) error {
	e.md.Initialize(r)
	return nil
}

func (e *singleEngine) loadCheckpoint(path string) (*checkpoint.Checkpoint, error) {
	return checkpoint.Load(path)
}

func (e *singleEngine) load(batch []float32) {
	if e.shards == 1 {
		copy(e.md.Views, batch)
		return
	}
	block := len(batch) / e.shards
	viewLen := len(batch) / (2 * e.md.Manifest.Config.Pairs)
	for s := range e.shards {
		dist.CopyShard(e.md.Views[s*block:(s+1)*block], batch, viewLen, e.shards, s)
	}
}

func (e *singleEngine) summary() string { return "" }

func (e *singleEngine) run(stop bool) (float32, bool, error) {
	loss, err := e.md.Run()
	return loss, stop, err
}

// distEngine is one rank of a data-parallel step.
type distEngine struct {
	st      *dist.Step
	comm    *mpi.Comm
	m       *graphs.Manifest
	viewLen int
}

func newDistEngine(comm *mpi.Comm, cfg graphs.Config, g GraphOptions, opts ort.Options) (*distEngine, error) {
	b, err := DistributedGraphs(cfg, comm.Size(), g)
	if err != nil {
		return nil, err
	}
	split, err := step.NewSplit(b.Manifest, b.Forward, b.Loss, b.Backward, comm.Rank(), opts)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	st, err := dist.New(comm, split)
	if err != nil {
		split.Close()
		return nil, fmt.Errorf("train: %w", err)
	}
	d := b.Manifest
	return &distEngine{
		st:   st,
		comm: comm,
		// The single-process equivalent: same parameters, Identity and
		// configuration (W·n pairs in W shards), so either resumes the
		// other's checkpoints.
		m:       d.EquivalentManifest(),
		viewLen: 3 * cfg.ImageSize * cfg.ImageSize,
	}, nil
}

func (e *distEngine) manifest() *graphs.Manifest { return e.m }
func (e *distEngine) params() [][]float32        { return e.st.Model.Params }
func (e *distEngine) buffers() [][]float32       { return e.st.Model.Buffers }
func (e *distEngine) grads() [][]float32         { return e.st.Model.Grads }
func (e *distEngine) commit()                    { e.st.Model.CommitRunningStats() }
func (e *distEngine) close() error               { return e.st.Model.Close() }

func (e *distEngine) initialize(r *rand.Rand) error {
	if e.comm.Rank() == 0 {
		e.st.Model.Initialize(r)
	}
	return e.st.SyncState()
}

func (e *distEngine) loadCheckpoint(path string) (*checkpoint.Checkpoint, error) {
	b, err := dist.BroadcastFile(e.comm, path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: load: %w", err)
	}
	ck, err := checkpoint.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s (as rank 0 read it): %w", path, err)
	}
	return ck, nil
}

// load takes the rank's block, which is all the loader makes (its Shard).
func (e *distEngine) load(batch []float32) {
	copy(e.st.Model.Views, batch)
}

func (e *distEngine) summary() string {
	gather, grads, stats := dist.BytesPerStep(e.st.Model.Manifest)
	return fmt.Sprintf("rank %d: %v; payload per step: all-gather %d B received, gradients %d B and running statistics %d B all-reduced",
		e.comm.Rank(), e.st.Phases(), gather, grads, stats)
}

func (e *distEngine) run(stop bool) (float32, bool, error) {
	return e.st.Run(stop)
}

// isCommError says whether err comes from a collective (a rank that died
// or hung), rather than from this rank's step.
func isCommError(err error) bool {
	var te *mpi.TimeoutError
	var me *mpi.Error
	return errors.As(err, &te) || errors.As(err, &me) || errors.Is(err, mpi.ErrFinalized)
}

// perProcess is a thread or worker count for one of the local processes
// on this machine: n when set, else this machine's cores (as this process
// may use them) shared among them.
func perProcess(n, local int) int {
	if n > 0 {
		return n
	}
	return max(1, runtime.NumCPU()/max(local, 1))
}

// checkWorld returns an error when a checkpoint was trained with another
// number of ranks (BatchNorm shards) or another batch per rank than cfg,
// the global configuration of a run of world processes: the BatchNorm
// batches and each rank's data would differ, so the run would not continue
// exactly. It names the launch that would.
func checkWorld(ck *checkpoint.Checkpoint, cfg graphs.Config, world int) error {
	have, want := ck.Config.ShardCount(), cfg.ShardCount()
	if have == want && ck.Config.Pairs == cfg.Pairs {
		return nil
	}
	if have == 1 && want == 1 {
		return nil // an ordinary batch-size mismatch: Compatible says it
	}
	n := ck.Config.Pairs / have
	how := fmt.Sprintf("one process with --batch-size %d", ck.Config.Pairs)
	if have > 1 {
		how = fmt.Sprintf("mpirun -np %d ... --batch-size %d, or one process with --batch-size %d --shards %d", have, n, ck.Config.Pairs, have)
	}
	return fmt.Errorf("the checkpoint was trained with %s but this run has %s (%d process(es)); another world size changes the BatchNorm batches and what each rank reads, so it would not continue the same run: resume with %s, or start a new --out",
		describeShards(ck.Config), describeShards(cfg), world, how)
}

// describeShards says how a global configuration splits into ranks.
func describeShards(c graphs.Config) string {
	s := c.ShardCount()
	if s == 1 {
		return fmt.Sprintf("one rank of %d pairs", c.Pairs)
	}
	return fmt.Sprintf("%d ranks (BatchNorm shards) of %d pairs, global batch %d", s, c.Pairs/s, c.Pairs)
}
