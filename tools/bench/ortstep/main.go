// Command ortstep times full SimCLR training steps on ONNX Runtime's CPU
// provider: one run of the generated training graph (forward, loss,
// backward), the official-SimCLR LARS update of every parameter in Go and the
// running-statistics swap; the counterpart of tools/bench/torch_step.py. With -profile it also writes
// ONNX Runtime's profile and prints the costliest node types.
//
// Usage: go run ./tools/bench/ortstep -arch resnet18 -stem cifar -image-size 32 -pairs 64 -threads 2 [-kernels onnx|native] [-json] [-profile DIR]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"github.com/simclr-ort/simclr-ort/gen"
	"github.com/simclr-ort/simclr-ort/gen/simclr"
	"github.com/simclr-ort/simclr-ort/graphs"
	"github.com/simclr-ort/simclr-ort/runtime/optim"
	"github.com/simclr-ort/simclr-ort/runtime/ort"
	"github.com/simclr-ort/simclr-ort/runtime/step"
)

type result struct {
	Config      string    `json:"config"`
	MedianS     float64   `json:"median_s"`
	PairsPerS   float64   `json:"pairs_per_s"`
	StepTimes   []float64 `json:"step_times"`
	PeakRSSMiB  float64   `json:"peak_rss_mib"`
	ORTVersion  string    `json:"ort_version"`
	SetupS      float64   `json:"setup_s"`
	TopNodeType []opTime  `json:"top_node_types,omitempty"`
	Kernels     string    `json:"kernels"`
	// CPUS is the median CPU time (user + system, every thread) of a
	// step: on a shared machine it tells the work from the wait.
	CPUS       []float64 `json:"cpu_s"`
	MedianCPUS float64   `json:"median_cpu_s"`
	NativeInfo string    `json:"native_info,omitempty"`
}

type opTime struct {
	OpType string  `json:"op_type"`
	Share  float64 `json:"share"`
	MsStep float64 `json:"ms_per_step"`
	Count  int     `json:"nodes"`
}

func main() {
	var cfg graphs.Config
	flag.StringVar(&cfg.Arch, "arch", "resnet18", "resnet18 or resnet50")
	flag.StringVar(&cfg.Stem, "stem", "cifar", "cifar or imagenet")
	flag.IntVar(&cfg.ImageSize, "image-size", 32, "image side")
	flag.IntVar(&cfg.Pairs, "pairs", 64, "pairs per batch (N)")
	flag.IntVar(&cfg.BNGroups, "bn-groups", 1, "BatchNorm groups")
	threads := flag.Int("threads", 2, "ONNX Runtime intra-op threads")
	warmup := flag.Int("warmup", 2, "untimed steps first")
	iters := flag.Int("iters", 10, "timed steps")
	asJSON := flag.Bool("json", false, "print one JSON object")
	profile := flag.String("profile", "", "write ONNX Runtime's profile into this directory and print the top node types")
	ortLib := flag.String("ort-lib", "", "ONNX Runtime shared library")
	noArena := flag.Bool("no-arena", false, "turn ONNX Runtime's CPU memory arena off")
	kernels := flag.String("kernels", simclr.KernelsONNX, "onnx (standard ONNX ops) or native (oneDNN kernels of the custom-op domain)")
	nativeThreads := flag.Int("native-threads", 0, "oneDNN's OpenMP threads with -kernels native (0: -threads)")
	flag.Parse()
	if err := run(cfg.Defaults(), *threads, *warmup, *iters, *asJSON, *profile, *ortLib, *noArena, *kernels, *nativeThreads); err != nil {
		fmt.Fprintln(os.Stderr, "ortstep:", err)
		os.Exit(1)
	}
}

