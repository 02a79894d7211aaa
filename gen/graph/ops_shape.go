package graph

import (
	"fmt"
	"math"

	onnx "github.com/simclr-ort/simclr-ort/onnxpb"
)

// Reshape gives x a new static shape with the same number of elements. The
// first dimension may be Dynamic when x's is.
func (g *Graph) Reshape(x *Value, shape Shape) *Value {
	g.check(x)
	if x.shape.Size() >= 0 && x.shape.Size() != shape.Size() {
		panic(fmt.Sprintf("graph: Reshape %s from %v to %v changes the element count", x.name, x.shape, shape))
	}
	if x.shape.Equal(shape) {
		return x
	}
	target := shape.Clone()
	for i, d := range target {
		if d == Dynamic {
			target[i] = -1
		}
	}
	return g.add1(simpleOp("Reshape"), []*Value{x, g.Ints(target...)}, x.dtype, shape)
}

type flattenOp struct{ axis int64 }

func (o flattenOp) OpType() string { return "Flatten" }
func (o flattenOp) Attributes() []*onnx.AttributeProto {
	return []*onnx.AttributeProto{attrInt("axis", o.axis)}
}

// Flatten2D turns [N, d1, d2, ...] into [N, d1*d2*...]; N may be Dynamic.
func (g *Graph) Flatten2D(x *Value) *Value {
	rest := Shape(x.shape[1:]).Size()
	return g.add1(flattenOp{axis: 1}, []*Value{x}, x.dtype, Shape{x.shape[0], rest})
}

type transposeOp struct{ perm []int64 }

func (o transposeOp) OpType() string { return "Transpose" }
func (o transposeOp) Attributes() []*onnx.AttributeProto {
	return []*onnx.AttributeProto{attrInts("perm", o.perm)}
}

// Transpose permutes the dimensions of x: output dimension i is input
// dimension perm[i].
func (g *Graph) Transpose(x *Value, perm ...int64) *Value {
	g.check(x)
	if len(perm) != x.Rank() {
		panic(fmt.Sprintf("graph: Transpose of rank-%d %s with perm %v", x.Rank(), x.name, perm))
	}
	shape := make(Shape, len(perm))
	for i, p := range perm {
		shape[i] = x.shape[p]
	}
	return g.add1(transposeOp{perm: append([]int64(nil), perm...)}, []*Value{x}, x.dtype, shape)
}

// Expand broadcasts x to shape.
func (g *Graph) Expand(x *Value, shape Shape) *Value {
	out := broadcastShape("Expand", x.shape, shape)
	if !out.Equal(shape) {
		panic(fmt.Sprintf("graph: Expand %v to %v", x.shape, shape))
	}
	if x.shape.Equal(shape) {
		return x
	}
	return g.add1(simpleOp("Expand"), []*Value{x, g.Ints(shape...)}, x.dtype, shape)
}

// Slice takes x[starts:ends:steps] along axes; negative steps reverse.
// Starts and ends follow ONNX semantics (clamped, negative counts from the end).
func (g *Graph) Slice(x *Value, starts, ends, axes, steps []int64) *Value {
	g.check(x)
	shape := x.shape.Clone()
	for i, ax := range axes {
		dim := x.shape[ax]
		st, en, sp := starts[i], ends[i], steps[i]
		if st < 0 {
			st += dim
		}
		if en < 0 && en > math.MinInt64/2 {
			en += dim
		}
		var n int64
		if sp > 0 {
			st, en = max(0, min(st, dim)), max(0, min(en, dim))
			if en > st {
				n = (en - st + sp - 1) / sp
			}
		} else {
			st, en = max(-1, min(st, dim-1)), max(-1, min(en, dim-1))
			if st > en {
				n = (st - en + (-sp) - 1) / (-sp)
			}
		}
		shape[ax] = n
	}
	return g.add1(simpleOp("Slice"), []*Value{x, g.Ints(starts...), g.Ints(ends...), g.Ints(axes...), g.Ints(steps...)}, x.dtype, shape)
}

