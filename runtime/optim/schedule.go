package optim

import (
	"fmt"
	"math"
)

// Scaling says how the base learning rate grows with the batch size.
type Scaling int

const (
	// Linear scaling: lr = base * batch / 256 (SimCLR's default for LARS).
	Linear Scaling = iota
	// Sqrt scaling: lr = base * sqrt(batch).
	Sqrt
	// None: lr = base whatever the batch (the reference's Adam).
	None
)

// ParseScaling parses "linear", "sqrt" or "none".
func ParseScaling(s string) (Scaling, error) {
	switch s {
	case "linear":
		return Linear, nil
	case "sqrt":
		return Sqrt, nil
	case "none":
		return None, nil
	}
	return 0, fmt.Errorf("optim: unknown learning-rate scaling %q: use linear or sqrt (or none for an unscaled rate)", s)
}

// String returns "linear", "sqrt" or "none".
func (s Scaling) String() string {
	switch s {
	case Linear:
		return "linear"
	case Sqrt:
		return "sqrt"
	case None:
		return "none"
	}
	return fmt.Sprintf("Scaling(%d)", int(s))
}

// Scale returns the peak learning rate for base learning rate base and the
// given batch size. It panics on an unknown Scaling.
func (s Scaling) Scale(base float64, batch int) float64 {
	switch s {
	case Linear:
		return base * float64(batch) / 256
	case Sqrt:
		return base * math.Sqrt(float64(batch))
	case None:
		return base
	}
	panic(fmt.Sprintf("optim: Scaling.Scale: unknown scaling %d", int(s)))
}

// Schedule is SimCLR's learning-rate schedule, stepped per step: a linear
// warm-up from 0 to Peak over WarmupSteps steps, then cosine decay from
// Peak to 0 over the remaining TotalSteps-WarmupSteps steps:
//
//	lr(step) = Peak * step / WarmupSteps                                         step < WarmupSteps
//	lr(step) = Peak * 0.5 * (1 + cos(pi * (step-WarmupSteps) / (TotalSteps-WarmupSteps)))  otherwise
//
// as the official SimCLR's WarmUpAndCosineDecay computes it. Steps at or
// after TotalSteps get 0.
type Schedule struct {
	// Peak is the learning rate reached at the end of the warm-up, usually
	// Scaling.Scale(base, batch).
	Peak float64
	// WarmupSteps is the length of the warm-up; 0 means none.
	WarmupSteps int
	// TotalSteps is the number of steps of the run, warm-up included.
	TotalSteps int
}

// NewSchedule returns the schedule for base learning rate base scaled to
// batch with scaling, warming up over warmupSteps of totalSteps steps. It
// returns an error for inconsistent values, saying what to change.
func NewSchedule(base float64, batch int, scaling Scaling, warmupSteps, totalSteps int) (Schedule, error) {
	switch {
	case !(base > 0) || math.IsInf(base, 0):
		return Schedule{}, fmt.Errorf("optim: learning rate %g is not a positive number: pass a positive base learning rate", base)
	case batch <= 0:
		return Schedule{}, fmt.Errorf("optim: batch size %d is not positive: pass a positive batch size", batch)
	case scaling != Linear && scaling != Sqrt && scaling != None:
		return Schedule{}, fmt.Errorf("optim: unknown learning-rate scaling %d: use linear or sqrt", int(scaling))
	case totalSteps <= 0:
		return Schedule{}, fmt.Errorf("optim: %d total steps: the run must have at least one step", totalSteps)
	case warmupSteps < 0 || warmupSteps >= totalSteps:
		return Schedule{}, fmt.Errorf("optim: %d warm-up steps for a run of %d steps: use fewer warm-up epochs or train longer", warmupSteps, totalSteps)
	}
	return Schedule{Peak: scaling.Scale(base, batch), WarmupSteps: warmupSteps, TotalSteps: totalSteps}, nil
}

// LR returns the learning rate for step (counted from 0).
func (s Schedule) LR(step int) float64 {
	if step < 0 {
		step = 0
	}
	if step < s.WarmupSteps {
		return s.Peak * float64(step) / float64(s.WarmupSteps)
	}
	decay := s.TotalSteps - s.WarmupSteps
	if decay <= 0 || step >= s.TotalSteps {
		return 0
	}
	return s.Peak * 0.5 * (1 + math.Cos(math.Pi*float64(step-s.WarmupSteps)/float64(decay)))
}
