package simclr

import (
	"fmt"
	"math"

	"github.com/simclr-ort/simclr-ort/gen/graph"
	"github.com/simclr-ort/simclr-ort/graphs"
)

// BatchNorm settings of PyTorch's nn.BatchNorm2d.
const (
	bnEpsilon  = 1e-5
	bnMomentum = 0.1
)

// bnMode says how the network's BatchNorm layers compute.
type bnMode int

const (
	// bnTrain normalises with batch statistics and updates running ones.
	bnTrain bnMode = iota
	// bnEval normalises with the running statistics.
	bnEval
)

// net builds one network into a graph and records its tensors.
type net struct {
	g        *graph.Graph
	cfg      graphs.Config
	mode     bnMode
	params   []graphs.Tensor
	buffers  []graphs.Tensor
	values   map[string]*graph.Value
	newStats map[string]*graph.Value
	// decisions, when not nil, collects the forward pass's ReLU and
	// MaxPool decisions (Options.Decisions); calls counts each module's
	// calls, as PyTorch modules are called once per use.
	decisions *[]decision
	calls     map[string]int
	// mutant is a model-level wrong rule (Options.Mutant), or "".
	mutant string
	// native computes convolutions with the native ops (Options.Kernels).
	native bool
}

// decision is one ReLU's output or one MaxPool's indices, recorded for
// the parity check: build makes the output once the gradients are built.
type decision struct {
	Decision
	build func() *graph.Value
}

func newNet(g *graph.Graph, cfg graphs.Config, mode bnMode) *net {
	if cfg.ConvGrad == "gpu" {
		g.ConvGradPlanner = graph.GPUConvGradPlan
		g.MaxPoolGradByMask = true
	}
	return &net{g: g, cfg: cfg, mode: mode, values: map[string]*graph.Value{}, newStats: map[string]*graph.Value{}, calls: map[string]int{}}
}

// relu is the ReLU of the PyTorch module named module (torchvision's
// blocks call their one ReLU module several times).
func (n *net) relu(module string, x *graph.Value) *graph.Value {
	var y *graph.Value
	if n.native && n.mode == bnTrain {
		y = n.g.NativeRelu(x)
	} else {
		y = n.g.Relu(x)
	}
	n.record("relu", module, y.Shape(), func() *graph.Value { return y })
	return y
}

// maxPool is the ImageNet stem's MaxPool2d(3, 2, 1).
func (n *net) maxPool(module string, x *graph.Value) *graph.Value {
	g := n.g
	withIndices := n.mode == bnTrain && !g.MaxPoolGradByMask
	var y *graph.Value
	if n.native && withIndices {
		y = g.NativeMaxPool(x, 3, 2, 1)
	} else {
		y = g.MaxPool(x, 3, 2, 1, withIndices)
	}
	if size := x.Shape().Size(); size >= 1<<24 {
		// Indices travel as float32, exact below 2^24.
		if n.decisions != nil {
			panic(fmt.Sprintf("simclr: MaxPool decisions of %d elements do not fit float32 indices", size))
		}
	}
	n.record("maxpool", module, y.Shape(), func() *graph.Value {
		idx := graph.MaxPoolIndices(y)
		if idx == nil {
			// The mask-gradient variant has no indices: the same pooling
			// with indices says where the maxima are.
			idx = graph.MaxPoolIndices(g.MaxPool(x, 3, 2, 1, true))
		}
		return g.Cast(idx, graph.Float)
	})
	return y
}

func (n *net) record(kind, module string, shape graph.Shape, build func() *graph.Value) {
	if n.decisions == nil {
		return
	}
	n.calls[module]++
	name := fmt.Sprintf("decision.%s.%s.%d", kind, module, n.calls[module])
	*n.decisions = append(*n.decisions, decision{
		Decision: Decision{Output: name, Kind: kind, Module: module, Call: n.calls[module], Shape: shape},
		build:    build,
	})
}

func (n *net) param(name string, shape graph.Shape, role string, init graphs.Init, larsExclude bool) *graph.Value {
	n.params = append(n.params, graphs.Tensor{Name: name, Shape: shape.Clone(), Role: role, Init: init, LARSExclude: larsExclude, Output: graphs.GradOutput(name)})
	v := n.g.Input(name, graph.Float, shape)
	n.values[name] = v
	return v
}

func (n *net) buffer(name string, shape graph.Shape, role string, init graphs.Init) *graph.Value {
	n.buffers = append(n.buffers, graphs.Tensor{Name: name, Shape: shape.Clone(), Role: role, Init: init, Output: graphs.NewOutput(name)})
	v := n.g.Input(name, graph.Float, shape)
	n.values[name] = v
	return v
}

