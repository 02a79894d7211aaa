package graph

import (
	"fmt"

	onnx "github.com/simclr-ort/simclr-ort/onnxpb"
)

func reducedShape(op string, x Shape, axes []int64, keepDims bool) Shape {
	drop := map[int64]bool{}
	for _, a := range axes {
		if a < 0 || int(a) >= len(x) {
			panic(fmt.Sprintf("graph: %s over axis %d of shape %v", op, a, x))
		}
		drop[a] = true
	}
	var out Shape
	for i, d := range x {
		switch {
		case !drop[int64(i)]:
			out = append(out, d)
		case keepDims:
			out = append(out, 1)
		}
	}
	return out
}

type reduceSumOp struct{ keepDims bool }

func (o reduceSumOp) OpType() string { return "ReduceSum" }
func (o reduceSumOp) Attributes() []*onnx.AttributeProto {
	return []*onnx.AttributeProto{attrInt("keepdims", b2i(o.keepDims))}
}

// ReduceSum sums x over axes (at opset 13+ the axes are an input).
func (g *Graph) ReduceSum(x *Value, axes []int64, keepDims bool) *Value {
	g.check(x)
	shape := reducedShape("ReduceSum", x.shape, axes, keepDims)
	return g.add1(reduceSumOp{keepDims: keepDims}, []*Value{x, g.Ints(axes...)}, x.dtype, shape)
}

type reduceMeanOp struct {
	axes     []int64
	keepDims bool
}

func (o reduceMeanOp) OpType() string { return "ReduceMean" }
func (o reduceMeanOp) Attributes() []*onnx.AttributeProto {
	return []*onnx.AttributeProto{attrInts("axes", o.axes), attrInt("keepdims", b2i(o.keepDims))}
}

// ReduceMean averages x over axes (an attribute at opset 17).
func (g *Graph) ReduceMean(x *Value, axes []int64, keepDims bool) *Value {
	g.check(x)
	shape := reducedShape("ReduceMean", x.shape, axes, keepDims)
	return g.add1(reduceMeanOp{axes: append([]int64(nil), axes...), keepDims: keepDims}, []*Value{x}, x.dtype, shape)
}

// GlobalAveragePool averages [N,C,H,W] over H and W, giving [N,C,1,1].
func (g *Graph) GlobalAveragePool(x *Value) *Value {
	g.check(x)
	if x.Rank() != 4 {
		panic(fmt.Sprintf("graph: GlobalAveragePool of %v", x.shape))
	}
	return g.add1(simpleOp("GlobalAveragePool"), []*Value{x}, x.dtype, Shape{x.shape[0], x.shape[1], 1, 1})
}

// expandBack broadcasts the gradient of a reduction back over the reduced axes.
func (g *Graph) expandBack(d *Value, in Shape, axes []int64, keepDims bool) *Value {
	kept := reducedShape("reduction gradient", in, axes, true)
	if !keepDims {
		d = g.Reshape(d, kept)
	}
	return g.Expand(d, in)
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func init() {
	registerVJP("ReduceSum", func(g *Graph, n *Node, d []*Value) []*Value {
		axes := n.Inputs[1].constant.([]int64)
		return []*Value{g.expandBack(d[0], n.Inputs[0].shape, axes, n.Op.(reduceSumOp).keepDims), nil}
	})
	registerVJP("ReduceMean", func(g *Graph, n *Node, d []*Value) []*Value {
		op := n.Op.(reduceMeanOp)
		in := n.Inputs[0].shape
		count := int64(1)
		for _, a := range op.axes {
			count *= in[a]
		}
		scaled := g.Mul(d[0], g.Scalar(1/float32(count)))
		return []*Value{g.expandBack(scaled, in, op.axes, op.keepDims)}
	})
	registerVJP("GlobalAveragePool", func(g *Graph, n *Node, d []*Value) []*Value {
		in := n.Inputs[0].shape
		scaled := g.Mul(d[0], g.Scalar(1/float32(in[2]*in[3])))
		return []*Value{g.Expand(scaled, in)}
	})
}
