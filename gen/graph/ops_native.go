package graph

import (
	"fmt"

	"github.com/simclr-ort/simclr-ort/internal/nativeop"
	onnx "github.com/simclr-ort/simclr-ort/onnxpb"
)

// Ops of simclr-ort's custom-op domain (internal/nativeop): training
// kernels that standard ONNX lacks, computed by oneDNN on ONNX Runtime's CPU
// provider (runtime/ort, Options.NativeKernels). A graph with such nodes
// imports the domain's opset (Model) and runs only on a session that
// registers the domain; graphs without them are unchanged.

// nativeAttrs writes an op's int attributes in the order internal/nativeop
// defines them; a count that does not match the definition is a bug here.
func nativeAttrs(def nativeop.Op, values ...int64) []*onnx.AttributeProto {
	if len(values) != len(def.Attrs) {
		panic(fmt.Sprintf("graph: %s takes attributes %v, got %d values", def.Name, def.Attrs, len(values)))
	}
	attrs := make([]*onnx.AttributeProto, len(values))
	for i, v := range values {
		attrs[i] = attrInt(def.Attrs[i], v)
	}
	return attrs
}

// NativeConvPlan says how the gradients of one native convolution are built.
type NativeConvPlan struct {
	// InputGrad builds the input gradient with the native ConvBackwardData
	// kernel; false builds the standard formulation of the graph's
	// ConvGradPlanner (DefaultConvGradPlan when nil).
	InputGrad bool
	// WeightGrad builds the weight gradient with the native
	// ConvBackwardWeights kernel; false builds the standard formulation.
	WeightGrad bool
}

// CPUNativeConvPlan is the native variant's plan for ONNX Runtime's CPU
// provider: every convolution and both its gradients on the native kernels,
// which choose their implementation by shape (runtime/ort/native.c: a dense
// product on 1x1 and 2x2 maps, oneDNN's Winograd F(4x4,3x3) for 3x3
// stride-1 convolutions on larger ones, oneDNN's direct kernels otherwise).
// Layer by layer (ResNet18 at 28 px, batch 128, one thread, ONNX Runtime's
// profile), the native forward and backward were 1.0-4x faster than the
// standard formulations of DefaultConvGradPlan and ConvsAsGemm even before
// the dense and Winograd paths, so no convolution keeps the standard ops.
func CPUNativeConvPlan(ConvShape) NativeConvPlan {
	return NativeConvPlan{InputGrad: true, WeightGrad: true}
}

type nativeConvOp struct {
	kernel, stride, pad int64
	plan                NativeConvPlan
}

func (nativeConvOp) OpType() string          { return nativeop.ConvForward.Name }
func (nativeConvOp) Domain() (string, int64) { return nativeop.Domain, nativeop.Version }
func (o nativeConvOp) Attributes() []*onnx.AttributeProto {
	return nativeAttrs(nativeop.ConvForward, o.stride, o.pad)
}

type nativeConvBackwardDataOp struct {
	stride, pad, height, width int64
}

func (nativeConvBackwardDataOp) OpType() string          { return nativeop.ConvBackwardData.Name }
func (nativeConvBackwardDataOp) Domain() (string, int64) { return nativeop.Domain, nativeop.Version }
func (o nativeConvBackwardDataOp) Attributes() []*onnx.AttributeProto {
	return nativeAttrs(nativeop.ConvBackwardData, o.stride, o.pad, o.height, o.width)
}

type nativeConvBackwardWeightsOp struct {
	stride, pad, kernel int64
}

func (nativeConvBackwardWeightsOp) OpType() string          { return nativeop.ConvBackwardWeights.Name }
func (nativeConvBackwardWeightsOp) Domain() (string, int64) { return nativeop.Domain, nativeop.Version }
func (o nativeConvBackwardWeightsOp) Attributes() []*onnx.AttributeProto {
	return nativeAttrs(nativeop.ConvBackwardWeights, o.stride, o.pad, o.kernel)
}

