package eval

import (
	"container/heap"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/simclr-ort/simclr-ort/internal/gradcheck"
	"github.com/simclr-ort/simclr-ort/runtime/ort"
)

// referenceKNN is the kNN protocol written out directly (a heap of the k
// most similar training features per query), for TestKNNIndexMatchesReference.
func referenceKNN(train []float32, labels []int, test []float32, dim, k int, temperature float64) []int {
	tr, te := normalised(train, dim), normalised(test, dim)
	classes := 0
	for _, l := range labels {
		classes = max(classes, l+1)
	}
	out := make([]int, len(te)/dim)
	for q := range out {
		h := &topK{}
		for i := range labels {
			var s float32
			for j := 0; j < dim; j++ {
				s += te[q*dim+j] * tr[i*dim+j]
			}
			if h.Len() < k {
				heap.Push(h, neighbour{s, labels[i]})
			} else if s > (*h)[0].sim {
				(*h)[0] = neighbour{s, labels[i]}
				heap.Fix(h, 0)
			}
		}
		votes := make([]float64, classes)
		for _, nb := range *h {
			votes[nb.label] += math.Exp(float64(nb.sim) / temperature)
		}
		for c := range votes {
			if votes[c] > votes[out[q]] {
				out[q] = c
			}
		}
	}
	return out
}

type neighbour struct {
	sim   float32
	label int
}

type topK []neighbour

func (h topK) Len() int           { return len(h) }
func (h topK) Less(i, j int) bool { return h[i].sim < h[j].sim }
func (h topK) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *topK) Push(x any)        { *h = append(*h, x.(neighbour)) }
func (h *topK) Pop() any          { old := *h; x := old[len(old)-1]; *h = old[:len(old)-1]; return x }

// TestKNNIndexMatchesReference: ONNX Runtime's Gemm and TopK predict what
// the direct computation predicts, over a partial last block.
func TestKNNIndexMatchesReference(t *testing.T) {
	gradcheck.InitORT(t)
	r := rand.New(rand.NewPCG(3, 4))
	const n, m, dim, k, classes = 700, 300, 16, 20, 5
	feat := func(rows int) ([]float32, []int) {
		f, l := make([]float32, rows*dim), make([]int, rows)
		for i := range l {
			l[i] = r.IntN(classes)
			for j := 0; j < dim; j++ {
				f[i*dim+j] = float32(r.NormFloat64())
				if j == l[i] {
					f[i*dim+j] += 1.5
				}
			}
		}
		return f, l
	}
	train, labels := feat(n)
	test, _ := feat(m)
	got, err := KNNPredict(train, labels, test, dim, k, 0.1, ort.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	want := referenceKNN(train, labels, test, dim, k, 0.1)
	differ := 0
	for i := range want {
		if got[i] != want[i] {
			differ++
		}
	}
	// Float32 rounding of the similarities may swap neighbours at ties
	// within 1e-7; the votes then almost always agree.
	if differ > 1 {
		t.Errorf("%d of %d predictions differ from the direct computation", differ, m)
	}
	if _, err := NewKNNIndex(train, labels, dim, n+1, ort.Options{}); err == nil {
		t.Error("k larger than the training set was accepted")
	}
}
