package graph_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/simclr-ort/simclr-ort/gen/graph"
	"github.com/simclr-ort/simclr-ort/internal/gradcheck"
	"github.com/simclr-ort/simclr-ort/runtime/ort"
)

// nativeConv is one finite-difference case of a native convolution and its
// gradients.
func nativeConv(x, w graph.Shape, stride, pad int64, plan graph.NativeConvPlan) gradcheck.Case {
	return gradcheck.Case{
		Name:   fmt.Sprintf("ConvForward x%v w%v s%d p%d native dx=%v dw=%v", x, w, stride, pad, plan.InputGrad, plan.WeightGrad),
		Inputs: []gradcheck.Input{{Name: "x", Shape: x}, {Name: "w", Shape: w}},
		Build: one(func(g *graph.Graph, in []*graph.Value) *graph.Value {
			return g.NativeConv(in[0], in[1], graph.ConvAttrs{Strides: []int64{stride, stride}, Pads: []int64{pad, pad, pad, pad}}, plan)
		}),
		Epsilon: 0.1, Tolerance: tolLinear, MaxElements: 60, NativeKernels: true,
	}
}

// nativeVJPCases are the finite-difference cases of the native ops'
// gradient rules (TestEveryVJPIsChecked counts them).
func nativeVJPCases() []gradcheck.Case {
	native := graph.NativeConvPlan{InputGrad: true, WeightGrad: true}
	standard := graph.NativeConvPlan{}
	return []gradcheck.Case{
		nativeConv(graph.Shape{2, 3, 6, 5}, graph.Shape{4, 3, 3, 3}, 1, 1, native),
		nativeConv(graph.Shape{2, 3, 7, 6}, graph.Shape{4, 3, 3, 3}, 2, 1, native),
		nativeConv(graph.Shape{2, 5, 5, 5}, graph.Shape{3, 5, 3, 3}, 1, 0, native),
		nativeConv(graph.Shape{2, 3, 9, 8}, graph.Shape{4, 3, 7, 7}, 2, 3, native),
		nativeConv(graph.Shape{2, 4, 5, 6}, graph.Shape{3, 4, 1, 1}, 1, 0, native),
		nativeConv(graph.Shape{2, 4, 5, 6}, graph.Shape{3, 4, 1, 1}, 2, 0, native),
		nativeConv(graph.Shape{3, 16, 1, 1}, graph.Shape{8, 16, 3, 3}, 1, 1, native),
		nativeConv(graph.Shape{2, 32, 4, 4}, graph.Shape{32, 32, 3, 3}, 2, 1, native),
		nativeConv(graph.Shape{2, 16, 5, 6}, graph.Shape{16, 16, 3, 3}, 1, 1, native), // Winograd
		nativeConv(graph.Shape{2, 4, 16, 16}, graph.Shape{3, 4, 1, 1}, 1, 0, native),  // a product per image
		{Name: "MaxPoolForward k3 s2 p1", Inputs: []gradcheck.Input{{Name: "x", Shape: graph.Shape{2, 3, 7, 6}, Init: gradcheck.Distinct(3)}},
			Build:   one(func(g *graph.Graph, in []*graph.Value) *graph.Value { return g.NativeMaxPool(in[0], 3, 2, 1) }),
			Epsilon: 1e-3, Tolerance: tolLinear, NativeKernels: true},
		{Name: "MaxPoolForward k2 s2 p0", Inputs: []gradcheck.Input{{Name: "x", Shape: graph.Shape{2, 2, 6, 5}, Init: gradcheck.Distinct(3)}},
			Build:   one(func(g *graph.Graph, in []*graph.Value) *graph.Value { return g.NativeMaxPool(in[0], 2, 2, 0) }),
			Epsilon: 1e-3, Tolerance: tolLinear, NativeKernels: true},
		{Name: "ReluForward", Inputs: []gradcheck.Input{{Name: "x", Shape: graph.Shape{3, 4, 5}, Init: gradcheck.Distinct(2)}},
			Build:   one(func(g *graph.Graph, in []*graph.Value) *graph.Value { return g.NativeRelu(in[0]) }),
			Epsilon: 1e-2, Tolerance: tolLinear, NativeKernels: true},
		{Name: "BatchNormForward", Inputs: []gradcheck.Input{in("x", 4, 3, 3, 2), {Name: "scale", Shape: graph.Shape{3}, Init: gradcheck.Uniform(0.5, 2)}, in("bias", 3)},
			Build: func(g *graph.Graph, in []*graph.Value) []*graph.Value {
				y, _, _ := g.NativeBatchNormTrain(in[0], in[1], in[2], 1e-5)
				return []*graph.Value{y}
			},
			Epsilon: 1e-2, Tolerance: tolNormalised, NativeKernels: true},
		// The standard formulations behind a native forward.
		nativeConv(graph.Shape{2, 3, 6, 5}, graph.Shape{4, 3, 3, 3}, 1, 1, standard),
		nativeConv(graph.Shape{2, 3, 7, 6}, graph.Shape{4, 3, 3, 3}, 2, 1, standard),
	}
}

