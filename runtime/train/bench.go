package train

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/simclr-ort/simclr-ort/graphs"
	"github.com/simclr-ort/simclr-ort/runtime/optim"
	"github.com/simclr-ort/simclr-ort/runtime/ort"
	"github.com/simclr-ort/simclr-ort/runtime/step"
)

// BenchOptions say which training steps Bench times.
type BenchOptions struct {
	// Config is the configuration; an empty BNLowering or ConvGrad is the
	// variant ORT.Provider runs.
	Config graphs.Config
	// Graph chooses the formulation.
	Graph GraphOptions
	// Steps are timed after Warmup untimed ones (the first CUDA step also
	// searches cuDNN's algorithms).
	Steps, Warmup int
	// Update applies the LARS update after every graph run, timed apart,
	// as training does.
	Update bool
	// Seed draws the initial weights and the random views.
	Seed uint64
	// ORT configures the session (threads, provider, profile).
	ORT ort.Options
	// Progress, when set, is called after every step.
	Progress func(BenchStep)
}

// BenchStep is one step Bench ran.
type BenchStep struct {
	Index  int
	Warmup bool
	Loss   float32
	// Run and Update are the graph run's and the optimizer's seconds.
	Run, Update float64
}

// BenchReport is what Bench measured: `simclr-ort step --json`'s output.
type BenchReport struct {
	Config         string    `json:"config"`
	Provider       string    `json:"provider"`
	ORTVersion     string    `json:"ort_version"`
	GraphSource    string    `json:"graph_source"`
	Parameters     int64     `json:"parameters"`
	Tensors        int       `json:"tensors"`
	Pairs          int       `json:"pairs"`
	InputBytes     int64     `json:"input_bytes"`
	OutputBytes    int64     `json:"output_bytes"`
	SessionSeconds float64   `json:"session_seconds"`
	WarmupSeconds  []float64 `json:"warmup_seconds"`
	RunSeconds     []float64 `json:"run_seconds"`
	UpdateSeconds  []float64 `json:"update_seconds,omitempty"`
	Losses         []float32 `json:"losses"`
	MedianRun      float64   `json:"median_run_seconds"`
	MedianUpdate   float64   `json:"median_update_seconds"`
	MedianStep     float64   `json:"median_step_seconds"`
	PairsPerSecond float64   `json:"pairs_per_second"`
	ProfileFile    string    `json:"profile_file,omitempty"`
}

// Bench times training steps on random views: the graph run (forward,
// loss, backward) and, with Update, LARS and the running-statistics swap.
// ONNX Runtime must be initialised (ort.InitWith).
func Bench(ctx context.Context, o BenchOptions) (*BenchReport, error) {
	cfg := o.Config.For(o.ORT.Provider)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if o.Steps < 1 || o.Warmup < 0 {
		return nil, fmt.Errorf("train: bench: %d steps must be at least 1 and %d warm-up steps not negative", o.Steps, o.Warmup)
	}
	if o.Graph.Kernels == KernelsNative {
		o.ORT.NativeKernels = true
	}
	m, graph, source, err := TrainGraph(cfg, o.Graph)
	if err != nil {
		return nil, err
	}
	rep := &BenchReport{Config: cfg.Name(), Provider: providerName(o.ORT.Provider), ORTVersion: ort.Version(),
		GraphSource: source, Tensors: len(m.Params), Pairs: cfg.Pairs}
	for _, t := range m.Params {
		rep.Parameters += t.Size()
	}
	t0 := time.Now()
	md, err := step.New(m, graph, o.ORT)
	if err != nil {
		return nil, err
	}
	defer md.Close()
	rep.SessionSeconds = time.Since(t0).Seconds()
	rep.InputBytes = 4 * int64(len(md.Views))
	for i := range md.Params {
		rep.InputBytes += 4 * int64(len(md.Params[i]))
		rep.OutputBytes += 4 * int64(len(md.Grads[i]))
	}
	for i := range md.Buffers {
		rep.InputBytes += 4 * int64(len(md.Buffers[i]))
		rep.OutputBytes += 4 * int64(len(md.NewBuffers[i]))
	}
	rep.OutputBytes += 4
	md.Initialize(InitialRand(o.Seed))
	r := rand.New(rand.NewPCG(o.Seed, 0))
	for i := range md.Views {
		md.Views[i] = r.Float32()
	}
	var opt optim.Optimizer
	if o.Update {
		if opt, err = NewOptimizer("lars", m, 0); err != nil {
			return nil, err
		}
	}
	lr := optim.Linear.Scale(optim.DefaultLARSLR, cfg.Pairs)
	for i := 0; i < o.Warmup+o.Steps; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t0 := time.Now()
		loss, err := md.Run()
		if err != nil {
			return nil, err
		}
		s := BenchStep{Index: i, Warmup: i < o.Warmup, Loss: loss, Run: time.Since(t0).Seconds()}
		if opt != nil {
			t1 := time.Now()
			opt.Step(lr, md.Params, md.Grads)
			md.CommitRunningStats()
			s.Update = time.Since(t1).Seconds()
		}
		if o.Progress != nil {
			o.Progress(s)
		}
		if s.Warmup {
			rep.WarmupSeconds = append(rep.WarmupSeconds, s.Run+s.Update)
			continue
		}
		rep.RunSeconds = append(rep.RunSeconds, s.Run)
		rep.Losses = append(rep.Losses, loss)
		if opt != nil {
			rep.UpdateSeconds = append(rep.UpdateSeconds, s.Update)
		}
	}
	rep.MedianRun = median(rep.RunSeconds)
	rep.MedianUpdate = median(rep.UpdateSeconds)
	steps := slices.Clone(rep.RunSeconds)
	for i := range rep.UpdateSeconds {
		steps[i] += rep.UpdateSeconds[i]
	}
	rep.MedianStep = median(steps)
	rep.PairsPerSecond = float64(cfg.Pairs) / rep.MedianStep
	if o.ORT.ProfilePrefix != "" {
		// ONNX Runtime writes the profile when the session closes.
		if err := md.Close(); err != nil {
			return nil, err
		}
		rep.ProfileFile = latestProfile(o.ORT.ProfilePrefix)
	}
	return rep, nil
}

// median of xs (0 for none); xs is left unchanged.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

// latestProfile is the newest PREFIX_*.json file, or "".
func latestProfile(prefix string) string {
	matches, _ := filepath.Glob(prefix + "_*.json")
	var best string
	var bestTime time.Time
	for _, m := range matches {
		if fi, err := os.Stat(m); err == nil && fi.ModTime().After(bestTime) {
			best, bestTime = m, fi.ModTime()
		}
	}
	return best
}
