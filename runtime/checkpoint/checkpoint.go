package checkpoint

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/simclr-ort/simclr-ort/graphs"
	"github.com/simclr-ort/simclr-ort/runtime/optim"
)

// FormatVersion is the version of the file format Save writes and Load
// reads.
const FormatVersion = 1

// ErrCorrupt is matched, through errors.Is, by the errors Load and Decode
// return for a file that is truncated, damaged or not a checkpoint.
var ErrCorrupt = errors.New("checkpoint: file is truncated, corrupt or not a checkpoint")

// Tensor is a named float32 tensor.
type Tensor struct {
	// Name is the manifest's name, e.g. "encoder.conv1.weight".
	Name string
	// Shape is the manifest's shape; an empty shape is a scalar.
	Shape []int64
	// Data holds the product of Shape values, row-major.
	Data []float32
}

// Checkpoint is the full state of a training run.
type Checkpoint struct {
	// Version is the file format version. Load sets it; Save ignores it and
	// writes FormatVersion.
	Version int

	// ManifestIdentity is graphs.Manifest.Identity() of the run's graphs.
	ManifestIdentity string
	// Config is the graph configuration of the run.
	Config graphs.Config

	// Step is the number of optimizer steps done; it is also the position
	// in the learning-rate schedule of the next step.
	Step int64
	// Epoch is the epoch the next step belongs to, counted from 0.
	Epoch int
	// StepInEpoch is the number of steps of Epoch already done. With Seed
	// and Epoch it gives the data loader's position: the loader's order and
	// views are a function of (Seed, Epoch, position).
	StepInEpoch int
	// Seed is the run's --seed.
	Seed uint64

	// Schedule holds the learning-rate schedule's parameters, so a resumed
	// run can check that it continues the same schedule (see
	// CheckSchedule).
	Schedule optim.Schedule
	// Optimizer is the optimizer's state; Slots[k][t] belongs to Params[t].
	Optimizer optim.State

	// Params are the trainable tensors, in manifest order.
	Params []Tensor
	// Buffers are the BatchNorm running statistics, in manifest order.
	Buffers []Tensor

	// Meta holds free-form facts about the run, such as its command line
	// and the simclr-ort version; it is not interpreted.
	Meta map[string]string
	// Saved is the wall-clock time of saving. Save records the time now
	// when Saved is zero, and Saved otherwise.
	Saved time.Time
}

// New returns a checkpoint of the state described by m, holding params,
// buffers and opt without copying them: the checkpoint's tensors alias the
// caller's buffers, so Save streams straight from them. Fill in the run's
// position (Step, Epoch, StepInEpoch, Seed, Schedule, Meta) before saving,
// and do not change the buffers while Save runs.
func New(m *graphs.Manifest, params, buffers [][]float32, opt optim.State) (*Checkpoint, error) {
	ps, err := alias("parameter", m.Params, params)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: new for %s: %w", m.Config.Name(), err)
	}
	bs, err := alias("buffer", m.Buffers, buffers)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: new for %s: %w", m.Config.Name(), err)
	}
	return &Checkpoint{
		ManifestIdentity: m.Identity(),
		Config:           m.Config,
		Optimizer:        opt,
		Params:           ps,
		Buffers:          bs,
	}, nil
}

// alias pairs manifest tensors with data of the right lengths.
func alias(kind string, specs []graphs.Tensor, data [][]float32) ([]Tensor, error) {
	if len(data) != len(specs) {
		return nil, fmt.Errorf("got %d %s tensors, the manifest has %d", len(data), kind, len(specs))
	}
	out := make([]Tensor, len(specs))
	for i, s := range specs {
		if int64(len(data[i])) != s.Size() {
			return nil, fmt.Errorf("%s %d (%s) has %d values, its shape %v needs %d", kind, i, s.Name, len(data[i]), s.Shape, s.Size())
		}
		out[i] = Tensor{Name: s.Name, Shape: s.Shape, Data: data[i]}
	}
	return out, nil
}

// Restore copies the checkpoint's parameters and running statistics into
// params and buffers, which must be laid out as m says. It checks every
// name, shape and length first and copies nothing when any differs, so a
// failed Restore leaves the buffers as they were. Restore the optimizer
// with its SetState(ck.Optimizer).
func (ck *Checkpoint) Restore(m *graphs.Manifest, params, buffers [][]float32) error {
	if err := check("parameter", ck.Params, m.Params, params); err != nil {
		return fmt.Errorf("checkpoint: restore into %s: %w; resume with the configuration the checkpoint was written for", m.Config.Name(), err)
	}
	if err := check("buffer", ck.Buffers, m.Buffers, buffers); err != nil {
		return fmt.Errorf("checkpoint: restore into %s: %w; resume with the configuration the checkpoint was written for", m.Config.Name(), err)
	}
	for i, t := range ck.Params {
		copy(params[i], t.Data)
	}
	for i, t := range ck.Buffers {
		copy(buffers[i], t.Data)
	}
	return nil
}

