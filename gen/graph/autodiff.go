package graph

import (
	"fmt"
	"sort"
	"strings"

	onnx "github.com/simclr-ort/simclr-ort/onnxpb"
)

// VJP is an op's vector-Jacobian product: given the node and the gradient
// of the loss with respect to each of its outputs (nil where an output gets
// none), it builds the gradient with respect to each input, one per input,
// nil where an input needs none (integer inputs, constants).
type VJP func(g *Graph, n *Node, dOutputs []*Value) []*Value

// vjps is the one table of gradient rules, keyed by ONNX op type. Each
// ops_*.go file registers the rules of the ops it defines.
var vjps = map[string]VJP{}

func registerVJP(opType string, rule VJP) {
	if _, dup := vjps[opType]; dup {
		panic("graph: second VJP registered for " + opType)
	}
	vjps[opType] = rule
}

// HasVJP reports whether the op type has a gradient rule.
func HasVJP(opType string) bool { _, ok := vjps[opType]; return ok }

// VJPOpTypes lists the op types that have gradient rules, sorted.
func VJPOpTypes() []string {
	var ts []string
	for t := range vjps {
		ts = append(ts, t)
	}
	sort.Strings(ts)
	return ts
}

// Gradients builds, in the same graph, the gradient of loss (a one-element
// tensor) with respect to each value of wrt, by reverse-mode accumulation
// over the nodes between them. Gradients of values with several consumers
// are summed. It panics if a node on the path has no rule, if a rule returns
// the wrong number or shape of gradients, or if a value of wrt does not
// affect the loss.
func (g *Graph) Gradients(loss *Value, wrt []*Value) []*Value {
	g.check(loss)
	g.check(wrt...)
	if loss.shape.Size() != 1 {
		panic(fmt.Sprintf("graph: Gradients needs a one-element loss, got %s of shape %v", loss.name, loss.shape))
	}
	requires := g.dependents(wrt)
	if !requires[loss] {
		panic(fmt.Sprintf("graph: loss %s does not depend on any value asked for", loss.name))
	}
	seed := make([]float32, loss.shape.Size())
	for i := range seed {
		seed[i] = 1
	}
	return g.backprop(requires, map[*Value][]*Value{loss: {g.ConstFloat(loss.shape, seed)}}, wrt, "loss "+loss.name)
}

// GradientsFrom builds the vector-Jacobian product of the values ys with
// given upstream gradients dys (dys[i] = ∂L/∂ys[i] for some scalar L built
// elsewhere, e.g. a graph input fed at run time): the gradient of
// L = Σᵢ ⟨dysᵢ, ysᵢ⟩ with respect to each value of wrt. Each dys[i] must
// have the shape and type of ys[i]; a y that is an ancestor of another y
// gets its own seed plus what flows back from the other. It shares the
// driver of Gradients, so Gradients(loss, wrt) is GradientsFrom with a seed
// of ones, and it panics on the same mistakes.
func (g *Graph) GradientsFrom(ys, dys, wrt []*Value) []*Value {
	g.check(ys...)
	g.check(dys...)
	g.check(wrt...)
	if len(ys) == 0 || len(ys) != len(dys) {
		panic(fmt.Sprintf("graph: GradientsFrom needs one upstream gradient per value, got %d values and %d gradients", len(ys), len(dys)))
	}
	requires := g.dependents(wrt)
	seeds := map[*Value][]*Value{}
	var names []string
	anyRequired := false
	for i, y := range ys {
		dy := dys[i]
		if !dy.shape.Equal(y.shape) || dy.dtype != y.dtype {
			panic(fmt.Sprintf("graph: GradientsFrom: upstream gradient %s %v %v does not match %s %v %v",
				dy.name, dy.dtype, dy.shape, y.name, y.dtype, y.shape))
		}
		if requires[dy] {
			panic(fmt.Sprintf("graph: GradientsFrom: upstream gradient %s depends on a value asked for; it must be a constant of the differentiation", dy.name))
		}
		seeds[y] = append(seeds[y], dy)
		names = append(names, y.name)
		anyRequired = anyRequired || requires[y]
	}
	if !anyRequired {
		panic(fmt.Sprintf("graph: none of %v depends on any value asked for", names))
	}
	return g.backprop(requires, seeds, wrt, strings.Join(names, ", "))
}

