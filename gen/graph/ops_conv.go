package graph

import (
	"fmt"
	"math"
	"slices"

	onnx "github.com/simclr-ort/simclr-ort/onnxpb"
)

// ConvAttrs are a convolution's strides and paddings. Pads follow ONNX:
// all begins, then all ends. Nil fields mean stride 1 and no padding.
type ConvAttrs struct {
	Strides []int64
	Pads    []int64
}

type convOp struct {
	kernel  []int64
	strides []int64
	pads    []int64
	// unitDilations writes the default dilations (all 1) explicitly: the
	// same convolution, but a node that common-subexpression elimination
	// does not merge with an otherwise identical one (see ConvsAsGemm).
	unitDilations bool
}

func (o convOp) OpType() string { return "Conv" }
func (o convOp) Attributes() []*onnx.AttributeProto {
	attrs := []*onnx.AttributeProto{attrInts("kernel_shape", o.kernel), attrInts("pads", o.pads), attrInts("strides", o.strides)}
	if o.unitDilations {
		attrs = append([]*onnx.AttributeProto{attrInts("dilations", ones(len(o.kernel)))}, attrs...)
	}
	return attrs
}

func (a ConvAttrs) resolve(spatial int) (strides, pads []int64) {
	strides, pads = a.Strides, a.Pads
	if strides == nil {
		strides = ones(spatial)
	}
	if pads == nil {
		pads = make([]int64, 2*spatial)
	}
	if len(strides) != spatial || len(pads) != 2*spatial {
		panic(fmt.Sprintf("graph: %d spatial dims need %d strides and %d pads, got %v and %v", spatial, spatial, 2*spatial, strides, pads))
	}
	return append([]int64(nil), strides...), append([]int64(nil), pads...)
}

func ones(n int) []int64 {
	s := make([]int64, n)
	for i := range s {
		s[i] = 1
	}
	return s
}

// Conv is an N-d convolution (no bias, group 1, dilation 1) of x
// [N,Cin,spatial...] with weights w [Cout,Cin,kernel...].
func (g *Graph) Conv(x, w *Value, a ConvAttrs) *Value {
	g.check(x, w)
	spatial := x.Rank() - 2
	if w.Rank() != x.Rank() || w.shape[1] != x.shape[1] {
		panic(fmt.Sprintf("graph: Conv of input %v with weights %v: weights must be [Cout,Cin,k...] with Cin=%d", x.shape, w.shape, x.shape[1]))
	}
	strides, pads := a.resolve(spatial)
	kernel := Shape(w.shape[2:]).Clone()
	out := Shape{x.shape[0], w.shape[0]}
	for i := 0; i < spatial; i++ {
		size := (x.shape[2+i]+pads[i]+pads[spatial+i]-kernel[i])/strides[i] + 1
		if size <= 0 {
			panic(fmt.Sprintf("graph: Conv of %v with kernel %v, strides %v, pads %v leaves no output", x.shape, kernel, strides, pads))
		}
		out = append(out, size)
	}
	return g.add1(convOp{kernel: kernel, strides: strides, pads: pads}, []*Value{x, w}, Float, out)
}

type convTransposeOp struct {
	kernel, strides, pads, outputPadding []int64
}

func (o convTransposeOp) OpType() string { return "ConvTranspose" }
func (o convTransposeOp) Attributes() []*onnx.AttributeProto {
	return []*onnx.AttributeProto{attrInts("kernel_shape", o.kernel), attrInts("output_padding", o.outputPadding),
		attrInts("pads", o.pads), attrInts("strides", o.strides)}
}

// ConvTranspose is the 2-D transposed convolution of dy [N,Cout,H',W'] with
// w [Cout,Cin,k,k] producing [N,Cin,H,W]: the adjoint of Conv with the same
// strides and pads, outShape giving H and W.
func (g *Graph) ConvTranspose(dy, w *Value, strides, pads []int64, outH, outW int64) *Value {
	g.check(dy, w)
	k := w.shape[2:]
	in := []int64{dy.shape[2], dy.shape[3]}
	want := []int64{outH, outW}
	op := make([]int64, 2)
	for i := range 2 {
		op[i] = want[i] - (strides[i]*(in[i]-1) + k[i] - pads[i] - pads[2+i])
		if op[i] < 0 || op[i] >= strides[i] {
			panic(fmt.Sprintf("graph: ConvTranspose cannot reach size %d from %d with kernel %d, stride %d, pads %v", want[i], in[i], k[i], strides[i], pads))
		}
	}
	return g.add1(convTransposeOp{kernel: Shape(k).Clone(), strides: strides, pads: pads, outputPadding: op},
		[]*Value{dy, w}, Float, Shape{dy.shape[0], w.shape[1], outH, outW})
}

