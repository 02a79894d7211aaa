//go:build mpi

// TestExactAgainstShardedGraph starts internal/disttest under mpirun:
//
//	go test -tags mpi ./runtime/dist
//
// It needs Open MPI (Debian: libopenmpi-dev openmpi-bin) and ONNX Runtime,
// and skips, saying so, without them.

package dist_test

import (
	"encoding/gob"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/simclr-ort/simclr-ort/gen"
	"github.com/simclr-ort/simclr-ort/graphs"
	"github.com/simclr-ort/simclr-ort/internal/gradcheck"
	"github.com/simclr-ort/simclr-ort/runtime/dist"
	"github.com/simclr-ort/simclr-ort/runtime/ort"
	"github.com/simclr-ort/simclr-ort/runtime/step"
)

// The tolerances: W ranks of n pairs against one process of Wn
// pairs in W BatchNorm shards.
const (
	tolLoss  = 1e-5 // relative
	tolGrad  = 1e-4 // relative L2, per tensor
	tolStats = 1e-5 // relative L2, per tensor
)

// result mirrors internal/disttest's Result.
type result struct {
	World             int
	Views             []float32
	Params, Buffers   [][]float32
	Loss              float32
	Grads, NewBuffers [][]float32
	LossesAgree       bool
	MallocsPerStep    uint64
	StopAllWhenAsked  bool
}

func buildDisttest(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("mpirun"); err != nil {
		t.Skip("mpirun not found: install Open MPI (apt-get install libopenmpi-dev openmpi-bin), then go test -tags mpi ./runtime/dist")
	}
	gradcheck.InitORT(t)
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "disttest")
	if out, err := exec.Command(goBin, "build", "-tags", "mpi", "-o", bin, "./internal/disttest").CombinedOutput(); err != nil {
		t.Fatalf("go build -tags mpi ./internal/disttest: %v\n%s", err, out)
	}
	return bin
}

// TestExactAgainstShardedGraph: W ranks of n pairs under mpirun give the
// loss, gradients and running statistics of one process of W·n pairs in W
// BatchNorm shards. The small cases keep Conv nodes (gen.Options.ConvNodes),
// where each view's result does not depend on its batch, and so check the
// protocol on tiny, badly conditioned batches; the "gemm" cases use the
// default graphs, whose patches+Gemm convolutions round by the batch's
// column count, at sizes where float32 is well conditioned (measured:
// loss <= 1.2e-7, gradients <= 2.1e-6, running statistics <= 1.3e-7).
func TestExactAgainstShardedGraph(t *testing.T) {
	bin := buildDisttest(t)
	for _, c := range []struct {
		np, pairs, size int
		stem            string
		gemm            bool
	}{
		{2, 2, 8, "cifar", false},
		{2, 4, 16, "imagenet", false},
		{3, 2, 8, "cifar", false},
		{2, 16, 16, "imagenet", true},
		{2, 32, 28, "imagenet", true},
	} {
		t.Run(fmt.Sprintf("np%d-n%d-%s%d-gemm%v", c.np, c.pairs, c.stem, c.size, c.gemm), func(t *testing.T) {
			opts := gen.Options{ConvNodes: !c.gemm}
			out := filepath.Join(t.TempDir(), "result.gob")
			start := time.Now()
			cmd := exec.Command("mpirun", "--oversubscribe", "-np", strconv.Itoa(c.np), bin,
				"-stem", c.stem, "-size", strconv.Itoa(c.size), "-pairs", strconv.Itoa(c.pairs), "-out", out,
				"-conv-nodes="+strconv.FormatBool(opts.ConvNodes))
			cmd.Env = append(os.Environ(), "OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("mpirun: %v\n%s", err, b)
			}
			t.Logf("mpirun -np %d: %v", c.np, time.Since(start).Round(time.Millisecond))
			var got result
			f, err := os.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := gob.NewDecoder(f).Decode(&got); err != nil {
				t.Fatal(err)
			}
			if !got.LossesAgree {
				t.Error("the ranks computed different losses")
			}
			if !got.StopAllWhenAsked {
				t.Error("the last rank's stop wish did not reach rank 0")
			}
			t.Logf("heap allocations in one later step on rank 0: %d", got.MallocsPerStep)

			cfg := graphs.Config{Arch: "resnet18", Stem: c.stem, ImageSize: c.size, Pairs: c.pairs * c.np, ProjectionDim: 16, Shards: c.np}
			b, err := gen.BuildWith(cfg, opts)
			if err != nil {
				t.Fatal(err)
			}
			md, err := step.New(b.Manifest, b.Train, ort.Options{IntraOpThreads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer md.Close()
			for i := range md.Params {
				copy(md.Params[i], got.Params[i])
			}
			for i := range md.Buffers {
				copy(md.Buffers[i], got.Buffers[i])
			}
			viewLen := 3 * c.size * c.size
			block := len(got.Views) / c.np
			for s := range c.np {
				dist.CopyShard(md.Views[s*block:(s+1)*block], got.Views, viewLen, c.np, s)
			}
			loss, err := md.Run()
			if err != nil {
				t.Fatal(err)
			}
			if d := math.Abs(float64(got.Loss-loss)) / math.Abs(float64(loss)); d > tolLoss {
				t.Errorf("loss: %d ranks %v, one process %v: relative difference %.3g > %g", c.np, got.Loss, loss, d, tolLoss)
			} else {
				t.Logf("loss %v vs %v: relative difference %.3g", got.Loss, loss, d)
			}
			worst, worstName := 0.0, ""
			for i, p := range b.Manifest.Params {
				d := gradcheck.RelL2(got.Grads[i], md.Grads[i])
				if d > worst {
					worst, worstName = d, p.Name
				}
				if d > tolGrad {
					t.Errorf("gradient of %s: relative L2 difference %.3g > %g", p.Name, d, tolGrad)
				}
			}
			t.Logf("gradients: worst relative L2 difference %.3g (%s)", worst, worstName)
			worst = 0
			for i, bf := range b.Manifest.Buffers {
				d := gradcheck.RelL2(got.NewBuffers[i], md.NewBuffers[i])
				worst = max(worst, d)
				if d > tolStats {
					t.Errorf("running statistic %s: relative L2 difference %.3g > %g", bf.Name, d, tolStats)
				}
			}
			t.Logf("running statistics: worst relative L2 difference %.3g", worst)
		})
	}
}
