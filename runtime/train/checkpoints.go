package train

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/simclr-ort/simclr-ort/internal/atomicfile"
	"github.com/simclr-ort/simclr-ort/runtime/checkpoint"
)

// checkpointDue says whether the step just done ends a checkpoint period
// (epochs, steps or minutes) before the invocation's last step, which
// Finish saves anyway.
func (t *Trainer) checkpointDue() bool {
	if t.res.Steps >= t.end {
		return false
	}
	o, done := t.o, t.res.Steps
	return o.CheckpointEvery > 0 && done%int64(t.perEpoch*o.CheckpointEvery) == 0 ||
		o.CheckpointEverySteps > 0 && done%int64(o.CheckpointEverySteps) == 0 ||
		o.CheckpointEveryMinutes > 0 && time.Since(t.lastSave).Minutes() >= o.CheckpointEveryMinutes
}

// intact says which checkpoint a failure leaves, for its error.
func (t *Trainer) intact() string {
	if t.res.Checkpoint == "" {
		return "no checkpoint was written yet"
	}
	return fmt.Sprintf("the last checkpoint, %s (step %d), is intact: continue with --resume %s", t.res.Checkpoint, t.res.CheckpointStep, t.o.OutDir)
}

// Checkpoint writes the run's state after the steps done so far (rank 0;
// the other ranks have nothing to write). A failure leaves the previous
// checkpoint as it was, and the error says so.
func (t *Trainer) Checkpoint() error {
	if t.rank != 0 {
		return nil
	}
	began := time.Now()
	if err := t.saveCheckpoint(); errors.Is(err, atomicfile.ErrUnsynced) {
		// In place, but maybe not durable: the previous one is gone.
		t.res.Checkpoint, t.res.CheckpointStep = t.ckptPath, t.res.Steps
		fmt.Fprintf(t.o.Out, "warning: checkpoint of step %d: %v\n", t.res.Steps, err)
	} else if err != nil {
		return fmt.Errorf("train: save the checkpoint of step %d: %w; %s", t.res.Steps, err, t.intact())
	}
	t.lastSave = time.Now()
	t.res.Checkpoints++
	t.res.CheckpointSeconds += t.lastSave.Sub(began).Seconds()
	return nil
}

func (t *Trainer) saveCheckpoint() error {
	ck, err := checkpoint.New(t.eng.manifest(), t.eng.params(), t.eng.buffers(), t.opt.State())
	if err != nil {
		return err
	}
	done := t.res.Steps
	ck.Step = done
	ck.Epoch, ck.StepInEpoch = int(done)/t.perEpoch, int(done)%t.perEpoch
	ck.Seed = t.o.Seed
	ck.Schedule = t.sched
	ck.Meta = map[string]string{"version": t.o.Version, "data": t.o.Data, "optimizer": t.opt.State().Kind,
		"world": strconv.Itoa(t.world), "pairs_per_process": strconv.Itoa(t.cfg.Pairs)}
	if len(t.o.RunConfig) > 0 {
		ck.Meta[metaConfig] = string(t.o.RunConfig)
	}
	if err := t.keepPrevious(); err != nil {
		return err
	}
	if err := checkpoint.Save(t.ckptPath, ck); err != nil {
		return err
	}
	t.res.Checkpoint, t.res.CheckpointStep = t.ckptPath, done
	return nil
}

// keepPrevious keeps the checkpoint about to be replaced as
// checkpoint-STEP.ckpt (a hard link) when KeepCheckpoints asks for more
// than one, and removes the numbered ones beyond it.
func (t *Trainer) keepPrevious() error {
	keep := max(t.o.KeepCheckpoints, 1)
	if keep == 1 || t.res.Checkpoint == "" || t.res.CheckpointStep == t.res.Steps {
		return nil
	}
	old := filepath.Join(t.o.OutDir, fmt.Sprintf("checkpoint-%08d.ckpt", t.res.CheckpointStep))
	if err := os.Link(t.ckptPath, old); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("keep the previous checkpoint as %s: %w", old, err)
	}
	numbered, _ := filepath.Glob(filepath.Join(t.o.OutDir, "checkpoint-*.ckpt"))
	sort.Strings(numbered) // zero-padded steps: oldest first
	for len(numbered) > keep-1 {
		os.Remove(numbered[0])
		numbered = numbered[1:]
	}
	return nil
}
