// Command parity checks one full SimCLR training step of the generated
// graphs on ONNX Runtime against PyTorch float64: for each case it draws
// the parameters and a batch of views, runs the step, writes inputs,
// outputs and the forward pass's ReLU and MaxPool decisions as .npy files,
// and runs tools/parity/reference.py, which loads the same weights into
// torchvision's ResNet, runs the same step in float64 at ONNX Runtime's
// decisions and compares loss, gradients and running-statistic updates.
// It exits non-zero when any case fails.
//
// Why decisions: a ReLU input or a MaxPool tie within float32 rounding of
// its threshold is decided one way by one float32 implementation and the
// other way by another, and on a batch of a few images that one element
// moves every upstream gradient by about 1%. Comparing with PyTorch's own
// decisions measured such coin flips, not gradient rules. Evaluated at
// ONNX Runtime's decisions, both sides differentiate the same
// piecewise-linear function at the same point, and what remains is float32
// rounding of a smooth computation, which the cases are sized to keep far
// below the gate (see cases).
//
// Usage:
//
//	go run ./tools/parity [-cases a,b] [-keep DIR]     the gate (make parity)
//	go run ./tools/parity -mutants                     every deliberately wrong rule must fail the gate
//	go run ./tools/parity -sweep [-seeds 20]           every case over seeds, thread counts and graph variants
//
// On a GPU machine, -ep cuda runs the step on ONNX Runtime's CUDA provider
// (TF32 off) and, with -gpu, uses larger cases and holds the results against
// PyTorch float32 on the same GPU (loss 1e-4 relative, every gradient 1e-2
// relative in L2 norm), as tools/gpu/check.py does.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/simclr-ort/simclr-ort/gen/simclr"
	"github.com/simclr-ort/simclr-ort/graphs"
	"github.com/simclr-ort/simclr-ort/runtime/ort"
)

// cases cover each architecture and stem, the reference's per-view
// BatchNorm (two groups), the primitive BatchNorm lowering and the GPU
// graph variant. They are sized so that BatchNorm is well conditioned
// everywhere: maps of at least 2x2 at layer4 and at least 32 values per
// channel and group (ImageNet stem at 64 px: layer4 is 2x2; CIFAR stem at
// 32 px: 4x4; ResNet50 with the CIFAR stem at 16 px: 2x2). With 1x1 maps
// (the ImageNet stem at 32 px), BatchNorm normalises 8 values per channel
// and its gradient is a sum of terms that nearly cancel: there PyTorch's
// own float32 result is up to 1.3e-2 from float64 even at the same
// decisions, and no float32 implementation can be held to 1e-3.
var cases = []graphs.Config{
	{Arch: "resnet18", Stem: "cifar", ImageSize: 32, Pairs: 4},
	{Arch: "resnet18", Stem: "imagenet", ImageSize: 64, Pairs: 4},
	{Arch: "resnet50", Stem: "imagenet", ImageSize: 64, Pairs: 4},
	{Arch: "resnet50", Stem: "cifar", ImageSize: 16, Pairs: 4},
	{Arch: "resnet18", Stem: "cifar", ImageSize: 32, Pairs: 4, BNGroups: 2},
	{Arch: "resnet18", Stem: "imagenet", ImageSize: 64, Pairs: 4, BNLowering: "primitive"},
	{Arch: "resnet18", Stem: "imagenet", ImageSize: 64, Pairs: 4, BNLowering: "primitive", ConvGrad: "gpu"},
}

// gpuCases are the -gpu cases: batches and images of a realistic size, both
// BatchNorm lowerings.
var gpuCases = []graphs.Config{
	{Arch: "resnet18", Stem: "cifar", ImageSize: 32, Pairs: 64, BNLowering: "primitive", ConvGrad: "gpu"},
	{Arch: "resnet50", Stem: "imagenet", ImageSize: 64, Pairs: 32, BNLowering: "primitive", ConvGrad: "gpu"},
	{Arch: "resnet18", Stem: "cifar", ImageSize: 32, Pairs: 64, BNLowering: "primitive"},
	{Arch: "resnet18", Stem: "cifar", ImageSize: 32, Pairs: 64},
}

