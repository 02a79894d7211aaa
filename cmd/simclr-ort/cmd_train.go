package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/simclr-ort/simclr-ort/augment/data"
	"github.com/simclr-ort/simclr-ort/gen"
	"github.com/simclr-ort/simclr-ort/graphs"
	"github.com/simclr-ort/simclr-ort/runtime/mpi"
	"github.com/simclr-ort/simclr-ort/runtime/ort"
	"github.com/simclr-ort/simclr-ort/runtime/train"
	"github.com/spf13/pflag"
)

// trainOptions are the train flags: the run's configuration and what only
// this invocation uses.
type trainOptions struct {
	cfg        trainConfig
	out        string
	resume     string
	configFile string
	stopAfter  int
}

// defaultTrainConfig is every train flag's default.
func defaultTrainConfig() trainConfig {
	return trainConfig{
		Arch: "resnet18", Stem: "imagenet", ImageSize: 224, BatchSize: 128, Shards: 1, ProjectionDim: 64,
		Temperature: 0.5, BNGroups: 1, Epochs: 100, Optimizer: "lars", LRScaling: "linear",
		JitterStrength: 1, CropScaleMin: 0.08, Seed: 1, EP: "cpu", CudnnAlgo: "exhaustive",
		GPUArenaExtend: "next-power-of-two", ORTLogLevel: "error", ConvAsGemm: true, Kernels: train.KernelsAuto, JPEGDecoder: data.JPEGAuto,
		MaxImagePixels: data.DefaultMaxImagePixels, CheckpointEvery: 1, KeepCheckpoints: 1, LogEvery: 50,
		MPITimeout: 45 * time.Second, EvalK: train.DefaultEvalK, EvalTrainImages: train.DefaultEvalTrainImages,
		EvalTestImages: train.DefaultEvalTestImages,
	}
}