// ConvGradPlan says how the gradients of one 2-D convolution are built.
type ConvGradPlan struct {
	// Input is InputGradFlippedConv or InputGradConvTranspose.
	Input string
	// Weight is WeightGradUnfold or WeightGradTransposedConv.
	Weight string
	// NoSlice avoids Slice: a strided 1x1 convolution's weight gradient
	// then unfolds its input instead of slicing every stride-th pixel.
	NoSlice bool
}

// The formulations of a convolution's gradients; each is exact, they differ
// in speed by layer shape (see DefaultConvGradPlan).
const (
	// InputGradFlippedConv convolves dy with the kernel flipped in space and
	// transposed in channels (stride 1 only).
	InputGradFlippedConv = "flipped-conv"
	// InputGradConvTranspose applies ConvTranspose with the forward weights.
	InputGradConvTranspose = "conv-transpose"
	// WeightGradUnfold unfolds x into patches (im2col, by a 3-D convolution
	// with a constant one-hot kernel) and multiplies them with dy in one Gemm.
	WeightGradUnfold = "unfold-gemm"
	// WeightGradTransposedConv convolves x, batch and channels swapped, with
	// dy as the kernel, dilated by the stride.
	WeightGradTransposedConv = "transposed-conv"
)

// ConvShape describes one convolution for choosing its ConvGradPlan.
type ConvShape struct {
	Batch, InChannels, OutChannels, Height, Width, Kernel, Stride, Pad int64
}

// DefaultConvGradPlan chooses the gradient formulation of a convolution by
// its shape, following measurements on ONNX Runtime's CPU provider (see the
// README's design notes): the flipped convolution for the input gradient at
// stride 1, ConvTranspose otherwise; patches and one Gemm for the weight
// gradient, except for the 3-channel stem where the transposed convolution
// was faster.
func DefaultConvGradPlan(s ConvShape) ConvGradPlan {
	return defaultConvGradPlan(s)
}

// GPUConvGradPlan is the plan for GPU providers: ConvTranspose for every
// input gradient (cuDNN's backward-data algorithm), patches and one Gemm
// for every weight gradient, and no Slice, whose CUDA kernel failed on the
// flipped kernel of InputGradFlippedConv (ONNX Runtime 1.29).
func GPUConvGradPlan(ConvShape) ConvGradPlan {
	return ConvGradPlan{Input: InputGradConvTranspose, Weight: WeightGradUnfold, NoSlice: true}
}

func defaultConvGradPlan(s ConvShape) ConvGradPlan {
	p := ConvGradPlan{Input: InputGradConvTranspose, Weight: WeightGradUnfold}
	if s.Stride == 1 {
		p.Input = InputGradFlippedConv
	}
	if s.InChannels <= 4 {
		p.Weight = WeightGradTransposedConv
	}
	return p
}

func convVJP(g *Graph, n *Node, d []*Value) []*Value {
	op := n.Op.(convOp)
	x, w, dy := n.Inputs[0], n.Inputs[1], d[0]
	if x.Rank() != 4 || op.kernel[0] != op.kernel[1] || op.strides[0] != op.strides[1] ||
		op.pads[0] != op.pads[1] || op.pads[0] != op.pads[2] || op.pads[0] != op.pads[3] {
		panic(fmt.Sprintf("graph: Conv gradient supports square 2-D kernels with equal strides and symmetric pads, got %+v", op))
	}
	s := ConvShape{Batch: x.shape[0], InChannels: x.shape[1], OutChannels: w.shape[0], Height: x.shape[2], Width: x.shape[3],
		Kernel: op.kernel[0], Stride: op.strides[0], Pad: op.pads[0]}
	chooser := g.ConvGradPlanner
	if chooser == nil {
		chooser = DefaultConvGradPlan
	}
	plan := chooser(s)
	return []*Value{
		lazy(x, func() *Value { return g.convInputGrad(plan.Input, s, op, w, dy) }),
		lazy(w, func() *Value { return g.convWeightGrad(plan, s, op, x, dy) }),
	}
}

