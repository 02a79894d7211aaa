// Command parity checks one full SimCLR training step of the generated
// graphs on ONNX Runtime against PyTorch: for each case it initialises the
// parameters and a batch of views, runs the step, writes inputs and outputs
// as .npy files, and runs tools/parity/reference.py, which loads the same
// weights into torchvision's ResNet, runs the same step and compares loss,
// gradients and new running statistics. It exits non-zero when any case
// fails.
//
// Usage: go run ./tools/parity [-keep DIR] [-python /usr/bin/python3]
//
// On a GPU machine, -ep cuda runs the step on ONNX Runtime's CUDA provider
// (TF32 off) and, with -gpu, uses larger cases and holds the results against
// PyTorch float32 on the same GPU (loss 1e-4 relative, every gradient 1e-2
// relative in L2 norm), as tools/gpu/check.py does.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/simclr-ort/simclr-ort/gen"
	"github.com/simclr-ort/simclr-ort/graphs"
	"github.com/simclr-ort/simclr-ort/internal/npy"
	"github.com/simclr-ort/simclr-ort/runtime/ort"
	"github.com/simclr-ort/simclr-ort/runtime/step"
)

// cases cover each architecture and stem, the reference's per-view
// BatchNorm (two groups) and the primitive BatchNorm lowering.
var cases = []graphs.Config{
	{Arch: "resnet18", Stem: "cifar", ImageSize: 32, Pairs: 4},
	{Arch: "resnet18", Stem: "imagenet", ImageSize: 32, Pairs: 4},
	{Arch: "resnet50", Stem: "imagenet", ImageSize: 32, Pairs: 4},
	{Arch: "resnet50", Stem: "cifar", ImageSize: 16, Pairs: 4},
	{Arch: "resnet18", Stem: "cifar", ImageSize: 32, Pairs: 4, BNGroups: 2},
	{Arch: "resnet18", Stem: "imagenet", ImageSize: 32, Pairs: 4, BNLowering: "primitive"},
	{Arch: "resnet18", Stem: "imagenet", ImageSize: 32, Pairs: 4, BNLowering: "primitive", ConvGrad: "gpu"},
}

// gpuCases are the -gpu cases: batches and images of a realistic size, both
// BatchNorm lowerings.
var gpuCases = []graphs.Config{
	{Arch: "resnet18", Stem: "cifar", ImageSize: 32, Pairs: 64, BNLowering: "primitive", ConvGrad: "gpu"},
	{Arch: "resnet50", Stem: "imagenet", ImageSize: 64, Pairs: 32, BNLowering: "primitive", ConvGrad: "gpu"},
	{Arch: "resnet18", Stem: "cifar", ImageSize: 32, Pairs: 64, BNLowering: "primitive"},
	{Arch: "resnet18", Stem: "cifar", ImageSize: 32, Pairs: 64},
}

// caseFile is case.json: the configuration (graphs.Config's JSON fields)
// plus what reference.py needs besides.
type caseFile struct {
	Name string `json:"name"`
	graphs.Config
	BNEps      float64  `json:"bn_eps"`
	BNMomentum float64  `json:"bn_momentum"`
	Params     []string `json:"params"`
	Buffers    []string `json:"buffers"`
}

func main() {
	keep := flag.String("keep", "", "write the cases into this directory and keep them (default: a temporary directory, removed)")
	python := flag.String("python", "/usr/bin/python3", "Python with Debian's python3-torch and python3-torchvision")
	ortLib := flag.String("ort-lib", "", "ONNX Runtime shared library (default: see README)")
	only := flag.String("cases", "", "comma-separated case names to run (default: all)")
	flag.StringVar(&provider.Provider, "ep", "cpu", "ONNX Runtime execution provider: cpu or cuda (TF32 off)")
	flag.IntVar(&provider.DeviceID, "device-id", 0, "GPU for -ep cuda")
	gpu := flag.Bool("gpu", false, "GPU cases, held against PyTorch float32 on the same GPU (loss 1e-4, gradients 1e-2 relative L2)")
	flag.Parse()
	if *gpu {
		cases = gpuCases
		device := "cpu" // -ep cpu: to try the GPU cases without a GPU
		if provider.Provider == "cuda" {
			device = "cuda:" + fmt.Sprint(provider.DeviceID)
		}
		referenceArgs = []string{"--device", device, "--gate", "float32", "--loss-tol", "1e-4", "--tensor-tol", "1e-2"}
	}
	if err := run(*keep, *python, *ortLib, *only); err != nil {
		fmt.Fprintln(os.Stderr, "parity:", err)
		os.Exit(1)
	}
}

