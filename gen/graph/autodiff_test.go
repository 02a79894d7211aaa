package graph_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/simclr-ort/simclr-ort/gen/graph"
	"github.com/simclr-ort/simclr-ort/internal/gradcheck"
	"github.com/simclr-ort/simclr-ort/runtime/ort"
)

// session runs a graph on ONNX Runtime with every input and output bound to
// a buffer, one thread so that reruns reduce in the same order.
type session struct {
	s   *ort.Session
	in  map[string][]float32
	out map[string][]float32
}

func newSession(t *testing.T, g *graph.Graph) *session {
	t.Helper()
	model, err := graph.Marshal(g.Model("test", nil))
	if err != nil {
		t.Fatal(err)
	}
	s := &session{in: map[string][]float32{}, out: map[string][]float32{}}
	var ins, outs []ort.Binding
	for _, v := range g.Inputs() {
		s.in[v.Name()] = make([]float32, v.Shape().Size())
		ins = append(ins, ort.Binding{Name: v.Name(), Shape: v.Shape(), Data: s.in[v.Name()]})
	}
	for _, v := range g.Outputs() {
		if v.DType() != graph.Float {
			t.Fatalf("output %s is %v; ort bindings are float32 only", v.Name(), v.DType())
		}
		s.out[v.Name()] = make([]float32, v.Shape().Size())
		outs = append(outs, ort.Binding{Name: v.Name(), Shape: v.Shape(), Data: s.out[v.Name()]})
	}
	s.s, err = ort.NewSession(model, ins, outs, ort.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.s.Close() })
	return s
}

func (s *session) run(t *testing.T) {
	t.Helper()
	if err := s.s.Run(); err != nil {
		t.Fatal(err)
	}
}

func normal(r *rand.Rand, d []float32) {
	for i := range d {
		d[i] = float32(r.NormFloat64())
	}
}

// seedCase is a function with several outputs whose upstream gradients
// are graph inputs, as in a backward graph that receives dL/dz.
type seedCase struct {
	name string
	// inputs are differentiated; build returns the outputs ys.
	inputs []gradcheck.Input
	build  func(g *graph.Graph, in []*graph.Value) []*graph.Value
	eps    float32
	tol    float64
}

func seedCases() []seedCase {
	return []seedCase{
		{
			name:   "one output",
			inputs: []gradcheck.Input{{Name: "x", Shape: graph.Shape{3, 4}, Init: gradcheck.Distinct(2)}, in("w", 5, 4)},
			build: func(g *graph.Graph, in []*graph.Value) []*graph.Value {
				return []*graph.Value{g.Gemm(g.Relu(in[0]), in[1], 1, false, true)}
			},
			eps: 1e-2, tol: tolSmooth,
		},
		{
			name:   "second output downstream of the first",
			inputs: []gradcheck.Input{in("x", 3, 4), in("w", 4, 2)},
			build: func(g *graph.Graph, in []*graph.Value) []*graph.Value {
				y1 := g.MatMul(in[0], in[1])
				y2 := g.ReduceSum(g.Exp(g.Mul(y1, g.Scalar(0.3))), []int64{1}, false)
				return []*graph.Value{y1, y2}
			},
			eps: 1e-2, tol: tolSmooth,
		},
		{
			name:   "the same value twice",
			inputs: []gradcheck.Input{in("x", 2, 3)},
			build: func(g *graph.Graph, in []*graph.Value) []*graph.Value {
				y := g.Mul(in[0], in[0])
				return []*graph.Value{y, y}
			},
			eps: 1e-2, tol: tolSmooth,
		},
	}
}