// conv is a bias-free Conv2d with torchvision's ResNet initialisation:
// kaiming_normal_(mode="fan_out", nonlinearity="relu").
func (n *net) conv(name string, x *graph.Value, out, k, stride, pad int64) *graph.Value {
	in := x.Shape()[1]
	std := math.Sqrt(2.0 / float64(out*k*k))
	w := n.param(name+".weight", graph.Shape{out, in, k, k}, "conv_weight", graphs.Init{Dist: "normal", Std: std}, false)
	attrs := graph.ConvAttrs{Strides: []int64{stride, stride}, Pads: []int64{pad, pad, pad, pad}}
	if n.native {
		xs := x.Shape()
		s := graph.ConvShape{Batch: xs[0], InChannels: in, OutChannels: out, Height: xs[2], Width: xs[3], Kernel: k, Stride: stride, Pad: pad}
		return n.g.NativeConv(x, w, attrs, graph.CPUNativeConvPlan(s))
	}
	return n.g.Conv(x, w, attrs)
}

// linear is a bias-free nn.Linear with PyTorch's default initialisation,
// kaiming_uniform_(a=√5): uniform in ±1/√fan_in.
func (n *net) linear(name string, x *graph.Value, out int64) *graph.Value {
	in := x.Shape()[1]
	w := n.param(name+".weight", graph.Shape{out, in}, "linear_weight", graphs.Init{Dist: "uniform", Bound: 1 / math.Sqrt(float64(in))}, false)
	return n.g.Gemm(x, w, 1, false, true)
}

// batchNorm is nn.BatchNorm2d: weight 1, bias 0, running mean 0, var 1.
func (n *net) batchNorm(name string, x *graph.Value) *graph.Value {
	c := x.Shape()[1]
	gamma := n.param(name+".weight", graph.Shape{c}, "bn_weight", graphs.Init{Dist: "constant", Value: 1}, true)
	beta := n.param(name+".bias", graph.Shape{c}, "bn_bias", graphs.Init{Dist: "constant", Value: 0}, true)
	mean := n.buffer(name+".running_mean", graph.Shape{c}, "bn_running_mean", graphs.Init{Dist: "constant", Value: 0})
	variance := n.buffer(name+".running_var", graph.Shape{c}, "bn_running_var", graphs.Init{Dist: "constant", Value: 1})
	if n.mode == bnEval {
		return n.g.BatchNormEval(x, gamma, beta, mean, variance, bnEpsilon)
	}
	// The batch is Shards blocks (ranks) of BNGroups groups each, all
	// normalised apart: part s·groups+k is group k of block s.
	shards, groups := int64(n.cfg.ShardCount()), int64(n.cfg.BNGroups)
	parts := []*graph.Value{x}
	if shards*groups > 1 {
		size := x.Shape()[0] / (shards * groups)
		sizes := make([]int64, shards*groups)
		for i := range sizes {
			sizes[i] = size
		}
		parts = n.g.Split(x, 0, sizes...)
	}
	count := parts[0].Shape().Size() / c
	outs := make([]*graph.Value, len(parts))
	for k := int64(0); k < groups; k++ {
		batchMeans := make([]*graph.Value, shards)
		batchVars := make([]*graph.Value, shards)
		for s := int64(0); s < shards; s++ {
			i := s*groups + k
			outs[i], batchMeans[s], batchVars[s] = n.trainBatchNorm(parts[i], gamma, beta)
		}
		// PyTorch's update, once per group in order: running = (1-m)·running
		// + m·batch, with the unbiased batch variance; with several blocks,
		// batch is the mean over blocks, which is what averaging the ranks'
		// own updates gives.
		momentum := float64(bnMomentum)
		if n.mutant == MutantMomentum {
			momentum = 0.2
		}
		varianceScale := momentum * float64(count) / float64(count-1)
		if n.mutant == MutantBiasedVariance {
			varianceScale = momentum
		}
		mean = n.momentumUpdate(mean, batchMeans, momentum, momentum)
		variance = n.momentumUpdate(variance, batchVars, momentum, varianceScale)
	}
	n.newStats[name+".running_mean"] = mean
	n.newStats[name+".running_var"] = variance
	if len(outs) == 1 {
		return outs[0]
	}
	return n.g.Concat(0, outs...)
}

// momentumUpdate is (1-m)·running + Σₛ (scale/S)·batchₛ over the S blocks'
// batch statistics.
func (n *net) momentumUpdate(running *graph.Value, batch []*graph.Value, m, scale float64) *graph.Value {
	acc := n.g.Mul(running, n.g.Scalar(float32(1-m)))
	for _, b := range batch {
		acc = n.g.Add(acc, n.g.Mul(b, n.g.Scalar(float32(scale/float64(len(batch))))))
	}
	return acc
}

