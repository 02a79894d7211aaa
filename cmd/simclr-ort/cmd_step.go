package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/simclr-ort/simclr-ort/gen"
	"github.com/simclr-ort/simclr-ort/graphs"
	"github.com/simclr-ort/simclr-ort/runtime/ort"
	"github.com/simclr-ort/simclr-ort/runtime/step"
	"github.com/spf13/pflag"
)

type stepOptions struct {
	config  graphs.Config
	steps   int
	threads int
	seed    uint64
	ortLib  string
	ep      string
	device  int
}

func stepFlags(fs *pflag.FlagSet) func(context.Context) error {
	var o stepOptions
	addConfigFlags(fs, &o.config)
	fs.IntVar(&o.steps, "steps", 3, "training-graph runs to time (parameters are not updated)")
	fs.IntVar(&o.threads, "threads", 0, "ONNX Runtime intra-op threads (0: one per core)")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the initial weights and the random views")
	fs.StringVar(&o.ep, "ep", "cpu", "ONNX Runtime execution provider: cpu or cuda")
	fs.IntVar(&o.device, "device-id", 0, "GPU for --ep cuda")
	fs.StringVar(&o.ortLib, "ort-lib", "", "ONNX Runtime shared library (default: $"+ort.LibraryEnv+", then .cache/onnxruntime/)")
	return func(ctx context.Context) error { return runStep(ctx, o) }
}

func runStep(ctx context.Context, o stepOptions) error {
	cfg := o.config.Defaults()
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	if o.steps < 1 {
		return usageError{fmt.Errorf("--steps %d must be at least 1", o.steps)}
	}
	if err := ort.Init(o.ortLib); err != nil {
		return err
	}
	m, train, _, ok, err := graphs.Lookup(cfg)
	if err != nil {
		return err
	}
	source := "graphs/ (embedded)"
	if !ok {
		b, err := gen.Build(cfg)
		if err != nil {
			return err
		}
		m, train, source = b.Manifest, b.Train, "generated now"
	}
	fmt.Printf("%s: %d parameters in %d tensors, graph %s, ONNX Runtime %s\n", cfg.Name(), countParams(m), len(m.Params), source, ort.Version())
	md, err := step.New(m, train, ort.Options{IntraOpThreads: o.threads, Provider: o.ep, DeviceID: o.device})
	if err != nil {
		return err
	}
	defer md.Close()
	r := rand.New(rand.NewPCG(o.seed, 0))
	md.Initialize(r)
	for i := range md.Views {
		md.Views[i] = r.Float32()
	}
	want := math.Log(float64(2*cfg.Pairs - 1))
	var times []float64
	for i := 0; i < o.steps; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		t0 := time.Now()
		loss, err := md.Run()
		if err != nil {
			return err
		}
		times = append(times, time.Since(t0).Seconds())
		fmt.Printf("step %d: loss %.5f (ln(2N-1) = %.5f, %+.3f%%), %.3f s\n", i, loss, want, 100*(float64(loss)-want)/want, times[i])
	}
	sort.Float64s(times)
	median := times[len(times)/2]
	fmt.Printf("median %.3f s per step, %.1f pairs/s\n", median, float64(cfg.Pairs)/median)
	return nil
}

func countParams(m *graphs.Manifest) int64 {
	var n int64
	for _, t := range m.Params {
		n += t.Size()
	}
	return n
}
