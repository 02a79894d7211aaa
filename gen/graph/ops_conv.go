package graph

import (
	"fmt"
	"math"

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

func init() { registerVJP("Conv", convVJP) }
