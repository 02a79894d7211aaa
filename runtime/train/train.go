// Package train is simclr-ort's training loop: batches of augmented view
// pairs in, one run of the generated training graph, the Go-side optimizer
// under a warm-up + cosine schedule, metrics, and atomic, resumable
// checkpoints.
//
// # Data-parallel runs
//
// Under mpirun -np W (Options.Comm with W ranks) every process is one rank
// of a runtime/dist step. Decisions:
//
//   - Config.Pairs (--batch-size) is per process, as in PyTorch DDP and the
//     reference SimCLR; the global batch is W times it and is what scales
//     the learning rate and sizes an epoch.
//   - Each rank's data: every epoch's shuffled order is the one a single
//     process with the global batch would use (same seed, same order for
//     any W), and rank r takes images [r·n, (r+1)·n) of each global batch.
//     Each rank's loader makes only that block (data.LoaderConfig.Shard);
//     the loader keys each image's views by its position in the epoch, so
//     the views are exactly those of one process with the global batch.
//     Unreadable images are skipped and counted per rank (rank 0 reports
//     its own count).
//   - BatchNorm normalises each rank's batch apart; the running statistics
//     are the mean over ranks. One process with --batch-size W·n
//     --shards W computes the same step (graphs.Distributed.Equivalent),
//     and the two resume each other's checkpoints.
//   - Rank 0 initialises the weights and broadcasts them, writes
//     metrics.jsonl, serves Prometheus and writes the checkpoints; the
//     others log nothing. On --resume rank 0 reads the checkpoint and
//     broadcasts its bytes, so the run directory need not be shared.
//   - A checkpoint records W as its configuration's Shards; resuming with
//     another W is refused with the launches that would continue it, since
//     the BatchNorm batches would differ.
//   - An interruption of any rank (Ctrl-C, SIGINT) stops every rank after
//     the same step (a flag carried by the running-statistics all-reduce),
//     and rank 0 saves. A rank that dies or hangs ends the job with an
//     error naming it (runtime/mpi's timeouts, then Abort).
package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/simclr-ort/simclr-ort/augment"
	"github.com/simclr-ort/simclr-ort/augment/data"
	"github.com/simclr-ort/simclr-ort/gen"
	"github.com/simclr-ort/simclr-ort/graphs"
	"github.com/simclr-ort/simclr-ort/runtime/checkpoint"
	"github.com/simclr-ort/simclr-ort/runtime/metrics"
	"github.com/simclr-ort/simclr-ort/runtime/mpi"
	"github.com/simclr-ort/simclr-ort/runtime/optim"
	"github.com/simclr-ort/simclr-ort/runtime/ort"
)

// CheckpointFile is the checkpoint's name inside the run directory.
const CheckpointFile = "checkpoint.ckpt"