// NativeConv is Conv computed by the native ConvForward kernel: a 2-D
// convolution of x [N,Cin,H,W] with w [Cout,Cin,k,k], square kernel, equal
// strides and equal pads on every side, no bias. plan says how its
// gradients are built.
func (g *Graph) NativeConv(x, w *Value, a ConvAttrs, plan NativeConvPlan) *Value {
	g.check(x, w)
	if x.Rank() != 4 || w.Rank() != 4 || w.shape[1] != x.shape[1] || w.shape[2] != w.shape[3] {
		panic(fmt.Sprintf("graph: NativeConv of input %v with weights %v: needs [N,Cin,H,W] and square weights [Cout,%d,k,k]", x.shape, w.shape, x.Rank()))
	}
	strides, pads := a.resolve(2)
	if strides[0] != strides[1] || pads[0] != pads[1] || pads[0] != pads[2] || pads[0] != pads[3] {
		panic(fmt.Sprintf("graph: NativeConv needs equal strides and pads, got strides %v, pads %v; use Conv", strides, pads))
	}
	k, s, p := w.shape[2], strides[0], pads[0]
	out := Shape{x.shape[0], w.shape[0]}
	for i := range 2 {
		size := (x.shape[2+i]+2*p-k)/s + 1
		if x.shape[2+i] < 0 || size <= 0 {
			panic(fmt.Sprintf("graph: NativeConv of %v with a %dx%d kernel, stride %d, pad %d leaves no output (static shapes only)", x.shape, k, k, s, p))
		}
		out = append(out, size)
	}
	return g.add1(nativeConvOp{kernel: k, stride: s, pad: p, plan: plan}, []*Value{x, w}, Float, out)
}

func nativeConvVJP(g *Graph, n *Node, d []*Value) []*Value {
	op := n.Op.(nativeConvOp)
	x, w, dy := n.Inputs[0], n.Inputs[1], d[0]
	s := ConvShape{Batch: x.shape[0], InChannels: x.shape[1], OutChannels: w.shape[0], Height: x.shape[2], Width: x.shape[3],
		Kernel: op.kernel, Stride: op.stride, Pad: op.pad}
	standard := func() (ConvGradPlan, convOp) {
		chooser := g.ConvGradPlanner
		if chooser == nil {
			chooser = DefaultConvGradPlan
		}
		return chooser(s), convOp{kernel: []int64{op.kernel, op.kernel}, strides: []int64{op.stride, op.stride},
			pads: []int64{op.pad, op.pad, op.pad, op.pad}}
	}
	dx := lazy(x, func() *Value {
		if !op.plan.InputGrad {
			plan, cop := standard()
			return g.convInputGrad(plan.Input, s, cop, w, dy)
		}
		return g.add1(nativeConvBackwardDataOp{stride: op.stride, pad: op.pad, height: s.Height, width: s.Width},
			[]*Value{dy, w}, Float, x.shape)
	})
	dw := lazy(w, func() *Value {
		if !op.plan.WeightGrad {
			plan, cop := standard()
			return g.convWeightGrad(plan, s, cop, x, dy)
		}
		return g.add1(nativeConvBackwardWeightsOp{stride: op.stride, pad: op.pad, kernel: op.kernel},
			[]*Value{dy, x}, Float, w.shape)
	})
	return []*Value{dx, dw}
}

func init() {
	registerVJP(nativeop.ConvForward.Name, func(g *Graph, n *Node, d []*Value) []*Value {
		// The parity gate's convolution mutants (Mutate) wrong native
		// convolutions as they wrong Conv nodes.
		if m := g.mutant; m != nil && m.opType == "Conv" {
			return m.rule(g, n, d, nativeConvVJP)
		}
		return nativeConvVJP(g, n, d)
	})
}

type nativeMaxPoolOp struct {
	kernel, stride, pad int64
}

func (nativeMaxPoolOp) OpType() string          { return nativeop.MaxPoolForward.Name }
func (nativeMaxPoolOp) Domain() (string, int64) { return nativeop.Domain, nativeop.Version }
func (o nativeMaxPoolOp) Attributes() []*onnx.AttributeProto {
	return nativeAttrs(nativeop.MaxPoolForward, o.kernel, o.stride, o.pad)
}