// check reports the first difference between a checkpoint's tensors, the
// manifest's and the destination buffers.
func check(kind string, have []Tensor, specs []graphs.Tensor, dst [][]float32) error {
	if len(have) != len(specs) {
		return fmt.Errorf("the checkpoint has %d %s tensors, the manifest %d", len(have), kind, len(specs))
	}
	if len(dst) != len(specs) {
		return fmt.Errorf("got %d %s buffers for %d tensors", len(dst), kind, len(specs))
	}
	for i, s := range specs {
		t := have[i]
		switch {
		case t.Name != s.Name:
			return fmt.Errorf("%s %d is %s in the checkpoint but %s in the manifest", kind, i, t.Name, s.Name)
		case !slices.Equal(t.Shape, s.Shape):
			return fmt.Errorf("%s %s has shape %v in the checkpoint but %v in the manifest", kind, s.Name, t.Shape, s.Shape)
		case int64(len(t.Data)) != s.Size():
			return fmt.Errorf("%s %s holds %d values in the checkpoint, its shape %v needs %d", kind, s.Name, len(t.Data), s.Shape, s.Size())
		case int64(len(dst[i])) != s.Size():
			return fmt.Errorf("the buffer for %s %s has %d values, its shape %v needs %d", kind, s.Name, len(dst[i]), s.Shape, s.Size())
		}
	}
	return nil
}

// configFlags names the command-line flag of every graphs.Config field.
var configFlags = []struct {
	flag  string
	value func(graphs.Config) string
}{
	{"--arch", func(c graphs.Config) string { return c.Arch }},
	{"--stem", func(c graphs.Config) string { return c.Stem }},
	{"--image-size", func(c graphs.Config) string { return fmt.Sprint(c.ImageSize) }},
	{"--batch-size", func(c graphs.Config) string { return fmt.Sprint(c.Pairs) }},
	{"--projection-dim", func(c graphs.Config) string { return fmt.Sprint(c.ProjectionDim) }},
	{"--temperature", func(c graphs.Config) string { return fmt.Sprint(c.Temperature) }},
	{"--bn-groups", func(c graphs.Config) string { return fmt.Sprint(c.BNGroups) }},
	{"--bn-lowering", func(c graphs.Config) string { return c.BNLowering }},
	{"--shards", func(c graphs.Config) string { return fmt.Sprint(c.ShardCount()) }},
	{"--conv-grad", func(c graphs.Config) string {
		if c.ConvGrad == "" {
			return "cpu"
		}
		return c.ConvGrad
	}},
}

// Compatible returns nil when ck can resume a run of the graphs with
// manifest identity identity and configuration cfg, and otherwise an error
// that names every differing setting and the flags that would match the
// checkpoint.
func Compatible(ck *Checkpoint, identity string, cfg graphs.Config) error {
	if ck == nil {
		return errors.New("checkpoint: no checkpoint to check")
	}
	if ck.Config != cfg {
		var diffs, want []string
		for _, f := range configFlags {
			a, b := f.value(ck.Config), f.value(cfg)
			if a != b {
				diffs = append(diffs, fmt.Sprintf("%s %s, this run %s", f.flag, a, b))
				want = append(want, f.flag+" "+a)
			}
		}
		if len(diffs) == 0 { // a field configFlags does not know
			diffs = append(diffs, fmt.Sprintf("%+v, this run %+v", ck.Config, cfg))
			want = append(want, "the same settings")
		}
		return fmt.Errorf("checkpoint: written for %s but this run is %s (checkpoint %s); resume with %s or start a new --out",
			ck.Config.Name(), cfg.Name(), strings.Join(diffs, "; checkpoint "), strings.Join(want, " "))
	}
	if ck.ManifestIdentity != identity {
		return fmt.Errorf("checkpoint: written for %s graphs with parameter layout %s, but this run's %s graphs have layout %s: they were generated by another simclr-ort version; resume with the simclr-ort that wrote the checkpoint%s or start a new --out",
			ck.Config.Name(), ck.ManifestIdentity, cfg.Name(), identity, versionNote(ck))
	}
	return nil
}

// versionNote names the simclr-ort version recorded in ck's Meta, if any.
func versionNote(ck *Checkpoint) string {
	if v := ck.Meta["version"]; v != "" {
		return " (" + v + ")"
	}
	return ""
}

// CheckSchedule returns nil when s is the schedule the checkpoint was
// trained with, and otherwise an error that says how they differ. The
// position in the schedule is ck.Step.
func (ck *Checkpoint) CheckSchedule(s optim.Schedule) error {
	if ck.Schedule == s {
		return nil
	}
	c := ck.Schedule
	return fmt.Errorf("checkpoint: trained with peak learning rate %g, %d warm-up steps and %d steps in all, but this run has %g, %d and %d; resume with the same base learning rate, --lr-scaling, --batch-size, --warmup-epochs and --epochs or --steps, or start a new --out",
		c.Peak, c.WarmupSteps, c.TotalSteps, s.Peak, s.WarmupSteps, s.TotalSteps)
}
