package simclr

import (
	"fmt"

	"github.com/simclr-ort/simclr-ort/gen/graph"
	"github.com/simclr-ort/simclr-ort/graphs"
)

// DistributedBuilt is the graphs of one data-parallel step (forward, loss,
// backward) and their description.
type DistributedBuilt struct {
	Manifest *graphs.Distributed
	Forward  []byte
	Loss     []byte
	Backward []byte
}

// BuildDistributed generates the graphs of a SimCLR step split at the
// projection z for world data-parallel ranks with global negatives; cfg is
// one rank's configuration (Pairs = n per rank, one shard). The
// graphs.Distributed manifest says how to run them and how to reduce their
// outputs; composed over world ranks they compute the loss, gradients and
// running statistics of Build(Distributed.Equivalent()).
//
// Choice: the forward and backward graphs are one graph partitioned, not a
// backward that recomputes the forward. The generator builds the encoder
// and projector, differentiates them from an upstream gradient dz
// (graph.GradientsFrom) and cuts the result where the gradient begins
// (graph.Saved, graph.Extract). The forward graph outputs every forward
// value the gradient reads, the Saved activations: per convolution its
// output (which BatchNorm's gradient reads) and the ReLU output after it
// (the next convolution's input, and ReLU's mask), BatchNorm's batch
// statistics, h and the projector's hidden layer. MaxPool's int64 indices
// and constant fills do not cross: the backward recomputes them, so only
// float32 tensors do. A step thus costs one forward and one backward
// pass, as the single training graph does; the price is memory, since
// the saved activations wait in the caller's buffers between the two runs,
// about what the single graph holds between its forward and backward
// halves anyway. For ResNet18 at 28x28 with n = 64 pairs (128 views) per
// rank that is 117.2M floats, 469 MB, with the CIFAR stem and 10.7M floats,
// 43 MB, with the ImageNet stem (TestSavedActivationSize). A recomputing
// backward would hold nothing between the runs but would run the encoder
// forward twice per step, about a third more compute.
func BuildDistributed(cfg graphs.Config, world int, producerVersion string, opts Options) (*DistributedBuilt, error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Shards != 0 {
		return nil, fmt.Errorf("simclr: a rank's batch is one shard, got shards %d; set the world size instead", cfg.Shards)
	}
	if world < 1 {
		return nil, fmt.Errorf("simclr: world size %d must be at least 1", world)
	}
	if err := checkKernels(cfg, opts); err != nil {
		return nil, err
	}
	name := graphs.DistributedName(cfg, world)
	m := &graphs.Distributed{
		Manifest: graphs.Manifest{
			Config:     cfg,
			Input:      graphs.TrainInput,
			Loss:       graphs.LossOutput,
			BNMomentum: bnMomentum,
			BNEpsilon:  bnEpsilon,
		},
		World:             world,
		Projection:        graphs.ProjectionName,
		Gathered:          graphs.GatheredName,
		GatheredGrad:      graphs.GatheredGradName,
		ProjectionGrad:    graphs.ProjectionGradName,
		GradientReduction: graphs.ReduceSum,
		BufferReduction:   graphs.ReduceMean,
		ForwardGraph:      name + ".forward.onnx",
		LossGraph:         name + ".loss.onnx",
		BackwardGraph:     name + ".backward.onnx",
	}
	forward, backward := buildRankStep(cfg, name, m, opts)
	loss := buildGlobalLoss(cfg, world, name)
	meta := map[string]string{"simclr.config": name}
	out := &DistributedBuilt{Manifest: m}
	for _, part := range []struct {
		g   *graph.Graph
		dst *[]byte
		sum *string
	}{{forward, &out.Forward, &m.ForwardSHA256}, {loss, &out.Loss, &m.LossSHA256}, {backward, &out.Backward, &m.BackwardSHA256}} {
		b, err := graph.Marshal(part.g.Model(producerVersion, meta))
		if err != nil {
			return nil, err
		}
		*part.dst, *part.sum = b, graphs.SHA256(b)
	}
	return out, nil
}

// buildRankStep builds one rank's forward and backward graphs as described
// at BuildDistributed and fills m's tensors.
func buildRankStep(cfg graphs.Config, name string, m *graphs.Distributed, opts Options) (forward, backward *graph.Graph) {
	g := graph.New(name + ".step")
	size := int64(cfg.ImageSize)
	views := g.Input(graphs.TrainInput, graph.Float, graph.Shape{2 * int64(cfg.Pairs), 3, size, size})
	n := newNet(g, cfg, bnTrain)
	n.native = opts.Kernels == KernelsNative
	h := n.encoder(views)
	z := n.projector(h)
	m.FeatureDim = int(h.Shape()[1])

	mark := g.Mark()
	dz := g.Input(graphs.ProjectionGradName, graph.Float, z.Shape())
	wrt := make([]*graph.Value, len(n.params))
	for i, p := range n.params {
		wrt[i] = n.values[p.Name]
	}
	grads := g.GradientsFrom([]*graph.Value{z}, []*graph.Value{dz}, wrt)
	saved := g.Saved(mark, grads)

	params := make([]graph.Port, len(n.params))
	for i, p := range n.params {
		params[i] = graph.Port{Name: p.Name, Value: wrt[i]}
		p.Output = graphs.PartialGradPrefix + p.Name
		m.Params = append(m.Params, p)
	}
	savedPorts := make([]graph.Port, len(saved))
	for i, v := range saved {
		savedPorts[i] = graph.Port{Name: graphs.SavedPrefix + v.Name(), Value: v}
		m.Saved = append(m.Saved, graphs.Activation{Name: savedPorts[i].Name, Shape: v.Shape()})
	}

	fwdIn := append([]graph.Port{{Name: graphs.TrainInput, Value: views}}, params...)
	fwdOut := []graph.Port{{Name: graphs.ProjectionName, Value: z}}
	for _, b := range n.buffers {
		fwdIn = append(fwdIn, graph.Port{Name: b.Name, Value: n.values[b.Name]})
		fwdOut = append(fwdOut, graph.Port{Name: b.Output, Value: n.newStats[b.Name]})
		m.Buffers = append(m.Buffers, b)
	}
	fwdOut = append(fwdOut, savedPorts...)

	bwdIn := append([]graph.Port{{Name: graphs.TrainInput, Value: views}}, params...)
	bwdIn = append(bwdIn, savedPorts...)
	bwdIn = append(bwdIn, graph.Port{Name: graphs.ProjectionGradName, Value: dz})
	bwdOut := make([]graph.Port, len(grads))
	for i, d := range grads {
		bwdOut[i] = graph.Port{Name: m.Params[i].Output, Value: d}
	}
	lowerConvs(g, cfg, opts)
	return g.Extract(name+".forward", fwdIn, fwdOut), g.Extract(name+".backward", bwdIn, bwdOut)
}

// buildGlobalLoss is the loss graph: NT-Xent over the world ranks' gathered
// projections, rank-major, with its gradient.
func buildGlobalLoss(cfg graphs.Config, world int, name string) *graph.Graph {
	g := graph.New(name + ".loss")
	zAll := g.Input(graphs.GatheredName, graph.Float, graph.Shape{2 * int64(cfg.Pairs) * int64(world), int64(cfg.ProjectionDim)})
	loss := ntXent(g, zAll, cfg.Temperature, world, 0)
	g.Output(graphs.LossOutput, loss)
	g.Output(graphs.GatheredGradName, g.Gradients(loss, []*graph.Value{zAll})[0])
	return g
}
