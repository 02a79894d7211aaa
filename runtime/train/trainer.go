package train

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/simclr-ort/simclr-ort/augment/data"
	"github.com/simclr-ort/simclr-ort/graphs"
	"github.com/simclr-ort/simclr-ort/internal/rundir"
	"github.com/simclr-ort/simclr-ort/runtime/metrics"
	"github.com/simclr-ort/simclr-ort/runtime/optim"
	"github.com/simclr-ort/simclr-ort/runtime/step"
)

// Trainer is one training run, set up: the data and its loader, the
// schedule, the ONNX Runtime step, the optimizer, the state (fresh or from
// the checkpoint) and the metrics. Step advances it; Finish ends it with a
// checkpoint. A Trainer is not safe for concurrent use.
type Trainer struct {
	o Options
	// cfg is this process's configuration, global the whole step's: the
	// same in one process, W ranks' together under mpirun.
	cfg, global graphs.Config
	world, rank int
	// threads and workers are this process's shares.
	threads, workers int

	ds       data.Dataset
	loader   *data.Loader
	perEpoch int
	total    int // steps of the whole run
	end      int64
	sched    optim.Schedule
	eng      engine
	opt      optim.Optimizer
	rep      *metrics.Reporter
	ckptPath string
	lock     *rundir.Lock
	eval     *evaluator
	// evals are the evaluations this invocation made.
	evals []metrics.Eval
	// lastSave is when the last checkpoint was written (or the run
	// started), for CheckpointEveryMinutes.
	lastSave time.Time

	res     Result
	started bool
	last    time.Time
	// interrupted is set when ctx ended the run; stopAll when another rank
	// asked every rank to stop.
	interrupted, stopAll bool
}

// New sets a run up as o says: every step of it that can fail does so here,
// before the first training step, with an error that names the flag or
// file to change.
func New(ctx context.Context, o Options) (*Trainer, error) {
	t := &Trainer{o: o}
	for _, setup := range []func(context.Context) error{
		t.resolveConfig,
		t.lockRunDir,
		t.openData,
		t.newLoader,
		t.newSchedule,
		t.newEngine,
		t.newOptimizer,
		t.restoreOrInitialize,
		t.newReporter,
		t.newEvaluator,
		t.startLoader,
	} {
		if err := setup(ctx); err != nil {
			t.Close()
			return nil, err
		}
	}
	return t, nil
}

// Done reports whether the invocation has nothing left to do: its last
// step is done, or it was interrupted.
func (t *Trainer) Done() bool {
	return t.res.Steps >= t.end || t.interrupted || t.stopAll
}