// mutantCases says which case each mutant runs on: one where the wrong
// rule is on the path (MaxPool needs the ImageNet stem; BatchNorm's
// gradient mutant the onnx lowering).
var mutantCases = map[string]graphs.Config{
	"bn-without-mean-dy":             cases[0],
	"conv-weight-grad-flipped":       cases[0],
	"avgpool-grad-scaled":            cases[0],
	"maxpool-grad-first-element":     cases[1],
	simclr.MutantMomentum:            cases[0],
	simclr.MutantBiasedVariance:      cases[0],
	simclr.MutantNTXentPositive:      cases[0],
	"maxpool-grad-first-element-gpu": cases[6],
}

// provider is the ONNX Runtime provider the cases run on (flags -ep, -device-id).
var provider = ort.Options{IntraOpThreads: 2}

func main() {
	keep := flag.String("keep", "", "write the cases into this directory and keep them (default: a temporary directory, removed)")
	python := flag.String("python", "/usr/bin/python3", "Python with Debian's python3-torch and python3-torchvision")
	ortLib := flag.String("ort-lib", "", "ONNX Runtime shared library (default: see README)")
	only := flag.String("cases", "", "comma-separated case names to run (default: all)")
	flag.StringVar(&provider.Provider, "ep", "cpu", "ONNX Runtime execution provider: cpu or cuda (TF32 off)")
	flag.IntVar(&provider.DeviceID, "device-id", 0, "GPU for -ep cuda")
	gpu := flag.Bool("gpu", false, "GPU cases, held against PyTorch float32 on the same GPU (loss 1e-4, gradients 1e-2 relative L2)")
	mutants := flag.Bool("mutants", false, "sensitivity check: build each case with one deliberately wrong rule; every one must fail the gate")
	sweep := flag.Bool("sweep", false, "robustness check: every case over -seeds seeds, ONNX Runtime at 1, 2 and 4 threads, both graph variants, PyTorch at 1 and 2 threads")
	seeds := flag.Int("seeds", 20, "seeds per case with -sweep")
	ortThreads := flag.String("threads", "", "comma-separated ONNX Runtime intra-op thread counts (default 2; with -sweep 1,2,4)")
	torchThreads := flag.String("torch-threads", "", "comma-separated PyTorch thread counts (default 2; with -sweep 1,2)")
	variants := flag.String("variants", "", "comma-separated graph variants, default and conv-nodes (default: default; with -sweep both)")
	flag.StringVar(&kernels, "kernels", simclr.KernelsONNX, "onnx (standard ops) or native (simclr-ort's oneDNN kernels; the GPU-variant cases are left out)")
	flag.Parse()
	switch kernels {
	case simclr.KernelsONNX:
	case simclr.KernelsNative:
		provider.NativeKernels = true
	default:
		fail(fmt.Errorf("-kernels %q: use onnx or native", kernels))
	}

	p := plan{python: *python, keep: *keep, only: *only}
	p.ortThreads, p.torchThreads, p.variants = []int{2}, []int{2}, []string{variantDefault}
	if *sweep {
		p.ortThreads, p.torchThreads, p.variants = []int{1, 2, 4}, []int{1, 2}, []string{variantDefault, variantConvNodes}
		for s := 1; s <= *seeds; s++ {
			p.seeds = append(p.seeds, uint64(s))
		}
	}
	var err error
	if *ortThreads != "" {
		if p.ortThreads, err = parseInts("-threads", *ortThreads); err != nil {
			fail(err)
		}
	}
	if *torchThreads != "" {
		if p.torchThreads, err = parseInts("-torch-threads", *torchThreads); err != nil {
			fail(err)
		}
	}
	if *variants != "" {
		p.variants = strings.Split(*variants, ",")
		for _, v := range p.variants {
			if v != variantDefault && v != variantConvNodes {
				fail(fmt.Errorf("-variants: unknown variant %q (default or conv-nodes)", v))
			}
		}
	}
	if *gpu {
		p.cases = gpuCases
		device := "cpu" // -ep cpu: to try the GPU cases without a GPU
		if provider.Provider == "cuda" {
			device = "cuda:" + fmt.Sprint(provider.DeviceID)
		}
		p.referenceArgs = []string{"--device", device, "--gate", "float32", "--loss-tol", "1e-4", "--tensor-tol", "1e-2"}
	} else {
		p.cases = cases
	}
	if kernels == simclr.KernelsNative {
		// The GPU formulation has no native variant.
		p.cases = slices.DeleteFunc(slices.Clone(p.cases), func(c graphs.Config) bool { return c.ConvGrad == "gpu" })
		delete(mutantCases, "maxpool-grad-first-element-gpu")
	}
	if err := ort.InitFor(orEnv(*ortLib), provider.Provider); err != nil {
		fail(err)
	}
	if kernels == simclr.KernelsNative {
		info, err := ort.NativeKernelsInfo()
		if err != nil {
			fail(err)
		}
		fmt.Println("native kernels:", info)
	}
	switch {
	case *mutants:
		err = p.runMutants()
	case *sweep:
		err = p.runSweep()
	default:
		err = p.runGate()
	}
	if err != nil {
		fail(err)
	}
}

