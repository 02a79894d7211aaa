package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/simclr-ort/simclr-ort/augment/data"
	"github.com/simclr-ort/simclr-ort/internal/atomicfile"
	"github.com/simclr-ort/simclr-ort/internal/rundir"
	"github.com/simclr-ort/simclr-ort/runtime/checkpoint"
	"github.com/simclr-ort/simclr-ort/runtime/metrics"
	"github.com/simclr-ort/simclr-ort/runtime/ort"
)

// The setup steps of New, in order.

// resolveConfig settles this process's and the step's configuration, the
// world and the output.
func (t *Trainer) resolveConfig(context.Context) error {
	o := &t.o
	if err := o.Validate(); err != nil {
		return err
	}
	t.cfg = o.Config.For(o.Provider)
	if err := t.cfg.Validate(); err != nil {
		return err
	}
	t.world, t.rank = 1, 0
	if o.Comm != nil {
		t.world, t.rank = o.Comm.Size(), o.Comm.Rank()
	}
	if t.world > 1 && t.cfg.ShardCount() > 1 {
		return fmt.Errorf("train: --shards %d emulates data-parallel ranks in one process; under mpirun each of the %d processes is one shard already, drop --shards", t.cfg.Shards, t.world)
	}
	if o.OutDir == "" {
		return errors.New("train: no run directory; pass --out RUNDIR")
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if t.rank != 0 {
		o.Out = io.Discard
	}
	t.global = t.cfg
	if t.world > 1 {
		t.global.Pairs, t.global.Shards = t.cfg.Pairs*t.world, t.world
	}
	t.threads, t.workers = o.Threads, o.Workers
	if t.world > 1 {
		local := t.world
		if o.Comm != nil && o.Comm.LocalSize() > 0 {
			local = o.Comm.LocalSize()
		}
		t.threads, t.workers = perProcess(t.threads, local), perProcess(t.workers, local)
	}
	t.ckptPath = filepath.Join(o.OutDir, CheckpointFile)
	return nil
}

// lockRunDir takes the run directory for this process (rank 0 under MPI,
// which alone writes there): two runs in one directory would append to one
// metrics.jsonl and overwrite each other's checkpoints.
func (t *Trainer) lockRunDir(context.Context) error {
	if t.rank != 0 {
		return nil
	}
	o := &t.o
	if o.Resume {
		if _, err := os.Stat(o.OutDir); err != nil {
			return fmt.Errorf("train: resume %s: %w; start a new run there with --out %s (without --resume)", o.OutDir, err, o.OutDir)
		}
	} else if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return fmt.Errorf("train: create the run directory: %w", err)
	}
	lock, err := rundir.Acquire(o.OutDir, orDefault(o.Holder, "simclr-ort train"))
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	t.lock = lock
	return nil
}

// openData opens the training split and checks it can fill a batch.
func (t *Trainer) openData(context.Context) error {
	o := &t.o
	ds, err := data.OpenWith(o.Data, data.Train, o.DataOptions)
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if ds.Len() == 0 {
		return fmt.Errorf("train: dataset %s is empty; point --data at a folder of class folders with images, or an idx/CIFAR directory", o.Data)
	}
	if _, folder := ds.(*data.Folder); folder {
		decoder, err := data.JPEGDecoderFor(o.DataOptions.JPEGDecoder)
		if err != nil {
			return fmt.Errorf("train: %w", err)
		}
		fmt.Fprintf(o.Out, "JPEG files are decoded by %s\n", decoder)
	}
	if ds.Len() < t.global.Pairs {
		if t.world > 1 {
			return fmt.Errorf("train: the global batch of %d processes x %d images = %d is larger than the dataset %s (%d images); lower --batch-size or launch at most %d processes",
				t.world, t.cfg.Pairs, t.global.Pairs, o.Data, ds.Len(), ds.Len()/t.cfg.Pairs)
		}
		return fmt.Errorf("train: batch of %d images is larger than the dataset %s (%d images); lower --batch-size", t.cfg.Pairs, o.Data, ds.Len())
	}
	t.ds = ds
	return nil
}

// newLoader makes this process's loader: each rank loads only its block of
// every global batch, and the views of an image come from its global
// position, exactly as in one process (see the package documentation).
func (t *Trainer) newLoader(context.Context) error {
	aug := t.o.Augment
	aug.Size = t.cfg.ImageSize
	loader, err := data.NewLoader(t.ds, data.LoaderConfig{BatchSize: t.global.Pairs, Shards: t.world, Shard: t.rank,
		Workers: t.workers, Seed: t.o.Seed, Augment: aug})
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	t.loader = loader
	t.perEpoch = loader.StepsPerEpoch()
	t.total = t.o.Steps
	if t.total <= 0 {
		epochs := t.o.Epochs
		if epochs <= 0 {
			epochs = 100
		}
		t.total = epochs * t.perEpoch
	}
	return nil
}