func (g *Graph) convInputGrad(method string, s ConvShape, op convOp, w, dy *Value) *Value {
	if method == InputGradFlippedConv && s.Stride == 1 {
		// dx = conv(dy, flip(w)ᵀ) with pads k-1-p.
		wt := w
		if s.Kernel > 1 {
			wt = g.Slice(w, []int64{-1, -1}, []int64{math.MinInt64, math.MinInt64}, []int64{2, 3}, []int64{-1, -1})
		}
		wt = g.Transpose(wt, 1, 0, 2, 3)
		p := s.Kernel - 1 - s.Pad
		return g.Conv(dy, wt, ConvAttrs{Pads: []int64{p, p, p, p}})
	}
	return g.ConvTranspose(dy, w, op.strides, op.pads, s.Height, s.Width)
}

func (g *Graph) convWeightGrad(plan ConvGradPlan, s ConvShape, op convOp, x, dy *Value) *Value {
	method := plan.Weight
	cout, cin, k := s.OutChannels, s.InChannels, s.Kernel
	outH, outW := dy.shape[2], dy.shape[3]
	// dy as [Cout, N*H'*W'].
	dyT := g.Reshape(g.Transpose(dy, 1, 0, 2, 3), Shape{cout, s.Batch * outH * outW})
	switch {
	case k == 1 && s.Pad == 0 && (s.Stride == 1 || !plan.NoSlice):
		xs := x
		if s.Stride > 1 {
			xs = g.Slice(x, []int64{0, 0}, []int64{s.Height, s.Width}, []int64{2, 3}, []int64{s.Stride, s.Stride})
		}
		cols := g.Reshape(g.Transpose(xs, 1, 0, 2, 3), Shape{cin, s.Batch * outH * outW})
		return g.Reshape(g.Gemm(dyT, cols, 1, false, true), Shape{cout, cin, 1, 1})
	case method == WeightGradUnfold:
		return g.Reshape(g.Gemm(dyT, g.patches(x, s, false), 1, false, true), Shape{cout, cin, k, k})
	default:
		// Convolve x with channels as batch and batch as channels, dy as the
		// kernel dilated by the stride; crop the extra rows the stride leaves.
		xt := g.Transpose(x, 1, 0, 2, 3)
		kt := g.Transpose(dy, 1, 0, 2, 3)
		r := g.dilatedConv(xt, kt, s.Stride, s.Pad)
		if r.shape[2] != k || r.shape[3] != k {
			r = g.Slice(r, []int64{0, 0}, []int64{k, k}, []int64{2, 3}, []int64{1, 1})
		}
		return g.Transpose(r, 1, 0, 2, 3)
	}
}

type dilatedConvOp struct {
	kernel, pads, dilations []int64
}

func (o dilatedConvOp) OpType() string { return "Conv" }
func (o dilatedConvOp) Attributes() []*onnx.AttributeProto {
	return []*onnx.AttributeProto{attrInts("dilations", o.dilations), attrInts("kernel_shape", o.kernel), attrInts("pads", o.pads)}
}

// dilatedConv is a stride-1 2-D convolution with dilation, used only inside
// gradients (it has no VJP of its own).
func (g *Graph) dilatedConv(x, w *Value, dilation, pad int64) *Value {
	k := w.shape[2:]
	out := Shape{x.shape[0], w.shape[0]}
	for i := range 2 {
		out = append(out, x.shape[2+i]+2*pad-dilation*(k[i]-1))
	}
	op := dilatedConvOp{kernel: Shape(k).Clone(), pads: []int64{pad, pad, pad, pad}, dilations: []int64{dilation, dilation}}
	return g.add1(op, []*Value{x, w}, Float, out)
}

type maxPoolOp struct {
	kernel, strides, pads []int64
}

func (o maxPoolOp) OpType() string { return "MaxPool" }
func (o maxPoolOp) Attributes() []*onnx.AttributeProto {
	return []*onnx.AttributeProto{attrInts("kernel_shape", o.kernel), attrInts("pads", o.pads), attrInts("strides", o.strides)}
}

// MaxPool is 2-D max pooling with a square kernel. With indices it also
// returns the flat position of each maximum, from which its gradient is
// scattered; without (or with Graph.MaxPoolGradByMask), its gradient gives
// dy to every window element equal to the window's maximum: the same where
// the maximum is unique, and where it is not (the zeros a ReLU before the
// pooling leaves), the ReLU's gradient zeroes those elements anyway. The
// mask form exists for the CUDA provider, whose ScatterElements with
// reduction fails (ONNX Runtime 1.29).
func (g *Graph) MaxPool(x *Value, kernel, stride, pad int64, withIndices bool) *Value {
	g.check(x)
	op := maxPoolOp{kernel: []int64{kernel, kernel}, strides: []int64{stride, stride}, pads: []int64{pad, pad, pad, pad}}
	out := Shape{x.shape[0], x.shape[1]}
	for i := range 2 {
		out = append(out, (x.shape[2+i]+2*pad-kernel)/stride+1)
	}
	outs := []outSpec{{Float, out}}
	if withIndices {
		outs = append(outs, outSpec{Int64, out})
	}
	return g.addNode(op, []*Value{x}, outs)[0]
}