func trainFlags(fs *pflag.FlagSet) func(context.Context) error {
	var o trainOptions
	c := &o.cfg
	*c = defaultTrainConfig()
	fs.StringVar(&c.Arch, "arch", c.Arch, "encoder: resnet18 or resnet50")
	fs.StringVar(&c.Stem, "stem", c.Stem, "first layers: imagenet (7x7 stride-2 conv and max-pool) or cifar (3x3 stride-1 conv)")
	fs.IntVar(&c.ImageSize, "image-size", c.ImageSize, "side of the square views in pixels")
	fs.IntVar(&c.BatchSize, "batch-size", c.BatchSize, "images per batch and process (each gives two views); under mpirun -np W the global batch, which scales the learning rate, is W times this")
	fs.IntVar(&c.Shards, "shards", c.Shards, "BatchNorm shards of one process's batch: the batch computed as that many data-parallel ranks would (--batch-size 2n --shards 2 equals mpirun -np 2 ... --batch-size n)")
	fs.IntVar(&c.ProjectionDim, "projection-dim", c.ProjectionDim, "size of the projection z")
	fs.Float64Var(&c.Temperature, "temperature", c.Temperature, "NT-Xent temperature")
	fs.IntVar(&c.BNGroups, "bn-groups", c.BNGroups, "BatchNorm groups over the 2N views: 1 (all views together) or 2 (each view apart, as the PyTorch reference)")
	fs.StringVar(&c.BNLowering, "bn-lowering", "", "training BatchNorm as onnx (BatchNormalization) or primitive ops, for providers that refuse training mode (default: onnx, primitive with --ep cuda)")
	fs.StringVar(&c.ConvGrad, "conv-grad", "", "convolution gradients formulated for the cpu or the gpu: ConvTranspose, patches and Gemm, no Slice (default: cpu, gpu with --ep cuda)")
	fs.StringVar(&c.Data, "data", "", "dataset: an image folder (root/class/image), fmnist:DIR, mnist:DIR or cifar10:DIR")
	fs.IntVar(&c.Epochs, "epochs", c.Epochs, "epochs to train (ignored when --steps is set)")
	fs.IntVar(&c.Steps, "steps", 0, "steps to train in all (overrides --epochs)")
	fs.StringVar(&c.Optimizer, "optimizer", c.Optimizer, "lars or adam")
	fs.Float64Var(&c.LR, "lr", 0, "base learning rate (default: 0.3 for LARS, scaled by --lr-scaling; 0.075 with sqrt scaling; 3e-4 for Adam)")
	fs.StringVar(&c.LRScaling, "lr-scaling", c.LRScaling, "LARS learning rate: linear (lr·batch/256), sqrt (lr·√batch) or none (lr)")
	fs.Float64Var(&c.WarmupEpochs, "warmup-epochs", 0, "epochs of linear warm-up before the cosine decay")
	fs.Float64Var(&c.WeightDecay, "weight-decay", 0, "weight decay (default: 1e-6 for LARS, none for Adam; 0 turns it off)")
	fs.Float64Var(&c.JitterStrength, "jitter-strength", c.JitterStrength, "colour jitter strength s in ColorJitter(0.8s, 0.8s, 0.8s, 0.2s) (0: no colour jitter)")
	fs.Float64Var(&c.CropScaleMin, "crop-scale-min", c.CropScaleMin, "smallest area fraction of RandomResizedCrop, in (0, 1]")
	fs.BoolVar(&c.Blur, "blur", false, "Gaussian blur (p=0.5, kernel 10% of the side, sigma 0.1-2)")
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "seed of the weights, the epoch orders and every view")
	fs.IntVar(&c.Workers, "workers", 0, "goroutines decoding and augmenting images (0: one per core)")
	fs.StringVar(&o.out, "out", "", "run directory for checkpoint.ckpt, metrics.jsonl and config.yaml (required unless --resume)")
	fs.StringVar(&o.resume, "resume", "", "continue the run in this run directory: every setting comes from its checkpoint; flags may change only what does not change the result (--data, --workers, --threads, checkpointing, logging, runtime knobs, and --steps/--epochs to extend a finished run)")
	fs.StringVar(&o.configFile, "config", "", "YAML file of train settings keyed by flag name (flags on the command line win), e.g. RUNDIR/config.yaml; the PyTorch reference's config.yaml is accepted too")
	fs.IntVar(&o.stopAfter, "stop-after", 0, "stop after this many steps of this invocation, with a checkpoint (continue later with --resume)")
	fs.IntVar(&c.CheckpointEvery, "checkpoint-every", c.CheckpointEvery, "write a checkpoint every this many epochs (0: never by epochs)")
	fs.IntVar(&c.CheckpointEverySteps, "checkpoint-every-steps", 0, "write a checkpoint every this many steps (0: never by steps)")
	fs.Float64Var(&c.CheckpointEveryMinutes, "checkpoint-every-minutes", 0, "write a checkpoint when this many minutes have passed since the last (0: never by time)")
	fs.IntVar(&c.KeepCheckpoints, "keep-checkpoints", c.KeepCheckpoints, "checkpoints to keep: checkpoint.ckpt (the latest) and the ones before it as checkpoint-STEP.ckpt")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", "", "serve Prometheus metrics on this address, e.g. :9090")
	fs.StringVar(&c.EP, "ep", c.EP, "ONNX Runtime execution provider: cpu or cuda")
	fs.IntVar(&c.DeviceID, "device-id", 0, "GPU for --ep cuda")
	addCUDAFlagsTo(fs, &c.CudnnAlgo, &c.TF32, &c.GPUMemLimitMiB, &c.GPUArenaExtend, &c.CUDAProviderLib, &c.CUDAProviderOptions)
	fs.IntVar(&c.Threads, "threads", 0, "ONNX Runtime intra-op threads (0: one per core)")
	fs.StringVar(&c.ORTLib, "ort-lib", "", "ONNX Runtime shared library (default: $"+ort.LibraryEnv+", then .cache/onnxruntime/)")
	addORTLogFlag(fs, &c.ORTLogLevel)
	addConvAsGemmFlag(fs, &c.ConvAsGemm)
	addKernelsFlag(fs, &c.Kernels, c.Kernels)
	fs.StringVar(&c.JPEGDecoder, "jpeg-decoder", c.JPEGDecoder, "JPEG decoder of image folders: auto (libjpeg-turbo if libturbojpeg.so.0 loads, else Go's image/jpeg), turbo or go")
	fs.IntVar(&c.MaxImagePixels, "max-image-pixels", c.MaxImagePixels, "refuse (skip and count) image files whose header declares more pixels (width x height) than this, before decoding them")
	fs.IntVar(&c.LogEvery, "log-every", c.LogEvery, "log a line every this many steps")
	fs.IntVar(&c.EvalEvery, "eval-every", 0, "every this many steps (and at the end), kNN top-1 of the current encoder on held-out images (the test split, or a fixed sample), in the log, metrics.jsonl and Prometheus (0: never)")
	fs.IntVar(&c.EvalK, "eval-k", c.EvalK, "neighbours that vote in --eval-every's kNN")
	fs.IntVar(&c.EvalTrainImages, "eval-train-images", c.EvalTrainImages, "labelled reference images of --eval-every's kNN, spread evenly over the train split")
	fs.IntVar(&c.EvalTestImages, "eval-test-images", c.EvalTestImages, "held-out images --eval-every's kNN classifies")
	fs.DurationVar(&c.MPITimeout, "mpi-timeout", c.MPITimeout, "under mpirun: how long a process waits for the others in a collective before the job ends with an error naming the silent rank (a hung or stopped rank); more than the slowest rank lags behind, e.g. while rank 0 writes a checkpoint")
	return func(ctx context.Context) error {
		// MPI first: a resumed run's settings come from rank 0, the only
		// rank that needs the run directory.
		comm, err := worldComm()
		if err != nil {
			return err
		}
		cfg, file, err := resolveTrainConfig(fs, o, comm)
		if err != nil {
			return err
		}
		o.cfg = cfg
		if file != nil {
			fmt.Fprint(stdout, file.notes.String())
			if o.out == "" {
				o.out = file.out
			}
		}
		return runTrain(ctx, o, comm)
	}
}

