// Package plot draws what a person looks at to judge a simclr-ort run:
// the training curves of RUNDIR/metrics.jsonl (loss, learning rate,
// throughput, data wait, kNN accuracy against steps), a 2-D PCA map of a
// set of features coloured by class, and a nearest-neighbour grid (query
// images, each followed by the training images whose features are most
// similar). Every figure is written as PNG and SVG (gonum.org/v1/plot),
// atomically.
//
// The package draws; it runs no model. Features come from
// runtime/eval.Features or from the .npy files of `simclr-ort embed`.
package plot
