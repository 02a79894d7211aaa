package graph

import (
	"fmt"

	onnx "github.com/simclr-ort/simclr-ort/onnxpb"
)

// simpleOp is an op without attributes.
type simpleOp string

func (o simpleOp) OpType() string                     { return string(o) }
func (o simpleOp) Attributes() []*onnx.AttributeProto { return nil }

type identityOp struct{}

func (identityOp) OpType() string                     { return "Identity" }
func (identityOp) Attributes() []*onnx.AttributeProto { return nil }

// Identity passes x through under a new name.
func (g *Graph) Identity(x *Value) *Value { return g.add1(identityOp{}, []*Value{x}, x.dtype, x.shape) }

// broadcastShape is numpy-style broadcasting of two static shapes.
func broadcastShape(op string, a, b Shape) Shape {
	n := max(len(a), len(b))
	out := make(Shape, n)
	for i := 0; i < n; i++ {
		da, db := int64(1), int64(1)
		if j := i - (n - len(a)); j >= 0 {
			da = a[j]
		}
		if j := i - (n - len(b)); j >= 0 {
			db = b[j]
		}
		switch {
		case da == db:
			out[i] = da
		case da == 1:
			out[i] = db
		case db == 1:
			out[i] = da
		default:
			panic(fmt.Sprintf("graph: %s cannot broadcast shapes %v and %v; reshape one operand so each dimension matches or is 1", op, a, b))
		}
	}
	return out
}

func (g *Graph) binary(op string, a, b *Value) *Value {
	g.check(a, b)
	if a.dtype != b.dtype {
		panic(fmt.Sprintf("graph: %s of %v and %v; cast one operand", op, a.dtype, b.dtype))
	}
	return g.add1(simpleOp(op), []*Value{a, b}, a.dtype, broadcastShape(op, a.shape, b.shape))
}

func (g *Graph) unary(op string, x *Value) *Value {
	g.check(x)
	return g.add1(simpleOp(op), []*Value{x}, x.dtype, x.shape)
}

// Add is a + b with broadcasting.
func (g *Graph) Add(a, b *Value) *Value { return g.binary("Add", a, b) }

// Sub is a - b with broadcasting.
func (g *Graph) Sub(a, b *Value) *Value { return g.binary("Sub", a, b) }

// Mul is a * b with broadcasting.
func (g *Graph) Mul(a, b *Value) *Value { return g.binary("Mul", a, b) }

// Div is a / b with broadcasting.
func (g *Graph) Div(a, b *Value) *Value { return g.binary("Div", a, b) }

// Neg is -x.
func (g *Graph) Neg(x *Value) *Value { return g.unary("Neg", x) }

// Relu is max(x, 0).
func (g *Graph) Relu(x *Value) *Value { return g.unary("Relu", x) }

// Sqrt is the element-wise square root.
func (g *Graph) Sqrt(x *Value) *Value { return g.unary("Sqrt", x) }

// Reciprocal is 1/x.
func (g *Graph) Reciprocal(x *Value) *Value { return g.unary("Reciprocal", x) }

// Exp is e^x.
func (g *Graph) Exp(x *Value) *Value { return g.unary("Exp", x) }

// Log is the natural logarithm.
func (g *Graph) Log(x *Value) *Value { return g.unary("Log", x) }

type castOp struct{ to DType }

func (o castOp) OpType() string { return "Cast" }
func (o castOp) Attributes() []*onnx.AttributeProto {
	return []*onnx.AttributeProto{attrInt("to", int64(o.to))}
}

// Cast converts x to another element type; between float types the
// gradient is cast back.
func (g *Graph) Cast(x *Value, to DType) *Value {
	g.check(x)
	return g.add1(castOp{to: to}, []*Value{x}, to, x.shape)
}

// Greater is a > b (boolean), with broadcasting; it has no gradient.
func (g *Graph) Greater(a, b *Value) *Value {
	v := g.binary("Greater", a, b)
	v.dtype = Bool
	return v
}

// Equal is a == b (boolean), with broadcasting; it has no gradient.
func (g *Graph) Equal(a, b *Value) *Value {
	v := g.binary("Equal", a, b)
	v.dtype = Bool
	return v
}