func run(cfg graphs.Config, threads, warmup, iters int, asJSON bool, profile, ortLib string, noArena bool, kernels string, nativeThreads int) error {
	if ortLib == "" {
		ortLib = os.Getenv(ort.LibraryEnv)
	}
	if err := ort.Init(ortLib); err != nil {
		return err
	}
	start := time.Now()
	built, err := gen.BuildWith(cfg, simclr.Options{Kernels: kernels})
	if err != nil {
		return err
	}
	opts := ort.Options{IntraOpThreads: threads, NoArena: noArena, NativeKernels: kernels == simclr.KernelsNative, NativeThreads: nativeThreads}
	if profile != "" {
		if err := os.MkdirAll(profile, 0o755); err != nil {
			return err
		}
		opts.ProfilePrefix = filepath.Join(profile, "ort-"+cfg.Name())
	}
	md, err := step.New(built.Manifest, built.Train, opts)
	if err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(1, 1))
	md.Initialize(r)
	for i := range md.Views {
		md.Views[i] = r.Float32()
	}
	sizes := make([]int, len(built.Manifest.Params))
	excluded := make([]bool, len(built.Manifest.Params))
	for i, t := range built.Manifest.Params {
		sizes[i], excluded[i] = int(t.Size()), t.LARSExclude
	}
	lars := optim.NewLARS(sizes, excluded, optim.LARSConfig{})
	lr := 0.3 * float64(cfg.Pairs) / 256
	res := result{Config: cfg.Name(), ORTVersion: ort.Version(), SetupS: time.Since(start).Seconds(), Kernels: kernels}
	for i := 0; i < warmup+iters; i++ {
		t0, c0 := time.Now(), cpuTime()
		if _, err := md.Run(); err != nil {
			return err
		}
		lars.Step(lr, md.Params, md.Grads)
		md.CommitRunningStats()
		if i >= warmup {
			res.StepTimes = append(res.StepTimes, time.Since(t0).Seconds())
			res.CPUS = append(res.CPUS, cpuTime()-c0)
		}
	}
	if opts.NativeKernels {
		if res.NativeInfo, err = ort.NativeKernelsInfo(); err != nil {
			return err
		}
	}
	if err := md.Close(); err != nil {
		return err
	}
	sorted := append([]float64(nil), res.StepTimes...)
	sort.Float64s(sorted)
	res.MedianS = sorted[len(sorted)/2]
	if len(sorted)%2 == 0 {
		res.MedianS = (sorted[len(sorted)/2-1] + sorted[len(sorted)/2]) / 2
	}
	res.PairsPerS = float64(cfg.Pairs) / res.MedianS
	res.MedianCPUS = median(res.CPUS)
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		res.PeakRSSMiB = float64(ru.Maxrss) / 1024
	}
	if profile != "" {
		top, err := summariseProfile(profile, "ort-"+cfg.Name(), warmup+iters)
		if err != nil {
			return err
		}
		res.TopNodeType = top
	}
	if asJSON {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	fmt.Printf("%s: median step %.3f s (CPU %.3f s), %.1f pairs/s, peak RSS %.0f MiB (ONNX Runtime %s, %d threads, %s kernels)\n",
		res.Config, res.MedianS, res.MedianCPUS, res.PairsPerS, res.PeakRSSMiB, res.ORTVersion, threads, kernels)
	if res.NativeInfo != "" {
		fmt.Println("  " + res.NativeInfo)
	}
	for _, o := range res.TopNodeType {
		fmt.Printf("  %-20s %5.1f%%  %8.1f ms/step  %4d nodes\n", o.OpType, 100*o.Share, o.MsStep, o.Count)
	}
	return nil
}

// cpuTime is the process's user and system time so far, in seconds.
func cpuTime() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

// summariseProfile reads the newest profile with the prefix and sums kernel
// time per op type over the runs after the first (which includes the
// kernels' one-time setup: oneDNN builds its primitives then).
func summariseProfile(dir, prefix string, steps int) ([]opTime, error) {
	matches, err := filepath.Glob(filepath.Join(dir, prefix+"*.json"))
	if err != nil || len(matches) == 0 {
		return nil, fmt.Errorf("no profile %s* in %s", prefix, dir)
	}
	sort.Strings(matches)
	raw, err := os.ReadFile(matches[len(matches)-1])
	if err != nil {
		return nil, err
	}
	var events []struct {
		Cat  string  `json:"cat"`
		Name string  `json:"name"`
		TS   float64 `json:"ts"`
		Dur  float64
		Args struct {
			OpName string `json:"op_name"`
		} `json:"args"`
	}
	if err := json.Unmarshal(raw, &events); err != nil {
		return nil, fmt.Errorf("parse profile %s: %w", matches[len(matches)-1], err)
	}
	var runs []float64
	for _, e := range events {
		if e.Cat == "Session" && e.Name == "model_run" {
			runs = append(runs, e.TS)
		}
	}
	sort.Float64s(runs)
	from := 0.0
	if len(runs) > 1 {
		from, steps = runs[1], len(runs)-1
	}
	totals := map[string]float64{}
	nodes := map[string]map[string]bool{}
	var all float64
	for _, e := range events {
		if e.TS < from || e.Cat != "Node" || e.Args.OpName == "" || len(e.Name) < 12 || e.Name[len(e.Name)-12:] != "_kernel_time" {
			continue
		}
		totals[e.Args.OpName] += e.Dur
		if nodes[e.Args.OpName] == nil {
			nodes[e.Args.OpName] = map[string]bool{}
		}
		nodes[e.Args.OpName][e.Name] = true
		all += e.Dur
	}
	var out []opTime
	for op, d := range totals {
		out = append(out, opTime{OpType: op, Share: d / all, MsStep: d / 1000 / float64(steps), Count: len(nodes[op])})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Share > out[j].Share })
	if len(out) > 8 {
		out = out[:8]
	}
	return out, nil
}
