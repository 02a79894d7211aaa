package train_test

import (
	"context"
	"strings"
	"testing"

	"github.com/simclr-ort/simclr-ort/internal/gradcheck"
	"github.com/simclr-ort/simclr-ort/runtime/train"
)

// TestShardsResume: a --shards 2 run (the single-process equivalent of two
// ranks) resumes exactly with --shards 2 and refuses --shards 1, naming
// the launches that would continue it.
func TestShardsResume(t *testing.T) {
	gradcheck.InitORT(t)
	data := imageFolder(t, 12, 0)
	o := options(data, t.TempDir())
	o.Config.Shards, o.Steps = 2, 4
	straight, err := train.Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}

	o.OutDir, o.StopAfter = t.TempDir(), 2
	if _, err := train.Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	bad := o
	bad.Resume, bad.StopAfter, bad.Config.Shards = true, 0, 1
	_, err = train.Run(context.Background(), bad)
	if err == nil || !strings.Contains(err.Error(), "--batch-size 8 --shards 2") || !strings.Contains(err.Error(), "mpirun -np 2") {
		t.Fatalf("resume with one shard: %v, want an error naming --batch-size 8 --shards 2 and mpirun -np 2", err)
	}
	o.Resume, o.StopAfter = true, 0
	resumed, err := train.Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range resumed.Losses {
		if l != straight.Losses[2+i] {
			t.Errorf("step %d: resumed loss %v, straight %v", 2+i, l, straight.Losses[2+i])
		}
	}
}
