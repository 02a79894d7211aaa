package graph_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/simclr-ort/simclr-ort/gen/graph"
	"github.com/simclr-ort/simclr-ort/internal/gradcheck"
)

// Named tolerances of the finite-difference checks: relative L2 error of the
// analytic gradient against central differences (loss accumulated in float64,
// ops in float32).
const (
	// tolLinear is for ops linear in each input, where differences are exact
	// up to float32 rounding of the op's output.
	tolLinear = 1e-4
	// tolSmooth is for smooth nonlinear ops, where the O(ε²) truncation
	// error adds to rounding.
	tolSmooth = 1e-3
	// tolNormalised is for BatchNorm and L2 normalisation, whose outputs
	// divide by batch statistics.
	tolNormalised = 2e-3
)

type unary func(g *graph.Graph, x *graph.Value) *graph.Value

func one(f func(g *graph.Graph, in []*graph.Value) *graph.Value) func(*graph.Graph, []*graph.Value) []*graph.Value {
	return func(g *graph.Graph, in []*graph.Value) []*graph.Value { return []*graph.Value{f(g, in)} }
}

func in(name string, shape ...int64) gradcheck.Input {
	return gradcheck.Input{Name: name, Shape: graph.Shape(shape)}
}

func conv(x, w graph.Shape, stride, pad int64, plan graph.ConvGradPlan) gradcheck.Case {
	name := fmt.Sprintf("Conv x%v w%v s%d p%d %s/%s", x, w, stride, pad, plan.Input, plan.Weight)
	if plan.NoSlice {
		name += " no-slice"
	}
	return gradcheck.Case{
		Name:   name,
		Inputs: []gradcheck.Input{{Name: "x", Shape: x}, {Name: "w", Shape: w}},
		Build: one(func(g *graph.Graph, in []*graph.Value) *graph.Value {
			g.ConvGradPlanner = func(graph.ConvShape) graph.ConvGradPlan { return plan }
			return g.Conv(in[0], in[1], graph.ConvAttrs{Strides: []int64{stride, stride}, Pads: []int64{pad, pad, pad, pad}})
		}),
		Epsilon: 0.1, Tolerance: tolLinear, MaxElements: 60,
	}
}

