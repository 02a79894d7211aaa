package graph_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/simclr-ort/simclr-ort/gen/graph"
	"github.com/simclr-ort/simclr-ort/internal/gradcheck"
)

// TestPartitionMatchesWholeGraph splits "forward, then GradientsFrom" at the
// mark into a forward graph that outputs the saved values and a backward
// graph that takes them, and checks that running the two gives what the
// whole graph gives: only float32 values cross, MaxPool's int64 indices and
// ConstantOfShape fills are recomputed in the backward, nothing else of the
// forward is.
func TestPartitionMatchesWholeGraph(t *testing.T) {
	gradcheck.InitORT(t)
	for _, c := range []struct {
		name string
		pool bool
	}{{"conv-bn-relu-gemm", false}, {"conv-bn-relu-maxpool-gemm", true}} {
		t.Run(c.name, func(t *testing.T) {
			g := graph.New(c.name)
			x := g.Input("x", graph.Float, graph.Shape{2, 3, 6, 6})
			w := g.Input("w", graph.Float, graph.Shape{4, 3, 3, 3})
			scale := g.Input("scale", graph.Float, graph.Shape{4})
			bias := g.Input("bias", graph.Float, graph.Shape{4})
			y, mean, _ := g.BatchNormTrain(g.Conv(x, w, graph.ConvAttrs{Strides: []int64{1, 1}, Pads: []int64{1, 1, 1, 1}}), scale, bias, 1e-5)
			y = g.Relu(y)
			if c.pool {
				y = g.MaxPool(y, 3, 2, 1, true)
			}
			h := g.Flatten2D(y)
			w2 := g.Input("w2", graph.Float, graph.Shape{5, h.Shape()[1]})
			z := g.Gemm(h, w2, 1, false, true)
			params := []*graph.Value{w, scale, bias, w2}
			mark := g.Mark()
			dz := g.Input("dz", graph.Float, z.Shape())
			grads := g.GradientsFrom([]*graph.Value{z}, []*graph.Value{dz}, params)

			saved := g.Saved(mark, grads)
			inputs := []graph.Port{{Name: "x", Value: x}}
			for _, p := range params {
				inputs = append(inputs, graph.Port{Name: p.Name(), Value: p})
			}
			fwdOut := []graph.Port{{Name: "z", Value: z}, {Name: "mean", Value: mean}}
			bwdIn := append([]graph.Port(nil), inputs...)
			for _, s := range saved {
				if s.DType() != graph.Float {
					t.Errorf("saved value %s is %v; only float32 may cross", s.Name(), s.DType())
				}
				fwdOut = append(fwdOut, graph.Port{Name: "saved." + s.Name(), Value: s})
				bwdIn = append(bwdIn, graph.Port{Name: "saved." + s.Name(), Value: s})
			}
			bwdIn = append(bwdIn, graph.Port{Name: "dz", Value: dz})
			var gradOut []graph.Port
			for i, d := range grads {
				gradOut = append(gradOut, graph.Port{Name: "grad." + params[i].Name(), Value: d})
			}
			fwd := g.Extract("forward", inputs, fwdOut)
			bwd := g.Extract("backward", bwdIn, gradOut)
			whole := g.Extract("whole", append(inputs, graph.Port{Name: "dz", Value: dz}), append(fwdOut[:2:2], gradOut...))

			forwardNames := map[string]bool{}
			for _, n := range g.Nodes()[:mark] {
				forwardNames[n.Name()] = true
			}
			for _, n := range bwd.Nodes() {
				if forwardNames[n.Name()] && !slices.Contains([]string{"MaxPool", "ConstantOfShape"}, n.Op.OpType()) {
					t.Errorf("the backward recomputes forward node %s (%s)", n.Name(), n.Op.OpType())
				}
			}
			recomputesPool := slices.ContainsFunc(bwd.Nodes(), func(n *graph.Node) bool { return n.Op.OpType() == "MaxPool" })
			if recomputesPool != c.pool {
				t.Errorf("the backward recomputes MaxPool: %v, want %v", recomputesPool, c.pool)
			}
			var size int64
			for _, s := range saved {
				size += s.Shape().Size()
			}
			t.Logf("%d saved values, %d floats; backward has %d nodes", len(saved), size, len(bwd.Nodes()))

			sw, sf, sb := newSession(t, whole), newSession(t, fwd), newSession(t, bwd)
			r := rand.New(rand.NewPCG(3, 4))
			for _, in := range whole.Inputs() {
				normal(r, sw.in[in.Name()])
				copy(sf.in[in.Name()], sw.in[in.Name()])
				copy(sb.in[in.Name()], sw.in[in.Name()])
			}
			sw.run(t)
			sf.run(t)
			for _, s := range saved {
				copy(sb.in["saved."+s.Name()], sf.out["saved."+s.Name()])
			}
			sb.run(t)
			check := func(name string, got, want []float32) {
				var d2, w2 float64
				for i := range want {
					d := float64(got[i]) - float64(want[i])
					d2 += d * d
					w2 += float64(want[i]) * float64(want[i])
				}
				if rel := math.Sqrt(d2 / w2); rel > 1e-6 || math.IsNaN(rel) {
					t.Errorf("%s: forward+backward differs from the whole graph by %.3g (relative L2)", name, rel)
				}
			}
			check("z", sf.out["z"], sw.out["z"])
			check("mean", sf.out["mean"], sw.out["mean"])
			for _, p := range gradOut {
				check(p.Name, sb.out[p.Name], sw.out[p.Name])
			}
		})
	}
}

// TestExtractRefusesMissingInputs checks that Extract names a graph input
// it needs but was not given.
func TestExtractRefusesMissingInputs(t *testing.T) {
	g := graph.New("g")
	x := g.Input("x", graph.Float, graph.Shape{2})
	y := g.Input("y", graph.Float, graph.Shape{2})
	s := g.Add(x, y)
	defer func() {
		if r := recover(); r == nil {
			t.Error("Extract without input y did not panic")
		} else {
			t.Log(r)
		}
	}()
	g.Extract("part", []graph.Port{{Name: "x", Value: x}}, []graph.Port{{Name: "s", Value: s}})
}