// Step runs one training step: the next batch, the graph, the optimizer,
// the metrics, and a checkpoint when one is due. On a single process, a
// cancelled ctx ends the run before the step (Done then reports true and
// Finish saves); under MPI every rank stops after the same step.
func (t *Trainer) Step(ctx context.Context) error {
	if t.Done() {
		return nil
	}
	if !t.started {
		if t.eval != nil && t.res.Steps == 0 {
			t.evaluate() // the random initialisation: where the trend starts
		}
		t.started = true
		t.last = time.Now()
		t.res.started = t.last
	}
	if ctx.Err() != nil && t.world == 1 {
		t.interrupted = true
		return nil
	}
	batch, err := t.loader.Next()
	if err != nil {
		if ctx.Err() != nil && t.world == 1 {
			t.interrupted = true
			return nil
		}
		return fmt.Errorf("train: step %d: %w", t.res.Steps, err)
	}
	t.eng.load(batch.Data)
	wait := batch.Wait
	batch.Release()
	loss, stopAll, err := t.eng.run(ctx.Err() != nil)
	switch {
	case errors.Is(err, step.ErrNonFinite):
		return fmt.Errorf("train: step %d diverged: %w; nothing was saved after it (%s); lower the learning rate or check the data", t.res.Steps, err, t.intact())
	case err != nil:
		return fmt.Errorf("train: step %d: %w; %s", t.res.Steps, err, t.intact())
	}
	lr := t.sched.LR(int(t.res.Steps))
	t.opt.Step(lr, t.eng.params(), t.eng.grads())
	t.eng.commit()
	now := time.Now()
	elapsed := now.Sub(t.last).Seconds()
	t.last = now
	t.res.Losses = append(t.res.Losses, float64(loss))
	done := t.res.Steps
	// The weights now hold this step: count it before anything can fail.
	t.res.Steps++
	if t.rep != nil {
		if err := t.rep.Report(metrics.Step{Step: done, Epoch: int(done) / t.perEpoch, Loss: float64(loss), LR: lr,
			StepSeconds: elapsed, DataWaitSeconds: wait.Seconds(), ImagesPerSecond: float64(t.global.Pairs) / elapsed,
			SkippedImages: t.loader.Stats().Skipped}); err != nil {
			return fmt.Errorf("train: %w", err)
		}
	}
	if stopAll {
		t.stopAll = true
		t.interrupted = ctx.Err() != nil
		return nil
	}
	if t.eval != nil && (t.res.Steps%int64(t.o.EvalEvery) == 0 || t.res.Steps == int64(t.total)) {
		t.evaluate()
	}
	if t.checkpointDue() {
		if err := t.Checkpoint(); err != nil {
			return err
		}
	}
	// The next step's time starts now: evaluations and checkpoints report
	// their own.
	t.last = time.Now()
	return nil
}

// Finish ends the invocation: a checkpoint of the steps done, the summary,
// and ctx's error when it interrupted the run.
func (t *Trainer) Finish(ctx context.Context) (*Result, error) {
	res := t.Result()
	if t.res.Steps == t.res.FirstStep && t.res.Steps >= int64(t.total) {
		fmt.Fprintf(t.o.Out, "the run already finished at step %d; to extend it, resume with --steps (or --epochs) beyond that\n", t.res.Steps)
		return res, nil
	}
	if err := t.Checkpoint(); err != nil {
		return res, err
	}
	res = t.Result()
	if res.Checkpoints > 1 {
		fmt.Fprintf(t.o.Out, "%d checkpoints written; training stood still %.2f s for them in all\n", res.Checkpoints, res.CheckpointSeconds)
	}
	if sum := t.eng.summary(); sum != "" && len(res.Losses) > 0 {
		fmt.Fprintln(t.o.Out, sum)
	}
	if res.Skipped > 0 {
		fmt.Fprintf(t.o.Out, "%d unreadable images were skipped (replaced by others); last error: %v\n", res.Skipped, t.loader.Stats().LastError)
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if t.stopAll {
		return res, fmt.Errorf("train: another rank was interrupted; rank 0 saved the checkpoint: %w", context.Canceled)
	}
	return res, nil
}

// Result is the run so far.
func (t *Trainer) Result() *Result {
	r := t.res
	r.Losses = append([]float64(nil), t.res.Losses...)
	r.Evals = append([]metrics.Eval(nil), t.evals...)
	if t.started {
		r.Wall = t.last.Sub(t.res.started)
	}
	if t.loader != nil {
		r.Skipped = t.loader.Stats().Skipped
	}
	return &r
}

// Close releases the loader, the metrics and ONNX Runtime's session.
func (t *Trainer) Close() error {
	var errs []error
	if t.loader != nil {
		t.loader.Close()
		t.loader = nil
	}
	if t.rep != nil {
		errs = append(errs, t.rep.Close())
		t.rep = nil
	}
	if t.eng != nil {
		errs = append(errs, t.eng.close())
		t.eng = nil
	}
	if t.lock != nil {
		errs = append(errs, t.lock.Release())
		t.lock = nil
	}
	return errors.Join(errs...)
}

func providerName(p string) string {
	if p == "" {
		return "cpu"
	}
	return p
}
