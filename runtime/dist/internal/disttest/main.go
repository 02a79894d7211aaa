// Command disttest is one rank of the exactness check of runtime/dist: run
// under mpirun (built with -tags mpi), every rank runs dist.Step on its
// block of a seeded global batch, and rank 0 writes the views, the initial
// state and the step's results to a gob file that the test compares with
// the single-process graph of the same global batch in BatchNorm shards.
package main

import (
	"encoding/gob"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"

	"github.com/simclr-ort/simclr-ort/gen"
	"github.com/simclr-ort/simclr-ort/graphs"
	"github.com/simclr-ort/simclr-ort/runtime/dist"
	"github.com/simclr-ort/simclr-ort/runtime/mpi"
	"github.com/simclr-ort/simclr-ort/runtime/ort"
	"github.com/simclr-ort/simclr-ort/runtime/step"
)

// Result is what rank 0 writes (the test decodes the same fields).
type Result struct {
	World int
	// Views is the global batch in loader layout: view 1 of image i at row
	// i, view 2 at row i+Wn.
	Views            []float32
	Params, Buffers  [][]float32
	Loss             float32
	Grads            [][]float32
	NewBuffers       [][]float32
	LossesAgree      bool   // every rank saw rank 0's loss bits
	MallocsPerStep   uint64 // heap allocations of one later Run on rank 0
	StopAllWhenAsked bool   // a stop wish of the last rank reached rank 0
}

func main() {
	arch := flag.String("arch", "resnet18", "architecture")
	stem := flag.String("stem", "cifar", "stem")
	size := flag.Int("size", 8, "image size")
	pairs := flag.Int("pairs", 2, "pairs per rank")
	out := flag.String("out", "", "result file (rank 0)")
	convNodes := flag.Bool("conv-nodes", false, "keep every convolution a Conv node (gen.Options.ConvNodes)")
	flag.Parse()
	if err := run(*arch, *stem, *size, *pairs, *out, gen.Options{ConvNodes: *convNodes}); err != nil {
		fmt.Fprintln(os.Stderr, "disttest:", err)
		os.Exit(1)
	}
}

func run(arch, stem string, size, pairs int, out string, opts gen.Options) error {
	for k, v := range mpi.Tuning {
		if _, set := os.LookupEnv(k); !set {
			os.Setenv(k, v)
		}
	}
	launch, err := mpi.DetectLaunch(os.Getenv)
	if err != nil {
		return err
	}
	comm, err := mpi.Init(launch)
	if err != nil {
		return err
	}
	if err := ort.Init(""); err != nil {
		comm.Abort(1, err.Error())
	}
	w, r := comm.Size(), comm.Rank()
	cfg := graphs.Config{Arch: arch, Stem: stem, ImageSize: size, Pairs: pairs, ProjectionDim: 16}
	b, err := gen.BuildDistributed(cfg, w, opts)
	if err != nil {
		comm.Abort(1, err.Error())
	}
	split, err := step.NewSplit(b.Manifest, b.Forward, b.Loss, b.Backward, r, ort.Options{IntraOpThreads: 1})
	if err != nil {
		comm.Abort(1, err.Error())
	}
	defer split.Close()
	st, err := dist.New(comm, split)
	if err != nil {
		comm.Abort(1, err.Error())
	}

	// Every rank draws the same global batch; rank 0 alone the state,
	// perturbed so that no BatchNorm parameter or statistic is special.
	viewLen := 3 * size * size
	views := make([]float32, 2*w*pairs*viewLen)
	vr := rand.New(rand.NewPCG(11, 12))
	for i := range views {
		views[i] = vr.Float32()
	}
	dist.CopyShard(split.Views, views, viewLen, w, r)
	if r == 0 {
		pr := rand.New(rand.NewPCG(13, 14))
		split.Initialize(pr)
		for _, group := range [][][]float32{split.Params, split.Buffers} {
			for _, t := range group {
				for i := range t {
					t[i] += float32(0.1 * pr.NormFloat64())
				}
			}
		}
		for i, t := range b.Manifest.Buffers { // variances stay positive
			if t.Role == "bn_running_var" {
				for j := range split.Buffers[i] {
					split.Buffers[i][j] = 1 + 0.5*pr.Float32()
				}
			}
		}
	}
	if err := st.SyncState(); err != nil {
		comm.Abort(1, err.Error())
	}
	res := Result{World: w, Views: views, Params: clone(split.Params), Buffers: clone(split.Buffers)}

	loss, stopAll, err := st.Run(false)
	if err != nil || stopAll {
		comm.Abort(1, fmt.Sprintf("step: %v (stopAll %v)", err, stopAll))
	}
	res.Loss, res.Grads, res.NewBuffers = loss, clone(split.Grads), clone(split.NewBuffers)
	agree := []float32{loss}
	if err := comm.Broadcast(agree, 0); err != nil {
		comm.Abort(1, err.Error())
	}
	same := []float32{0}
	if agree[0] != loss {
		same[0] = 1
	}
	if err := comm.AllreduceSum(same); err != nil {
		comm.Abort(1, err.Error())
	}
	res.LossesAgree = same[0] == 0

	// A second step, its allocations counted, with a stop wish from the
	// last rank only.
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, stopAll, err = st.Run(r == w-1)
	runtime.ReadMemStats(&after)
	if err != nil {
		comm.Abort(1, err.Error())
	}
	res.MallocsPerStep = after.Mallocs - before.Mallocs
	res.StopAllWhenAsked = stopAll

	if r == 0 {
		f, err := os.Create(out)
		if err != nil {
			comm.Abort(1, err.Error())
		}
		if err := gob.NewEncoder(f).Encode(&res); err != nil {
			comm.Abort(1, err.Error())
		}
		if err := f.Close(); err != nil {
			comm.Abort(1, err.Error())
		}
	}
	return comm.Finalize()
}

func clone(ts [][]float32) [][]float32 {
	out := make([][]float32, len(ts))
	for i, t := range ts {
		out[i] = append([]float32(nil), t...)
	}
	return out
}
