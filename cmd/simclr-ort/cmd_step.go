package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/simclr-ort/simclr-ort/gen"
	"github.com/simclr-ort/simclr-ort/graphs"
	"github.com/simclr-ort/simclr-ort/runtime/optim"
	"github.com/simclr-ort/simclr-ort/runtime/ort"
	"github.com/simclr-ort/simclr-ort/runtime/step"
	"github.com/spf13/pflag"
)

type stepOptions struct {
	config  graphs.Config
	steps   int
	warmup  int
	update  bool
	asJSON  bool
	profile string
	threads int
	seed    uint64
	ortLib  string
	ep      string
	device  int
	cuda    ort.CUDAOptions
}

func stepFlags(fs *pflag.FlagSet) func(context.Context) error {
	var o stepOptions
	addConfigFlags(fs, &o.config)
	fs.IntVar(&o.steps, "steps", 3, "training steps to time")
	fs.IntVar(&o.warmup, "warmup", 0, "untimed steps first (the first CUDA step also searches cuDNN algorithms)")
	fs.BoolVar(&o.update, "update", false, "apply the LARS update after every graph run (timed apart), as training does")
	fs.BoolVar(&o.asJSON, "json", false, "print one JSON object with every timing instead of text")
	fs.StringVar(&o.profile, "profile", "", "write ONNX Runtime's JSON profile of the timed runs to PREFIX_<date>.json")
	fs.IntVar(&o.threads, "threads", 0, "ONNX Runtime intra-op threads (0: one per core)")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the initial weights and the random views")
	fs.StringVar(&o.ep, "ep", "cpu", "ONNX Runtime execution provider: cpu or cuda")
	fs.IntVar(&o.device, "device-id", 0, "GPU for --ep cuda")
	addCUDAFlags(fs, &o.cuda)
	fs.StringVar(&o.ortLib, "ort-lib", "", "ONNX Runtime shared library (default: $"+ort.LibraryEnv+", then .cache/onnxruntime/)")
	return func(ctx context.Context) error {
		providerDefaults(fs, &o.config, o.ep)
		return runStep(ctx, o)
	}
}

// stepReport is `simclr-ort step --json`'s output.
type stepReport struct {
	Config         string    `json:"config"`
	Provider       string    `json:"provider"`
	ORTVersion     string    `json:"ort_version"`
	Parameters     int64     `json:"parameters"`
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

func runStep(ctx context.Context, o stepOptions) error {
	cfg := o.config.Defaults()
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	if o.steps < 1 || o.warmup < 0 {
		return usageError{fmt.Errorf("--steps %d must be at least 1 and --warmup %d not negative", o.steps, o.warmup)}
	}
	if err := ort.InitFor(o.ortLib, o.ep); err != nil {
		return err
	}
	m, train, _, ok, err := graphs.Lookup(cfg)
	if err != nil {
		return err
	}
	source := "graphs/ (embedded)"
	if !ok || !gen.ConvsAsGemm() {
		b, err := gen.Build(cfg)
		if err != nil {
			return err
		}
		m, train, source = b.Manifest, b.Train, "generated now"
	}
	say := func(format string, args ...any) {
		if !o.asJSON {
			fmt.Printf(format, args...)
		}
	}
	rep := stepReport{Config: cfg.Name(), Provider: o.ep, ORTVersion: ort.Version(), Parameters: countParams(m), Pairs: cfg.Pairs}
	say("%s: %d parameters in %d tensors, graph %s, ONNX Runtime %s\n", cfg.Name(), rep.Parameters, len(m.Params), source, rep.ORTVersion)
	t0 := time.Now()
	md, err := step.New(m, train, ort.Options{IntraOpThreads: o.threads, Provider: o.ep, DeviceID: o.device, CUDA: o.cuda, ProfilePrefix: o.profile})
	if err != nil {
		return err
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
	r := rand.New(rand.NewPCG(o.seed, 0))
	md.Initialize(r)
	for i := range md.Views {
		md.Views[i] = r.Float32()
	}
	var lars *optim.LARS
	if o.update {
		sizes := make([]int, len(m.Params))
		excluded := make([]bool, len(m.Params))
		for i, t := range m.Params {
			sizes[i], excluded[i] = int(t.Size()), t.LARSExclude
		}
		lars = optim.NewLARS(sizes, excluded, optim.LARSConfig{})
	}
	lr := optim.Linear.Scale(optim.DefaultLARSLR, cfg.Pairs)
	want := math.Log(float64(2*cfg.Pairs - 1))
	for i := 0; i < o.warmup+o.steps; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		t0 := time.Now()
		loss, err := md.Run()
		if err != nil {
			return err
		}
		run := time.Since(t0).Seconds()
		var update float64
		if lars != nil {
			t1 := time.Now()
			lars.Step(lr, md.Params, md.Grads)
			md.CommitRunningStats()
			update = time.Since(t1).Seconds()
		}
		if i < o.warmup {
			rep.WarmupSeconds = append(rep.WarmupSeconds, run+update)
			say("warm-up %d: loss %.5f, %.3f s\n", i, loss, run+update)
			continue
		}
		rep.RunSeconds = append(rep.RunSeconds, run)
		rep.Losses = append(rep.Losses, loss)
		if lars != nil {
			rep.UpdateSeconds = append(rep.UpdateSeconds, update)
		}
		say("step %d: loss %.5f (ln(2N-1) = %.5f, %+.3f%%), run %.3f s, update %.3f s\n", i, loss, want, 100*(float64(loss)-want)/want, run, update)
	}
	rep.MedianRun = median(rep.RunSeconds)
	rep.MedianUpdate = median(rep.UpdateSeconds)
	steps := make([]float64, len(rep.RunSeconds))
	for i := range steps {
		steps[i] = rep.RunSeconds[i]
		if lars != nil {
			steps[i] += rep.UpdateSeconds[i]
		}
	}
	rep.MedianStep = median(steps)
	rep.PairsPerSecond = float64(cfg.Pairs) / rep.MedianStep
	if o.profile != "" {
		if err := md.Close(); err != nil {
			return err
		}
		rep.ProfileFile = latestProfile(o.profile)
	}
	if o.asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Printf("median %.4f s per step (run %.4f s, update %.4f s), %.1f pairs/s; session created in %.1f s\n",
		rep.MedianStep, rep.MedianRun, rep.MedianUpdate, rep.PairsPerSecond, rep.SessionSeconds)
	if rep.ProfileFile != "" {
		fmt.Println("profile:", rep.ProfileFile)
	}
	return nil
}

// median of xs (0 for none); xs is left unchanged.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
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

func countParams(m *graphs.Manifest) int64 {
	var n int64
	for _, t := range m.Params {
		n += t.Size()
	}
	return n
}