type nativeMaxPoolBackwardOp struct {
	height, width int64
}

func (nativeMaxPoolBackwardOp) OpType() string          { return nativeop.MaxPoolBackward.Name }
func (nativeMaxPoolBackwardOp) Domain() (string, int64) { return nativeop.Domain, nativeop.Version }
func (o nativeMaxPoolBackwardOp) Attributes() []*onnx.AttributeProto {
	return nativeAttrs(nativeop.MaxPoolBackward, o.height, o.width)
}

// NativeMaxPool is MaxPool with indices computed by the native
// MaxPoolForward kernel: 2-D max pooling of x [N,C,H,W] with a square
// kernel; MaxPoolIndices finds its indices (ONNX's flat offsets into x).
// Its gradient, MaxPoolBackward, adds dy at the indices, as MaxPool's
// scatter does; ONNX Runtime's MaxPool with indices and ScatterElements
// took 50 and 9 ms of a ResNet18 28 px step (batch 128, one thread), the
// native pair a tenth of that.
func (g *Graph) NativeMaxPool(x *Value, kernel, stride, pad int64) *Value {
	g.check(x)
	if x.Rank() != 4 || pad < 0 || pad >= kernel || stride < 1 {
		panic(fmt.Sprintf("graph: NativeMaxPool of %v with kernel %d, stride %d, pad %d: needs [N,C,H,W] and 0 <= pad < kernel", x.shape, kernel, stride, pad))
	}
	out := Shape{x.shape[0], x.shape[1]}
	for i := range 2 {
		size := (x.shape[2+i]+2*pad-kernel)/stride + 1
		if x.shape[2+i] < 0 || size <= 0 {
			panic(fmt.Sprintf("graph: NativeMaxPool of %v with kernel %d, stride %d, pad %d leaves no output (static shapes only)", x.shape, kernel, stride, pad))
		}
		out = append(out, size)
	}
	op := nativeMaxPoolOp{kernel: kernel, stride: stride, pad: pad}
	return g.addNode(op, []*Value{x}, []outSpec{{Float, out}, {Int64, out}})[0]
}

func nativeMaxPoolVJP(g *Graph, n *Node, d []*Value) []*Value {
	x := n.Inputs[0]
	op := nativeMaxPoolBackwardOp{height: x.shape[2], width: x.shape[3]}
	return []*Value{g.add1(op, []*Value{d[0], n.Outputs[1]}, Float, x.shape)}
}

func init() {
	registerVJP(nativeop.MaxPoolForward.Name, func(g *Graph, n *Node, d []*Value) []*Value {
		if d[1] != nil {
			panic("graph: MaxPoolForward's indices have no gradient")
		}
		// The parity gate's MaxPool mutant wrongs the native pooling as it
		// wrongs MaxPool: its rule reads the pooling from a MaxPool node.
		if m := g.mutant; m != nil && m.opType == "MaxPool" {
			o := n.Op.(nativeMaxPoolOp)
			pool := &Node{Op: maxPoolOp{kernel: []int64{o.kernel, o.kernel}, strides: []int64{o.stride, o.stride},
				pads: []int64{o.pad, o.pad, o.pad, o.pad}}, Inputs: n.Inputs, Outputs: n.Outputs, name: n.name}
			return m.rule(g, pool, d, nativeMaxPoolVJP)
		}
		return nativeMaxPoolVJP(g, n, d)
	})
}

type nativeReluOp struct{}

func (nativeReluOp) OpType() string                     { return nativeop.ReluForward.Name }
func (nativeReluOp) Domain() (string, int64)            { return nativeop.Domain, nativeop.Version }
func (nativeReluOp) Attributes() []*onnx.AttributeProto { return nil }

type nativeReluBackwardOp struct{}

func (nativeReluBackwardOp) OpType() string                     { return nativeop.ReluBackward.Name }
func (nativeReluBackwardOp) Domain() (string, int64)            { return nativeop.Domain, nativeop.Version }
func (nativeReluBackwardOp) Attributes() []*onnx.AttributeProto { return nil }