type scatterAddOp struct{}

func (scatterAddOp) OpType() string { return "ScatterElements" }
func (scatterAddOp) Attributes() []*onnx.AttributeProto {
	return []*onnx.AttributeProto{attrInt("axis", 0), attrString("reduction", "add")}
}

func init() {
	registerVJP("Conv", convVJP)
	registerVJP("MaxPool", func(g *Graph, n *Node, d []*Value) []*Value {
		if len(n.Outputs) < 2 || g.MaxPoolGradByMask {
			return []*Value{g.maxPoolGradByMask(n, d[0])}
		}
		// ONNX's indices are flat offsets into x (over N, C, H and W), so
		// scattering dy onto zeros with addition is the exact gradient.
		x, idx := n.Inputs[0], n.Outputs[1]
		size := x.shape.Size()
		flat := g.add1(scatterAddOp{}, []*Value{
			g.Fill(Shape{size}, 0),
			g.Reshape(idx, Shape{idx.shape.Size()}),
			g.Reshape(d[0], Shape{d[0].shape.Size()}),
		}, Float, Shape{size})
		return []*Value{g.Reshape(flat, x.shape)}
	})
}

// maxPoolGradByMask places y and dy back on x's grid once per kernel
// position (a ConvTranspose with a one-hot kernel per output channel: k*k
// channels, channel i*k+j holding the windows' values at offset (i, j)),
// keeps dy where x equals the window's maximum and sums the k*k channels.
func (g *Graph) maxPoolGradByMask(n *Node, dy *Value) *Value {
	op := n.Op.(maxPoolOp)
	x, y := n.Inputs[0], n.Outputs[0]
	k, s := op.kernel[0], op.strides[0]
	nc, h, w := x.shape[0]*x.shape[1], x.shape[2], x.shape[3]
	oneHot := make([]float32, k*k*k*k)
	for c := int64(0); c < k*k; c++ {
		oneHot[c*k*k+c] = 1
	}
	kernel := g.ConstFloat(Shape{1, k * k, k, k}, oneHot)
	place := func(v *Value) *Value {
		v = g.Reshape(v, Shape{nc, 1, y.shape[2], y.shape[3]})
		return g.ConvTranspose(v, kernel, []int64{s, s}, op.pads, h, w)
	}
	isMax := g.Equal(place(y), g.Reshape(x, Shape{nc, 1, h, w}))
	dx := g.ReduceSum(g.Where(isMax, place(dy), g.ConstFloat(Shape{1}, []float32{0})), []int64{1}, false)
	return g.Reshape(dx, x.shape)
}

// CPUConvAsGemm says which convolutions ConvsAsGemm rewrites for ONNX
// Runtime's CPU provider: those with a kernel larger than 1x1 whose output
// maps have at most 64 pixels (8x8 and smaller). Measured with 2 threads
// (ONNX Runtime 1.24.1), one 3x3 convolution as patches and one Gemm
// against the Conv node: 512 channels on 2x2 maps 31 vs 65 ms (batch 128),
// 256 on 2x2 16 vs 40-48 ms, 128 on 8x8 30 vs 48-50 ms, 64 on 7x7 16.5 vs
// 20.5 ms; but 64 channels on 16x16 maps 39 vs 22-25 ms, and 32x32 143 vs
// 86 ms, where the Conv node wins.
func CPUConvAsGemm(s ConvShape) bool {
	if s.Kernel <= 1 {
		return false
	}
	outH := (s.Height+2*s.Pad-s.Kernel)/s.Stride + 1
	outW := (s.Width+2*s.Pad-s.Kernel)/s.Stride + 1
	return outH*outW <= 64
}

