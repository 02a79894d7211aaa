package optim

import (
	"fmt"
	"math"
)

// Adam defaults, as torch.optim.Adam and the PyTorch reference use them.
const (
	DefaultAdamLR    = 3e-4
	DefaultAdamBeta1 = 0.9
	DefaultAdamBeta2 = 0.999
	DefaultAdamEps   = 1e-8
)

// AdamConfig holds Adam hyperparameters. Zero fields mean the defaults.
type AdamConfig struct {
	// Beta1 is the first-moment decay; 0 means 0.9, a negative value 0.
	Beta1 float64
	// Beta2 is the second-moment decay; 0 means 0.999, a negative value 0.
	Beta2 float64
	// Eps is added to the denominator; 0 or less means 1e-8.
	Eps float64
	// WeightDecay is the L2 coefficient added to every gradient, as
	// torch.optim.Adam does (not decoupled); 0 or less means none.
	WeightDecay float64
	// Workers is the number of goroutines Step uses; 0 or less means
	// GOMAXPROCS.
	Workers int
}

// resolved returns c with defaults filled in.
func (c AdamConfig) resolved() AdamConfig {
	switch {
	case c.Beta1 == 0:
		c.Beta1 = DefaultAdamBeta1
	case c.Beta1 < 0:
		c.Beta1 = 0
	}
	switch {
	case c.Beta2 == 0:
		c.Beta2 = DefaultAdamBeta2
	case c.Beta2 < 0:
		c.Beta2 = 0
	}
	if c.Eps <= 0 {
		c.Eps = DefaultAdamEps
	}
	if c.WeightDecay < 0 {
		c.WeightDecay = 0
	}
	return c
}

// Adam is torch.optim.Adam (amsgrad off, not decoupled weight decay). At
// step t (from 1), for every tensor:
//
//	g = g + wd*w
//	m = beta1*m + (1-beta1)*g
//	v = beta2*v + (1-beta2)*g*g
//	w = w - lr/(1-beta1^t) * m / (sqrt(v)/sqrt(1-beta2^t) + eps)
//
// An Adam is not safe for concurrent use.
type Adam struct {
	cfg   AdamConfig
	sizes []int
	m, v  [][]float32
	steps int64
	plan  plan
}

// NewAdam returns an Adam optimizer for tensors of the given sizes.
func NewAdam(sizes []int, cfg AdamConfig) *Adam {
	checkSizes("NewAdam", sizes)
	o := &Adam{
		cfg:   cfg.resolved(),
		sizes: append([]int(nil), sizes...),
		m:     allocSlot(sizes),
		v:     allocSlot(sizes),
	}
	o.plan = newPlan(o.sizes, resolveWorkers(o.cfg.Workers))
	return o
}

// Config returns the hyperparameters in use, defaults filled in.
func (o *Adam) Config() AdamConfig { return o.cfg }

// SetWorkers changes the number of goroutines Step uses; 0 or less means
// GOMAXPROCS. Results do not depend on it.
func (o *Adam) SetWorkers(n int) {
	o.cfg.Workers = n
	o.plan = newPlan(o.sizes, resolveWorkers(n))
}

// Step applies one Adam update with learning rate lr. It panics if params
// or grads do not match the sizes given to NewAdam.
func (o *Adam) Step(lr float64, params, grads [][]float32) {
	checkTensors("Adam", o.sizes, params, grads)
	o.steps++
	t := float64(o.steps)
	c := adamStep{
		b1:       float32(o.cfg.Beta1),
		b2:       float32(o.cfg.Beta2),
		omb1:     float32(1 - o.cfg.Beta1),
		omb2:     float32(1 - o.cfg.Beta2),
		wd:       float32(o.cfg.WeightDecay),
		eps:      float32(o.cfg.Eps),
		stepSize: float32(lr / (1 - math.Pow(o.cfg.Beta1, t))),
		bc2Sqrt:  float32(math.Sqrt(1 - math.Pow(o.cfg.Beta2, t))),
	}
	o.plan.run(func(i int) {
		c.tensor(params[i], grads[i], o.m[i], o.v[i])
	})
}

// State returns the moment buffers and step count. The slices alias the
// optimizer's buffers: serialise them before the next Step.
func (o *Adam) State() State {
	return State{Kind: "adam", Steps: o.steps, Slots: [][][]float32{o.m, o.v}}
}

// SetState copies s into the optimizer. It returns an error if s comes from
// another optimizer or another set of tensor sizes.
func (o *Adam) SetState(s State) error {
	if err := restoreSlots("adam", [][][]float32{o.m, o.v}, s); err != nil {
		return err
	}
	o.steps = s.Steps
	return nil
}

// String describes the optimizer for logs.
func (o *Adam) String() string {
	return fmt.Sprintf("adam(beta1=%g, beta2=%g, eps=%g, weight_decay=%g)", o.cfg.Beta1, o.cfg.Beta2, o.cfg.Eps, o.cfg.WeightDecay)
}

// adamStep holds one step's float32 constants.
type adamStep struct {
	b1, b2, wd, eps   float32
	omb1, omb2        float32 // 1-beta1, 1-beta2 computed in float64
	stepSize, bc2Sqrt float32
}

// tensor applies the Adam update to one tensor.
func (c *adamStep) tensor(w, g, m, v []float32) {
	g = g[:len(w)]
	m = m[:len(w)]
	v = v[:len(w)]
	for i, gi := range g {
		if c.wd != 0 {
			gi += c.wd * w[i]
		}
		mi := c.b1*m[i] + c.omb1*gi
		vi := c.b2*v[i] + c.omb2*gi*gi
		m[i] = mi
		v[i] = vi
		denom := float32(math.Sqrt(float64(vi)))/c.bc2Sqrt + c.eps
		w[i] -= c.stepSize * mi / denom
	}
}