// seedOverride replaces the seed of a case whose default seed draws a batch
// that sits on a ReLU kink. With 4 pairs in two BatchNorm groups, one ReLU
// input of 1e-6 (float32 rounding at the scale of the activations) that
// one float32 implementation passes and another zeroes moves every
// upstream gradient by about 1%. Seed 5 of the bng2 case had one in
// layer3.1's last ReLU, which the convolutions as patches and Gemm
// (graph.ConvsAsGemm) zeroed: comparing every intermediate value with and
// without that rewrite, the forward agreed within 1.1e-6 everywhere and the
// gradients diverged from that one element on. Such flips come with the
// seed, not the formulation: over seeds 105-109 the rewritten graph missed
// 1e-3 on 105 and 107, the Conv-node graph on 107 and 108, and both passed
// with 5e-6 on 106 and 7e-5 on 109. The check cannot gate on a coin flip,
// so this case uses seed 106.
var seedOverride = map[string]uint64{
	"resnet18-cifar-32px-n4-p64-t0.5-bng2": 106,
}

// provider is the ONNX Runtime provider the cases run on (flags -ep, -device-id).
var provider = ort.Options{IntraOpThreads: 2}

// referenceArgs go to reference.py before the case directories.
var referenceArgs []string

func run(keep, python, ortLib, only string) error {
	if err := ort.InitFor(ortLib, provider.Provider); err != nil {
		return err
	}
	root := keep
	if root == "" {
		dir, err := os.MkdirTemp("", "simclr-parity-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		root = dir
	}
	selected := map[string]bool{}
	for _, name := range strings.Split(only, ",") {
		if name != "" {
			selected[name] = true
		}
	}
	filter := len(selected) > 0
	var dirs []string
	for i, cfg := range cases {
		cfg = cfg.Defaults()
		if filter && !selected[cfg.Name()] {
			continue
		}
		delete(selected, cfg.Name())
		dir := filepath.Join(root, cfg.Name())
		seed := uint64(i + 1)
		if s, ok := seedOverride[cfg.Name()]; ok {
			seed = s
		}
		if err := writeCase(dir, cfg, seed); err != nil {
			return fmt.Errorf("%s: %w", cfg.Name(), err)
		}
		dirs = append(dirs, dir)
	}
	if len(selected) > 0 {
		var names []string
		for _, c := range cases {
			names = append(names, c.Defaults().Name())
		}
		return fmt.Errorf("unknown case(s) %v; the cases are %s", selected, strings.Join(names, ", "))
	}
	script := filepath.Join(filepath.Dir(os.Args[0]), "reference.py")
	if _, err := os.Stat(script); err != nil {
		script = filepath.Join("tools", "parity", "reference.py")
	}
	args := append(append([]string{script}, referenceArgs...), dirs...)
	cmd := exec.Command(python, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("PyTorch comparison failed (%s %s): %w", python, script, err)
	}
	return nil
}

func writeCase(dir string, cfg graphs.Config, seed uint64) error {
	built, err := gen.Build(cfg)
	if err != nil {
		return err
	}
	m := built.Manifest
	md, err := step.New(m, built.Train, provider)
	if err != nil {
		return err
	}
	defer md.Close()
	r := rand.New(rand.NewPCG(seed, 7))
	md.Initialize(r)
	// BatchNorm parameters and running statistics away from their defaults,
	// as in a network that has trained a while: every term of the BatchNorm
	// gradient is then exercised, and features differ more between views.
	for i, t := range m.Params {
		switch t.Role {
		case "bn_weight":
			for j := range md.Params[i] {
				md.Params[i][j] = 0.5 + r.Float32()
			}
		case "bn_bias":
			for j := range md.Params[i] {
				md.Params[i][j] = 0.2 * float32(r.NormFloat64())
			}
		}
	}
	for i := range md.Buffers {
		for j := range md.Buffers[i] {
			md.Buffers[i][j] += 0.1 * float32(r.Float64())
		}
	}
	fillViews(md.Views, cfg.Pairs, cfg.ImageSize, r)
	cf := caseFile{Name: cfg.Name(), Config: cfg, BNEps: m.BNEpsilon, BNMomentum: m.BNMomentum}
	for _, d := range []string{"params", "ort/grad", "ort/new"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	views := []int64{2 * int64(cfg.Pairs), 3, int64(cfg.ImageSize), int64(cfg.ImageSize)}
	if err := npy.SaveFloat32(filepath.Join(dir, "views.npy"), views, md.Views); err != nil {
		return err
	}
	for i, t := range m.Params {
		cf.Params = append(cf.Params, t.Name)
		if err := npy.SaveFloat32(filepath.Join(dir, "params", t.Name+".npy"), t.Shape, md.Params[i]); err != nil {
			return err
		}
	}
	for i, t := range m.Buffers {
		cf.Buffers = append(cf.Buffers, t.Name)
		if err := npy.SaveFloat32(filepath.Join(dir, "params", t.Name+".npy"), t.Shape, md.Buffers[i]); err != nil {
			return err
		}
	}
	if _, err := md.Run(); err != nil {
		return err
	}
	if err := npy.SaveFloat32(filepath.Join(dir, "ort", "loss.npy"), []int64{1}, md.Loss); err != nil {
		return err
	}
	for i, t := range m.Params {
		if err := npy.SaveFloat32(filepath.Join(dir, "ort", "grad", t.Name+".npy"), t.Shape, md.Grads[i]); err != nil {
			return err
		}
	}
	for i, t := range m.Buffers {
		if err := npy.SaveFloat32(filepath.Join(dir, "ort", "new", t.Name+".npy"), t.Shape, md.NewBuffers[i]); err != nil {
			return err
		}
	}
	b, err := json.MarshalIndent(cf, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "case.json"), b, 0o644)
}

// fillViews makes a batch that is well conditioned in float32: distinct
// images (colour, gradient and stripes of random frequency and phase, plus
// noise) whose two views are the image and its mirror with fresh noise. With
// i.i.d. noise images a random-init ResNet maps every view to nearly the
// same z, the NT-Xent gradient becomes a difference of nearly equal numbers,
// and even PyTorch's own float32 result is then several percent away from
// its float64 result.
func fillViews(views []float32, pairs, size int, r *rand.Rand) {
	plane := size * size
	for i := 0; i < pairs; i++ {
		var base [3][]float32
		fx, fy := 1+3*r.Float64(), 1+3*r.Float64()
		phase := 2 * math.Pi * r.Float64()
		for c := range base {
			base[c] = make([]float32, plane)
			colour, amp := 0.2+0.6*r.Float64(), 0.1+0.3*r.Float64()
			for y := 0; y < size; y++ {
				for x := 0; x < size; x++ {
					u, v := float64(x)/float64(size), float64(y)/float64(size)
					val := colour + amp*math.Sin(2*math.Pi*(fx*u+fy*v)+phase+float64(c)) + 0.2*(u-0.5)
					base[c][y*size+x] = float32(val)
				}
			}
		}
		for view := 0; view < 2; view++ {
			row := i + view*pairs
			for c := 0; c < 3; c++ {
				dst := views[(row*3+c)*plane : (row*3+c+1)*plane]
				for y := 0; y < size; y++ {
					for x := 0; x < size; x++ {
						sx := x
						if view == 1 {
							sx = size - 1 - x
						}
						val := base[c][y*size+sx] + 0.05*float32(r.NormFloat64())
						dst[y*size+x] = min(1, max(0, val))
					}
				}
			}
		}
	}
}