// orEnv is the library flag, else $ONNXRUNTIME_SHARED_LIBRARY_PATH.
func orEnv(lib string) string {
	if lib != "" {
		return lib
	}
	return os.Getenv(ort.LibraryEnv)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "parity:", err)
	os.Exit(1)
}

func parseInts(flagName, s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%s: %q is not a positive thread count", flagName, f)
		}
		out = append(out, n)
	}
	return out, nil
}

// plan is what one invocation runs.
type plan struct {
	python, keep, only string
	cases              []graphs.Config
	seeds              []uint64 // nil: each case its own seed (index + 1)
	ortThreads         []int
	torchThreads       []int
	variants           []string
	referenceArgs      []string
}

// runs are the ONNX Runtime runs of every case: each variant at each
// thread count.
func (p plan) runs() []runSpec {
	var runs []runSpec
	for _, v := range p.variants {
		for _, t := range p.ortThreads {
			runs = append(runs, runSpec{Dir: fmt.Sprintf("ort-%s-t%d", v, t), ORTThreads: t, Variant: v})
		}
	}
	return runs
}

// selected returns the cases -cases names (all when empty), with their
// indices.
func (p plan) selected() ([]int, error) {
	want := map[string]bool{}
	for _, name := range strings.Split(p.only, ",") {
		if name != "" {
			want[name] = true
		}
	}
	filter := len(want) > 0
	var idx []int
	for i, c := range p.cases {
		name := c.Defaults().Name()
		if !filter || want[name] {
			idx = append(idx, i)
			delete(want, name)
		}
	}
	if len(want) > 0 {
		var names []string
		for _, c := range p.cases {
			names = append(names, c.Defaults().Name())
		}
		var unknown []string
		for n := range want {
			unknown = append(unknown, n)
		}
		sort.Strings(unknown)
		return nil, fmt.Errorf("unknown case(s) %v; the cases are %s", unknown, strings.Join(names, ", "))
	}
	return idx, nil
}