// NativeRelu is Relu computed by the native ReluForward kernel; its
// gradient, ReluBackward, is one pass (dy where y > 0) where Relu's is two
// (Greater, then Where) and a boolean tensor between them.
func (g *Graph) NativeRelu(x *Value) *Value {
	g.check(x)
	return g.add1(nativeReluOp{}, []*Value{x}, Float, x.shape)
}

type nativeBatchNormOp struct {
	epsilon float32
}

func (nativeBatchNormOp) OpType() string          { return nativeop.BatchNormForward.Name }
func (nativeBatchNormOp) Domain() (string, int64) { return nativeop.Domain, nativeop.Version }
func (o nativeBatchNormOp) Attributes() []*onnx.AttributeProto {
	return []*onnx.AttributeProto{attrFloat(nativeop.BatchNormForward.FloatAttrs[0], o.epsilon)}
}

type nativeBatchNormBackwardOp struct {
	epsilon float32
}

func (nativeBatchNormBackwardOp) OpType() string          { return nativeop.BatchNormBackward.Name }
func (nativeBatchNormBackwardOp) Domain() (string, int64) { return nativeop.Domain, nativeop.Version }
func (o nativeBatchNormBackwardOp) Attributes() []*onnx.AttributeProto {
	return []*onnx.AttributeProto{attrFloat(nativeop.BatchNormBackward.FloatAttrs[0], o.epsilon)}
}

// NativeBatchNormTrain is BatchNormTrain computed by the native
// BatchNormForward kernel: y = scale·x̂ + bias with x [N,C,...] normalised by
// its own batch statistics, and the batch mean and biased variance ([C]).
// Its gradient, BatchNormBackward, reads x and dy twice (the two sums, then
// dx) where BatchNormTrain's standard gradient takes seven passes.
func (g *Graph) NativeBatchNormTrain(x, scale, bias *Value, epsilon float32) (y, mean, variance *Value) {
	g.check(x, scale, bias)
	c := checkChannels("NativeBatchNormTrain", x, scale, bias)
	outs := g.addNode(nativeBatchNormOp{epsilon: epsilon}, []*Value{x, scale, bias},
		[]outSpec{{Float, x.shape}, {Float, Shape{c}}, {Float, Shape{c}}})
	return outs[0], outs[1], outs[2]
}

func nativeBatchNormVJP(g *Graph, n *Node, d []*Value) []*Value {
	if d[1] != nil || d[2] != nil {
		panic("graph: gradients through BatchNormForward's batch statistics are not supported; update running statistics outside the loss")
	}
	op := n.Op.(nativeBatchNormOp)
	x, scale := n.Inputs[0], n.Inputs[1]
	c := x.shape[1]
	outs := g.addNode(nativeBatchNormBackwardOp{epsilon: op.epsilon}, []*Value{d[0], x, scale, n.Outputs[1], n.Outputs[2]},
		[]outSpec{{Float, x.shape}, {Float, Shape{c}}, {Float, Shape{c}}})
	return []*Value{outs[0], outs[1], outs[2]}
}

func init() {
	registerVJP(nativeop.ReluForward.Name, func(g *Graph, n *Node, d []*Value) []*Value {
		return []*Value{g.add1(nativeReluBackwardOp{}, []*Value{d[0], n.Outputs[0]}, Float, n.Inputs[0].shape)}
	})
	registerVJP(nativeop.BatchNormForward.Name, func(g *Graph, n *Node, d []*Value) []*Value {
		// The parity gate's BatchNorm mutant wrongs the native BatchNorm as
		// it wrongs BatchNormalization: its rule reads the epsilon, scale
		// and variance from a training BatchNormalization node.
		if m := g.mutant; m != nil && m.opType == "BatchNormalization" {
			o := n.Op.(nativeBatchNormOp)
			bn := &Node{Op: batchNormOp{epsilon: o.epsilon, training: true}, Inputs: n.Inputs, Outputs: n.Outputs, name: n.name}
			return m.rule(g, bn, d, func(g *Graph, _ *Node, d []*Value) []*Value { return nativeBatchNormVJP(g, n, d) })
		}
		return nativeBatchNormVJP(g, n, d)
	})
}