func TestNativeVJPsAgainstFiniteDifferences(t *testing.T) {
	gradcheck.InitNative(t)
	for _, c := range nativeVJPCases() {
		t.Run(c.Name, func(t *testing.T) { gradcheck.Check(t, c) })
	}
}

// convCase is one convolution shape for the native-versus-standard
// comparison.
type convCase struct {
	n, cin, cout, h, w, k, stride, pad int64
}

func (c convCase) String() string {
	return fmt.Sprintf("N%d %d->%d %dx%d k%d s%d p%d", c.n, c.cin, c.cout, c.h, c.w, c.k, c.stride, c.pad)
}

// nativeCompareCases are random shapes over strides 1 and 2, paddings 0
// and 1 (3 for 7x7 kernels), 1x1, 3x3 and 7x7 kernels and 1x1 maps, plus
// the shapes of ResNet's layers on small maps with blocked channel counts.
func nativeCompareCases() []convCase {
	r := rand.New(rand.NewPCG(12, 12))
	var cases []convCase
	for _, k := range []int64{1, 3, 7} {
		for _, stride := range []int64{1, 2} {
			pads := []int64{0, 1}
			if k == 7 {
				pads = []int64{1, 3}
			}
			for _, pad := range pads {
				h := k - 2*pad + int64(r.IntN(6))
				h = max(h, 1)
				w := max(k-2*pad+int64(r.IntN(6)), 1)
				cases = append(cases, convCase{n: 1 + int64(r.IntN(4)), cin: 1 + int64(r.IntN(20)), cout: 1 + int64(r.IntN(20)),
					h: h, w: w, k: k, stride: stride, pad: pad})
			}
		}
	}
	return append(cases,
		convCase{n: 4, cin: 16, cout: 24, h: 1, w: 1, k: 3, stride: 1, pad: 1},   // 1x1 map, 3x3 kernel
		convCase{n: 4, cin: 16, cout: 24, h: 1, w: 1, k: 1, stride: 1, pad: 0},   // 1x1 map, 1x1 kernel
		convCase{n: 3, cin: 32, cout: 64, h: 2, w: 2, k: 3, stride: 2, pad: 1},   // 2x2 to 1x1
		convCase{n: 2, cin: 3, cout: 64, h: 28, w: 28, k: 7, stride: 2, pad: 3},  // ImageNet stem
		convCase{n: 3, cin: 24, cout: 40, h: 16, w: 17, k: 1, stride: 1, pad: 0}, // 1x1 as a product per image
		convCase{n: 2, cin: 64, cout: 64, h: 7, w: 7, k: 3, stride: 1, pad: 1},   // Winograd from here
		convCase{n: 3, cin: 32, cout: 48, h: 8, w: 9, k: 3, stride: 1, pad: 1},
		convCase{n: 2, cin: 16, cout: 16, h: 4, w: 4, k: 3, stride: 1, pad: 1},
		convCase{n: 2, cin: 64, cout: 64, h: 16, w: 16, k: 3, stride: 1, pad: 1},
		convCase{n: 2, cin: 32, cout: 32, h: 6, w: 6, k: 3, stride: 1, pad: 0},
		convCase{n: 2, cin: 64, cout: 128, h: 7, w: 7, k: 1, stride: 2, pad: 0},
	)
}

// runConv computes y, dx and dw of a convolution for a fixed random upstream
// gradient, natively (with plan) or with standard Conv nodes.
func runConv(t *testing.T, c convCase, native bool, plan graph.NativeConvPlan) map[string][]float32 {
	t.Helper()
	g := graph.New("conv")
	x := g.Input("x", graph.Float, graph.Shape{c.n, c.cin, c.h, c.w})
	w := g.Input("w", graph.Float, graph.Shape{c.cout, c.cin, c.k, c.k})
	attrs := graph.ConvAttrs{Strides: []int64{c.stride, c.stride}, Pads: []int64{c.pad, c.pad, c.pad, c.pad}}
	var y *graph.Value
	if native {
		y = g.NativeConv(x, w, attrs, plan)
	} else {
		y = g.Conv(x, w, attrs)
	}
	grads := g.Gradients(randomDot(g, y, 9), []*graph.Value{x, w})
	g.Output("y", y)
	g.Output("dx", grads[0])
	g.Output("dw", grads[1])
	return runRandom(t, g, rand.New(rand.NewPCG(1, 2)), 1, native, nil)
}

