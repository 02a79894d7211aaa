package train

import (
	"runtime"
	"strings"
	"testing"

	"github.com/simclr-ort/simclr-ort/graphs"
	"github.com/simclr-ort/simclr-ort/runtime/checkpoint"
)

func TestCheckWorld(t *testing.T) {
	cfg := func(pairs, shards int) graphs.Config {
		return graphs.Config{Arch: "resnet18", Pairs: pairs, Shards: shards}.Defaults()
	}
	for _, c := range []struct {
		name       string
		ck, run    graphs.Config
		world      int
		wantSubstr []string // empty: no error
	}{
		{"same single", cfg(32, 0), cfg(32, 0), 1, nil},
		{"same world", cfg(32, 2), cfg(32, 2), 2, nil},
		{"two ranks resumed by one process in two shards", cfg(32, 2), cfg(32, 2), 1, nil},
		{"batch size alone is Compatible's", cfg(32, 0), cfg(16, 0), 1, nil},
		{"two ranks resumed by four", cfg(32, 2), cfg(32, 4), 4, []string{"2 ranks (BatchNorm shards) of 16 pairs", "4 ranks (BatchNorm shards) of 8 pairs", "mpirun -np 2 ... --batch-size 16", "--batch-size 32 --shards 2"}},
		{"single resumed by two ranks", cfg(32, 0), cfg(32, 2), 2, []string{"one rank of 32 pairs", "one process with --batch-size 32"}},
		{"two ranks of another batch", cfg(32, 2), cfg(16, 2), 2, []string{"of 16 pairs", "of 8 pairs", "--batch-size 16"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := checkWorld(&checkpoint.Checkpoint{Config: c.ck}, c.run, c.world)
			if len(c.wantSubstr) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, s := range c.wantSubstr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
		})
	}
}

func TestPerProcess(t *testing.T) {
	if got := perProcess(3, 8); got != 3 {
		t.Errorf("perProcess(3, 8) = %d, want the explicit 3", got)
	}
	if got := perProcess(0, 1<<20); got != 1 {
		t.Errorf("perProcess(0, huge local count) = %d, want at least 1", got)
	}
	if got := perProcess(0, 1); got != runtime.NumCPU() {
		t.Errorf("perProcess with one local rank = %d, want every core (%d)", got, runtime.NumCPU())
	}
	if got := perProcess(0, 0); got != runtime.NumCPU() {
		t.Errorf("perProcess with an unknown local count = %d, want every core (%d)", got, runtime.NumCPU())
	}
}