type concatOp struct{ axis int64 }

func (o concatOp) OpType() string { return "Concat" }
func (o concatOp) Attributes() []*onnx.AttributeProto {
	return []*onnx.AttributeProto{attrInt("axis", o.axis)}
}

// Concat joins xs along axis.
func (g *Graph) Concat(axis int64, xs ...*Value) *Value {
	shape := xs[0].shape.Clone()
	shape[axis] = 0
	for _, x := range xs {
		g.check(x)
		for i := range shape {
			if int64(i) != axis && x.shape[i] != xs[0].shape[i] {
				panic(fmt.Sprintf("graph: Concat along %d of %v and %v", axis, xs[0].shape, x.shape))
			}
		}
		shape[axis] += x.shape[axis]
	}
	return g.add1(concatOp{axis: axis}, xs, xs[0].dtype, shape)
}

type splitOp struct{ axis int64 }

func (o splitOp) OpType() string { return "Split" }
func (o splitOp) Attributes() []*onnx.AttributeProto {
	return []*onnx.AttributeProto{attrInt("axis", o.axis)}
}

// Split cuts x along axis into pieces of the given sizes.
func (g *Graph) Split(x *Value, axis int64, sizes ...int64) []*Value {
	g.check(x)
	var total int64
	outs := make([]outSpec, len(sizes))
	for i, s := range sizes {
		total += s
		sh := x.shape.Clone()
		sh[axis] = s
		outs[i] = outSpec{x.dtype, sh}
	}
	if total != x.shape[axis] {
		panic(fmt.Sprintf("graph: Split of %v along %d into %v", x.shape, axis, sizes))
	}
	return g.addNode(splitOp{axis: axis}, []*Value{x, g.Ints(sizes...)}, outs)
}

type constantOfShapeOp struct{ value float32 }

func (o constantOfShapeOp) OpType() string { return "ConstantOfShape" }
func (o constantOfShapeOp) Attributes() []*onnx.AttributeProto {
	return []*onnx.AttributeProto{attrTensor("value", &onnx.TensorProto{Dims: []int64{1}, DataType: int32(Float), FloatData: []float32{o.value}})}
}

// Fill is a float tensor of the given shape filled with value, made at run
// time, so large zero tensors do not bloat the file.
func (g *Graph) Fill(shape Shape, value float32) *Value {
	return g.add1(constantOfShapeOp{value: value}, []*Value{g.Ints(shape...)}, Float, shape)
}

func init() {
	registerVJP("Reshape", func(g *Graph, n *Node, d []*Value) []*Value {
		return []*Value{g.Reshape(d[0], n.Inputs[0].shape), nil}
	})
	registerVJP("Flatten", func(g *Graph, n *Node, d []*Value) []*Value {
		return []*Value{g.Reshape(d[0], n.Inputs[0].shape)}
	})
	registerVJP("Transpose", func(g *Graph, n *Node, d []*Value) []*Value {
		perm := n.Op.(transposeOp).perm
		inv := make([]int64, len(perm))
		for i, p := range perm {
			inv[p] = int64(i)
		}
		return []*Value{g.Transpose(d[0], inv...)}
	})
	registerVJP("Concat", func(g *Graph, n *Node, d []*Value) []*Value {
		axis := n.Op.(concatOp).axis
		sizes := make([]int64, len(n.Inputs))
		for i, in := range n.Inputs {
			sizes[i] = in.shape[axis]
		}
		return g.Split(d[0], axis, sizes...)
	})
	registerVJP("Split", func(g *Graph, n *Node, d []*Value) []*Value {
		axis := n.Op.(splitOp).axis
		parts := make([]*Value, len(d))
		for i, di := range d {
			if di == nil {
				di = g.Fill(n.Outputs[i].shape, 0)
			}
			parts[i] = di
		}
		return []*Value{g.Concat(axis, parts...), nil}
	})
}