// randomDot is ⟨y, R⟩ for a fixed random R drawn from seed: a scalar whose
// gradient sends a random upstream gradient into y.
func randomDot(g *graph.Graph, y *graph.Value, seed uint64) *graph.Value {
	weights := make([]float32, y.Shape().Size())
	normal(rand.New(rand.NewPCG(seed, seed)), weights)
	axes := make([]int64, len(y.Shape()))
	for i := range axes {
		axes[i] = int64(i)
	}
	return g.ReduceSum(g.Mul(y, g.ConstFloat(y.Shape(), weights)), axes, false)
}

// runRandom runs g once on ONNX Runtime, its inputs drawn in order from r
// (then changed by adjust, if any), and returns every input and output by
// name.
func runRandom(t *testing.T, g *graph.Graph, r *rand.Rand, threads int, native bool, adjust func(map[string][]float32)) map[string][]float32 {
	t.Helper()
	model, err := graph.Marshal(g.Model("test", nil))
	if err != nil {
		t.Fatal(err)
	}
	data := map[string][]float32{}
	for _, v := range g.Inputs() {
		data[v.Name()] = make([]float32, v.Shape().Size())
		normal(r, data[v.Name()])
	}
	if adjust != nil {
		adjust(data)
	}
	var ins, outs []ort.Binding
	for _, v := range g.Inputs() {
		ins = append(ins, ort.Binding{Name: v.Name(), Shape: v.Shape(), Data: data[v.Name()]})
	}
	for _, v := range g.Outputs() {
		data[v.Name()] = make([]float32, v.Shape().Size())
		outs = append(outs, ort.Binding{Name: v.Name(), Shape: v.Shape(), Data: data[v.Name()]})
	}
	s, err := ort.NewSession(model, ins, outs, ort.Options{IntraOpThreads: threads, NativeKernels: native})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Run(); err != nil {
		t.Fatal(err)
	}
	return data
}

// maxRelError is max |got-want| / max |want|: the worst element against
// the tensor's scale.
func maxRelError(got, want []float32) float64 {
	var d, scale float64
	for i := range want {
		d = math.Max(d, math.Abs(float64(got[i])-float64(want[i])))
		scale = math.Max(scale, math.Abs(float64(want[i])))
	}
	return d / math.Max(scale, 1e-30)
}

// TestNativeConvMatchesStandard: each native op (ConvForward for y,
// ConvBackwardData for dx, ConvBackwardWeights for dw) computes what the
// standard-op formulation it replaces computes, to float32 rounding of
// differently ordered sums.
func TestNativeConvMatchesStandard(t *testing.T) {
	gradcheck.InitNative(t)
	const tol = 1e-5 // relative L2 and worst element against the scale
	worst := map[string]float64{}
	worstCase := map[string]string{}
	for _, c := range nativeCompareCases() {
		t.Run(c.String(), func(t *testing.T) {
			want := runConv(t, c, false, graph.NativeConvPlan{})
			got := runConv(t, c, true, graph.NativeConvPlan{InputGrad: true, WeightGrad: true})
			for _, name := range []string{"y", "dx", "dw"} {
				rel, elem := gradcheck.RelL2(got[name], want[name]), maxRelError(got[name], want[name])
				if !(rel < tol) || !(elem < tol) {
					t.Errorf("%s: relative L2 %.2g, worst element %.2g of the scale (want < %g)", name, rel, elem, tol)
				} else {
					t.Logf("%s: relative L2 %.2g, worst element %.2g of the scale", name, rel, elem)
				}
				if elem > worst[name] || worstCase[name] == "" {
					worst[name], worstCase[name] = elem, c.String()
				}
			}
		})
	}
	if info, err := ort.NativeKernelsInfo(); err == nil {
		t.Log(info)
	}
	for _, name := range []string{"y", "dx", "dw"} {
		t.Logf("worst %s (%s): %.2g of the scale, at %s", name, map[string]string{"y": "ConvForward", "dx": "ConvBackwardData", "dw": "ConvBackwardWeights"}[name], worst[name], worstCase[name])
	}
}