// root is the directory cases are written under, and a cleanup.
func (p plan) root() (string, func(), error) {
	if p.keep != "" {
		return p.keep, func() {}, os.MkdirAll(p.keep, 0o755)
	}
	dir, err := os.MkdirTemp("", "simclr-parity-")
	if err != nil {
		return "", nil, err
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

// reference runs reference.py on case directories; it returns the exit
// status (0 all pass, 1 some fail) or an error for anything else.
func (p plan) reference(dirs ...string) (int, error) {
	script := filepath.Join(filepath.Dir(os.Args[0]), "reference.py")
	if _, err := os.Stat(script); err != nil {
		script = filepath.Join("tools", "parity", "reference.py")
	}
	args := append(append([]string{script}, p.referenceArgs...), dirs...)
	cmd := exec.Command(p.python, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	err := cmd.Run()
	if exit, ok := err.(*exec.ExitError); ok && exit.ExitCode() == 1 {
		return 1, nil
	}
	if err != nil {
		return 0, fmt.Errorf("PyTorch comparison failed (%s %s): %w", p.python, script, err)
	}
	return 0, nil
}

// runGate is make parity: every case once.
func (p plan) runGate() error {
	root, cleanup, err := p.root()
	if err != nil {
		return err
	}
	defer cleanup()
	idx, err := p.selected()
	if err != nil {
		return err
	}
	sessions := newSessionCache()
	defer sessions.Close()
	var dirs []string
	for _, i := range idx {
		cfg := p.cases[i].Defaults()
		dir := filepath.Join(root, cfg.Name())
		if err := writeCase(dir, cfg, uint64(i+1), p.runs(), p.torchThreads, "", sessions, true); err != nil {
			return fmt.Errorf("%s: %w", cfg.Name(), err)
		}
		dirs = append(dirs, dir)
	}
	status, err := p.reference(dirs...)
	if err != nil {
		return err
	}
	results, err := readResults(dirs)
	if err != nil {
		return err
	}
	printGateTable(os.Stdout, results)
	if status != 0 {
		return fmt.Errorf("%d of %d cases fail the gate", countFailing(results), len(results))
	}
	return nil
}

// runMutants builds each mutant's case with the wrong rule; the check
// passes when the gate fails every one of them.
func (p plan) runMutants() error {
	root, cleanup, err := p.root()
	if err != nil {
		return err
	}
	defer cleanup()
	names := make([]string, 0, len(mutantCases))
	for name := range mutantCases {
		names = append(names, name)
	}
	sort.Strings(names)
	sessions := newSessionCache()
	defer sessions.Close()
	var dirs []string
	for _, name := range names {
		cfg := mutantCases[name].Defaults()
		mutant := strings.TrimSuffix(name, "-gpu")
		dir := filepath.Join(root, "mutant-"+name)
		if err := writeCase(dir, cfg, 1, p.runs(), p.torchThreads, mutant, sessions, false); err != nil {
			return fmt.Errorf("mutant %s: %w", name, err)
		}
		dirs = append(dirs, dir)
	}
	if _, err := p.reference(dirs...); err != nil {
		return err
	}
	results, err := readResults(dirs)
	if err != nil {
		return err
	}
	descriptions := simclr.Mutants()
	printMutantTable(os.Stdout, results, descriptions)
	var passed []string
	for _, r := range results {
		if r.passes() {
			passed = append(passed, r.Mutant+" on "+r.Case)
		}
	}
	if len(passed) > 0 {
		return fmt.Errorf("the gate passed %d deliberately wrong rule(s): %s; it cannot tell right from wrong there", len(passed), strings.Join(passed, ", "))
	}
	fmt.Printf("parity: the gate caught all %d deliberately wrong rules\n", len(results))
	return nil
}

// sweepCase runs one case over the seeds, with its own sessions: a
// ResNet50 session holds its buffers.
func (p plan) sweepCase(root string, cfg graphs.Config) ([]caseResult, error) {
	sessions := newSessionCache()
	defer sessions.Close()
	var all []caseResult
	for _, seed := range p.seeds {
		dir := filepath.Join(root, fmt.Sprintf("%s-seed%d", cfg.Name(), seed))
		if err := writeCase(dir, cfg, seed, p.runs(), p.torchThreads, "", sessions, false); err != nil {
			return nil, fmt.Errorf("%s seed %d: %w", cfg.Name(), seed, err)
		}
		if _, err := p.reference(dir); err != nil {
			return nil, err
		}
		results, err := readResults([]string{dir})
		if err != nil {
			return nil, err
		}
		all = append(all, results...)
		if p.keep == "" {
			os.RemoveAll(dir)
		}
	}
	return all, nil
}

// runSweep runs every case over the seeds, one seed at a time (a ResNet50
// case's six runs are about 0.7 GB of files), and prints the table.
func (p plan) runSweep() error {
	root, cleanup, err := p.root()
	if err != nil {
		return err
	}
	defer cleanup()
	idx, err := p.selected()
	if err != nil {
		return err
	}
	var all []caseResult
	for _, i := range idx {
		results, err := p.sweepCase(root, p.cases[i].Defaults())
		if err != nil {
			return err
		}
		all = append(all, results...)
	}
	printSweepTable(os.Stdout, all, len(p.runs())*len(p.torchThreads))
	if n := countFailing(all); n > 0 {
		return fmt.Errorf("%d of %d case seeds fail somewhere", n, len(all))
	}
	return nil
}