// newSchedule is the learning rate over the whole run, for the global batch.
func (t *Trainer) newSchedule(context.Context) error {
	warmup := int(math.Round(t.o.WarmupEpochs * float64(t.perEpoch)))
	sched, err := NewSchedule(t.o.Optimizer, t.o.BaseLR, t.o.LRScaling, t.global.Pairs, warmup, t.total)
	if err != nil {
		return err
	}
	t.sched = sched
	return nil
}

// newEngine starts ONNX Runtime and binds this process's step.
func (t *Trainer) newEngine(context.Context) error {
	o := &t.o
	if err := ort.InitWith(ort.InitOptions{Library: o.ORTLib, Provider: o.Provider, LogLevel: o.ORTLogLevel}); err != nil {
		return err
	}
	ortOpts := ort.Options{IntraOpThreads: t.threads, Provider: o.Provider, DeviceID: o.DeviceID, CUDA: o.CUDA}
	kernels, why, err := ResolveKernels(o.Kernels, o.Provider)
	if err != nil {
		return err
	}
	if t.world > 1 && kernels == KernelsNative {
		// Every rank resolved auto on its own machine: run native only if
		// all of them can, so the ranks compute the same step.
		count := []float32{1}
		if err := o.Comm.AllreduceSum(count); err != nil {
			return fmt.Errorf("train: agree on the kernels: %w", err)
		}
		if missing := t.world - int(count[0]); missing > 0 {
			kernels, why = KernelsONNX, fmt.Sprintf("standard ONNX ops (the native kernels load on this rank but not on %d of the %d ranks)", missing, t.world)
		}
	} else if t.world > 1 {
		if err := o.Comm.AllreduceSum([]float32{0}); err != nil {
			return fmt.Errorf("train: agree on the kernels: %w", err)
		}
	}
	o.Graph.Kernels, ortOpts.NativeKernels = kernels, kernels == KernelsNative
	fmt.Fprintf(o.Out, "convolutions by %s\n", why)
	if t.world > 1 {
		t.eng, err = newDistEngine(o.Comm, t.cfg, o.Graph, ortOpts)
	} else {
		t.eng, err = newSingleEngine(t.cfg, o.Graph, ortOpts)
	}
	if err != nil {
		return err
	}
	if t.world > 1 {
		fmt.Fprintf(o.Out, "%d processes x %d pairs = global batch %d (%s), %d ONNX Runtime threads and %d data workers per process; learning rate for batch %d\n",
			t.world, t.cfg.Pairs, t.global.Pairs, strings.SplitN(o.Comm.Library(), ",", 2)[0], max(t.threads, 1), t.workers, t.global.Pairs)
	}
	return nil
}

func (t *Trainer) newOptimizer(context.Context) error {
	opt, err := NewOptimizer(t.o.Optimizer, t.eng.manifest(), t.o.WeightDecay)
	if err != nil {
		return err
	}
	t.opt = opt
	return nil
}

// restoreOrInitialize loads the checkpoint of a resumed run, after checking
// that it continues exactly this run, or draws the initial weights.
func (t *Trainer) restoreOrInitialize(context.Context) error {
	o := &t.o
	m := t.eng.manifest()
	if !o.Resume {
		if _, err := os.Stat(t.ckptPath); err == nil && t.rank == 0 {
			return fmt.Errorf("train: %s already holds a checkpoint; continue it with --resume %s, or choose a new --out", o.OutDir, o.OutDir)
		}
		if err := t.eng.initialize(InitialRand(o.Seed)); err != nil {
			return fmt.Errorf("train: %w", err)
		}
		return t.start()
	}
	if _, err := os.Stat(t.ckptPath); errors.Is(err, os.ErrNotExist) && t.rank == 0 {
		return fmt.Errorf("train: resume %s: it holds no checkpoint (%s) yet; start a run there with --out %s (without --resume)", o.OutDir, CheckpointFile, o.OutDir)
	}
	ck, err := t.eng.loadCheckpoint(t.ckptPath)
	if err != nil {
		return fmt.Errorf("train: resume %s: %w", o.OutDir, err)
	}
	if err := checkWorld(ck, t.global, t.world); err != nil {
		return fmt.Errorf("train: resume %s: %w", o.OutDir, err)
	}
	if err := checkpoint.Compatible(ck, m.Identity(), t.global); err != nil {
		return fmt.Errorf("train: resume %s: %w", o.OutDir, err)
	}
	if err := ck.CheckSchedule(t.sched); err != nil {
		old := ck.Schedule
		extends := ck.Step >= int64(old.TotalSteps) && t.sched.TotalSteps > old.TotalSteps &&
			t.sched.Peak == old.Peak && t.sched.WarmupSteps == old.WarmupSteps
		if !extends {
			return fmt.Errorf("train: resume %s: %w", o.OutDir, err)
		}
		// A finished run continues: nothing restarts, and the learning
		// rate follows the longer run's cosine from here on.
		fmt.Fprintf(o.Out, "extending the finished run from %d to %d steps: from step %d the learning rate follows the cosine schedule of a %d-step run (%.4g now)\n",
			old.TotalSteps, t.sched.TotalSteps, ck.Step, t.sched.TotalSteps, t.sched.LR(int(ck.Step)))
	}
	if ck.Seed != o.Seed {
		return fmt.Errorf("train: resume %s: the run used --seed %d, not %d; resume with the same seed", o.OutDir, ck.Seed, o.Seed)
	}
	if err := ck.Restore(m, t.eng.params(), t.eng.buffers()); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if err := t.opt.SetState(ck.Optimizer); err != nil {
		return fmt.Errorf("train: resume %s: the checkpoint's optimizer state: %w; resume with --optimizer %s", o.OutDir, err, ck.Optimizer.Kind)
	}
	t.res.FirstStep = ck.Step
	t.res.Checkpoint, t.res.CheckpointStep = t.ckptPath, ck.Step
	return t.start()
}

