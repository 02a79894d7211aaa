package simclr

import (
	"math"
	"testing"

	"github.com/simclr-ort/simclr-ort/gen/graph"
	"github.com/simclr-ort/simclr-ort/internal/gradcheck"
)

// tolProjectorLoss bounds the relative error of the projector + NT-Xent
// gradients against central differences (float32 ops, float64 loss sum).
const tolProjectorLoss = 2e-3

// TestProjectorAndNTXentGradients checks, by finite differences, the
// gradient of NT-Xent through the projector with respect to h and both
// projector weights.
func TestProjectorAndNTXentGradients(t *testing.T) {
	gradcheck.InitORT(t)
	for _, temperature := range []float64{0.5, 0.1} {
		gradcheck.Check(t, gradcheck.Case{
			Name: "projector+ntxent",
			Inputs: []gradcheck.Input{
				{Name: "h", Shape: graph.Shape{6, 5}, Init: gradcheck.Uniform(0, 1)},
				{Name: "w0", Shape: graph.Shape{5, 5}},
				{Name: "w2", Shape: graph.Shape{4, 5}},
			},
			Build: func(g *graph.Graph, in []*graph.Value) []*graph.Value {
				q := g.Relu(g.Gemm(in[0], in[1], 1, false, true))
				z := g.Gemm(q, in[2], 1, false, true)
				return []*graph.Value{ntXent(g, z, temperature, 1, 0)}
			},
			Epsilon:   1e-2,
			Tolerance: tolProjectorLoss,
		})
	}
}

// TestNTXentValue compares the graph's loss with a direct float64
// computation of the reference NT-Xent for a fixed z, in one block and in
// rank-major blocks whose positives stay within the block.
func TestNTXentValue(t *testing.T) {
	gradcheck.InitORT(t)
	z := [][]float64{{1, 0, 0.5}, {0.2, 1, -0.3}, {0.9, 0.1, 0.4}, {0.1, 0.8, -0.1},
		{-0.4, 0.3, 0.7}, {0.5, -0.6, 0.2}, {-0.3, 0.2, 0.9}, {0.6, -0.5, 0.1}}
	const temperature = 0.5
	views := len(z)
	norm := func(v []float64) float64 { return math.Sqrt(v[0]*v[0] + v[1]*v[1] + v[2]*v[2]) }
	flat := make([]float32, 0, 3*views)
	for _, row := range z {
		for _, x := range row {
			flat = append(flat, float32(x))
		}
	}
	for _, shards := range []int{1, 2, 4} {
		block := views / shards
		var want float64
		for i := 0; i < views; i++ {
			start := i / block * block
			positive := start + (i-start+block/2)%block
			var denom, pos float64
			for j := 0; j < views; j++ {
				if j == i {
					continue
				}
				s := (z[i][0]*z[j][0] + z[i][1]*z[j][1] + z[i][2]*z[j][2]) / (norm(z[i]) * norm(z[j])) / temperature
				denom += math.Exp(s)
				if j == positive {
					pos = s
				}
			}
			want += math.Log(denom) - pos
		}
		want /= float64(views)
		got := gradcheck.Eval(t, func(g *graph.Graph) *graph.Value {
			return ntXent(g, g.ConstFloat(graph.Shape{int64(views), 3}, flat), temperature, shards, 0)
		})
		if math.Abs(float64(got[0])-want) > 1e-6*math.Abs(want) {
			t.Errorf("%d blocks: NT-Xent = %.7f, want %.7f", shards, got[0], want)
		} else {
			t.Logf("%d blocks: NT-Xent = %.7f, reference %.7f", shards, got[0], want)
		}
	}
}
