package graph

import (
	"fmt"

	onnx "github.com/simclr-ort/simclr-ort/onnxpb"
)

type gemmOp struct {
	alpha          float32
	transA, transB bool
}

func (o gemmOp) OpType() string { return "Gemm" }
func (o gemmOp) Attributes() []*onnx.AttributeProto {
	return []*onnx.AttributeProto{attrFloat("alpha", o.alpha), attrInt("transA", b2i(o.transA)), attrInt("transB", b2i(o.transB))}
}

// Gemm is alpha * op(a) op(b) for 2-D a and b, where op transposes when asked.
// It is the linear layer: Gemm(x, w, 1, false, true) = x wᵀ for a PyTorch
// weight w of shape [out, in].
func (g *Graph) Gemm(a, b *Value, alpha float32, transA, transB bool) *Value {
	g.check(a, b)
	if a.Rank() != 2 || b.Rank() != 2 {
		panic(fmt.Sprintf("graph: Gemm of %v and %v needs 2-D operands", a.shape, b.shape))
	}
	m, k := a.shape[0], a.shape[1]
	if transA {
		m, k = k, m
	}
	k2, n := b.shape[0], b.shape[1]
	if transB {
		k2, n = n, k2
	}
	if k != k2 {
		panic(fmt.Sprintf("graph: Gemm(transA=%v, transB=%v) of %v and %v: inner dimensions %d and %d differ", transA, transB, a.shape, b.shape, k, k2))
	}
	return g.add1(gemmOp{alpha: alpha, transA: transA, transB: transB}, []*Value{a, b}, Float, Shape{m, n})
}

// MatMul is the 2-D matrix product a b.
func (g *Graph) MatMul(a, b *Value) *Value {
	g.check(a, b)
	if a.Rank() != 2 || b.Rank() != 2 || a.shape[1] != b.shape[0] {
		panic(fmt.Sprintf("graph: MatMul of %v and %v", a.shape, b.shape))
	}
	return g.add1(simpleOp("MatMul"), []*Value{a, b}, Float, Shape{a.shape[0], b.shape[1]})
}

type logSoftmaxOp struct{ axis int64 }

func (o logSoftmaxOp) OpType() string { return "LogSoftmax" }
func (o logSoftmaxOp) Attributes() []*onnx.AttributeProto {
	return []*onnx.AttributeProto{attrInt("axis", o.axis)}
}

// LogSoftmax is x - log(sum(exp(x))) along the last axis, computed stably.
func (g *Graph) LogSoftmax(x *Value) *Value {
	g.check(x)
	return g.add1(logSoftmaxOp{axis: int64(x.Rank() - 1)}, []*Value{x}, x.dtype, x.shape)
}

func init() {
	registerVJP("MatMul", func(g *Graph, n *Node, d []*Value) []*Value {
		a, b := n.Inputs[0], n.Inputs[1]
		return []*Value{
			lazy(a, func() *Value { return g.Gemm(d[0], b, 1, false, true) }),
			lazy(b, func() *Value { return g.Gemm(a, d[0], 1, true, false) }),
		}
	})
	registerVJP("Gemm", func(g *Graph, n *Node, d []*Value) []*Value {
		op := n.Op.(gemmOp)
		a, b, dy := n.Inputs[0], n.Inputs[1], d[0]
		var da, db func() *Value
		switch {
		case !op.transA && !op.transB: // y = a b
			da = func() *Value { return g.Gemm(dy, b, op.alpha, false, true) }
			db = func() *Value { return g.Gemm(a, dy, op.alpha, true, false) }
		case !op.transA && op.transB: // y = a bᵀ
			da = func() *Value { return g.Gemm(dy, b, op.alpha, false, false) }
			db = func() *Value { return g.Gemm(dy, a, op.alpha, true, false) }
		case op.transA && !op.transB: // y = aᵀ b
			da = func() *Value { return g.Gemm(b, dy, op.alpha, false, true) }
			db = func() *Value { return g.Gemm(a, dy, op.alpha, false, false) }
		default: // y = aᵀ bᵀ
			da = func() *Value { return g.Gemm(b, dy, op.alpha, true, true) }
			db = func() *Value { return g.Gemm(dy, a, op.alpha, true, true) }
		}
		return []*Value{lazy(a, da), lazy(b, db)}
	})
	registerVJP("LogSoftmax", func(g *Graph, n *Node, d []*Value) []*Value {
		// dx = d - softmax(x) * sum(d) along the axis; softmax = exp(y).
		y := n.Outputs[0]
		axis := n.Op.(logSoftmaxOp).axis
		total := g.ReduceSum(d[0], []int64{axis}, true)
		return []*Value{g.Sub(d[0], g.Mul(g.Exp(y), total))}
	})
}