func vjpCases() []gradcheck.Case {
	pos := gradcheck.Uniform(0.5, 2)
	flipConvT := graph.ConvGradPlan{Input: graph.InputGradFlippedConv, Weight: graph.WeightGradTransposedConv}
	transposeUnfold := graph.ConvGradPlan{Input: graph.InputGradConvTranspose, Weight: graph.WeightGradUnfold}
	flipUnfold := graph.ConvGradPlan{Input: graph.InputGradFlippedConv, Weight: graph.WeightGradUnfold}
	transposeT := graph.ConvGradPlan{Input: graph.InputGradConvTranspose, Weight: graph.WeightGradTransposedConv}
	elementwise := func(name string, f unary, init func(*rand.Rand, []float32), tol float64, eps float32) gradcheck.Case {
		return gradcheck.Case{Name: name, Inputs: []gradcheck.Input{{Name: "x", Shape: graph.Shape{3, 4}, Init: init}},
			Build: one(func(g *graph.Graph, in []*graph.Value) *graph.Value { return f(g, in[0]) }), Epsilon: eps, Tolerance: tol}
	}
	binary := func(name string, f func(g *graph.Graph, a, b *graph.Value) *graph.Value, a, b graph.Shape, initB func(*rand.Rand, []float32), tol float64) gradcheck.Case {
		return gradcheck.Case{Name: fmt.Sprintf("%s %v %v", name, a, b),
			Inputs:  []gradcheck.Input{{Name: "a", Shape: a}, {Name: "b", Shape: b, Init: initB}},
			Build:   one(func(g *graph.Graph, in []*graph.Value) *graph.Value { return f(g, in[0], in[1]) }),
			Epsilon: 1e-2, Tolerance: tol}
	}
	cases := []gradcheck.Case{
		elementwise("Identity", (*graph.Graph).Identity, nil, tolLinear, 0.1),
		elementwise("Neg", (*graph.Graph).Neg, nil, tolLinear, 0.1),
		elementwise("Relu", (*graph.Graph).Relu, gradcheck.Distinct(2), tolLinear, 1e-2),
		elementwise("Sqrt", (*graph.Graph).Sqrt, pos, tolSmooth, 1e-2),
		elementwise("Reciprocal", (*graph.Graph).Reciprocal, pos, tolSmooth, 1e-2),
		elementwise("Cast", func(g *graph.Graph, x *graph.Value) *graph.Value {
			return g.Cast(g.Mul(g.Cast(x, graph.Double), g.Cast(x, graph.Double)), graph.Float)
		}, nil, tolSmooth, 1e-2),
		elementwise("Exp", (*graph.Graph).Exp, nil, tolSmooth, 1e-2),
		elementwise("Log", (*graph.Graph).Log, pos, tolSmooth, 1e-2),
		binary("Add", (*graph.Graph).Add, graph.Shape{2, 3, 4}, graph.Shape{2, 3, 4}, nil, tolLinear),
		binary("Add", (*graph.Graph).Add, graph.Shape{2, 3, 4}, graph.Shape{3, 1}, nil, tolLinear),
		binary("Sub", (*graph.Graph).Sub, graph.Shape{2, 3, 4}, graph.Shape{1, 3, 1}, nil, tolLinear),
		binary("Mul", (*graph.Graph).Mul, graph.Shape{2, 3, 4}, graph.Shape{2, 3, 4}, nil, tolSmooth),
		binary("Mul", (*graph.Graph).Mul, graph.Shape{2, 3, 4}, graph.Shape{4}, nil, tolSmooth),
		binary("Div", (*graph.Graph).Div, graph.Shape{2, 3, 4}, graph.Shape{2, 3, 1}, pos, tolSmooth),
		{Name: "Sum", Inputs: []gradcheck.Input{in("a", 2, 3), in("b", 2, 3), in("c", 2, 3)},
			Build:   one(func(g *graph.Graph, in []*graph.Value) *graph.Value { return g.Sum(in...) }),
			Epsilon: 0.1, Tolerance: tolLinear},
		{Name: "Reshape", Inputs: []gradcheck.Input{in("x", 2, 3, 4)},
			Build:   one(func(g *graph.Graph, in []*graph.Value) *graph.Value { return g.Reshape(in[0], graph.Shape{4, 6}) }),
			Epsilon: 0.1, Tolerance: tolLinear},
		{Name: "Flatten", Inputs: []gradcheck.Input{in("x", 2, 3, 2, 2)},
			Build:   one(func(g *graph.Graph, in []*graph.Value) *graph.Value { return g.Flatten2D(in[0]) }),
			Epsilon: 0.1, Tolerance: tolLinear},
		{Name: "Transpose", Inputs: []gradcheck.Input{in("x", 2, 3, 4)},
			Build:   one(func(g *graph.Graph, in []*graph.Value) *graph.Value { return g.Transpose(in[0], 2, 0, 1) }),
			Epsilon: 0.1, Tolerance: tolLinear},
		{Name: "Concat", Inputs: []gradcheck.Input{in("a", 2, 3), in("b", 1, 3)},
			Build:   one(func(g *graph.Graph, in []*graph.Value) *graph.Value { return g.Concat(0, in[0], in[1]) }),
			Epsilon: 0.1, Tolerance: tolLinear},
		{Name: "Split", Inputs: []gradcheck.Input{in("x", 5, 3)},
			Build: func(g *graph.Graph, in []*graph.Value) []*graph.Value {
				parts := g.Split(in[0], 0, 2, 3)
				return []*graph.Value{g.Exp(parts[1])} // the first part gets no gradient
			},
			Epsilon: 1e-2, Tolerance: tolSmooth},
		{Name: "ReduceSum", Inputs: []gradcheck.Input{in("x", 2, 3, 4)},
			Build: func(g *graph.Graph, in []*graph.Value) []*graph.Value {
				return []*graph.Value{g.ReduceSum(in[0], []int64{0, 2}, true), g.ReduceSum(in[0], []int64{1}, false)}
			},
			Epsilon: 0.1, Tolerance: tolLinear},
		{Name: "ReduceMean", Inputs: []gradcheck.Input{in("x", 2, 3, 4)},
			Build: func(g *graph.Graph, in []*graph.Value) []*graph.Value {
				return []*graph.Value{g.ReduceMean(in[0], []int64{0, 2}, true), g.ReduceMean(in[0], []int64{1}, false)}
			},
			Epsilon: 0.1, Tolerance: tolLinear},
		{Name: "GlobalAveragePool", Inputs: []gradcheck.Input{in("x", 2, 3, 3, 2)},
			Build:   one(func(g *graph.Graph, in []*graph.Value) *graph.Value { return g.GlobalAveragePool(in[0]) }),
			Epsilon: 0.1, Tolerance: tolLinear},
		{Name: "MatMul", Inputs: []gradcheck.Input{in("a", 3, 4), in("b", 4, 5)},
			Build:   one(func(g *graph.Graph, in []*graph.Value) *graph.Value { return g.MatMul(in[0], in[1]) }),
			Epsilon: 0.1, Tolerance: tolSmooth},
		{Name: "LogSoftmax", Inputs: []gradcheck.Input{in("x", 3, 5)},
			Build:   one(func(g *graph.Graph, in []*graph.Value) *graph.Value { return g.LogSoftmax(in[0]) }),
			Epsilon: 1e-2, Tolerance: tolSmooth},
		{Name: "MaxPool k3 s2 p1", Inputs: []gradcheck.Input{{Name: "x", Shape: graph.Shape{2, 3, 7, 6}, Init: gradcheck.Distinct(3)}},
			Build:   one(func(g *graph.Graph, in []*graph.Value) *graph.Value { return g.MaxPool(in[0], 3, 2, 1, true) }),
			Epsilon: 1e-3, Tolerance: tolLinear},
		{Name: "MaxPool k3 s2 p1 by mask", Inputs: []gradcheck.Input{{Name: "x", Shape: graph.Shape{2, 3, 7, 6}, Init: gradcheck.Distinct(3)}},
			Build:   one(func(g *graph.Graph, in []*graph.Value) *graph.Value { return g.MaxPool(in[0], 3, 2, 1, false) }),
			Epsilon: 1e-3, Tolerance: tolLinear},
		{Name: "MaxPool k3 s2 p1 by mask, even size", Inputs: []gradcheck.Input{{Name: "x", Shape: graph.Shape{1, 2, 8, 8}, Init: gradcheck.Distinct(3)}},
			Build:   one(func(g *graph.Graph, in []*graph.Value) *graph.Value { return g.MaxPool(in[0], 3, 2, 1, false) }),
			Epsilon: 1e-3, Tolerance: tolLinear},
		{Name: "BatchNormTrain", Inputs: []gradcheck.Input{in("x", 4, 3, 3, 2), {Name: "scale", Shape: graph.Shape{3}, Init: pos}, in("bias", 3)},
			Build: func(g *graph.Graph, in []*graph.Value) []*graph.Value {
				y, _, _ := g.BatchNormTrain(in[0], in[1], in[2], 1e-5)
				return []*graph.Value{y}
			},
			Epsilon: 1e-2, Tolerance: tolNormalised},
		{Name: "BatchNormEval", Inputs: []gradcheck.Input{in("x", 2, 3, 2, 2), {Name: "scale", Shape: graph.Shape{3}, NoGrad: true},
			{Name: "bias", Shape: graph.Shape{3}, NoGrad: true}, {Name: "mean", Shape: graph.Shape{3}, NoGrad: true},
			{Name: "var", Shape: graph.Shape{3}, Init: pos, NoGrad: true}},
			Build: one(func(g *graph.Graph, in []*graph.Value) *graph.Value {
				return g.BatchNormEval(in[0], in[1], in[2], in[3], in[4], 1e-5)
			}),
			Epsilon: 0.1, Tolerance: tolLinear},
		conv(graph.Shape{2, 3, 6, 5}, graph.Shape{4, 3, 3, 3}, 1, 1, flipConvT),
		conv(graph.Shape{2, 3, 6, 5}, graph.Shape{4, 3, 3, 3}, 1, 1, transposeUnfold),
		conv(graph.Shape{2, 3, 7, 6}, graph.Shape{4, 3, 3, 3}, 2, 1, transposeUnfold),
		conv(graph.Shape{2, 3, 7, 6}, graph.Shape{4, 3, 3, 3}, 2, 1, transposeT),
		conv(graph.Shape{2, 5, 5, 5}, graph.Shape{3, 5, 3, 3}, 1, 1, flipUnfold),
		conv(graph.Shape{2, 3, 9, 8}, graph.Shape{4, 3, 7, 7}, 2, 3, transposeT),
		conv(graph.Shape{2, 3, 9, 8}, graph.Shape{4, 3, 7, 7}, 2, 3, transposeUnfold),
		conv(graph.Shape{2, 4, 5, 6}, graph.Shape{3, 4, 1, 1}, 1, 0, flipUnfold),
		conv(graph.Shape{2, 4, 5, 6}, graph.Shape{3, 4, 1, 1}, 2, 0, transposeUnfold),
		// The GPU plan: no Slice, so a strided 1x1 convolution unfolds.
		conv(graph.Shape{2, 4, 5, 6}, graph.Shape{3, 4, 1, 1}, 2, 0, graph.GPUConvGradPlan(graph.ConvShape{})),
		conv(graph.Shape{2, 3, 6, 5}, graph.Shape{4, 3, 3, 3}, 1, 1, graph.GPUConvGradPlan(graph.ConvShape{})),
	}
	for _, ta := range []bool{false, true} {
		for _, tb := range []bool{false, true} {
			a, b := graph.Shape{3, 4}, graph.Shape{4, 5}
			if ta {
				a = graph.Shape{4, 3}
			}
			if tb {
				b = graph.Shape{5, 4}
			}
			cases = append(cases, gradcheck.Case{Name: fmt.Sprintf("Gemm transA=%v transB=%v", ta, tb),
				Inputs: []gradcheck.Input{{Name: "a", Shape: a}, {Name: "b", Shape: b}},
				Build: one(func(g *graph.Graph, in []*graph.Value) *graph.Value {
					return g.Gemm(in[0], in[1], 0.5, ta, tb)
				}),
				Epsilon: 0.1, Tolerance: tolSmooth})
		}
	}
	return cases
}

func TestVJPsAgainstFiniteDifferences(t *testing.T) {
	gradcheck.InitORT(t)
	for _, c := range vjpCases() {
		t.Run(c.Name, func(t *testing.T) { gradcheck.Check(t, c) })
	}
}

// TestEveryVJPIsChecked fails when a registered gradient rule has no
// finite-difference case above.
func TestEveryVJPIsChecked(t *testing.T) {
	covered := map[string]bool{}
	for _, c := range append(vjpCases(), nativeVJPCases()...) {
		g := graph.New("coverage")
		var ins []*graph.Value
		for _, i := range c.Inputs {
			ins = append(ins, g.Input(i.Name, graph.Float, i.Shape))
		}
		c.Build(g, ins)
		for _, n := range g.Nodes() {
			covered[n.Op.OpType()] = true
		}
	}
	for _, op := range graph.VJPOpTypes() {
		if !covered[op] {
			t.Errorf("the VJP of %s has no finite-difference case in vjpCases", op)
		}
	}
}