// start fixes the step this invocation ends at and records the run's
// configuration.
func (t *Trainer) start() error {
	t.res.Steps = t.res.FirstStep
	t.end = int64(t.total)
	if t.o.StopAfter > 0 {
		t.end = min(t.end, t.res.FirstStep+int64(t.o.StopAfter))
	}
	t.lastSave = time.Now()
	if t.rank == 0 && len(t.o.RunConfig) > 0 {
		if err := atomicfile.WriteFile(filepath.Join(t.o.OutDir, ConfigFile), t.o.RunConfig, 0o644); err != nil {
			return fmt.Errorf("train: record the run's configuration: %w", err)
		}
	}
	return nil
}

// newReporter starts the metrics of rank 0 (log, progress bar,
// metrics.jsonl, Prometheus).
func (t *Trainer) newReporter(context.Context) error {
	if t.rank != 0 || t.Done() {
		return nil
	}
	rep, err := metrics.New(metrics.Options{
		Run:         metrics.RunInfo{Arch: t.cfg.Arch, Stem: t.cfg.Stem, ImageSize: t.cfg.ImageSize, BatchSize: t.global.Pairs, EP: providerName(t.o.Provider)},
		RunDir:      t.o.OutDir,
		MetricsAddr: t.o.MetricsAddr,
		Out:         t.o.Out,
		LogEvery:    t.o.LogEvery, StepsPerEpoch: t.perEpoch, Epochs: (t.total + t.perEpoch - 1) / t.perEpoch,
		TotalSteps: int64(t.total),
	})
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	t.rep = rep
	if addr := rep.MetricsURL(); addr != "" {
		fmt.Fprintf(t.o.Out, "Prometheus metrics at %s\n", addr)
	}
	return nil
}

// newEvaluator opens the evaluation's images (rank 0, which alone
// evaluates: every rank holds the same weights).
func (t *Trainer) newEvaluator(context.Context) error {
	if t.o.EvalEvery <= 0 || t.Done() {
		return nil
	}
	if t.world > 1 {
		return fmt.Errorf("train: --eval-every under mpirun is not supported yet: the other ranks would wait in a collective while rank 0 evaluates, past --mpi-timeout; evaluate the exported encoder with simclr-ort eval instead")
	}
	e, what, err := newEvaluator(&t.o, ort.Options{IntraOpThreads: t.threads, Provider: t.o.Provider, DeviceID: t.o.DeviceID, CUDA: t.o.CUDA})
	if err != nil {
		return err
	}
	t.eval = e
	fmt.Fprintln(t.o.Out, what)
	return nil
}

// evaluate measures the encoder with the weights after the steps done. A
// failed evaluation is reported and training goes on: it measures the run,
// it is not part of it.
func (t *Trainer) evaluate() {
	e, err := t.tryEvaluate()
	if err != nil {
		fmt.Fprintf(t.o.Out, "warning: the evaluation after step %d failed, training goes on: %v\n", t.res.Steps, err)
		return
	}
	t.evals = append(t.evals, e)
}

func (t *Trainer) tryEvaluate() (metrics.Eval, error) {
	ck, err := checkpoint.New(t.eng.manifest(), t.eng.params(), t.eng.buffers(), t.opt.State())
	if err != nil {
		return metrics.Eval{}, err
	}
	ck.Step = t.res.Steps
	e, err := t.eval.run(ck)
	if err != nil {
		return metrics.Eval{}, err
	}
	if t.rep != nil {
		if err := t.rep.ReportEval(e); err != nil {
			return e, err
		}
	}
	return e, nil
}

// startLoader starts decoding from the run's next step.
func (t *Trainer) startLoader(ctx context.Context) error {
	if t.world > 1 {
		// An interruption ends the run at a step all ranks agree on (the
		// stop flag of dist.Step.Run), so the loader must keep feeding
		// this rank until then.
		ctx = context.WithoutCancel(ctx)
	}
	t.loader.Start(ctx, t.res.Steps)
	return nil
}
