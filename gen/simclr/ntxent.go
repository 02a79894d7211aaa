package simclr

import (
	"fmt"

	"github.com/simclr-ort/simclr-ort/gen/graph"
)

// maskedLogit is added to each view's similarity with itself: large enough
// that exp underflows to exactly 0, finite so that 0·mask stays 0 (a -inf
// mask times a zero one-hot gives NaN).
const maskedLogit = -1e9

// ntXent is the NT-Xent loss over z [2N,p]: cosine similarities divided by
// the temperature, for view i the positive is view (i+N) mod 2N and the other
// 2N-2 views are negatives; cross-entropy averaged over the 2N views. It
// returns the loss with shape [1].
//
// With shards > 1 the rows of z are that many rank-major blocks of 2n views
// (n = N/shards), each [view 1 of its n images; view 2 of them]: view i's
// positive is the other view of its image within its block, every other
// view of all blocks is a negative, and the mean is over all 2N views.
//
// positiveShift moves every view's positive that many views further: 0
// but in the MutantNTXentPositive mutant.
func ntXent(g *graph.Graph, z *graph.Value, temperature float64, shards int, positiveShift int64) *graph.Value {
	var loss *graph.Value
	g.WithScope("ntxent", func() {
		views := z.Shape()[0]
		if shards < 1 || views%(2*int64(shards)) != 0 {
			panic(fmt.Sprintf("simclr: NT-Xent over %d views in %d blocks of view pairs", views, shards))
		}
		block := views / int64(shards)
		half := block / 2
		// L2 normalisation: z / ‖z‖ per row.
		norm := g.Sqrt(g.ReduceSum(g.Mul(z, z), []int64{1}, true))
		unit := g.Div(z, norm)
		logits := g.Gemm(unit, unit, float32(1/temperature), false, true)
		mask := make([]float32, views*views)
		pick := make([]float32, views*views)
		for i := int64(0); i < views; i++ {
			mask[i*views+i] = maskedLogit
			start := i / block * block
			pick[i*views+start+(i-start+half+positiveShift)%block] = -1 / float32(views)
		}
		logProbs := g.LogSoftmax(g.Add(logits, g.ConstFloat(graph.Shape{views, views}, mask)))
		// -mean over views of the positive's log-probability.
		picked := g.Mul(logProbs, g.ConstFloat(graph.Shape{views, views}, pick))
		loss = g.Reshape(g.ReduceSum(picked, []int64{0, 1}, true), graph.Shape{1})
	})
	return loss
}