// TestNativeMaxPoolMatchesStandard: MaxPoolForward gives MaxPool's output
// and indices, ties included (first maximum in row-major order, as after a
// ReLU's zeros), and MaxPoolBackward the scatter's gradient, exactly.
func TestNativeMaxPoolMatchesStandard(t *testing.T) {
	gradcheck.InitNative(t)
	for _, c := range []struct {
		shape               graph.Shape
		kernel, stride, pad int64
		ties                bool
	}{
		{graph.Shape{2, 3, 14, 14}, 3, 2, 1, false},
		{graph.Shape{2, 3, 14, 14}, 3, 2, 1, true},
		{graph.Shape{3, 2, 7, 9}, 3, 2, 1, true},
		{graph.Shape{1, 4, 5, 5}, 2, 1, 0, false},
		{graph.Shape{2, 2, 1, 1}, 3, 2, 1, false},
	} {
		t.Run(fmt.Sprintf("%v k%d s%d p%d ties=%v", c.shape, c.kernel, c.stride, c.pad, c.ties), func(t *testing.T) {
			run := func(native bool) map[string][]float32 {
				g := graph.New("pool")
				x := g.Input("x", graph.Float, c.shape)
				var y *graph.Value
				if native {
					y = g.NativeMaxPool(x, c.kernel, c.stride, c.pad)
				} else {
					y = g.MaxPool(x, c.kernel, c.stride, c.pad, true)
				}
				loss := randomDot(g, y, 5)
				g.Output("y", y)
				g.Output("indices", g.Cast(graph.MaxPoolIndices(y), graph.Float))
				g.Output("dx", g.Gradients(loss, []*graph.Value{x})[0])
				return runRandom(t, g, rand.New(rand.NewPCG(1, 1)), 2, native, func(data map[string][]float32) {
					if c.ties {
						for i := range data["x"] {
							data["x"][i] = max(0, float32(math.Round(float64(data["x"][i]))))
						}
					}
				})
			}
			want, got := run(false), run(true)
			for _, name := range []string{"y", "indices", "dx"} {
				for i := range want[name] {
					if got[name][i] != want[name][i] {
						t.Errorf("%s[%d] = %v, MaxPool gives %v", name, i, got[name][i], want[name][i])
						break
					}
				}
			}
		})
	}
}

// TestNativeReluAndBatchNormMatchStandard: ReluForward/ReluBackward give
// Relu and its gradient exactly; BatchNormForward/BatchNormBackward give
// BatchNormTrain's output, batch statistics and gradients to float32
// rounding (the native ones sum in double).
func TestNativeReluAndBatchNormMatchStandard(t *testing.T) {
	gradcheck.InitNative(t)
	for _, shape := range []graph.Shape{{8, 16, 7, 7}, {4, 3, 1, 1}, {2, 64, 16, 16}, {3, 5}} {
		t.Run(fmt.Sprint(shape), func(t *testing.T) {
			run := func(native bool) map[string][]float32 {
				g := graph.New("bn")
				x := g.Input("x", graph.Float, shape)
				scale := g.Input("scale", graph.Float, graph.Shape{shape[1]})
				bias := g.Input("bias", graph.Float, graph.Shape{shape[1]})
				var y, mean, variance *graph.Value
				switch {
				case len(shape) < 3:
					y = g.Add(g.Mul(x, g.Reshape(scale, graph.Shape{1, shape[1]})), g.Reshape(bias, graph.Shape{1, shape[1]}))
				case native:
					y, mean, variance = g.NativeBatchNormTrain(x, scale, bias, 1e-5)
				default:
					y, mean, variance = g.BatchNormTrain(x, scale, bias, 1e-5)
				}
				if native {
					y = g.NativeRelu(y)
				} else {
					y = g.Relu(y)
				}
				loss := randomDot(g, y, 7)
				grads := g.Gradients(loss, []*graph.Value{x, scale, bias})
				g.Output("y", g.Identity(y))
				if mean != nil {
					g.Output("mean", mean)
					g.Output("variance", variance)
				}
				for i, name := range []string{"dx", "dscale", "dbias"} {
					g.Output(name, grads[i])
				}
				return runRandom(t, g, rand.New(rand.NewPCG(3, 3)), 2, native, nil)
			}
			want, got := run(false), run(true)
			for name := range want {
				if _, ok := map[string]bool{"x": true, "scale": true, "bias": true}[name]; ok {
					continue
				}
				rel, elem := gradcheck.RelL2(got[name], want[name]), maxRelError(got[name], want[name])
				if !(rel < 1e-5) || !(elem < 1e-5) {
					t.Errorf("%s: relative L2 %.2g, worst element %.2g of the scale (want < 1e-5)", name, rel, elem)
				} else {
					t.Logf("%s: relative L2 %.2g, worst element %.2g of the scale", name, rel, elem)
				}
			}
		})
	}
}
