package optim

import "fmt"

// Optimizer is what the training loop needs from LARS and Adam.
type Optimizer interface {
	// Step applies one update with learning rate lr to params, in place,
	// from grads. params[t] and grads[t] must have the length the optimizer
	// was built with for tensor t; grads are not modified.
	Step(lr float64, params, grads [][]float32)
	// State returns the optimizer's state for a checkpoint.
	State() State
	// SetState restores a state returned by State.
	SetState(s State) error
}

// State is an optimizer's state as a checkpoint stores it.
type State struct {
	// Kind names the optimizer: "lars" or "adam".
	Kind string
	// Steps counts the updates applied so far.
	Steps int64
	// Slots holds the per-tensor buffers: Slots[k][t] is buffer k of
	// tensor t. LARS has one slot (momentum), Adam two (first and second
	// moment estimates).
	Slots [][][]float32
}

// checkTensors panics unless params and grads match sizes.
func checkTensors(who string, sizes []int, params, grads [][]float32) {
	if len(params) != len(sizes) || len(grads) != len(sizes) {
		panic(fmt.Sprintf("optim: %s.Step: got %d parameter and %d gradient tensors, want %d", who, len(params), len(grads), len(sizes)))
	}
	for t, n := range sizes {
		if len(params[t]) != n || len(grads[t]) != n {
			panic(fmt.Sprintf("optim: %s.Step: tensor %d has %d parameters and %d gradients, want %d", who, t, len(params[t]), len(grads[t]), n))
		}
	}
}

// checkSizes panics on a negative tensor size.
func checkSizes(who string, sizes []int) {
	for t, n := range sizes {
		if n < 0 {
			panic(fmt.Sprintf("optim: %s: tensor %d has negative size %d", who, t, n))
		}
	}
}

// allocSlot allocates one zeroed buffer per tensor from a single backing
// array.
func allocSlot(sizes []int) [][]float32 {
	total := 0
	for _, n := range sizes {
		total += n
	}
	backing := make([]float32, total)
	out := make([][]float32, len(sizes))
	off := 0
	for t, n := range sizes {
		out[t] = backing[off : off+n : off+n]
		off += n
	}
	return out
}

// restoreSlots copies s's slots into dst after checking kind and shapes.
func restoreSlots(kind string, dst [][][]float32, s State) error {
	if s.Kind != kind {
		return fmt.Errorf("optim: restore %s state: checkpoint holds %q optimizer state; resume with the optimizer the run was started with", kind, s.Kind)
	}
	if s.Steps < 0 {
		return fmt.Errorf("optim: restore %s state: negative step count %d; the checkpoint is corrupt", kind, s.Steps)
	}
	if len(s.Slots) != len(dst) {
		return fmt.Errorf("optim: restore %s state: checkpoint has %d buffers per tensor, want %d; the checkpoint is corrupt", kind, len(s.Slots), len(dst))
	}
	for k := range dst {
		if len(s.Slots[k]) != len(dst[k]) {
			return fmt.Errorf("optim: restore %s state: checkpoint has %d tensors, want %d; the checkpoint is from another model configuration", kind, len(s.Slots[k]), len(dst[k]))
		}
		for t := range dst[k] {
			if len(s.Slots[k][t]) != len(dst[k][t]) {
				return fmt.Errorf("optim: restore %s state: tensor %d has %d values, want %d; the checkpoint is from another model configuration", kind, t, len(s.Slots[k][t]), len(dst[k][t]))
			}
		}
	}
	for k := range dst {
		for t := range dst[k] {
			copy(dst[k][t], s.Slots[k][t])
		}
	}
	return nil
}
