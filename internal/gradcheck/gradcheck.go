// Package gradcheck checks the gradients the graph package builds against
// central finite differences, running both on ONNX Runtime.
//
// For an op (or a whole block) f with float inputs x₁…xₖ it builds the scalar
// L = Σ f(x)·R with a fixed random R, asks graph.Gradients for dL/dxᵢ and
// compares them with (L(x+εeⱼ) - L(x-εeⱼ)) / 2ε for every checked element j.
// L is accumulated in float64 and returned as two float32 halves, so the
// finite differences are not drowned by float32 rounding of the sum.
package gradcheck

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/simclr-ort/simclr-ort/gen/graph"
	"github.com/simclr-ort/simclr-ort/runtime/ort"
)

// Input describes one input of the function under test.
type Input struct {
	Name  string
	Shape graph.Shape
	// Init fills the input; nil means standard normal values.
	Init func(r *rand.Rand, data []float32)
	// NoGrad excludes the input from the check (it is still an input).
	NoGrad bool
}

// Case is one gradient check.
type Case struct {
	Name   string
	Inputs []Input
	// Build returns the output(s) of the function under test.
	Build func(g *graph.Graph, in []*graph.Value) []*graph.Value
	// Epsilon is the finite-difference step.
	Epsilon float32
	// Tolerance bounds ‖fd - analytic‖₂ / ‖fd‖₂ over the checked elements.
	Tolerance float64
	// MaxElements caps the elements checked per input (0 means all); the
	// elements are drawn at random with a fixed seed.
	MaxElements int
	// NativeKernels runs the case on a session with simclr-ort's native
	// kernels (ort.Options.NativeKernels), for graphs with native ops.
	NativeKernels bool
}

// Result reports one input's comparison.
type Result struct {
	Input        string
	Checked      int
	RelError     float64
	WorstIndex   int
	WorstFD      float64
	WorstGrad    float64
	AnalyticNorm float64
}

// InitORT loads ONNX Runtime for a test, skipping the test with the reason
// when the library is missing outside CI (in CI, where CI is set, a missing
// library fails the test).
func InitORT(t testing.TB) {
	t.Helper()
	if err := ort.Init(""); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("ONNX Runtime is required in CI: %v", err)
		}
		t.Skipf("ONNX Runtime not available: %v", err)
	}
}

// InitNative loads ONNX Runtime and the native kernels for a test, skipping
// the test with the reason when oneDNN is missing outside CI (in CI it
// fails the test).
func InitNative(t testing.TB) {
	t.Helper()
	InitORT(t)
	if err := ort.LoadNativeKernels(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the native kernels are required in CI: %v", err)
		}
		t.Skipf("native kernels not available: %v", err)
	}
}

// Uniform returns an Init drawing uniformly from [lo, hi).
func Uniform(lo, hi float32) func(*rand.Rand, []float32) {
	return func(r *rand.Rand, d []float32) {
		for i := range d {
			d[i] = lo + (hi-lo)*r.Float32()
		}
	}
}

// Distinct returns an Init of a random permutation of evenly spaced values in
// [-scale, scale): no ties, so max and ReLU kinks stay far from every element.
func Distinct(scale float32) func(*rand.Rand, []float32) {
	return func(r *rand.Rand, d []float32) {
		p := r.Perm(len(d))
		for i := range d {
			d[i] = scale * (2*(float32(p[i])+0.5)/float32(len(d)) - 1)
		}
	}
}