// dependents returns the values that depend on some value of wrt through
// float nodes, not counting paths through StopGradient values.
func (g *Graph) dependents(wrt []*Value) map[*Value]bool {
	requires := map[*Value]bool{}
	for _, w := range wrt {
		requires[w] = true
	}
	for _, n := range g.nodes {
		for _, in := range n.Inputs {
			if requires[in] && !g.stopGradient[in] {
				for _, out := range n.Outputs {
					if out.dtype == Float || out.dtype == Double {
						requires[out] = true
					}
				}
				break
			}
		}
	}
	return requires
}

// backprop is the reverse-mode driver: starting from the seed gradients, it
// walks the nodes backwards, calls each rule, checks what it returns and
// sums the contributions of values with several consumers. what names the
// differentiated values in panics.
func (g *Graph) backprop(requires map[*Value]bool, seeds map[*Value][]*Value, wrt []*Value, what string) []*Value {
	g.requires = requires
	defer func() { g.requires = nil }()
	contributions := map[*Value][]*Value{}
	for v, ds := range seeds {
		contributions[v] = append([]*Value(nil), ds...)
	}

	g.PushScope("grad")
	defer g.PopScope()
	// Nodes are in build order, so walking them backwards visits every
	// consumer before the producer of its inputs.
	nodes := append([]*Node(nil), g.nodes...)
	for i := len(nodes) - 1; i >= 0; i-- {
		n := nodes[i]
		dOuts := make([]*Value, len(n.Outputs))
		any := false
		for j, out := range n.Outputs {
			if cs := contributions[out]; len(cs) > 0 {
				dOuts[j] = g.sumContributions(cs)
				any = true
			}
		}
		if !any {
			continue
		}
		needs := false
		for _, in := range n.Inputs {
			if requires[in] && !g.stopGradient[in] {
				needs = true
			}
		}
		if !needs {
			continue
		}
		rule, ok := g.rule(n.Op.OpType())
		if !ok {
			panic(fmt.Sprintf("graph: no gradient rule (VJP) for op %s (node %s); add one beside the op", n.Op.OpType(), n.name))
		}
		var dIns []*Value
		g.WithScope(n.name, func() { dIns = rule(g, n, dOuts) })
		if len(dIns) != len(n.Inputs) {
			panic(fmt.Sprintf("graph: VJP of %s returned %d gradients for %d inputs (node %s)", n.Op.OpType(), len(dIns), len(n.Inputs), n.name))
		}
		for j, in := range n.Inputs {
			d := dIns[j]
			if d == nil || !requires[in] || g.stopGradient[in] {
				continue
			}
			if !d.shape.Equal(in.shape) || d.dtype != in.dtype {
				panic(fmt.Sprintf("graph: VJP of %s gave gradient %v %v for input %d %s of shape %v %v (node %s)",
					n.Op.OpType(), d.dtype, d.shape, j, in.name, in.dtype, in.shape, n.name))
			}
			contributions[in] = append(contributions[in], d)
		}
	}
	grads := make([]*Value, len(wrt))
	for i, w := range wrt {
		cs := contributions[w]
		if len(cs) == 0 {
			panic(fmt.Sprintf("graph: %s does not depend on %s", what, w.name))
		}
		grads[i] = g.sumContributions(cs)
	}
	return grads
}

// needsGrad reports, while Gradients runs, whether v needs a gradient.
func (g *Graph) needsGrad(v *Value) bool { return g.requires[v] && !g.stopGradient[v] }

func (g *Graph) sumContributions(cs []*Value) *Value {
	if len(cs) == 1 {
		return cs[0]
	}
	return g.add1(sumOp{}, cs, cs[0].dtype, cs[0].shape)
}

// sumOp is ONNX Sum over inputs of one shape; it only appears in gradients.
type sumOp struct{}

func (sumOp) OpType() string                     { return "Sum" }
func (sumOp) Attributes() []*onnx.AttributeProto { return nil }

// Sum adds tensors of identical shape.
func (g *Graph) Sum(xs ...*Value) *Value {
	for _, x := range xs[1:] {
		if !x.shape.Equal(xs[0].shape) {
			panic(fmt.Sprintf("graph: Sum of shapes %v and %v", xs[0].shape, x.shape))
		}
	}
	return g.add1(sumOp{}, xs, xs[0].dtype, xs[0].shape)
}

func init() {
	registerVJP("Sum", func(g *Graph, n *Node, d []*Value) []*Value {
		out := make([]*Value, len(n.Inputs))
		for i := range out {
			out[i] = d[0]
		}
		return out
	})
}
