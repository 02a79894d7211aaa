package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/simclr-ort/simclr-ort/gen"
	"github.com/simclr-ort/simclr-ort/runtime/mpi"
	"github.com/simclr-ort/simclr-ort/runtime/ort"
	"github.com/simclr-ort/simclr-ort/runtime/train"
	"github.com/spf13/pflag"
)

type trainOptions struct {
	train.Options
	resume       string
	cropScaleMin float64
	mpiTimeout   time.Duration
	convAsGemm   bool
}

func trainFlags(fs *pflag.FlagSet) func(context.Context) error {
	var o trainOptions
	addConfigFlags(fs, &o.Config)
	fs.Lookup("batch-size").Usage = "images per batch and process (each gives two views); under mpirun -np W the global batch, which scales the learning rate, is W times this"
	fs.IntVar(&o.Config.Shards, "shards", 1, "BatchNorm shards of one process's batch: the batch computed as that many data-parallel ranks would (--batch-size 2n --shards 2 equals mpirun -np 2 ... --batch-size n)")
	fs.StringVar(&o.Data, "data", "", "dataset: an image folder (root/class/image), fmnist:DIR, mnist:DIR or cifar10:DIR")
	fs.IntVar(&o.Epochs, "epochs", 100, "epochs to train (ignored when --steps is set)")
	fs.IntVar(&o.Steps, "steps", 0, "steps to train in all (overrides --epochs)")
	fs.StringVar(&o.Optimizer, "optimizer", "lars", "lars or adam")
	fs.Float64Var(&o.BaseLR, "lr", 0, "base learning rate (0: 0.3 for LARS, scaled by --lr-scaling; 3e-4 for Adam)")
	fs.StringVar(&o.LRScaling, "lr-scaling", "linear", "LARS learning rate: linear (lr·batch/256), sqrt (lr·√batch) or none (lr)")
	fs.Float64Var(&o.WarmupEpochs, "warmup-epochs", 0, "epochs of linear warm-up before the cosine decay")
	fs.Float64Var(&o.WeightDecay, "weight-decay", 0, "weight decay (0: 1e-6 for LARS, none for Adam)")
	fs.Float64Var(&o.Augment.JitterStrength, "jitter-strength", 1, "colour jitter strength s in ColorJitter(0.8s, 0.8s, 0.8s, 0.2s)")
	fs.Float64Var(&o.cropScaleMin, "crop-scale-min", 0.08, "smallest area fraction of RandomResizedCrop")
	fs.BoolVar(&o.Augment.Blur, "blur", false, "Gaussian blur (p=0.5, kernel 10% of the side, sigma 0.1-2)")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed of the weights, the epoch orders and every view")
	fs.IntVar(&o.Workers, "workers", 0, "goroutines decoding and augmenting images (0: one per core)")
	fs.StringVar(&o.OutDir, "out", "", "run directory for checkpoint.ckpt and metrics.jsonl (required unless --resume)")
	fs.StringVar(&o.resume, "resume", "", "continue the run in this run directory from its checkpoint")
	fs.IntVar(&o.StopAfter, "stop-after", 0, "stop after this many steps of this invocation, with a checkpoint (continue later with --resume)")
	fs.IntVar(&o.CheckpointEvery, "checkpoint-every", 1, "write a checkpoint every this many epochs (0: only at the end and on Ctrl-C)")
	fs.StringVar(&o.MetricsAddr, "metrics-addr", "", "serve Prometheus metrics on this address, e.g. :9090")
	fs.StringVar(&o.Provider, "ep", "cpu", "ONNX Runtime execution provider: cpu or cuda")
	fs.IntVar(&o.DeviceID, "device-id", 0, "GPU for --ep cuda")
	addCUDAFlags(fs, &o.CUDA)
	fs.IntVar(&o.Threads, "threads", 0, "ONNX Runtime intra-op threads (0: one per core)")
	fs.StringVar(&o.ORTLib, "ort-lib", "", "ONNX Runtime shared library (default: $"+ort.LibraryEnv+", then .cache/onnxruntime/)")
	addORTLogFlag(fs, &o.ORTLogLevel)
	addConvAsGemmFlag(fs, &o.convAsGemm)
	fs.IntVar(&o.LogEvery, "log-every", 50, "log a line every this many steps")
	fs.DurationVar(&o.mpiTimeout, "mpi-timeout", 45*time.Second, "under mpirun: how long a process waits for the others in a collective before the job ends with an error naming the silent rank (a hung or stopped rank); more than the slowest rank lags behind, e.g. while rank 0 writes a checkpoint")
	return func(ctx context.Context) error { return runTrain(ctx, o) }
}

func runTrain(ctx context.Context, o trainOptions) error {
	if o.Data == "" {
		return usageError{fmt.Errorf("train: --data is required (e.g. --data fmnist:/usr/share/datasets/fashion-mnist)")}
	}
	if o.resume != "" {
		if o.OutDir != "" && o.OutDir != o.resume {
			return usageError{fmt.Errorf("train: --resume %s and --out %s differ; a resumed run continues in its own directory", o.resume, o.OutDir)}
		}
		o.OutDir, o.Resume = o.resume, true
	}
	if o.OutDir == "" {
		return usageError{fmt.Errorf("train: --out RUNDIR is required")}
	}
	o.Graph.ConvNodes = !o.convAsGemm
	o.Augment.ScaleMin, o.Augment.ScaleMax = o.cropScaleMin, 1
	if o.Augment.JitterStrength == 0 {
		o.Augment.JitterStrength = -1 // --jitter-strength 0 turns jitter off
	}
	o.Version = gen.ProducerVersion
	comm, err := worldComm()
	if err != nil {
		return err
	}
	o.Comm = comm
	comm.SetTimeout(o.mpiTimeout)
	res, err := train.Run(ctx, o.Options)
	if comm.Size() > 1 && err != nil && !errors.Is(err, context.Canceled) {
		// The other ranks may wait in a collective for this one: end the
		// whole job now rather than after their timeout.
		code := 1
		var ue usageError
		if errors.As(err, &ue) {
			code = 2
		}
		comm.Abort(code, "simclr-ort: "+err.Error())
	}
	if ferr := comm.Finalize(); ferr != nil && !errors.Is(ferr, mpi.ErrFinalized) && err == nil {
		err = ferr
	}
	if comm.Rank() == 0 && res != nil && len(res.Losses) > 0 {
		n := min(20, len(res.Losses))
		var tail float64
		for _, l := range res.Losses[len(res.Losses)-n:] {
			tail += l
		}
		global := o.Config.Pairs * comm.Size()
		pairs := float64(len(res.Losses) * global)
		fmt.Printf("trained steps %d-%d in %.1f s (%.1f pairs/s): first loss %.4f, mean of the last %d %.4f (ln(2N-1) = %.4f); checkpoint %s\n",
			res.FirstStep, res.Steps, res.Wall.Seconds(), pairs/res.Wall.Seconds(), res.Losses[0], n, tail/float64(n),
			math.Log(float64(2*global-1)), res.Checkpoint)
	}
	if errors.Is(err, context.Canceled) && res != nil && res.Checkpoint != "" {
		return fmt.Errorf("interrupted after step %d; checkpoint written to %s; continue with --resume %s: %w", res.Steps, res.Checkpoint, o.OutDir, err)
	}
	return err
}
