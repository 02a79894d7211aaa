package graph

import (
	"fmt"
	"slices"
)

// Partitioning splits one graph built as "forward, then backward" into two
// graphs that run one after the other: the later nodes read some values of
// the earlier ones, which the first graph then outputs and the second takes
// as inputs. Mark records where the later nodes start, Saved finds the
// values that must cross, and Extract copies the nodes that compute some
// outputs from some inputs into a graph of their own.

// Mark is a position in the build order: the nodes built after it are
// Nodes()[mark:].
func (g *Graph) Mark() int { return len(g.nodes) }

// Port is a value at a graph boundary and the name it has there.
type Port struct {
	Name  string
	Value *Value
}

// Saved returns the values that a graph of the nodes built since mark needs
// from the nodes built before it in order to compute outputs: the values
// that must cross from the first part to the second, in build order.
//
// Only float32 tensors that depend on a graph input cross. A value of
// another type (MaxPool's int64 indices) or one computed from constants
// alone (ConstantOfShape) is recomputed in the second part instead: its
// producer joins the second part and Saved returns what that producer reads.
// Extract, given the saved values and g's inputs as the second part's
// inputs, then copies exactly the nodes since mark that outputs need plus
// those recomputed producers.
func (g *Graph) Saved(mark int, outputs []*Value) []*Value {
	g.check(outputs...)
	if mark < 0 || mark > len(g.nodes) {
		panic(fmt.Sprintf("graph: Saved at mark %d of a graph of %d nodes", mark, len(g.nodes)))
	}
	index := make(map[*Node]int, len(g.nodes))
	for i, n := range g.nodes {
		index[n] = i
	}
	early := func(v *Value) bool { return v.producer != nil && index[v.producer] < mark }
	// Which values are computed from a graph input at all.
	variable := map[*Value]bool{}
	for _, in := range g.inputs {
		variable[in] = true
	}
	for _, n := range g.nodes {
		if slices.ContainsFunc(n.Inputs, func(v *Value) bool { return variable[v] }) {
			for _, out := range n.Outputs {
				variable[out] = true
			}
		}
	}
	// The later nodes the outputs need, walking back until the mark.
	needed := map[*Node]bool{}
	stack := append([]*Value(nil), outputs...)
	for len(stack) > 0 {
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if v.producer == nil || early(v) || needed[v.producer] {
			continue
		}
		needed[v.producer] = true
		stack = append(stack, v.producer.Inputs...)
	}
	crossing := map[*Value]bool{}
	for _, v := range outputs {
		if early(v) {
			crossing[v] = true
		}
	}
	for n := range needed {
		for _, in := range n.Inputs {
			if early(in) {
				crossing[in] = true
			}
		}
	}
	// Recompute, latest first, the producers of values that may not cross;
	// their inputs cross (or are recomputed) in turn, and their outputs are
	// then computed in the second part.
	for i := mark - 1; i >= 0; i-- {
		n := g.nodes[i]
		recompute := false
		for _, out := range n.Outputs {
			if crossing[out] && (out.dtype != Float || !variable[out]) {
				recompute = true
			}
		}
		if !recompute {
			continue
		}
		for _, out := range n.Outputs {
			delete(crossing, out)
		}
		for _, in := range n.Inputs {
			if early(in) {
				crossing[in] = true
			}
		}
	}
	var saved []*Value
	for _, n := range g.nodes[:mark] {
		for _, out := range n.Outputs {
			if crossing[out] {
				saved = append(saved, out)
			}
		}
	}
	return saved
}

// Extract returns a new graph, named name, of the nodes of g that compute
// outputs from inputs. Each input port's value becomes a graph input of
// that name (it need not be a graph input of g: any value cuts the graph
// there), each output port's value a graph output of that name; every other
// value, node and constant keeps its name, so the parts of a partitioned
// graph read like the whole. Inputs are declared in the order given, used
// or not. It panics, naming the value, when an output needs a graph input
// of g that inputs does not supply.
func (g *Graph) Extract(name string, inputs, outputs []Port) *Graph {
	out := New(name)
	for k, v := range g.counters {
		out.counters[k] = v
	}
	out.ConvGradPlanner = g.ConvGradPlanner
	mapped := map[*Value]*Value{}
	for _, p := range inputs {
		g.check(p.Value)
		if mapped[p.Value] != nil {
			panic(fmt.Sprintf("graph: Extract %q: value %s given as two inputs", name, p.Value.name))
		}
		mapped[p.Value] = out.Input(p.Name, p.Value.dtype, p.Value.shape)
	}
	// The nodes needed, walking back from the outputs to the inputs.
	needed := map[*Node]bool{}
	usedConsts := map[*Value]bool{}
	var stack []*Value
	for _, p := range outputs {
		g.check(p.Value)
		stack = append(stack, p.Value)
	}
	for len(stack) > 0 {
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		switch {
		case mapped[v] != nil:
		case v.constant != nil:
			usedConsts[v] = true
		case v.producer == nil:
			panic(fmt.Sprintf("graph: Extract %q needs %s, a graph input of %q that is not among the inputs given", name, v.name, g.name))
		case !needed[v.producer]:
			needed[v.producer] = true
			stack = append(stack, v.producer.Inputs...)
		}
	}
	keys := make(map[*Value]string, len(g.constKeys))
	for k, c := range g.constKeys {
		keys[c] = k
	}
	for _, c := range g.consts {
		if !usedConsts[c] {
			continue
		}
		nc := &Value{g: out, name: out.claim(c.name), shape: c.shape.Clone(), dtype: c.dtype, constant: c.constant}
		out.constKeys[keys[c]] = nc
		out.consts = append(out.consts, nc)
		mapped[c] = nc
	}
	for _, n := range g.nodes {
		if !needed[n] {
			continue
		}
		nn := &Node{Op: n.Op, name: out.claim(n.name)}
		for _, in := range n.Inputs {
			nn.Inputs = append(nn.Inputs, mapped[in])
		}
		for _, o := range n.Outputs {
			if mapped[o] != nil {
				// An input port cuts here; this output of a recomputed
				// node is not used.
				panic(fmt.Sprintf("graph: Extract %q: %s is an input but its producer %s is needed too; cut before the producer", name, o.name, n.name))
			}
			no := &Value{g: out, name: out.claim(o.name), shape: o.shape.Clone(), dtype: o.dtype, producer: nn}
			nn.Outputs = append(nn.Outputs, no)
			mapped[o] = no
		}
		out.nodes = append(out.nodes, nn)
	}
	for _, p := range outputs {
		out.Output(p.Name, mapped[p.Value])
	}
	return out
}