// Where selects x where cond is true and y elsewhere, with broadcasting.
func (g *Graph) Where(cond, x, y *Value) *Value {
	g.check(cond, x, y)
	if cond.dtype != Bool || x.dtype != y.dtype {
		panic(fmt.Sprintf("graph: Where(%v, %v, %v) needs a bool condition and equal branch types", cond.dtype, x.dtype, y.dtype))
	}
	shape := broadcastShape("Where", broadcastShape("Where", cond.shape, x.shape), y.shape)
	return g.add1(simpleOp("Where"), []*Value{cond, x, y}, x.dtype, shape)
}

// sumTo reduces a broadcast gradient d back to shape, the inverse of
// broadcasting an operand of that shape.
func (g *Graph) sumTo(d *Value, shape Shape) *Value {
	if d.shape.Equal(shape) {
		return d
	}
	lead := len(d.shape) - len(shape)
	var axes []int64
	for i := range d.shape {
		if i < lead || (shape[i-lead] == 1 && d.shape[i] != 1) {
			axes = append(axes, int64(i))
		}
	}
	r := d
	if len(axes) > 0 {
		r = g.ReduceSum(d, axes, true)
	}
	return g.Reshape(r, shape)
}

func init() {
	registerVJP("Identity", func(g *Graph, n *Node, d []*Value) []*Value { return d })
	registerVJP("Add", func(g *Graph, n *Node, d []*Value) []*Value {
		a, b := n.Inputs[0], n.Inputs[1]
		return []*Value{g.sumTo(d[0], a.shape), g.sumTo(d[0], b.shape)}
	})
	registerVJP("Sub", func(g *Graph, n *Node, d []*Value) []*Value {
		a, b := n.Inputs[0], n.Inputs[1]
		return []*Value{g.sumTo(d[0], a.shape), g.sumTo(g.Neg(d[0]), b.shape)}
	})
	registerVJP("Mul", func(g *Graph, n *Node, d []*Value) []*Value {
		a, b := n.Inputs[0], n.Inputs[1]
		return []*Value{lazy(a, func() *Value { return g.sumTo(g.Mul(d[0], b), a.shape) }),
			lazy(b, func() *Value { return g.sumTo(g.Mul(d[0], a), b.shape) })}
	})
	registerVJP("Div", func(g *Graph, n *Node, d []*Value) []*Value {
		a, b, y := n.Inputs[0], n.Inputs[1], n.Outputs[0]
		// y = a/b: da = d/b, db = -d*y/b.
		return []*Value{lazy(a, func() *Value { return g.sumTo(g.Div(d[0], b), a.shape) }),
			lazy(b, func() *Value { return g.sumTo(g.Neg(g.Div(g.Mul(d[0], y), b)), b.shape) })}
	})
	registerVJP("Neg", func(g *Graph, n *Node, d []*Value) []*Value { return []*Value{g.Neg(d[0])} })
	registerVJP("Relu", func(g *Graph, n *Node, d []*Value) []*Value {
		// The mask y > 0 is PyTorch's: the gradient at 0 is 0.
		y := n.Outputs[0]
		return []*Value{g.Where(g.Greater(y, g.Scalar(0)), d[0], g.Scalar(0))}
	})
	registerVJP("Sqrt", func(g *Graph, n *Node, d []*Value) []*Value {
		// y = sqrt(x): dx = d / (2y).
		return []*Value{g.Div(g.Mul(d[0], g.Scalar(0.5)), n.Outputs[0])}
	})
	registerVJP("Reciprocal", func(g *Graph, n *Node, d []*Value) []*Value {
		// y = 1/x: dx = -d * y^2.
		y := n.Outputs[0]
		return []*Value{g.Neg(g.Mul(d[0], g.Mul(y, y)))}
	})
	registerVJP("Exp", func(g *Graph, n *Node, d []*Value) []*Value { return []*Value{g.Mul(d[0], n.Outputs[0])} })
	registerVJP("Cast", func(g *Graph, n *Node, d []*Value) []*Value {
		return []*Value{g.Cast(d[0], n.Inputs[0].dtype)}
	})
	registerVJP("Log", func(g *Graph, n *Node, d []*Value) []*Value { return []*Value{g.Div(d[0], n.Inputs[0])} })
}

// lazy builds a gradient only for an input that needs one (one that depends
// on a value Gradients was asked for), so no dead gradient ops are emitted.
func lazy(in *Value, build func() *Value) *Value {
	if !in.g.needsGrad(in) {
		return nil
	}
	return build()
}
