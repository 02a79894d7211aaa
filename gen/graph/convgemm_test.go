package graph_test

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/simclr-ort/simclr-ort/gen/graph"
	"github.com/simclr-ort/simclr-ort/internal/gradcheck"
)

// TestConvsAsGemm: a graph whose convolutions (forward and the flipped
// convolutions of their input gradients) are rewritten as patches and one
// Gemm computes the same outputs and gradients as the graph with Conv
// nodes, for strides 1 and 2, paddings 0 and 1, odd sizes and 1x1 maps.
func TestConvsAsGemm(t *testing.T) {
	gradcheck.InitORT(t)
	cases := []struct {
		name                 string
		n, cin, cout, h, k   int64
		stride, pad          int64
		wantRewritten        int
		wantRewrittenAtLeast bool
	}{
		{"3x3 pad 1", 3, 4, 5, 4, 3, 1, 1, 2, false},    // forward + input gradient
		{"3x3 stride 2", 2, 3, 4, 5, 3, 2, 1, 1, false}, // input gradient is a ConvTranspose
		{"3x3 no pad", 2, 3, 2, 5, 3, 1, 0, 2, false},
		{"1x1 map", 4, 6, 3, 1, 3, 1, 1, 2, false},
		{"5x5 kernel", 2, 2, 3, 6, 5, 1, 2, 2, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			run := func(rewrite bool) (map[string][]float32, int) {
				g := graph.New("convgemm")
				x := g.Input("x", graph.Float, graph.Shape{c.n, c.cin, c.h, c.h})
				w := g.Input("w", graph.Float, graph.Shape{c.cout, c.cin, c.k, c.k})
				y := g.Conv(x, w, graph.ConvAttrs{Strides: []int64{c.stride, c.stride}, Pads: []int64{c.pad, c.pad, c.pad, c.pad}})
				r := rand.New(rand.NewPCG(9, 9))
				weights := make([]float32, y.Shape().Size())
				for i := range weights {
					weights[i] = float32(r.NormFloat64())
				}
				loss := g.ReduceSum(g.Mul(y, g.ConstFloat(y.Shape(), weights)), []int64{0, 1, 2, 3}, false)
				grads := g.Gradients(loss, []*graph.Value{x, w})
				g.Output("y", y)
				g.Output("dx", grads[0])
				g.Output("dw", grads[1])
				n := 0
				if rewrite {
					n = g.ConvsAsGemm(func(graph.ConvShape) bool { return true })
				}
				s := newSession(t, g)
				r = rand.New(rand.NewPCG(1, 2))
				normal(r, s.in["x"])
				normal(r, s.in["w"])
				s.run(t)
				return s.out, n
			}
			want, _ := run(false)
			got, n := run(true)
			if n != c.wantRewritten {
				t.Errorf("rewrote %d convolutions, want %d", n, c.wantRewritten)
			}
			for _, name := range []string{"y", "dx", "dw"} {
				if rel := gradcheck.RelL2(got[name], want[name]); !(rel < 1e-6) {
					t.Errorf("%s: relative L2 difference %.2g (want < 1e-6)", name, rel)
				}
			}
		})
	}
}

// TestConvsAsGemmKeepsNamesAndChoosesByShape: the rewritten output keeps
// its name; CPUConvAsGemm takes small maps and leaves large maps and 1x1
// kernels alone.
func TestConvsAsGemmKeepsNamesAndChoosesByShape(t *testing.T) {
	g := graph.New("names")
	x := g.Input("x", graph.Float, graph.Shape{2, 8, 16, 16})
	w1 := g.Input("w1", graph.Float, graph.Shape{8, 8, 3, 3})
	w2 := g.Input("w2", graph.Float, graph.Shape{8, 8, 3, 3})
	w3 := g.Input("w3", graph.Float, graph.Shape{8, 8, 1, 1})
	big := g.Conv(x, w1, graph.ConvAttrs{Pads: []int64{1, 1, 1, 1}})                             // 16x16 out: kept
	small := g.Conv(big, w2, graph.ConvAttrs{Strides: []int64{2, 2}, Pads: []int64{1, 1, 1, 1}}) // 8x8 out: rewritten
	point := g.Conv(small, w3, graph.ConvAttrs{})                                                // 1x1 kernel: kept
	g.Output("y", point)
	name := small.Name()
	if n := g.ConvsAsGemm(graph.CPUConvAsGemm); n != 1 {
		t.Fatalf("rewrote %d convolutions, want 1", n)
	}
	if small.Name() != name {
		t.Errorf("output renamed %s -> %s", name, small.Name())
	}
	convs, gemms := 0, 0
	for _, n := range g.Nodes() {
		switch n.Op.OpType() {
		case "Conv":
			convs++
			if strings.Contains(n.Name(), "as_gemm") {
				convs-- // the patches' one-hot convolution
			}
		case "Gemm":
			gemms++
		}
	}
	if convs != 2 || gemms != 1 {
		t.Errorf("%d Conv and %d Gemm nodes after the rewrite, want 2 and 1", convs, gemms)
	}
}