// ConvsAsGemm rewrites every 2-D convolution of the graph that asGemm
// selects (forward and gradient alike, so call it once the gradients are
// built) as the patches of its input (im2col, by a 3-D convolution with a
// constant one-hot kernel, as WeightGradUnfold builds them) times its
// weights in one Gemm: y[n,o,h,w] = Σ W[o, c·k·k] U[c·k·k, n·h·w]. The
// convolution's output keeps its value, name and consumers; the rewrite
// changes how it is computed, not what (TestConvsAsGemm). ONNX Runtime's CPU
// convolution is slow on small maps with many channels, where one large
// Gemm is not. It returns the number of convolutions rewritten.
func (g *Graph) ConvsAsGemm(asGemm func(ConvShape) bool) int {
	nodes := g.nodes
	g.nodes = nil
	rewritten := 0
	for _, n := range nodes {
		op, ok := n.Op.(convOp)
		if !ok || n.Inputs[0].Rank() != 4 || op.kernel[0] != op.kernel[1] || op.strides[0] != op.strides[1] ||
			op.pads[0] != op.pads[1] || op.pads[0] != op.pads[2] || op.pads[0] != op.pads[3] {
			g.nodes = append(g.nodes, n)
			continue
		}
		x, w, y := n.Inputs[0], n.Inputs[1], n.Outputs[0]
		s := ConvShape{Batch: x.shape[0], InChannels: x.shape[1], OutChannels: w.shape[0], Height: x.shape[2], Width: x.shape[3],
			Kernel: op.kernel[0], Stride: op.strides[0], Pad: op.pads[0]}
		if slices.Contains(x.shape, Dynamic) || slices.Contains(w.shape, Dynamic) || !asGemm(s) {
			g.nodes = append(g.nodes, n)
			continue
		}
		g.PushScope(n.name + "/as_gemm")
		// The weight gradient unfolds the same x the same way; were the two
		// patch nodes identical, ONNX Runtime's common-subexpression
		// elimination would merge them and keep every rewritten
		// convolution's k·k-times-larger patches alive from the forward
		// pass to the backward one (measured: ResNet18 at 28 px, batch 128,
		// peak RSS 966 instead of 671 MB, for no speed). Recomputing them is
		// cheap, so the forward's patches node is made distinct.
		cols := g.patches(x, s, true)
		ym := g.Gemm(g.Reshape(w, Shape{s.OutChannels, s.InChannels * s.Kernel * s.Kernel}), cols, 1, false, false)
		g.Transpose(g.Reshape(ym, Shape{s.OutChannels, s.Batch, y.shape[2], y.shape[3]}), 1, 0, 2, 3)
		g.PopScope()
		// The last node built computes y: give it y itself, so that y's
		// name and consumers stay.
		last := g.nodes[len(g.nodes)-1]
		if !last.Outputs[0].shape.Equal(y.shape) {
			panic(fmt.Sprintf("graph: ConvsAsGemm of %s built %v, want %v", n.name, last.Outputs[0].shape, y.shape))
		}
		last.Outputs[0] = y
		y.producer = last
		rewritten++
	}
	return rewritten
}

// patches returns the im2col matrix U [Cin·k·k, N·H'·W'] of a 2-D
// convolution's input x: U[ci·k·k + i·k + j, n·H'·W' + h·W' + w] =
// xpad[n, ci, h·s+i, w·s+j], by a 3-D convolution of x (as [Cin,1,N,H,W])
// with a one-hot kernel. distinct writes that convolution with explicit
// unit dilations (see convOp.unitDilations).
func (g *Graph) patches(x *Value, s ConvShape, distinct bool) *Value {
	k := s.Kernel
	x5 := g.Reshape(g.Transpose(x, 1, 0, 2, 3), Shape{s.InChannels, 1, s.Batch, s.Height, s.Width})
	eye := make([]float32, k*k*k*k)
	for i := int64(0); i < k; i++ {
		for j := int64(0); j < k; j++ {
			eye[(i*k+j)*k*k+i*k+j] = 1
		}
	}
	kernel := g.ConstFloat(Shape{k * k, 1, 1, k, k}, eye)
	p := s.Pad
	u := g.Conv(x5, kernel, ConvAttrs{Strides: []int64{1, s.Stride, s.Stride}, Pads: []int64{0, p, p, 0, p, p}})
	if distinct {
		op := u.producer.Op.(convOp)
		op.unitDilations = true
		u.producer.Op = op
	}
	return g.Reshape(u, Shape{s.InChannels * k * k, u.shape[2] * u.shape[3] * u.shape[4]})
}

// MaxPoolIndices is the indices output of the MaxPool (or NativeMaxPool) that computed y
// (flat offsets into its input, as ONNX defines them), or nil when y is not
// the output of a MaxPool built with indices.
func MaxPoolIndices(y *Value) *Value {
	n := y.producer
	if n == nil || n.Outputs[0] != y || len(n.Outputs) < 2 {
		return nil
	}
	switch n.Op.(type) {
	case maxPoolOp, nativeMaxPoolOp:
		return n.Outputs[1]
	}
	return nil
}
