package eval

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/diff/fd"
)

// TestLinearObjectiveGradient checks the linear probe's hand-written
// cross-entropy gradient against central finite differences, with and
// without the L2 penalty.
func TestLinearObjectiveGradient(t *testing.T) {
	const (
		n, dim, classes = 40, 6, 4
		width           = dim + 1
		tol             = 1e-7 // relative L2; central differences of a smooth float64 function
	)
	r := rand.New(rand.NewPCG(1, 2))
	x := make([]float64, n*dim)
	for i := range x {
		x[i] = r.NormFloat64()
	}
	labels := make([]int, n)
	for i := range labels {
		labels[i] = r.IntN(classes)
	}
	w := make([]float64, classes*width)
	for i := range w {
		w[i] = 0.3 * r.NormFloat64()
	}
	for _, l2 := range []float64{0, 1e-2} {
		obj := newLinearObjective(x, labels, dim, classes, l2)
		f := func(w []float64) float64 {
			return objective(w, nil, obj.x, labels, classes, width, l2, obj.logits)
		}
		got := make([]float64, len(w))
		objective(w, got, obj.x, labels, classes, width, l2, obj.logits)
		want := fd.Gradient(nil, f, w, &fd.Settings{Formula: fd.Central, Step: 1e-5})
		var diff, norm float64
		worst, at := 0.0, 0
		for i := range want {
			d := got[i] - want[i]
			diff += d * d
			norm += want[i] * want[i]
			if math.Abs(d) > worst {
				worst, at = math.Abs(d), i
			}
		}
		if rel := math.Sqrt(diff / norm); rel > tol {
			t.Errorf("l2 %g: gradient %.2e relative L2 from central differences (> %g); worst element %d: %g vs %g", l2, rel, tol, at, got[at], want[at])
		}
	}
}
