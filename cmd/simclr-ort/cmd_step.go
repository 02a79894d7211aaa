package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"

	"github.com/simclr-ort/simclr-ort/runtime/ort"
	"github.com/simclr-ort/simclr-ort/runtime/train"
	"github.com/spf13/pflag"
)

type stepOptions struct {
	bench   train.BenchOptions
	asJSON  bool
	ortLib  string
	logLvl  string
	convGem bool
	kernels string
	// memLimitMiB is --gpu-mem-limit.
	memLimitMiB int64
}

func stepFlags(fs *pflag.FlagSet) func(context.Context) error {
	var o stepOptions
	b := &o.bench
	addConfigFlags(fs, &b.Config)
	fs.IntVar(&b.Steps, "steps", 3, "training steps to time")
	fs.IntVar(&b.Warmup, "warmup", 0, "untimed steps first (the first CUDA step also searches cuDNN algorithms)")
	fs.BoolVar(&b.Update, "update", false, "apply the LARS update after every graph run (timed apart), as training does")
	fs.BoolVar(&o.asJSON, "json", false, "print one JSON object with every timing instead of text")
	fs.StringVar(&b.ORT.ProfilePrefix, "profile", "", "write ONNX Runtime's JSON profile of the timed runs to PREFIX_<date>.json")
	fs.IntVar(&b.ORT.IntraOpThreads, "threads", 0, "ONNX Runtime intra-op threads (0: one per core)")
	fs.Uint64Var(&b.Seed, "seed", 1, "seed of the initial weights and the random views")
	fs.StringVar(&b.ORT.Provider, "ep", "cpu", "ONNX Runtime execution provider: cpu or cuda")
	fs.IntVar(&b.ORT.DeviceID, "device-id", 0, "GPU for --ep cuda")
	addCUDAFlags(fs, &b.ORT.CUDA, &o.memLimitMiB)
	addConvAsGemmFlag(fs, &o.convGem)
	addKernelsFlag(fs, &o.kernels, train.KernelsAuto)
	fs.StringVar(&o.ortLib, "ort-lib", "", "ONNX Runtime shared library (default: $"+ort.LibraryEnv+", then .cache/onnxruntime/)")
	addORTLogFlag(fs, &o.logLvl)
	return func(ctx context.Context) error { return runStep(ctx, o) }
}

func runStep(ctx context.Context, o stepOptions) error {
	b := o.bench
	b.Graph.ConvNodes = !o.convGem
	b.ORT.CUDA.MemLimit = o.memLimitMiB << 20
	if b.Steps < 1 || b.Warmup < 0 {
		return usageError{fmt.Errorf("step: --steps %d must be at least 1 and --warmup %d not negative", b.Steps, b.Warmup)}
	}
	if err := ort.InitWith(ort.InitOptions{Library: ortLibrary(o.ortLib), Provider: b.ORT.Provider, LogLevel: o.logLvl}); err != nil {
		return err
	}
	say := func(format string, args ...any) {
		if !o.asJSON {
			fmt.Printf(format, args...)
		}
	}
	kernels, why, err := train.ResolveKernels(o.kernels, b.ORT.Provider)
	if err != nil {
		return err
	}
	b.Graph.Kernels = kernels
	say("convolutions by %s\n", why)
	cfg := b.Config.For(b.ORT.Provider)
	want := math.Log(float64(2*cfg.Pairs - 1))
	b.Progress = func(s train.BenchStep) {
		if s.Warmup {
			say("warm-up %d: loss %.5f, %.3f s\n", s.Index, s.Loss, s.Run+s.Update)
			return
		}
		say("step %d: loss %.5f (ln(2N-1) = %.5f, %+.3f%%), run %.3f s, update %.3f s\n",
			s.Index, s.Loss, want, 100*(float64(s.Loss)-want)/want, s.Run, s.Update)
	}
	rep, err := train.Bench(ctx, b)
	if err != nil {
		return err
	}
	if o.asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Printf("%s: %d parameters in %d tensors, graph %s, ONNX Runtime %s\n", rep.Config, rep.Parameters, rep.Tensors, rep.GraphSource, rep.ORTVersion)
	fmt.Printf("median %.4f s per step (run %.4f s, update %.4f s), %.1f pairs/s; session created in %.1f s\n",
		rep.MedianStep, rep.MedianRun, rep.MedianUpdate, rep.PairsPerSecond, rep.SessionSeconds)
	if rep.ProfileFile != "" {
		fmt.Println("profile:", rep.ProfileFile)
	}
	return nil
}
