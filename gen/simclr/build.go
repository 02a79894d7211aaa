package simclr

import (
	"fmt"
	"strings"

	"github.com/simclr-ort/simclr-ort/gen/graph"
	"github.com/simclr-ort/simclr-ort/graphs"
)

// Built is one configuration's generated graphs and manifest.
type Built struct {
	Manifest  *graphs.Manifest
	Train     []byte
	Inference []byte
	// Decisions lists the training graph's decision outputs, in forward
	// order, when Options.Decisions asked for them.
	Decisions []Decision
}

// Options are choices of the generator that change how a graph computes,
// not what.
type Options struct {
	// ConvNodes keeps every convolution of a CPU training graph a Conv node
	// instead of rewriting small-map convolutions as patches and one Gemm
	// (graph.ConvsAsGemm). Without the rewrite each view's results do not
	// depend on the rest of the batch (ONNX Runtime convolves image by
	// image), so a data-parallel rank and the single process it is compared
	// with compute bit for bit the same; with it, the Gemm's blocking
	// depends on the number of columns (views x pixels), and they agree to
	// float32 rounding. The exactness tests set it.
	ConvNodes bool
	// Decisions adds a float32 output to the training graph for every
	// piecewise decision of its forward pass: each ReLU's output (its mask
	// is output > 0) and the ImageNet stem MaxPool's indices. The loss and
	// gradients are the same graph's. The parity check evaluates PyTorch's
	// float64 step at these decisions, so that both sides differentiate the
	// same piecewise-linear function (see tools/parity).
	Decisions bool
	// Mutant builds the training graph with one deliberately wrong rule
	// (see Mutants), for the parity gate's sensitivity check only.
	Mutant string
	// Kernels chooses what computes the training graph's convolutions:
	// KernelsONNX (or "") standard ONNX ops only, a graph for any ONNX
	// Runtime; KernelsNative the native ops of simclr-ort's custom-op
	// domain (graph.NativeConv with graph.CPUNativeConvPlan: oneDNN on
	// ONNX Runtime's CPU provider), whose sessions need
	// ort.Options{NativeKernels: true}. The inference graph is standard
	// ONNX either way.
	Kernels string
}

// The values of Options.Kernels.
const (
	KernelsONNX   = "onnx"
	KernelsNative = "native"
)

// Decision describes one decision output of a training graph built with
// Options.Decisions.
type Decision struct {
	// Output is the graph output's name.
	Output string `json:"output"`
	// Kind is "relu" (the ReLU's output) or "maxpool" (the flat indices of
	// the maxima into the pooling's input, as float32).
	Kind string `json:"kind"`
	// Module is the PyTorch module that makes the decision
	// (torchvision's names, e.g. "encoder.layer1.0.relu"), and Call which
	// of its calls in one forward pass (1-based: a BasicBlock calls its
	// ReLU twice).
	Module string `json:"module"`
	Call   int    `json:"call"`
	// Shape is the output's shape (the whole batch of 2N views).
	Shape []int64 `json:"shape"`
}

// Mutants of the generator's rules, for the parity gate's sensitivity check
// (tools/parity -mutants): each is a deliberately wrong rule the gate must
// catch. The graph-level ones (wrong gradient rules of one op type) are
// graph.Mutants.
const (
	// MutantMomentum updates the running statistics with momentum 0.2.
	MutantMomentum = "bn-momentum-0.2"
	// MutantBiasedVariance updates running_var with the biased batch
	// variance.
	MutantBiasedVariance = "bn-biased-variance"
	// MutantNTXentPositive takes view i's positive at i+N+1 instead of i+N.
	MutantNTXentPositive = "ntxent-positive-shifted"
)

// Mutants lists every mutant name with what it gets wrong: the model's and
// the gradient rules' (graph.Mutants).
func Mutants() map[string]string {
	out := graph.Mutants()
	out[MutantMomentum] = "running statistics updated with momentum 0.2 instead of 0.1"
	out[MutantBiasedVariance] = "running_var updated with the biased batch variance"
	out[MutantNTXentPositive] = "NT-Xent's positive of view i taken at i+N+1"
	return out
}

// Build generates the training and inference graphs of a configuration in
// the default formulation. producerVersion is recorded in the files.
func Build(cfg graphs.Config, producerVersion string) (*Built, error) {
	return BuildWith(cfg, producerVersion, Options{})
}

// BuildWith is Build with explicit generator options.
func BuildWith(cfg graphs.Config, producerVersion string, opts Options) (*Built, error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if _, ok := Mutants()[opts.Mutant]; opts.Mutant != "" && !ok {
		return nil, fmt.Errorf("simclr: unknown mutant %q", opts.Mutant)
	}
	if err := checkKernels(cfg, opts); err != nil {
		return nil, err
	}
	trainGraph, m, decisions := buildTrain(cfg, opts)
	inferGraph := buildInference(cfg)
	meta := map[string]string{"simclr.config": cfg.Name()}
	train, err := graph.Marshal(trainGraph.Model(producerVersion, meta))
	if err != nil {
		return nil, err
	}
	infer, err := graph.Marshal(inferGraph.Model(producerVersion, meta))
	if err != nil {
		return nil, err
	}
	m.TrainGraph = cfg.Name() + ".train.onnx"
	m.InferenceGraph = cfg.Name() + ".infer.onnx"
	m.TrainSHA256 = graphs.SHA256(train)
	m.InferenceSHA256 = graphs.SHA256(infer)
	return &Built{Manifest: m, Train: train, Inference: infer, Decisions: decisions}, nil
}

