package dist_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/simclr-ort/simclr-ort/graphs"
	"github.com/simclr-ort/simclr-ort/runtime/dist"
	"github.com/simclr-ort/simclr-ort/runtime/mpi"
)

// TestCopyShard checks the rank blocks of a loader batch whose rows are
// numbered: block s holds view 1 of images sn..sn+n-1, then view 2 of them.
func TestCopyShard(t *testing.T) {
	for _, c := range []struct{ shards, n, viewLen int }{
		{1, 3, 2}, {2, 1, 1}, {2, 3, 4}, {3, 2, 5}, {4, 4, 1},
	} {
		t.Run(fmt.Sprintf("shards%d-n%d-view%d", c.shards, c.n, c.viewLen), func(t *testing.T) {
			N := c.shards * c.n
			batch := make([]float32, 2*N*c.viewLen)
			for i := range batch {
				batch[i] = float32(i / c.viewLen) // the row number
			}
			for s := range c.shards {
				dst := make([]float32, 2*c.n*c.viewLen)
				dist.CopyShard(dst, batch, c.viewLen, c.shards, s)
				var want []float32
				for v := range 2 {
					for i := range c.n {
						row := v*N + s*c.n + i
						for range c.viewLen {
							want = append(want, float32(row))
						}
					}
				}
				if !slices.Equal(dst, want) {
					t.Errorf("block %d = %v, want %v", s, dst, want)
				}
			}
		})
	}
}

func TestCopyShardPanicsOnMismatch(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic for a destination of the wrong length")
		}
	}()
	dist.CopyShard(make([]float32, 3), make([]float32, 8), 1, 2, 0)
}

// TestBytesPerStep checks the payload arithmetic on a hand-made manifest.
func TestBytesPerStep(t *testing.T) {
	m := &graphs.Distributed{
		Manifest: graphs.Manifest{
			Config:  graphs.Config{Pairs: 4, ProjectionDim: 8},
			Params:  []graphs.Tensor{{Shape: []int64{10, 2}}, {Shape: []int64{5}}},
			Buffers: []graphs.Tensor{{Shape: []int64{7}}},
		},
		World: 3,
	}
	gather, grads, stats := dist.BytesPerStep(m)
	if want := int64(4 * 2 * 4 * 8 * 2); gather != want {
		t.Errorf("gather = %d, want %d", gather, want)
	}
	if grads != 4*25 || stats != 4*8 {
		t.Errorf("grads, stats = %d, %d, want 100, 32", grads, stats)
	}
}

// TestBroadcastFileSingleProcess: in a world of one the file is read, and a
// missing file is rank 0's own error.
func TestBroadcastFileSingleProcess(t *testing.T) {
	comm, err := mpi.Init(mpi.Launch{Size: 1})
	if err != nil {
		t.Fatal(err)
	}
	if comm.Size() != 1 {
		t.Skipf("launched as %d processes", comm.Size())
	}
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("checkpoint bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := dist.BroadcastFile(comm, path)
	if err != nil || string(got) != "checkpoint bytes" {
		t.Errorf("BroadcastFile = %q, %v", got, err)
	}
	_, err = dist.BroadcastFile(comm, path+".missing")
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want a not-exist error", err)
	}
}