// options turns the resolved configuration into the trainer's options,
// refusing impossible values with the flag that gave them.
func (o trainOptions) options() (train.Options, error) {
	c := o.cfg
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if c.Data == "" {
		bad("--data is required (e.g. --data fmnist:/usr/share/datasets/fashion-mnist)")
	}
	if c.BatchSize < 2 {
		bad("--batch-size %d must be at least 2 (NT-Xent needs negatives)", c.BatchSize)
	}
	if c.ImageSize < 8 {
		bad("--image-size %d must be at least 8", c.ImageSize)
	}
	if c.ProjectionDim < 1 {
		bad("--projection-dim %d must be at least 1", c.ProjectionDim)
	}
	if !(c.Temperature > 0) || math.IsInf(c.Temperature, 0) {
		bad("--temperature %v must be a positive number", c.Temperature)
	}
	if c.Shards < 1 {
		bad("--shards %d must be at least 1", c.Shards)
	}
	if c.Steps < 0 {
		bad("--steps %d must not be negative (0: train --epochs epochs)", c.Steps)
	}
	if c.Steps == 0 && c.Epochs < 1 {
		bad("--epochs %d must be at least 1 (or give --steps)", c.Epochs)
	}
	if c.LR < 0 || math.IsNaN(c.LR) || math.IsInf(c.LR, 0) {
		bad("--lr %v must be a positive number", c.LR)
	}
	if c.WeightDecay < 0 || math.IsNaN(c.WeightDecay) || math.IsInf(c.WeightDecay, 0) {
		bad("--weight-decay %v must be a non-negative number (0: none)", c.WeightDecay)
	}
	if c.JitterStrength < 0 || math.IsNaN(c.JitterStrength) {
		bad("--jitter-strength %v must not be negative (0: no colour jitter)", c.JitterStrength)
	}
	if !(c.CropScaleMin > 0 && c.CropScaleMin <= 1) {
		bad("--crop-scale-min %v must be in (0, 1]", c.CropScaleMin)
	}
	if c.LogEvery < 1 {
		bad("--log-every %d must be at least 1", c.LogEvery)
	}
	if c.KeepCheckpoints < 1 {
		bad("--keep-checkpoints %d must be at least 1", c.KeepCheckpoints)
	}
	if c.MaxImagePixels < 1 {
		bad("--max-image-pixels %d must be at least 1", c.MaxImagePixels)
	}
	if c.EvalEvery < 0 {
		bad("--eval-every %d must not be negative (0: never)", c.EvalEvery)
	}
	if c.EvalK < 1 || c.EvalTrainImages < 1 || c.EvalTestImages < 1 {
		bad("--eval-k %d, --eval-train-images %d and --eval-test-images %d must be at least 1", c.EvalK, c.EvalTrainImages, c.EvalTestImages)
	}
	if c.GPUMemLimitMiB < 0 {
		bad("--gpu-mem-limit %d must not be negative (0: no cap)", c.GPUMemLimitMiB)
	}
	if c.MPITimeout <= 0 {
		bad("--mpi-timeout %v must be positive", c.MPITimeout)
	}
	if o.stopAfter < 0 {
		bad("--stop-after %d must not be negative (0: run to the end)", o.stopAfter)
	}
	for _, e := range []struct {
		flag, value string
		allowed     []string
	}{
		{"arch", c.Arch, []string{"resnet18", "resnet50"}},
		{"stem", c.Stem, []string{"imagenet", "cifar"}},
		{"optimizer", c.Optimizer, []string{"lars", "adam"}},
		{"lr-scaling", c.LRScaling, []string{"linear", "sqrt", "none"}},
		{"ep", c.EP, []string{"cpu", "cuda"}},
		{"bn-lowering", c.BNLowering, []string{"", "onnx", "primitive"}},
		{"conv-grad", c.ConvGrad, []string{"", "cpu", "gpu"}},
		{"cudnn-algo", c.CudnnAlgo, []string{"exhaustive", "heuristic", "default"}},
		{"gpu-arena-extend", c.GPUArenaExtend, []string{"next-power-of-two", "same-as-requested"}},
		{"ort-log-level", c.ORTLogLevel, ort.LogLevels},
		{"jpeg-decoder", c.JPEGDecoder, []string{data.JPEGAuto, data.JPEGTurbo, data.JPEGGo}},
		{"kernels", c.Kernels, []string{train.KernelsAuto, train.KernelsNative, train.KernelsONNX}},
	} {
		if !slices.Contains(e.allowed, e.value) {
			bad("--%s %q: use %s", e.flag, e.value, strings.Join(slices.DeleteFunc(slices.Clone(e.allowed), func(s string) bool { return s == "" }), ", "))
		}
	}
	if c.BNGroups != 1 && c.BNGroups != 2 {
		bad("--bn-groups %d must be 1 or 2", c.BNGroups)
	}
	cfg := graphs.Config{Arch: c.Arch, Stem: c.Stem, ImageSize: c.ImageSize, Pairs: c.BatchSize, ProjectionDim: c.ProjectionDim,
		Temperature: c.Temperature, BNGroups: c.BNGroups, BNLowering: c.BNLowering, ConvGrad: c.ConvGrad, Shards: c.Shards}
	if len(errs) == 0 {
		if need, have := train.StepMemory(cfg), physicalMemory(); have > 0 && need > have {
			bad("--image-size %d with --batch-size %d needs at least %.1f GB for one step's activations, more than this machine's %.1f GB: lower --image-size or --batch-size",
				c.ImageSize, c.BatchSize, float64(need)/(1<<30), float64(have)/(1<<30))
		}
	}
	if len(errs) > 0 {
		return train.Options{}, usageError{fmt.Errorf("train: %s", strings.Join(errs, "; "))}
	}
	wd := c.WeightDecay
	if wd == 0 {
		wd = -1 // none; the trainer's zero is the optimizer's default
	}
	jitter := c.JitterStrength
	if jitter == 0 {
		jitter = -1 // off; the pipeline's zero is strength 1
	}
	opts := train.Options{
		Config: cfg, Data: c.Data, DataOptions: data.Options{JPEGDecoder: c.JPEGDecoder, MaxImagePixels: c.MaxImagePixels},
		Epochs: c.Epochs, Steps: c.Steps, Optimizer: c.Optimizer, BaseLR: c.LR, LRScaling: c.LRScaling,
		WarmupEpochs: c.WarmupEpochs, WeightDecay: wd, Seed: c.Seed, Workers: c.Workers, OutDir: o.out,
		StopAfter: o.stopAfter, CheckpointEvery: c.CheckpointEvery, CheckpointEverySteps: c.CheckpointEverySteps,
		CheckpointEveryMinutes: c.CheckpointEveryMinutes, KeepCheckpoints: c.KeepCheckpoints, MetricsAddr: c.MetricsAddr,
		Provider: c.EP, DeviceID: c.DeviceID, Threads: c.Threads, ORTLib: ortLibrary(c.ORTLib), ORTLogLevel: c.ORTLogLevel,
		CUDA: ort.CUDAOptions{ConvAlgoSearch: c.CudnnAlgo, TF32: c.TF32, MemLimit: c.GPUMemLimitMiB << 20, ArenaExtend: c.GPUArenaExtend,
			ProviderLibrary: c.CUDAProviderLib, Extra: c.CUDAProviderOptions},
		Graph:    train.GraphOptions{ConvNodes: !c.ConvAsGemm},
		Kernels:  c.Kernels,
		LogEvery: c.LogEvery, EvalEvery: c.EvalEvery, EvalK: c.EvalK, EvalTrainImages: c.EvalTrainImages, EvalTestImages: c.EvalTestImages,
		Version: gen.ProducerVersion, Holder: "simclr-ort " + strings.Join(os.Args[1:], " "),
	}
	opts.Augment.ScaleMin, opts.Augment.ScaleMax = c.CropScaleMin, 1
	opts.Augment.JitterStrength = jitter
	opts.Augment.Blur = c.Blur
	return opts, nil
}

