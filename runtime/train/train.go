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
	"strings"
	"time"

	"github.com/simclr-ort/simclr-ort/augment"
	"github.com/simclr-ort/simclr-ort/augment/data"
	"github.com/simclr-ort/simclr-ort/graphs"
	"github.com/simclr-ort/simclr-ort/runtime/checkpoint"
	"github.com/simclr-ort/simclr-ort/runtime/metrics"
	"github.com/simclr-ort/simclr-ort/runtime/mpi"
	"github.com/simclr-ort/simclr-ort/runtime/ort"
)

// CheckpointFile is the checkpoint's name inside the run directory.
const CheckpointFile = "checkpoint.ckpt"

// ConfigFile is the run's resolved configuration inside the run directory
// (Options.RunConfig).
const ConfigFile = "config.yaml"

// metaConfig is the checkpoint metadata key of Options.RunConfig.
const metaConfig = "run_config"

// RunConfigFromCheckpoint is the run configuration a checkpoint records
// (Options.RunConfig of the run that wrote it), or nil for a checkpoint of
// a run that recorded none.
func RunConfigFromCheckpoint(ck *checkpoint.Checkpoint) []byte {
	if c, ok := ck.Meta[metaConfig]; ok {
		return []byte(c)
	}
	return nil
}

// Options configure a run. Zero fields mean the PyTorch reference's
// settings where it has one.
type Options struct {
	// Config is the graph configuration (architecture, stem, image size,
	// batch size, projection, temperature, BatchNorm). An empty BNLowering
	// or ConvGrad is the variant Provider runs (graphs.Config.For).
	Config graphs.Config
	// Data is the dataset, e.g. "fmnist:/usr/share/datasets/fashion-mnist"
	// or an image folder (see augment/data.Open).
	Data string
	// DataOptions choose how image files are read (JPEG decoder, pixel
	// limit).
	DataOptions data.Options
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
	// CheckpointEvery writes a checkpoint every that many epochs,
	// CheckpointEverySteps every that many steps and
	// CheckpointEveryMinutes when that many minutes have passed since the
	// last one, whichever comes first (0 turns each off; a checkpoint is
	// always written at the end and on interruption). A write stalls
	// training for as long as it takes (Result.CheckpointSeconds).
	CheckpointEvery        int
	CheckpointEverySteps   int
	CheckpointEveryMinutes float64
	// KeepCheckpoints is how many checkpoints stay in the run directory:
	// checkpoint.ckpt (the latest, which --resume continues) and the
	// KeepCheckpoints-1 before it as checkpoint-STEP.ckpt. 0 means 1.
	KeepCheckpoints int
	// RunConfig, when set, is the run's resolved configuration as the
	// command wrote it (YAML): it is written to OutDir/config.yaml and
	// recorded in every checkpoint, so that a resumed run knows every
	// setting (RunConfigFromCheckpoint).
	RunConfig []byte
	// Holder describes this process in the run directory's lock (e.g. the
	// command line); another process that tries the directory is told.
	Holder string
	// EvalEvery, when positive, measures the encoder every that many steps
	// (and after the last): kNN top-1 (EvalK neighbours, 0: 200) on
	// EvalTestImages held-out images (0: 2000) against EvalTrainImages
	// labelled reference images (0: 10000), in the log, metrics.jsonl and
	// Prometheus (simclr_knn_accuracy).
	EvalEvery                       int
	EvalK                           int
	EvalTrainImages, EvalTestImages int
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
	// ORTLogLevel is ONNX Runtime's log level (ort.InitOptions.LogLevel).
	ORTLogLevel string
	// Graph chooses how the training graph computes (the default
	// formulation when zero).
	Graph GraphOptions
	// Kernels chooses the kernels: KernelsAuto (native on the CPU where
	// oneDNN loads), KernelsNative or KernelsONNX ("" means ONNX); it
	// overrides Graph.Kernels.
	Kernels string
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
	// Checkpoint is the path of the last checkpoint written, and
	// CheckpointStep the step it holds.
	Checkpoint     string
	CheckpointStep int64
	// Evals are the evaluations of this invocation (Options.EvalEvery).
	Evals []metrics.Eval
	// Checkpoints is how many checkpoints this invocation wrote, and
	// CheckpointSeconds how long training stood still for them in all.
	Checkpoints       int
	CheckpointSeconds float64

	started time.Time
}

// Validate says what is impossible in o, naming the command-line flag of
// each field. Zero fields are defaults; negative counts and durations are
// refused, never replaced.
func (o Options) Validate() error {
	var errs []string
	neg := func(flag string, v int) {
		if v < 0 {
			errs = append(errs, fmt.Sprintf("%s %d must not be negative", flag, v))
		}
	}
	neg("--epochs", o.Epochs)
	neg("--steps", o.Steps)
	neg("--stop-after", o.StopAfter)
	neg("--checkpoint-every", o.CheckpointEvery)
	neg("--checkpoint-every-steps", o.CheckpointEverySteps)
	neg("--keep-checkpoints", o.KeepCheckpoints)
	neg("--workers", o.Workers)
	neg("--threads", o.Threads)
	neg("--log-every", o.LogEvery)
	neg("--device-id", o.DeviceID)
	neg("--eval-every", o.EvalEvery)
	neg("--eval-k", o.EvalK)
	neg("--eval-train-images", o.EvalTrainImages)
	neg("--eval-test-images", o.EvalTestImages)
	if !(o.CheckpointEveryMinutes >= 0) || math.IsInf(o.CheckpointEveryMinutes, 0) {
		errs = append(errs, fmt.Sprintf("--checkpoint-every-minutes %v must be a non-negative number", o.CheckpointEveryMinutes))
	}
	if !(o.WarmupEpochs >= 0) || math.IsInf(o.WarmupEpochs, 0) {
		errs = append(errs, fmt.Sprintf("--warmup-epochs %v must be a non-negative number", o.WarmupEpochs))
	}
	if !(o.BaseLR >= 0) || math.IsInf(o.BaseLR, 0) {
		errs = append(errs, fmt.Sprintf("--lr %v must be a positive number (0: the optimizer's default)", o.BaseLR))
	}
	if math.IsNaN(o.WeightDecay) || math.IsInf(o.WeightDecay, 0) {
		errs = append(errs, fmt.Sprintf("--weight-decay %v must be a number", o.WeightDecay))
	}
	if len(errs) > 0 {
		return fmt.Errorf("train: %w: %s", ErrInvalidOptions, strings.Join(errs, "; "))
	}
	return nil
}

// ErrInvalidOptions is what Validate's errors wrap: a usage error.
var ErrInvalidOptions = errors.New("invalid options")

// Run trains until the step budget is spent or ctx is cancelled; on
// cancellation it writes a checkpoint and returns ctx.Err(). It is New, then
// Step until Done, then Finish.
//
// With o.Comm of more than one rank, Run is one rank of a data-parallel
// run (see runtime/dist): o.Config.Pairs is this process's batch, the
// global batch is Comm.Size() times it, rank 0 initialises the weights and
// writes metrics and checkpoints, and an interruption of any rank stops all
// of them at the same step.
func Run(ctx context.Context, o Options) (*Result, error) {
	t, err := New(ctx, o)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	for !t.Done() {
		if err := t.Step(ctx); err != nil {
			return t.Result(), err
		}
	}
	return t.Finish(ctx)
}
