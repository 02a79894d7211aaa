package optim

import (
	"fmt"
	"math"
)

// DefaultLARSLR is SimCLR's base learning rate for LARS with linear scaling
// (lr = 0.3 x batch/256); DefaultLARSSqrtLR the one for square-root scaling
// (lr = 0.075 x sqrt(batch)).
const (
	DefaultLARSLR     = 0.3
	DefaultLARSSqrtLR = 0.075
)

// LARS defaults, as in the official SimCLR.
const (
	DefaultLARSMomentum    = 0.9
	DefaultLARSEta         = 0.001
	DefaultLARSWeightDecay = 1e-6
)

// LARSConfig holds LARS hyperparameters. Zero fields mean the defaults.
type LARSConfig struct {
	// Momentum is the classic momentum coefficient; 0 means 0.9, a
	// negative value means no momentum.
	Momentum float64
	// Eta is the trust coefficient; 0 or less means 0.001.
	Eta float64
	// WeightDecay is the L2 coefficient added to the gradient of tensors
	// that are not excluded; 0 means 1e-6, a negative value means none.
	WeightDecay float64
	// Workers is the number of goroutines Step uses; 0 or less means
	// GOMAXPROCS.
	Workers int
}

// resolved returns c with defaults filled in and negative values zeroed.
func (c LARSConfig) resolved() LARSConfig {
	switch {
	case c.Momentum == 0:
		c.Momentum = DefaultLARSMomentum
	case c.Momentum < 0:
		c.Momentum = 0
	}
	if c.Eta <= 0 {
		c.Eta = DefaultLARSEta
	}
	switch {
	case c.WeightDecay == 0:
		c.WeightDecay = DefaultLARSWeightDecay
	case c.WeightDecay < 0:
		c.WeightDecay = 0
	}
	return c
}

// LARS is the layer-wise adaptive rate scaling optimizer of the official
// SimCLR (google-research/simclr lars_optimizer.py) with classic momentum.
// For every tensor, with w its parameters, g its gradient and v its momentum:
//
//	g = g + wd*w                          (unless excluded)
//	trust = eta*||w||/||g||               (unless excluded; 1 when either norm is 0)
//	v = momentum*v + lr*trust*g
//	w = w - v
//
// Excluded tensors (BatchNorm parameters and biases) get neither weight
// decay nor trust-ratio adaptation. A LARS is not safe for concurrent use.
type LARS struct {
	cfg      LARSConfig
	sizes    []int
	excluded []bool
	v        [][]float32
	steps    int64
	plan     plan
}

// NewLARS returns a LARS optimizer for tensors of the given sizes.
// excluded[t] marks tensor t as excluded from weight decay and trust-ratio
// adaptation; nil excludes none. It panics if excluded is non-nil and its
// length differs from sizes.
func NewLARS(sizes []int, excluded []bool, cfg LARSConfig) *LARS {
	checkSizes("NewLARS", sizes)
	if excluded == nil {
		excluded = make([]bool, len(sizes))
	}
	if len(excluded) != len(sizes) {
		panic(fmt.Sprintf("optim: NewLARS: %d exclusion flags for %d tensors", len(excluded), len(sizes)))
	}
	o := &LARS{
		cfg:      cfg.resolved(),
		sizes:    append([]int(nil), sizes...),
		excluded: append([]bool(nil), excluded...),
		v:        allocSlot(sizes),
	}
	o.plan = newPlan(o.sizes, resolveWorkers(o.cfg.Workers))
	return o
}

// Config returns the hyperparameters in use, defaults filled in.
func (o *LARS) Config() LARSConfig { return o.cfg }

// SetWorkers changes the number of goroutines Step uses; 0 or less means
// GOMAXPROCS. Results do not depend on it.
func (o *LARS) SetWorkers(n int) {
	o.cfg.Workers = n
	o.plan = newPlan(o.sizes, resolveWorkers(n))
}

// Step applies one LARS update with learning rate lr. It panics if params
// or grads do not match the sizes given to NewLARS.
func (o *LARS) Step(lr float64, params, grads [][]float32) {
	checkTensors("LARS", o.sizes, params, grads)
	o.plan.run(func(t int) {
		larsTensor(params[t], grads[t], o.v[t], lr, o.cfg.Momentum, o.cfg.Eta, o.cfg.WeightDecay, o.excluded[t])
	})
	o.steps++
}

// State returns the momentum buffers and step count. The slices alias the
// optimizer's buffers: serialise them before the next Step.
func (o *LARS) State() State {
	return State{Kind: "lars", Steps: o.steps, Slots: [][][]float32{o.v}}
}

// SetState copies s into the optimizer. It returns an error if s comes from
// another optimizer or another set of tensor sizes.
func (o *LARS) SetState(s State) error {
	if err := restoreSlots("lars", [][][]float32{o.v}, s); err != nil {
		return err
	}
	o.steps = s.Steps
	return nil
}

// larsTensor applies the LARS update to one tensor.
func larsTensor(w, g, v []float32, lr, momentum, eta, wd float64, excluded bool) {
	g = g[:len(w)]
	v = v[:len(w)]
	m := float32(momentum)
	if excluded {
		s := float32(lr)
		for i, gi := range g {
			vi := m*v[i] + s*gi
			v[i] = vi
			w[i] -= vi
		}
		return
	}
	wd32 := float32(wd)
	wn, gn := sumSquares(w, g, wd32)
	trust := 1.0
	if wn > 0 && gn > 0 {
		trust = eta * math.Sqrt(wn) / math.Sqrt(gn)
	}
	s := float32(lr * trust)
	for i, gi := range g {
		gi += wd32 * w[i]
		vi := m*v[i] + s*gi
		v[i] = vi
		w[i] -= vi
	}
}

// sumSquares returns sum(w*w) and sum((g+wd*w)^2), accumulated in float64
// with four partial sums in a fixed order.
func sumSquares(w, g []float32, wd float32) (ws, gs float64) {
	g = g[:len(w)]
	var w0, w1, w2, w3, g0, g1, g2, g3 float64
	i := 0
	for ; i+4 <= len(w); i += 4 {
		a0, a1, a2, a3 := float64(w[i]), float64(w[i+1]), float64(w[i+2]), float64(w[i+3])
		b0 := float64(g[i] + wd*w[i])
		b1 := float64(g[i+1] + wd*w[i+1])
		b2 := float64(g[i+2] + wd*w[i+2])
		b3 := float64(g[i+3] + wd*w[i+3])
		w0 += a0 * a0
		w1 += a1 * a1
		w2 += a2 * a2
		w3 += a3 * a3
		g0 += b0 * b0
		g1 += b1 * b1
		g2 += b2 * b2
		g3 += b3 * b3
	}
	for ; i < len(w); i++ {
		a := float64(w[i])
		b := float64(g[i] + wd*w[i])
		w0 += a * a
		g0 += b * b
	}
	return (w0 + w1) + (w2 + w3), (g0 + g1) + (g2 + g3)
}

// String describes the optimizer for logs.
func (o *LARS) String() string {
	return fmt.Sprintf("lars(momentum=%g, eta=%g, weight_decay=%g)", o.cfg.Momentum, o.cfg.Eta, o.cfg.WeightDecay)
}