// physicalMemory is the machine's memory in bytes, or 0 when unknown.
func physicalMemory() int64 {
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err != nil {
		return 0
	}
	return int64(si.Totalram) * int64(si.Unit)
}

func runTrain(ctx context.Context, o trainOptions, comm *mpi.Comm) error {
	if o.resume != "" {
		if o.out != "" && filepath.Clean(o.out) != filepath.Clean(o.resume) {
			return usageError{fmt.Errorf("train: --resume %s and --out %s differ; a resumed run continues in its own directory", o.resume, o.out)}
		}
		o.out = o.resume
	}
	if o.out == "" {
		return usageError{fmt.Errorf("train: --out RUNDIR is required")}
	}
	opts, err := o.options()
	if err != nil {
		return err
	}
	opts.Resume = o.resume != ""
	if opts.RunConfig, err = o.cfg.marshal(); err != nil {
		return err
	}
	opts.Comm = comm
	comm.SetTimeout(o.cfg.MPITimeout)
	res, err := train.Run(ctx, opts)
	if comm.Size() > 1 && err != nil && !errors.Is(err, context.Canceled) {
		// The other ranks may wait in a collective for this one: end the
		// whole job now rather than after their timeout.
		code := 1
		var ue usageError
		if errors.As(err, &ue) || errors.Is(err, train.ErrInvalidOptions) || errors.Is(err, graphs.ErrInvalid) {
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
		global := o.cfg.BatchSize * comm.Size()
		pairs := float64(len(res.Losses) * global)
		saved := "no checkpoint written"
		if res.Checkpoint != "" {
			saved = fmt.Sprintf("checkpoint %s (step %d)", res.Checkpoint, res.CheckpointStep)
		}
		fmt.Fprintf(stdout, "trained steps %d-%d in %.1f s (%.1f pairs/s): first loss %.4f, mean of the last %d %.4f (ln(2N-1) = %.4f); %s\n",
			res.FirstStep, res.Steps, res.Wall.Seconds(), pairs/res.Wall.Seconds(), res.Losses[0], n, tail/float64(n),
			math.Log(float64(2*global-1)), saved)
	}
	if errors.Is(err, context.Canceled) && res != nil && res.Checkpoint != "" {
		return fmt.Errorf("interrupted (%w) after step %d; checkpoint written to %s; continue with: simclr-ort train --resume %s", err, res.Steps, res.Checkpoint, o.out)
	}
	return err
}