// Options configure a run. Zero fields mean the PyTorch reference's
// settings where it has one.
type Options struct {
	// Config is the graph configuration (architecture, stem, image size,
	// batch size, projection, temperature, BatchNorm).
	Config graphs.Config
	// Data is the dataset, e.g. "fmnist:/usr/share/datasets/fashion-mnist"
	// or an image folder (see augment/data.Open).
	Data string
	// Epochs or Steps bound the run; Steps wins when both are set.
	Epochs int
	Steps  int
	// Optimizer is "lars" (default) or "adam".
	Optimizer string
	// BaseLR is the base learning rate: 0 means 0.3 for LARS with linear
	// scaling, 0.075 with sqrt scaling, and 3e-4 for Adam (not scaled).
	BaseLR float64
	// LRScaling is "linear" (base·batch/256, default) or "sqrt" (base·√batch).
	LRScaling string
	// WarmupEpochs of linear warm-up precede the cosine decay.
	WarmupEpochs float64
	// WeightDecay: 0 means 1e-6 for LARS and none for Adam; negative means none.
	WeightDecay float64
	// Augment configures the views (its Size is taken from Config).
	Augment augment.Config
	// Seed seeds the initial weights, the epoch orders and every view.
	Seed uint64
	// Workers decode and augment images; 0 means one per core.
	Workers int
	// OutDir is the run directory (metrics.jsonl, checkpoint.ckpt).
	OutDir string
	// Resume continues the run in OutDir from its checkpoint.
	Resume bool
	// StopAfter, when positive, ends this invocation after that many steps
	// with a checkpoint, as an interruption would; the schedule still spans
	// the whole run, so a later Resume continues it exactly.
	StopAfter int
	// CheckpointEvery writes a checkpoint every that many epochs (0: only
	// at the end and on interruption).
	CheckpointEvery int
	// MetricsAddr serves Prometheus metrics (e.g. ":9090"); empty for none.
	MetricsAddr string
	// Provider ("cpu" or "cuda"), DeviceID, Threads and ORTLib configure
	// ONNX Runtime.
	Provider string
	DeviceID int
	Threads  int
	ORTLib   string
	// CUDA tunes the CUDA provider (--ep cuda).
	CUDA ort.CUDAOptions
	// LogEvery is the log-line interval in steps (0: 50).
	LogEvery int
	// Out receives log lines and the progress bar (nil: os.Stdout).
	Out io.Writer
	// Version is recorded in checkpoints.
	Version string
	// Comm is the MPI world (mpi.Init): with more than one rank, this
	// process is one rank of a data-parallel run and Config.Pairs is its
	// share of the global batch. nil means a single process.
	Comm *mpi.Comm
}

// Result summarises a finished (or interrupted) run.
type Result struct {
	// FirstStep is the step the run started at (non-zero after a resume).
	FirstStep int64
	// Steps is the step count reached.
	Steps int64
	// Losses are the losses of the steps this process ran, in order.
	Losses []float64
	// Skipped counts unreadable images replaced.
	Skipped int64
	// Wall is the time from the first to the last step.
	Wall time.Duration
	// Checkpoint is the path of the last checkpoint written.
	Checkpoint string
}