// TestGradientsFromAgainstFiniteDifferences checks GradientsFrom(ys, dys,
// xs), with dys fed at run time, against central differences of
// L = Σᵢ ⟨dysᵢ, ysᵢ(x)⟩, accumulated in float64.
func TestGradientsFromAgainstFiniteDifferences(t *testing.T) {
	gradcheck.InitORT(t)
	for _, c := range seedCases() {
		t.Run(c.name, func(t *testing.T) {
			g := graph.New(c.name)
			var xs []*graph.Value
			for _, spec := range c.inputs {
				xs = append(xs, g.Input(spec.Name, graph.Float, spec.Shape))
			}
			ys := c.build(g, xs)
			dys := make([]*graph.Value, len(ys))
			for i, y := range ys {
				dys[i] = g.Input(fmt.Sprintf("dy%d", i), graph.Float, y.Shape())
			}
			grads := g.GradientsFrom(ys, dys, xs)
			for i, y := range ys {
				g.Output(fmt.Sprintf("y%d", i), g.Identity(y))
			}
			for i, d := range grads {
				g.Output("grad."+c.inputs[i].Name, d)
			}
			s := newSession(t, g)
			r := rand.New(rand.NewPCG(1, 2))
			for _, v := range g.Inputs() {
				normal(r, s.in[v.Name()])
			}
			for _, spec := range c.inputs {
				if spec.Init != nil {
					spec.Init(r, s.in[spec.Name])
				}
			}
			s.run(t)
			analytic := map[string][]float64{}
			for _, spec := range c.inputs {
				for _, x := range s.out["grad."+spec.Name] {
					analytic[spec.Name] = append(analytic[spec.Name], float64(x))
				}
			}
			lossAt := func() float64 {
				s.run(t)
				var l float64
				for i := range ys {
					dy, y := s.in[fmt.Sprintf("dy%d", i)], s.out[fmt.Sprintf("y%d", i)]
					for j := range y {
						l += float64(dy[j]) * float64(y[j])
					}
				}
				return l
			}
			for _, spec := range c.inputs {
				x := s.in[spec.Name]
				var diff2, fd2 float64
				for j := range x {
					orig := x[j]
					x[j] = orig + c.eps
					plus := lossAt()
					x[j] = orig - c.eps
					minus := lossAt()
					x[j] = orig
					fd := (plus - minus) / (float64(orig+c.eps) - float64(orig-c.eps))
					d := fd - analytic[spec.Name][j]
					diff2 += d * d
					fd2 += fd * fd
				}
				rel := math.Sqrt(diff2) / math.Max(math.Sqrt(fd2), 1e-12)
				if rel > c.tol || math.IsNaN(rel) {
					t.Errorf("d/d%s relative error %.3g > %.3g", spec.Name, rel, c.tol)
				} else {
					t.Logf("d/d%s relative error %.2g over %d elements", spec.Name, rel, len(x))
				}
			}
		})
	}
}

// TestGradientsFromPanics checks that wrong seeds are refused while
// building, naming what is wrong.
func TestGradientsFromPanics(t *testing.T) {
	for _, c := range []struct {
		name  string
		build func(g *graph.Graph, x *graph.Value)
		want  string
	}{
		{"shape", func(g *graph.Graph, x *graph.Value) {
			g.GradientsFrom([]*graph.Value{g.Relu(x)}, []*graph.Value{g.Input("dy", graph.Float, graph.Shape{3})}, []*graph.Value{x})
		}, "does not match"},
		{"count", func(g *graph.Graph, x *graph.Value) {
			g.GradientsFrom([]*graph.Value{g.Relu(x)}, nil, []*graph.Value{x})
		}, "one upstream gradient per value"},
		{"seed depends on wrt", func(g *graph.Graph, x *graph.Value) {
			g.GradientsFrom([]*graph.Value{g.Relu(x)}, []*graph.Value{g.Neg(x)}, []*graph.Value{x})
		}, "depends on a value asked for"},
		{"unrelated", func(g *graph.Graph, x *graph.Value) {
			y := g.Relu(g.Input("other", graph.Float, graph.Shape{2, 2}))
			g.GradientsFrom([]*graph.Value{y}, []*graph.Value{g.Input("dy", graph.Float, graph.Shape{2, 2})}, []*graph.Value{x})
		}, "depends on any value asked for"},
	} {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(fmt.Sprint(r), c.want) {
					t.Errorf("panic %v, want one saying %q", r, c.want)
				}
			}()
			g := graph.New(c.name)
			c.build(g, g.Input("x", graph.Float, graph.Shape{2, 2}))
		})
	}
}