// trainBatchNorm normalises with batch statistics and returns y, the batch
// mean and the biased batch variance, by the configured lowering.
func (n *net) trainBatchNorm(x, gamma, beta *graph.Value) (y, mean, variance *graph.Value) {
	if n.cfg.BNLowering == "onnx" {
		if n.native {
			return n.g.NativeBatchNormTrain(x, gamma, beta, bnEpsilon)
		}
		return n.g.BatchNormTrain(x, gamma, beta, bnEpsilon)
	}
	g := n.g
	c := x.Shape()[1]
	axes := []int64{0, 2, 3}
	perChannel := graph.Shape{1, c, 1, 1}
	m := g.ReduceMean(x, axes, true)
	centred := g.Sub(x, m)
	v := g.ReduceMean(g.Mul(centred, centred), axes, true)
	invStd := g.Reciprocal(g.Sqrt(g.Add(v, g.Scalar(bnEpsilon))))
	y = g.Add(g.Mul(g.Mul(centred, invStd), g.Reshape(gamma, perChannel)), g.Reshape(beta, perChannel))
	return y, g.Reshape(m, graph.Shape{c}), g.Reshape(v, graph.Shape{c})
}

// encoder is torchvision's ResNet without fc; it returns h [batch, d].
func (n *net) encoder(x *graph.Value) *graph.Value {
	g := n.g
	var blocks []int
	bottleneck := false
	switch n.cfg.Arch {
	case "resnet18":
		blocks = []int{2, 2, 2, 2}
	case "resnet50":
		blocks, bottleneck = []int{3, 4, 6, 3}, true
	default:
		panic(fmt.Sprintf("simclr: unknown architecture %q", n.cfg.Arch))
	}
	var h *graph.Value
	g.WithScope("encoder", func() {
		if n.cfg.Stem == "cifar" {
			x = n.conv("encoder.conv1", x, 64, 3, 1, 1)
		} else {
			x = n.conv("encoder.conv1", x, 64, 7, 2, 3)
		}
		x = n.relu("encoder.relu", n.batchNorm("encoder.bn1", x))
		if n.cfg.Stem != "cifar" {
			x = n.maxPool("encoder.maxpool", x)
		}
		planes := int64(64)
		for li, count := range blocks {
			for b := 0; b < count; b++ {
				stride := int64(1)
				if li > 0 && b == 0 {
					stride = 2
				}
				name := fmt.Sprintf("encoder.layer%d.%d", li+1, b)
				g.WithScope(name, func() {
					if bottleneck {
						x = n.bottleneck(name, x, planes, stride)
					} else {
						x = n.basicBlock(name, x, planes, stride)
					}
				})
			}
			planes *= 2
		}
		h = g.Flatten2D(g.GlobalAveragePool(x))
	})
	return h
}

// basicBlock is torchvision's BasicBlock (expansion 1).
func (n *net) basicBlock(name string, x *graph.Value, planes, stride int64) *graph.Value {
	g := n.g
	out := n.relu(name+".relu", n.batchNorm(name+".bn1", n.conv(name+".conv1", x, planes, 3, stride, 1)))
	out = n.batchNorm(name+".bn2", n.conv(name+".conv2", out, planes, 3, 1, 1))
	return n.relu(name+".relu", g.Add(out, n.shortcut(name, x, planes, stride)))
}

// bottleneck is torchvision's Bottleneck (ResNet v1.5: stride on the 3x3).
func (n *net) bottleneck(name string, x *graph.Value, planes, stride int64) *graph.Value {
	g := n.g
	out := n.relu(name+".relu", n.batchNorm(name+".bn1", n.conv(name+".conv1", x, planes, 1, 1, 0)))
	out = n.relu(name+".relu", n.batchNorm(name+".bn2", n.conv(name+".conv2", out, planes, 3, stride, 1)))
	out = n.batchNorm(name+".bn3", n.conv(name+".conv3", out, planes*4, 1, 1, 0))
	return n.relu(name+".relu", g.Add(out, n.shortcut(name, x, planes*4, stride)))
}

// shortcut is the identity, or conv1x1+BN ("downsample") when the shape changes.
func (n *net) shortcut(name string, x *graph.Value, out, stride int64) *graph.Value {
	if stride == 1 && x.Shape()[1] == out {
		return x
	}
	return n.batchNorm(name+".downsample.1", n.conv(name+".downsample.0", x, out, 1, stride, 0))
}

// projector is Linear(d,d) - ReLU - Linear(d,p), no biases.
func (n *net) projector(h *graph.Value) *graph.Value {
	var z *graph.Value
	n.g.WithScope("projector", func() {
		d := h.Shape()[1]
		z = n.linear("projector.2", n.relu("projector.1", n.linear("projector.0", h, d)), int64(n.cfg.ProjectionDim))
	})
	return z
}