// Run trains until the step budget is spent or ctx is cancelled; on
// cancellation it writes a checkpoint and returns ctx.Err().
//
// With o.Comm of more than one rank, Run is one rank of a data-parallel
// run (see runtime/dist): o.Config.Pairs is this process's batch, the
// global batch is Comm.Size() times it, rank 0 initialises the weights and
// writes metrics and checkpoints, and an interruption of any rank stops all
// of them at the same step.
func Run(ctx context.Context, o Options) (*Result, error) {
	cfg := o.Config.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	world, rank := 1, 0
	if o.Comm != nil {
		world, rank = o.Comm.Size(), o.Comm.Rank()
	}
	if world > 1 && cfg.ShardCount() > 1 {
		return nil, fmt.Errorf("train: --shards %d emulates data-parallel ranks in one process; under mpirun each of the %d processes is one shard already, drop --shards", cfg.Shards, world)
	}
	if o.OutDir == "" {
		return nil, errors.New("train: no run directory; pass --out RUNDIR")
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if rank != 0 {
		o.Out = io.Discard
	}
	// global is the configuration of the whole step: the single graph, or
	// what the ranks compute together.
	global := cfg
	if world > 1 {
		global.Pairs, global.Shards = cfg.Pairs*world, world
	}
	ds, err := data.Open(o.Data, data.Train)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if ds.Len() == 0 {
		return nil, fmt.Errorf("train: dataset %s is empty; point --data at a folder of class folders with images, or an idx/CIFAR directory", o.Data)
	}
	if _, folder := ds.(*data.Folder); folder {
		decoder, err := data.JPEGDecoder()
		if err != nil {
			return nil, fmt.Errorf("train: %w", err)
		}
		if rank == 0 {
			fmt.Fprintf(o.Out, "JPEG files are decoded by %s\n", decoder)
		}
	}
	if ds.Len() < global.Pairs {
		if world > 1 {
			return nil, fmt.Errorf("train: the global batch of %d processes x %d images = %d is larger than the dataset %s (%d images); lower --batch-size or launch at most %d processes",
				world, cfg.Pairs, global.Pairs, o.Data, ds.Len(), ds.Len()/cfg.Pairs)
		}
		return nil, fmt.Errorf("train: batch of %d images is larger than the dataset %s (%d images); lower --batch-size", cfg.Pairs, o.Data, ds.Len())
	}
	threads, workers := o.Threads, o.Workers
	if world > 1 {
		threads, workers = perProcess(threads, world), perProcess(workers, world)
	}
	aug := o.Augment
	aug.Size = cfg.ImageSize
	// Each rank loads only its block of every global batch; the views of an
	// image come from its global position, exactly as in one process (see
	// the package documentation).
	loader, err := data.NewLoader(ds, data.LoaderConfig{BatchSize: global.Pairs, Shards: world, Shard: rank,
		Workers: workers, Seed: o.Seed, Augment: aug})
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	defer loader.Close()
	perEpoch := loader.StepsPerEpoch()
	total := o.Steps
	if total <= 0 {
		epochs := o.Epochs
		if epochs <= 0 {
			epochs = 100
		}
		total = epochs * perEpoch
	}
	sched, err := schedule(o, global.Pairs, perEpoch, total)
	if err != nil {
		return nil, err
	}

	if err := ort.InitFor(o.ORTLib, o.Provider); err != nil {
		return nil, err
	}
	ortOpts := ort.Options{IntraOpThreads: threads, Provider: o.Provider, DeviceID: o.DeviceID, CUDA: o.CUDA}
	var eng engine
	if world > 1 {
		eng, err = newDistEngine(o.Comm, cfg, aug.Size, ortOpts)
	} else {
		eng, err = newSingleEngine(cfg, ortOpts)
	}
	if err != nil {
		return nil, err
	}
	defer eng.close()
	m := eng.manifest()
	opt, err := optimizer(o, m)
	if err != nil {
		return nil, err
	}
	if world > 1 {
		fmt.Fprintf(o.Out, "%d processes x %d pairs = global batch %d (%s), %d ONNX Runtime threads and %d data workers per process; learning rate for batch %d\n",
			world, cfg.Pairs, global.Pairs, strings.SplitN(o.Comm.Library(), ",", 2)[0], max(threads, 1), workers, global.Pairs)
	}

	if rank == 0 {
		if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
			return nil, fmt.Errorf("train: create run directory: %w", err)
		}
	}
	ckptPath := filepath.Join(o.OutDir, CheckpointFile)
	res := &Result{}
	if o.Resume {
		ck, err := eng.loadCheckpoint(ckptPath)
		if err != nil {
			return nil, fmt.Errorf("train: resume %s: %w", o.OutDir, err)
		}
		if err := checkWorld(ck, global, world); err != nil {
			return nil, fmt.Errorf("train: resume %s: %w", o.OutDir, err)
		}
		if err := checkpoint.Compatible(ck, m.Identity(), global); err != nil {
			return nil, fmt.Errorf("train: resume %s: %w", o.OutDir, err)
		}
		if err := ck.CheckSchedule(sched); err != nil {
			return nil, fmt.Errorf("train: resume %s: %w", o.OutDir, err)
		}
		if ck.Seed != o.Seed {
			return nil, fmt.Errorf("train: resume %s: the run used --seed %d, not %d; resume with the same seed", o.OutDir, ck.Seed, o.Seed)
		}
		if err := ck.Restore(m, eng.params(), eng.buffers()); err != nil {
			return nil, fmt.Errorf("train: %w", err)
		}
		if err := opt.SetState(ck.Optimizer); err != nil {
			return nil, fmt.Errorf("train: resume %s: the checkpoint's optimizer state: %w; resume with --optimizer %s", o.OutDir, err, ck.Optimizer.Kind)
		}
		res.FirstStep = ck.Step
		res.Checkpoint = ckptPath
	} else {
		if _, err := os.Stat(ckptPath); err == nil && rank == 0 {
			return nil, fmt.Errorf("train: %s already holds a checkpoint; continue it with --resume, or choose a new --out", o.OutDir)
		}
		if err := eng.initialize(rand.New(rand.NewPCG(o.Seed, 0x51c1))); err != nil {
			return nil, fmt.Errorf("train: %w", err)
		}
	}
	res.Steps = res.FirstStep
	if res.Steps >= int64(total) {
		return res, nil
	}

	var rep *metrics.Reporter
	if rank == 0 {
		rep, err = metrics.New(metrics.Options{
			Run:         metrics.RunInfo{Arch: cfg.Arch, Stem: cfg.Stem, ImageSize: cfg.ImageSize, BatchSize: global.Pairs, EP: providerName(o.Provider)},
			RunDir:      o.OutDir,
			MetricsAddr: o.MetricsAddr,
			Out:         o.Out,
			LogEvery:    o.LogEvery, StepsPerEpoch: perEpoch, Epochs: (total + perEpoch - 1) / perEpoch,
			TotalSteps: int64(total),
		})
		if err != nil {
			return nil, fmt.Errorf("train: %w", err)
		}
		defer rep.Close()
		if addr := rep.MetricsURL(); addr != "" {
			fmt.Fprintf(o.Out, "Prometheus metrics at %s\n", addr)
		}
	}

	save := func(stepsDone int64) error {
		if rank != 0 {
			return nil
		}
		ck, err := checkpoint.New(m, eng.params(), eng.buffers(), opt.State())
		if err != nil {
			return err
		}
		ck.Step = stepsDone
		ck.Epoch, ck.StepInEpoch = int(stepsDone)/perEpoch, int(stepsDone)%perEpoch
		ck.Seed = o.Seed
		ck.Schedule = sched
		ck.Meta = map[string]string{"version": o.Version, "data": o.Data, "optimizer": opt.State().Kind,
			"world": strconv.Itoa(world), "pairs_per_process": strconv.Itoa(cfg.Pairs)}
		if err := checkpoint.Save(ckptPath, ck); err != nil {
			return fmt.Errorf("train: %w", err)
		}
		res.Checkpoint = ckptPath
		return nil
	}

	if world > 1 {
		// An interruption ends the run at a step all ranks agree on (the
		// stop flag of dist.Step.Run), so the loader must keep feeding
		// this rank until then.
		loader.Start(context.WithoutCancel(ctx), res.Steps)
	} else {
		loader.Start(ctx, res.Steps)
	}
	start := time.Now()
	last := start
	end := int64(total)
	if o.StopAfter > 0 {
		end = min(end, res.FirstStep+int64(o.StopAfter))
	}
	stopped := false // another rank was interrupted
	for res.Steps < end {
		if ctx.Err() != nil && world == 1 {
			break
		}
		batch, err := loader.Next()
		if err != nil {
			if ctx.Err() != nil && world == 1 {
				break
			}
			return res, fmt.Errorf("train: step %d: %w", res.Steps, err)
		}
		eng.load(batch.Data)
		wait := batch.Wait
		batch.Release()
		loss, stopAll, err := eng.run(ctx.Err() != nil)
		if err != nil && isCommError(err) {
			if res.Checkpoint == "" {
				return res, fmt.Errorf("train: step %d: %w; no checkpoint was written yet", res.Steps, err)
			}
			return res, fmt.Errorf("train: step %d: %w; the last checkpoint, %s, is intact: continue with --resume", res.Steps, err, res.Checkpoint)
		}
		if err != nil {
			return res, fmt.Errorf("train: step %d diverged (%v); nothing was saved after the last checkpoint (%s); lower the learning rate or check the data", res.Steps, err, lastCheckpoint(res))
		}
		lr := sched.LR(int(res.Steps))
		opt.Step(lr, eng.params(), eng.grads())
		eng.commit()
		now := time.Now()
		elapsed := now.Sub(last).Seconds()
		last = now
		res.Losses = append(res.Losses, float64(loss))
		skipped := loader.Stats().Skipped
		if rep != nil {
			if err := rep.Report(metrics.Step{Step: res.Steps, Epoch: int(res.Steps) / perEpoch, Loss: float64(loss), LR: lr,
				StepSeconds: elapsed, DataWaitSeconds: wait.Seconds(), ImagesPerSecond: float64(global.Pairs) / elapsed, SkippedImages: skipped}); err != nil {
				return res, fmt.Errorf("train: %w", err)
			}
		}
		res.Steps++
		if stopAll {
			stopped = ctx.Err() == nil
			break
		}
		if o.CheckpointEvery > 0 && res.Steps%int64(perEpoch*o.CheckpointEvery) == 0 && res.Steps < int64(total) {
			if err := save(res.Steps); err != nil {
				return res, err
			}
		}
	}
	res.Wall = time.Since(start)
	res.Skipped = loader.Stats().Skipped
	if err := save(res.Steps); err != nil {
		return res, err
	}
	if sum := eng.summary(); sum != "" && len(res.Losses) > 0 {
		fmt.Fprintln(o.Out, sum)
	}
	if res.Skipped > 0 {
		fmt.Fprintf(o.Out, "%d unreadable images were skipped (replaced by others); last error: %v\n", res.Skipped, loader.Stats().LastError)
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if stopped {
		return res, fmt.Errorf("train: another rank was interrupted; rank 0 saved the checkpoint: %w", context.Canceled)
	}
	return res, nil
}

func lastCheckpoint(r *Result) string {
	if r.Checkpoint == "" {
		return "none yet"
	}
	return r.Checkpoint
}

func providerName(p string) string {
	if p == "" {
		return "cpu"
	}
	return p
}

// graphsFor returns the embedded graphs of a default configuration or
// generates them.
func graphsFor(cfg graphs.Config) (*graphs.Manifest, []byte, error) {
	m, trainGraph, _, ok, err := graphs.Lookup(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("train: %w", err)
	}
	if ok && gen.ConvsAsGemm() {
		return m, trainGraph, nil
	}
	b, err := gen.Build(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("train: generate graphs: %w", err)
	}
	return b.Manifest, b.Train, nil
}

func schedule(o Options, batch, perEpoch, total int) (optim.Schedule, error) {
	scaling, err := optim.ParseScaling(orDefault(o.LRScaling, "linear"))
	if err != nil {
		return optim.Schedule{}, fmt.Errorf("train: --lr-scaling: %w", err)
	}
	base := o.BaseLR
	warmup := int(math.Round(o.WarmupEpochs * float64(perEpoch)))
	switch orDefault(o.Optimizer, "lars") {
	case "lars":
		if base == 0 {
			base = optim.DefaultLARSLR
			if scaling == optim.Sqrt {
				base = optim.DefaultLARSSqrtLR
			}
		}
	case "adam":
		if base == 0 {
			base = optim.DefaultAdamLR
		}
		// The reference's Adam learning rate is not scaled by the batch.
		scaling = optim.None
	default:
		return optim.Schedule{}, fmt.Errorf("train: unknown optimizer %q (use lars or adam)", o.Optimizer)
	}
	return optim.NewSchedule(base, batch, scaling, warmup, total)
}

func optimizer(o Options, m *graphs.Manifest) (optim.Optimizer, error) {
	sizes := make([]int, len(m.Params))
	excluded := make([]bool, len(m.Params))
	for i, t := range m.Params {
		sizes[i], excluded[i] = int(t.Size()), t.LARSExclude
	}
	switch orDefault(o.Optimizer, "lars") {
	case "lars":
		return optim.NewLARS(sizes, excluded, optim.LARSConfig{WeightDecay: o.WeightDecay}), nil
	case "adam":
		wd := o.WeightDecay
		if wd == 0 {
			wd = -1
		}
		return optim.NewAdam(sizes, optim.AdamConfig{WeightDecay: wd}), nil
	}
	return nil, fmt.Errorf("train: unknown optimizer %q (use lars or adam)", o.Optimizer)
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
