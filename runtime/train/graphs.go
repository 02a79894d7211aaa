package train

import (
	"fmt"
	"math/rand/v2"

	"github.com/simclr-ort/simclr-ort/gen"
	"github.com/simclr-ort/simclr-ort/graphs"
	"github.com/simclr-ort/simclr-ort/runtime/optim"
	"github.com/simclr-ort/simclr-ort/runtime/ort"
	"github.com/simclr-ort/simclr-ort/runtime/step"
)

// GraphOptions choose how a training graph computes, not what; the
// zero value is the default formulation, the one graphs/ holds.
type GraphOptions struct {
	// ConvNodes keeps every convolution a Conv node (see
	// gen.Options.ConvNodes): slower on the CPU, but each view's result
	// is then independent of its batch, so data-parallel ranks compute bit
	// for bit what one process computes.
	ConvNodes bool
	// Kernels is what computes the convolutions (and the other ops the
	// native domain has): KernelsONNX ("" too) standard ONNX ops, a graph
	// any ONNX Runtime runs; KernelsNative simclr-ort's oneDNN kernels
	// (sessions need ort.Options.NativeKernels).
	Kernels string
}

// The values of GraphOptions.Kernels and Options.Kernels; KernelsAuto
// (Options only) is native on the CPU where oneDNN loads, ONNX elsewhere.
const (
	KernelsAuto   = "auto"
	KernelsONNX   = "onnx"
	KernelsNative = "native"
)

func (o GraphOptions) generator() gen.Options {
	return gen.Options{ConvNodes: o.ConvNodes, Kernels: o.Kernels}
}

// TrainGraph returns the manifest and training graph of a configuration:
// the embedded ones of graphs/ when the configuration is in its default set
// and opts ask for the default formulation, generated otherwise (a few
// milliseconds; the one place the runtime calls the generator). source
// says which, for a log line.
func TrainGraph(cfg graphs.Config, opts GraphOptions) (m *graphs.Manifest, train []byte, source string, err error) {
	cfg = cfg.Defaults()
	if opts == (GraphOptions{}) || opts == (GraphOptions{Kernels: KernelsONNX}) {
		m, train, _, ok, err := graphs.Lookup(cfg)
		if err != nil {
			return nil, nil, "", fmt.Errorf("train: %w", err)
		}
		if ok {
			return m, train, "graphs/ (embedded)", nil
		}
	}
	b, err := gen.BuildWith(cfg, opts.generator())
	if err != nil {
		return nil, nil, "", fmt.Errorf("train: generate the graphs of %s: %w", cfg.Name(), err)
	}
	return b.Manifest, b.Train, "generated", nil
}

// DistributedGraphs returns the graphs of one rank's part of a
// data-parallel step over world ranks.
func DistributedGraphs(cfg graphs.Config, world int, opts GraphOptions) (*gen.DistributedBuilt, error) {
	b, err := gen.BuildDistributed(cfg, world, opts.generator())
	if err != nil {
		return nil, fmt.Errorf("train: generate the distributed graphs of %s: %w", cfg.Name(), err)
	}
	return b, nil
}

// InitialRand is the random stream the initial weights of a run with seed
// are drawn from (torchvision's initialisers, in manifest order: see
// step.Model.Initialize); an exported random-init baseline of the same
// seed is the trained run's starting point.
func InitialRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x51c1)) }

// InitialState draws a configuration's parameters and running statistics
// as a run with seed starts from them.
func InitialState(m *graphs.Manifest, seed uint64) (params, buffers [][]float32) {
	r := InitialRand(seed)
	return step.NewTensors(m.Params, r), step.NewTensors(m.Buffers, r)
}

// NewOptimizer is the optimizer a run of the manifest uses: "lars" (the
// default, with the manifest's BatchNorm exclusions) or "adam". A zero
// weightDecay means the optimizer's default (1e-6 for LARS, none for Adam),
// a negative one none.
func NewOptimizer(name string, m *graphs.Manifest, weightDecay float64) (optim.Optimizer, error) {
	sizes := make([]int, len(m.Params))
	excluded := make([]bool, len(m.Params))
	for i, t := range m.Params {
		sizes[i], excluded[i] = int(t.Size()), t.LARSExclude
	}
	switch orDefault(name, "lars") {
	case "lars":
		return optim.NewLARS(sizes, excluded, optim.LARSConfig{WeightDecay: weightDecay}), nil
	case "adam":
		wd := weightDecay
		if wd == 0 {
			wd = -1
		}
		return optim.NewAdam(sizes, optim.AdamConfig{WeightDecay: wd}), nil
	}
	return nil, fmt.Errorf("train: unknown optimizer %q (use lars or adam)", name)
}

// NewSchedule is the learning-rate schedule of a run: the optimizer's base
// rate (0: its default) scaled for the global batch, linear warm-up over
// warmup steps, cosine decay to 0 at total.
func NewSchedule(optimizer string, baseLR float64, scaling string, batch, warmup, total int) (optim.Schedule, error) {
	sc, err := optim.ParseScaling(orDefault(scaling, "linear"))
	if err != nil {
		return optim.Schedule{}, fmt.Errorf("train: --lr-scaling: %w", err)
	}
	switch orDefault(optimizer, "lars") {
	case "lars":
		if baseLR == 0 {
			baseLR = optim.DefaultLARSLR
			if sc == optim.Sqrt {
				baseLR = optim.DefaultLARSSqrtLR
			}
		}
	case "adam":
		if baseLR == 0 {
			baseLR = optim.DefaultAdamLR
		}
		// The reference's Adam learning rate is not scaled by the batch.
		sc = optim.None
	default:
		return optim.Schedule{}, fmt.Errorf("train: unknown optimizer %q (use lars or adam)", optimizer)
	}
	return optim.NewSchedule(baseLR, batch, sc, warmup, total)
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// ResolveKernels turns a kernel choice (KernelsAuto, KernelsNative,
// KernelsONNX or "") into the one a run on provider uses, and says why:
// auto is native on the CPU provider when oneDNN loads (ort.LoadNativeKernels),
// ONNX elsewhere; native where it cannot run is an error that says why.
// ONNX Runtime must be initialised.
func ResolveKernels(choice, provider string) (kernels, why string, err error) {
	switch choice {
	case "", KernelsONNX:
		return KernelsONNX, "standard ONNX ops (--kernels onnx)", nil
	case KernelsNative, KernelsAuto:
	default:
		return "", "", fmt.Errorf("train: --kernels %q: use auto, native or onnx", choice)
	}
	if provider == "cuda" {
		if choice == KernelsNative {
			return "", "", fmt.Errorf("train: --kernels native: the native kernels run on the CPU provider only so far; use --kernels onnx with --ep cuda")
		}
		return KernelsONNX, "standard ONNX ops (the native kernels run on the CPU provider only)", nil
	}
	info, err := ort.NativeKernelsInfo()
	if err != nil {
		if choice == KernelsNative {
			return "", "", fmt.Errorf("train: --kernels native: %w", err)
		}
		return KernelsONNX, fmt.Sprintf("standard ONNX ops (no native kernels: %v)", err), nil
	}
	return KernelsNative, "native kernels: " + info, nil
}