// checkKernels refuses a kernel choice the configuration cannot take.
func checkKernels(cfg graphs.Config, opts Options) error {
	switch opts.Kernels {
	case "", KernelsONNX:
	case KernelsNative:
		if cfg.ConvGrad == "gpu" {
			return fmt.Errorf("simclr: native kernels exist for the CPU provider only; build the GPU variant (conv_grad gpu) with kernels %q", KernelsONNX)
		}
	default:
		return fmt.Errorf("simclr: unknown kernels %q (use %q or %q)", opts.Kernels, KernelsONNX, KernelsNative)
	}
	return nil
}

// buildTrain emits loss, every parameter's gradient and the new running
// statistics. Both views go through the encoder as one [2N,3,H,W] batch:
// one pass with twice the batch keeps the matrix products large, and
// BatchNorm's statistics cover both views unless BNGroups asks otherwise.
func buildTrain(cfg graphs.Config, opts Options) (*graph.Graph, *graphs.Manifest, []Decision) {
	g := graph.New(cfg.Name() + ".train")
	size := int64(cfg.ImageSize)
	views := g.Input(graphs.TrainInput, graph.Float, graph.Shape{2 * int64(cfg.Pairs), 3, size, size})
	n := newNet(g, cfg, bnTrain)
	n.native = opts.Kernels == KernelsNative
	var recorded []decision
	if opts.Decisions {
		n.decisions = &recorded
	}
	var positiveShift int64
	switch opts.Mutant {
	case "":
	case MutantMomentum, MutantBiasedVariance:
		n.mutant = opts.Mutant
	case MutantNTXentPositive:
		positiveShift = 1
	default:
		if err := g.Mutate(opts.Mutant); err != nil {
			panic(err) // BuildWith checked the name
		}
	}
	h := n.encoder(views)
	z := n.projector(h)
	loss := ntXent(g, z, cfg.Temperature, cfg.ShardCount(), positiveShift)
	g.Output(graphs.LossOutput, loss)
	wrt := make([]*graph.Value, len(n.params))
	for i, p := range n.params {
		wrt[i] = n.values[p.Name]
	}
	for i, d := range g.Gradients(loss, wrt) {
		g.Output(n.params[i].Output, d)
	}
	for _, b := range n.buffers {
		g.Output(b.Output, n.newStats[b.Name])
	}
	lowerConvs(g, cfg, opts)
	var decisions []Decision
	for _, d := range recorded {
		g.Output(d.Output, d.build())
		decisions = append(decisions, d.Decision)
	}
	return g, &graphs.Manifest{
		Config:          cfg,
		FeatureDim:      int(h.Shape()[1]),
		Input:           graphs.TrainInput,
		InferenceInput:  graphs.InferenceInput,
		InferenceOutput: graphs.InferenceOutput,
		Loss:            graphs.LossOutput,
		Params:          n.params,
		Buffers:         n.buffers,
		BNMomentum:      bnMomentum,
		BNEpsilon:       bnEpsilon,
	}, decisions
}

// buildInference emits the encoder alone with eval-mode BatchNorm and a
// dynamic batch dimension; it takes the encoder's parameters and running
// statistics (the manifest's tensors named "encoder.*").
func buildInference(cfg graphs.Config) *graph.Graph { return InferenceGraph(cfg, false) }

// InferenceGraph is the encoder with eval-mode BatchNorm and a dynamic batch:
// images [batch,3,H,W] to features [batch,d]; with the projector also
// projection [batch,p]. Its inputs are the images and the tensors it uses,
// named as in the manifest.
func InferenceGraph(cfg graphs.Config, withProjector bool) *graph.Graph {
	cfg = cfg.Defaults()
	name := cfg.Name() + ".infer"
	if withProjector {
		name += "-projector"
	}
	g := graph.New(name)
	size := int64(cfg.ImageSize)
	images := g.Input(graphs.InferenceInput, graph.Float, graph.Shape{graph.Dynamic, 3, size, size})
	n := newNet(g, cfg, bnEval)
	h := n.encoder(images)
	g.Output(graphs.InferenceOutput, h)
	if withProjector {
		g.Output(graphs.ProjectionOutput, n.projector(h))
	}
	for _, t := range append(n.params, n.buffers...) {
		if !withProjector && !strings.HasPrefix(t.Name, "encoder.") {
			panic(fmt.Sprintf("simclr: inference graph takes non-encoder tensor %s", t.Name))
		}
	}
	return g
}

// lowerConvs rewrites the convolutions that ONNX Runtime's CPU provider
// runs faster as patches and one Gemm (graph.CPUConvAsGemm) in the CPU
// variant of a training graph; the GPU variant keeps Conv nodes for
// cuDNN.
func lowerConvs(g *graph.Graph, cfg graphs.Config, opts Options) {
	if cfg.ConvGrad != "gpu" && !opts.ConvNodes {
		g.ConvsAsGemm(graph.CPUConvAsGemm)
	}
}