// Run checks the case and returns one Result per checked input.
func Run(c Case, seed uint64) ([]Result, error) {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	g := graph.New(c.Name)
	var ins, wrt []*graph.Value
	data := make([][]float32, len(c.Inputs))
	for i, spec := range c.Inputs {
		v := g.Input(spec.Name, graph.Float, spec.Shape)
		ins = append(ins, v)
		if !spec.NoGrad {
			wrt = append(wrt, v)
		}
		data[i] = make([]float32, spec.Shape.Size())
		init := spec.Init
		if init == nil {
			init = func(r *rand.Rand, d []float32) {
				for j := range d {
					d[j] = float32(r.NormFloat64())
				}
			}
		}
		init(r, data[i])
	}
	outs := c.Build(g, ins)
	var terms []*graph.Value
	for _, y := range outs {
		weights := make([]float32, y.Shape().Size())
		for j := range weights {
			weights[j] = float32(r.NormFloat64())
		}
		w := g.Cast(g.ConstFloat(y.Shape(), weights), graph.Double)
		prod := g.Mul(g.Cast(y, graph.Double), w)
		axes := make([]int64, y.Rank())
		for j := range axes {
			axes[j] = int64(j)
		}
		terms = append(terms, g.Reshape(g.ReduceSum(prod, axes, true), graph.Shape{1}))
	}
	loss64 := terms[0]
	if len(terms) > 1 {
		loss64 = g.Sum(terms...)
	}
	// The float32 loss for Gradients; the double one split into two float32
	// halves for the finite differences.
	loss := g.Cast(loss64, graph.Float)
	g.Output("loss_hi", loss)
	g.Output("loss_lo", g.Cast(g.Sub(loss64, g.Cast(loss, graph.Double)), graph.Float))
	grads := g.Gradients(loss, wrt)
	for i, d := range grads {
		g.Output(fmt.Sprintf("grad_%d", i), d)
	}
	model, err := graph.Marshal(g.Model("test", nil))
	if err != nil {
		return nil, err
	}
	var inputs, outputs []ort.Binding
	for i, spec := range c.Inputs {
		inputs = append(inputs, ort.Binding{Name: spec.Name, Shape: spec.Shape, Data: data[i]})
	}
	hi, lo := make([]float32, 1), make([]float32, 1)
	outputs = append(outputs, ort.Binding{Name: "loss_hi", Shape: []int64{1}, Data: hi}, ort.Binding{Name: "loss_lo", Shape: []int64{1}, Data: lo})
	gradData := make([][]float32, len(wrt))
	for i, v := range wrt {
		gradData[i] = make([]float32, v.Shape().Size())
		outputs = append(outputs, ort.Binding{Name: fmt.Sprintf("grad_%d", i), Shape: v.Shape(), Data: gradData[i]})
	}
	// One thread: the same reduction order on every run, so differences of
	// nearby losses are not polluted by scheduling.
	sess, err := ort.NewSession(model, inputs, outputs, ort.Options{IntraOpThreads: 1, NativeKernels: c.NativeKernels})
	if err != nil {
		return nil, fmt.Errorf("gradcheck %s: %w", c.Name, err)
	}
	defer sess.Close()
	if err := sess.Run(); err != nil {
		return nil, err
	}
	analytic := make([][]float64, len(gradData))
	for i, gd := range gradData {
		analytic[i] = make([]float64, len(gd))
		for j, x := range gd {
			analytic[i][j] = float64(x)
		}
	}
	lossAt := func() (float64, error) {
		if err := sess.Run(); err != nil {
			return 0, err
		}
		return float64(hi[0]) + float64(lo[0]), nil
	}
	var results []Result
	k := 0
	for i, spec := range c.Inputs {
		if spec.NoGrad {
			continue
		}
		x := data[i]
		idx := r.Perm(len(x))
		if c.MaxElements > 0 && len(idx) > c.MaxElements {
			idx = idx[:c.MaxElements]
		}
		res := Result{Input: spec.Name, Checked: len(idx)}
		var diff2, fd2, an2, worst float64
		for _, j := range idx {
			orig := x[j]
			x[j] = orig + c.Epsilon
			plus, err := lossAt()
			if err != nil {
				return nil, err
			}
			x[j] = orig - c.Epsilon
			minus, err := lossAt()
			if err != nil {
				return nil, err
			}
			x[j] = orig
			// The step actually taken, after float32 rounding of x±ε.
			step := float64(orig+c.Epsilon) - float64(orig-c.Epsilon)
			fd := (plus - minus) / step
			an := analytic[k][j]
			d := fd - an
			diff2 += d * d
			fd2 += fd * fd
			an2 += an * an
			if math.Abs(d) >= worst {
				worst = math.Abs(d)
				res.WorstIndex, res.WorstFD, res.WorstGrad = j, fd, an
			}
		}
		res.RelError = math.Sqrt(diff2) / math.Max(math.Sqrt(fd2), 1e-12)
		res.AnalyticNorm = math.Sqrt(an2)
		results = append(results, res)
		k++
	}
	return results, nil
}

// Check runs the case in a test and fails it when an input's relative error
// exceeds the case's tolerance, naming the worst element.
func Check(t *testing.T, c Case) {
	t.Helper()
	results, err := Run(c, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range results {
		if res.AnalyticNorm == 0 {
			t.Errorf("%s: gradient of %s is identically zero on the checked elements; the case checks nothing", c.Name, res.Input)
		}
		if res.RelError > c.Tolerance || math.IsNaN(res.RelError) {
			t.Errorf("%s: d/d%s relative error %.3g > %.3g over %d elements; worst element %d: finite difference %.6g, gradient %.6g",
				c.Name, res.Input, res.RelError, c.Tolerance, res.Checked, res.WorstIndex, res.WorstFD, res.WorstGrad)
		} else {
			t.Logf("%s: d/d%s relative error %.2g over %d elements", c.Name, res.Input, res.RelError, res.Checked)
		}
	}
}

// Eval builds a graph without inputs, runs it on ONNX Runtime and returns
// its one float output.
func Eval(t testing.TB, build func(g *graph.Graph) *graph.Value) []float32 {
	t.Helper()
	g := graph.New("eval")
	// onnxruntime_go needs at least one input; this one is unused.
	g.Input("unused", graph.Float, graph.Shape{1})
	y := build(g)
	g.Output("y", y)
	model, err := graph.Marshal(g.Model("test", nil))
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, y.Shape().Size())
	unused := []ort.Binding{{Name: "unused", Shape: []int64{1}, Data: make([]float32, 1)}}
	sess, err := ort.NewSession(model, unused, []ort.Binding{{Name: "y", Shape: y.Shape(), Data: out}}, ort.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if err := sess.Run(); err != nil {
		t.Fatal(err)
	}
	return out
}

// RelL2 is ‖got − want‖₂ / ‖want‖₂, accumulated in float64: the relative
// error the whole-step comparisons gate on.
func RelL2(got, want []float32) float64 {
	if len(got) != len(want) {
		panic(fmt.Sprintf("gradcheck: RelL2 of %d and %d values", len(got), len(want)))
	}
	var d2, w2 float64
	for i := range want {
		d := float64(got[i]) - float64(want[i])
		d2 += d * d
		w2 += float64(want[i]) * float64(want[i])
	}
	return math.Sqrt(d2 / math.Max(w2, 1e-300))
}
