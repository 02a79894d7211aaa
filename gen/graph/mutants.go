package graph

import (
	"fmt"
	"math"
	"sort"
)

// A mutant is a deliberately wrong gradient rule. Mutants exist only to
// show that the PyTorch parity gate (tools/parity -mutants) catches wrong
// rules: a gate that passes a mutant cannot be trusted to pass a right
// rule for the right reason. Nothing but that check sets one.
//
// Each mutant wraps or replaces the rule of one op type; the graph's other
// rules stay correct.
type mutant struct {
	opType      string
	description string
	// rule builds the wrong gradient; right is the op's correct rule.
	rule func(g *Graph, n *Node, d []*Value, right VJP) []*Value
}

var mutants = map[string]mutant{
	"bn-without-mean-dy": {
		opType:      "BatchNormalization",
		description: "training BatchNorm's input gradient without its -a·mean(dy) term",
		rule: func(g *Graph, n *Node, d []*Value, right VJP) []*Value {
			out := right(g, n, d)
			op := n.Op.(batchNormOp)
			if !op.training || out[0] == nil {
				return out
			}
			// The right dx holds -a·dBias/M per channel; add it back.
			x, scale, variance := n.Inputs[0], n.Inputs[1], n.Outputs[2]
			c := x.shape[1]
			count := x.shape.Size() / c
			invStd := g.Reciprocal(g.Sqrt(g.Add(variance, g.Scalar(op.epsilon))))
			meanDy := g.Mul(out[2], g.Scalar(1/float32(count)))
			term := g.Reshape(g.Mul(g.Mul(scale, invStd), meanDy), channelShape(x.Rank(), c))
			out[0] = g.Add(out[0], term)
			return out
		},
	},
	"conv-weight-grad-flipped": {
		opType:      "Conv",
		description: "every k×k convolution's weight gradient with the kernel flipped in space",
		rule: func(g *Graph, n *Node, d []*Value, right VJP) []*Value {
			out := right(g, n, d)
			if w := n.Inputs[1]; out[1] != nil && w.Rank() == 4 && w.shape[2] > 1 {
				out[1] = g.Slice(out[1], []int64{-1, -1}, []int64{math.MinInt64, math.MinInt64}, []int64{2, 3}, []int64{-1, -1})
			}
			return out
		},
	},
	"avgpool-grad-scaled": {
		opType:      "GlobalAveragePool",
		description: "the global average pool's gradient scaled by 1.01",
		rule: func(g *Graph, n *Node, d []*Value, right VJP) []*Value {
			out := right(g, n, d)
			out[0] = g.Mul(out[0], g.Scalar(1.01))
			return out
		},
	},
	"maxpool-grad-first-element": {
		opType:      "MaxPool",
		description: "MaxPool's gradient routed to the first element of each window instead of its maximum",
		rule: func(g *Graph, n *Node, d []*Value, right VJP) []*Value {
			op := n.Op.(maxPoolOp)
			x, y := n.Inputs[0], n.Outputs[0]
			batch, channels, h, w := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
			oh, ow := y.shape[2], y.shape[3]
			first := make([]int64, 0, y.shape.Size())
			for p := int64(0); p < batch*channels; p++ {
				for i := int64(0); i < oh; i++ {
					for j := int64(0); j < ow; j++ {
						r := max(i*op.strides[0]-op.pads[0], 0)
						c := max(j*op.strides[1]-op.pads[1], 0)
						first = append(first, p*h*w+r*w+c)
					}
				}
			}
			flat := g.add1(scatterAddOp{}, []*Value{
				g.Fill(Shape{x.shape.Size()}, 0),
				g.ConstInt64(Shape{int64(len(first))}, first),
				g.Reshape(d[0], Shape{d[0].shape.Size()}),
			}, Float, Shape{x.shape.Size()})
			return []*Value{g.Reshape(flat, x.shape)}
		},
	},
}

// Mutants lists the graph-level mutant names with what each gets wrong.
func Mutants() map[string]string {
	out := map[string]string{}
	for name, m := range mutants {
		out[name] = m.description
	}
	return out
}

// MutantNames lists the graph-level mutants, sorted.
func MutantNames() []string {
	var names []string
	for name := range mutants {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Mutate makes Gradients use the named wrong rule (see Mutants) for its op
// type. It is the parity gate's sensitivity hook and nothing else.
func (g *Graph) Mutate(name string) error {
	m, ok := mutants[name]
	if !ok {
		return fmt.Errorf("graph: unknown mutant %q (known: %v)", name, MutantNames())
	}
	g.mutant = &m
	return nil
}

// rule is the gradient rule Gradients applies to an op type: the table's,
// or the mutant's where one is set for it.
func (g *Graph) rule(opType string) (VJP, bool) {
	right, ok := vjps[opType]
	if !ok || g.mutant == nil || g.mutant.opType != opType {
		return right, ok
	}
	m := g.mutant
	return func(g *Graph, n *Node, d []*Value) []*Value { return m.rule(g, n, d, right) }, true
}
