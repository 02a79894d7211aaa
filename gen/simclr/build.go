package simclr

import (
	"fmt"
	"os"
	"strings"

	"github.com/simclr-ort/simclr-ort/gen/graph"
	"github.com/simclr-ort/simclr-ort/graphs"
)

// Graph input and output names shared by every configuration.
const (
	TrainInput      = "views"
	LossOutput      = "loss"
	InferenceInput  = "images"
	InferenceOutput = "features"
)

// Built is one configuration's generated graphs and manifest.
type Built struct {
	Manifest  *graphs.Manifest
	Train     []byte
	Inference []byte
}

// Options are choices of the generator that change how a graph computes,
// not what.
type Options struct {
	// ConvNodes keeps every convolution of a CPU training graph a Conv node
	// instead of rewriting small-map convolutions as patches and one Gemm
	// (see ConvsAsGemmEnv).
	ConvNodes bool
}

// Build generates the training and inference graphs of a configuration,
// with the options the environment asks for (ConvsAsGemmEnv).
// producerVersion is recorded in the files.
func Build(cfg graphs.Config, producerVersion string) (*Built, error) {
	return BuildWith(cfg, producerVersion, Options{ConvNodes: !ConvsAsGemm()})
}

// BuildWith is Build with explicit options; the environment is not read.
func BuildWith(cfg graphs.Config, producerVersion string, opts Options) (*Built, error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	trainGraph, m := buildTrain(cfg, opts)
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
	return &Built{Manifest: m, Train: train, Inference: infer}, nil
}

// buildTrain emits loss, every parameter's gradient and the new running
// statistics. Both views go through the encoder as one [2N,3,H,W] batch:
// one pass with twice the batch keeps the matrix products large, and
// BatchNorm's statistics cover both views unless BNGroups asks otherwise.
func buildTrain(cfg graphs.Config, opts Options) (*graph.Graph, *graphs.Manifest) {
	g := graph.New(cfg.Name() + ".train")
	size := int64(cfg.ImageSize)
	views := g.Input(TrainInput, graph.Float, graph.Shape{2 * int64(cfg.Pairs), 3, size, size})
	n := newNet(g, cfg, bnTrain)
	h := n.encoder(views)
	z := n.projector(h)
	loss := ntXent(g, z, cfg.Temperature, cfg.ShardCount())
	g.Output(LossOutput, loss)
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
	return g, &graphs.Manifest{
		Config:          cfg,
		FeatureDim:      int(h.Shape()[1]),
		Input:           TrainInput,
		InferenceInput:  InferenceInput,
		InferenceOutput: InferenceOutput,
		Loss:            LossOutput,
		Params:          n.params,
		Buffers:         n.buffers,
		BNMomentum:      bnMomentum,
		BNEpsilon:       bnEpsilon,
	}
}

// buildInference emits the encoder alone with eval-mode BatchNorm and a
// dynamic batch dimension; it takes the encoder's parameters and running
// statistics (the manifest's tensors named "encoder.*").
func buildInference(cfg graphs.Config) *graph.Graph { return InferenceGraph(cfg, false) }

// ProjectionOutput names the projection z of an inference graph built with
// the projector.
const ProjectionOutput = "projection"

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
	images := g.Input(InferenceInput, graph.Float, graph.Shape{graph.Dynamic, 3, size, size})
	n := newNet(g, cfg, bnEval)
	h := n.encoder(images)
	g.Output(InferenceOutput, h)
	if withProjector {
		g.Output(ProjectionOutput, n.projector(h))
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

// ConvsAsGemmEnv names the environment variable that, set to "0", keeps
// every convolution of the CPU training graphs a Conv node. Without the
// rewrite, each view's results do not depend on the rest of the batch
// (ONNX Runtime convolves image by image), so a data-parallel rank and the
// single process it is compared with compute bit for bit the same; with
// it, the Gemm's blocking depends on the number of columns (views x
// pixels), and they agree to float32 rounding. The exactness tests set it.
const ConvsAsGemmEnv = "SIMCLR_ORT_CONV_AS_GEMM"

// ConvsAsGemm reports whether CPU training graphs rewrite small-map
// convolutions as patches and one Gemm (the default; see ConvsAsGemmEnv).
func ConvsAsGemm() bool { return os.Getenv(ConvsAsGemmEnv) != "0" }
