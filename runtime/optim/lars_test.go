package optim

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// Tolerances for float32 updates compared with exact values.
const (
	relTol32 = 2e-6
	absTol32 = 1e-7
)

func closeTo(got, want, rel, abs float64) bool {
	return math.Abs(got-want) <= abs+rel*math.Abs(want)
}

// checkSlice fails t at the worst element of got against want.
func checkSlice(t *testing.T, name string, got []float32, want []float64, rel, abs float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d values, want %d", name, len(got), len(want))
	}
	worst, worstErr := -1, 0.0
	for i := range got {
		e := math.Abs(float64(got[i]) - want[i])
		if !closeTo(float64(got[i]), want[i], rel, abs) && e > worstErr {
			worst, worstErr = i, e
		}
	}
	if worst >= 0 {
		t.Errorf("%s[%d] = %.9g, want %.9g (abs error %.3g, tolerance %.3g rel + %.3g abs)", name, worst, got[worst], want[worst], worstErr, rel, abs)
	}
}

func TestLARSHandComputed(t *testing.T) {
	tests := []struct {
		name     string
		cfg      LARSConfig
		excluded bool
		lr       float64
		w, g, v0 []float32 // v0 nil means zero momentum
		steps    int
		wantW    []float64
		wantV    []float64
	}{
		{
			// ||w|| = 5, ||g|| = 0.5, trust = 0.001*5/0.5 = 0.01.
			name: "adapted, no weight decay", cfg: LARSConfig{WeightDecay: -1},
			lr: 1, w: []float32{3, 4}, g: []float32{0.3, 0.4}, steps: 1,
			wantV: []float64{0.003, 0.004}, wantW: []float64{2.997, 3.996},
		},
		{
			// g + 0.1*w = (0.6, 0.8), norm 1, trust = 0.005, lr*trust = 0.01.
			name: "adapted with weight decay", cfg: LARSConfig{WeightDecay: 0.1},
			lr: 2, w: []float32{3, 4}, g: []float32{0.3, 0.4}, steps: 1,
			wantV: []float64{0.006, 0.008}, wantW: []float64{2.994, 3.992},
		},
		{
			// Excluded: no weight decay, trust 1: v = lr*g.
			name: "excluded", cfg: LARSConfig{WeightDecay: 0.1}, excluded: true,
			lr: 0.5, w: []float32{3, 4}, g: []float32{0.3, 0.4}, steps: 1,
			wantV: []float64{0.15, 0.2}, wantW: []float64{2.85, 3.8},
		},
		{
			// ||w|| = 0 gives trust 1.
			name: "zero weight", cfg: LARSConfig{WeightDecay: 0.1},
			lr: 0.1, w: []float32{0, 0}, g: []float32{1, 2}, steps: 1,
			wantV: []float64{0.1, 0.2}, wantW: []float64{-0.1, -0.2},
		},
		{
			// ||g|| = 0 gives trust 1; momentum alone moves w.
			name: "zero gradient", cfg: LARSConfig{WeightDecay: -1},
			lr: 1, w: []float32{1, 2}, g: []float32{0, 0}, v0: []float32{0.5, -0.5}, steps: 1,
			wantV: []float64{0.45, -0.45}, wantW: []float64{0.55, 2.45},
		},
		{
			// Zero gradient with weight decay: g = 0.1*w = (0.3, 0.4), trust 0.01.
			name: "zero gradient with weight decay", cfg: LARSConfig{WeightDecay: 0.1},
			lr: 1, w: []float32{3, 4}, g: []float32{0, 0}, steps: 1,
			wantV: []float64{0.003, 0.004}, wantW: []float64{2.997, 3.996},
		},
		{
			// Step 2: ||w|| = 4.995, trust = 0.00999,
			// v = 0.9*(0.003, 0.004) + 0.00999*(0.3, 0.4).
			name: "two steps with momentum", cfg: LARSConfig{WeightDecay: -1},
			lr: 1, w: []float32{3, 4}, g: []float32{0.3, 0.4}, steps: 2,
			wantV: []float64{0.005697, 0.007596}, wantW: []float64{2.991303, 3.988404},
		},
		{
			// Momentum 0.5 and eta 0.01: trust 0.1, v = 0.5*0.2 + 0.1*(0.3, 0.4).
			name: "custom momentum and eta", cfg: LARSConfig{Momentum: 0.5, Eta: 0.01, WeightDecay: -1},
			lr: 1, w: []float32{3, 4}, g: []float32{0.3, 0.4}, v0: []float32{0.2, 0.2}, steps: 1,
			wantV: []float64{0.13, 0.14}, wantW: []float64{2.87, 3.86},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := append([]float32(nil), tc.w...)
			o := NewLARS([]int{len(w)}, []bool{tc.excluded}, tc.cfg)
			if tc.v0 != nil {
				if err := o.SetState(State{Kind: "lars", Slots: [][][]float32{{append([]float32(nil), tc.v0...)}}}); err != nil {
					t.Fatal(err)
				}
			}
			for range tc.steps {
				o.Step(tc.lr, [][]float32{w}, [][]float32{tc.g})
			}
			checkSlice(t, "w", w, tc.wantW, relTol32, absTol32)
			checkSlice(t, "v", o.State().Slots[0][0], tc.wantV, relTol32, absTol32)
			if got := o.State().Steps; got != int64(tc.steps) {
				t.Errorf("Steps = %d, want %d", got, tc.steps)
			}
		})
	}
}

func TestLARSDefaults(t *testing.T) {
	c := NewLARS([]int{1}, nil, LARSConfig{}).Config()
	if c.Momentum != 0.9 || c.Eta != 0.001 || c.WeightDecay != 1e-6 {
		t.Errorf("defaults = %+v, want momentum 0.9, eta 0.001, weight decay 1e-6", c)
	}
	c = NewLARS([]int{1}, nil, LARSConfig{Momentum: -1, WeightDecay: -1}).Config()
	if c.Momentum != 0 || c.WeightDecay != 0 {
		t.Errorf("negative values = %+v, want momentum 0, weight decay 0", c)
	}
}

// officialLARS is a literal float64 transcription of the official SimCLR
// LARS update (lars_optimizer.py, classic momentum, no Nesterov).
func officialLARS(param, grad, v []float64, lr, momentum, eeta, weightDecay float64, useWD, adapt bool) {
	g := append([]float64(nil), grad...)
	if useWD {
		for i := range g {
			g[i] += weightDecay * param[i]
		}
	}
	trustRatio := 1.0
	if adapt {
		var wn, gn float64
		for i := range param {
			wn += param[i] * param[i]
			gn += g[i] * g[i]
		}
		wNorm, gNorm := math.Sqrt(wn), math.Sqrt(gn)
		if wNorm > 0 {
			if gNorm > 0 {
				trustRatio = eeta * wNorm / gNorm
			}
		}
	}
	scaledLR := lr * trustRatio
	for i := range v {
		v[i] = momentum*v[i] + scaledLR*g[i]
		param[i] -= v[i]
	}
}

func TestLARSAgainstOfficialFormula(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{1000, 37, 64, 4097, 3}
	excluded := []bool{false, true, false, false, true}
	for _, workers := range []int{1, 2, 3, 8} {
		t.Run("", func(t *testing.T) {
			params := make([][]float32, len(sizes))
			ref := make([][]float64, len(sizes))
			refV := make([][]float64, len(sizes))
			for k, n := range sizes {
				params[k] = make([]float32, n)
				ref[k] = make([]float64, n)
				refV[k] = make([]float64, n)
				for i := range n {
					params[k][i] = float32(rng.NormFloat64() * 0.1)
					ref[k][i] = float64(params[k][i])
				}
			}
			o := NewLARS(sizes, excluded, LARSConfig{WeightDecay: 1e-4, Workers: workers})
			lrs := []float64{0.3, 1.2, 4.8}
			for step, lr := range lrs {
				grads := make([][]float32, len(sizes))
				for k, n := range sizes {
					grads[k] = make([]float32, n)
					g64 := make([]float64, n)
					for i := range n {
						grads[k][i] = float32(rng.NormFloat64() * 0.01)
						g64[i] = float64(grads[k][i])
					}
					officialLARS(ref[k], g64, refV[k], lr, 0.9, 0.001, 1e-4, !excluded[k], !excluded[k])
				}
				o.Step(lr, params, grads)
				for k := range sizes {
					checkSlice(t, "w", params[k], ref[k], 1e-5, 1e-6)
					checkSlice(t, "v", o.State().Slots[0][k], refV[k], 1e-4, 1e-8)
				}
				if t.Failed() {
					t.Fatalf("workers %d: mismatch after step %d", workers, step+1)
				}
			}
		})
	}
}

func TestLARSWorkerCountDoesNotChangeResults(t *testing.T) {
	sizes := []int{5000, 1, 300, 0, 12345, 77, 2048}
	excluded := []bool{false, true, false, true, false, true, false}
	run := func(workers int) [][]float32 {
		rng := rand.New(rand.NewPCG(7, 8))
		params := make([][]float32, len(sizes))
		grads := make([][]float32, len(sizes))
		for k, n := range sizes {
			params[k] = make([]float32, n)
			grads[k] = make([]float32, n)
			for i := range n {
				params[k][i] = float32(rng.NormFloat64())
				grads[k][i] = float32(rng.NormFloat64())
			}
		}
		o := NewLARS(sizes, excluded, LARSConfig{Workers: workers})
		for range 3 {
			o.Step(0.5, params, grads)
		}
		return params
	}
	want := run(1)
	for _, workers := range []int{2, 3, 7, 64} {
		got := run(workers)
		for k := range want {
			for i := range want[k] {
				if math.Float32bits(got[k][i]) != math.Float32bits(want[k][i]) {
					t.Fatalf("workers %d: tensor %d element %d = %v, want %v (1 worker)", workers, k, i, got[k][i], want[k][i])
				}
			}
		}
	}
}

func TestStepPanicsOnMismatch(t *testing.T) {
	tests := []struct {
		name   string
		params [][]float32
		grads  [][]float32
		want   string
	}{
		{"tensor count", [][]float32{make([]float32, 2)}, [][]float32{make([]float32, 2)}, "got 1 parameter and 1 gradient tensors, want 2"},
		{"gradient length", [][]float32{make([]float32, 2), make([]float32, 3)}, [][]float32{make([]float32, 2), make([]float32, 4)}, "tensor 1 has 3 parameters and 4 gradients, want 3"},
	}
	optimizers := map[string]Optimizer{
		"LARS": NewLARS([]int{2, 3}, nil, LARSConfig{}),
		"Adam": NewAdam([]int{2, 3}, AdamConfig{}),
	}
	for oname, o := range optimizers {
		for _, tc := range tests {
			t.Run(oname+"/"+tc.name, func(t *testing.T) {
				defer func() {
					r := recover()
					msg, _ := r.(string)
					if !strings.HasPrefix(msg, "optim: "+oname+".Step: ") || !strings.Contains(msg, tc.want) {
						t.Errorf("panic = %v, want an optim: %s.Step panic containing %q", r, oname, tc.want)
					}
				}()
				o.Step(0.1, tc.params, tc.grads)
			})
		}
	}
}

func TestNewLARSPanicsOnFlagCount(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.HasPrefix(r.(string), "optim: NewLARS:") {
			t.Errorf("panic = %v, want optim: NewLARS: ...", r)
		}
	}()
	NewLARS([]int{1, 2}, []bool{true}, LARSConfig{})
}

func TestSetState(t *testing.T) {
	sizes := []int{3, 2}
	o := NewLARS(sizes, nil, LARSConfig{})
	params := [][]float32{{1, 2, 3}, {4, 5}}
	grads := [][]float32{{0.1, 0.2, 0.3}, {0.4, 0.5}}
	o.Step(0.1, params, grads)
	// A copy, as a checkpoint would hold it.
	saved := o.State()
	saved.Slots = [][][]float32{{append([]float32(nil), saved.Slots[0][0]...), append([]float32(nil), saved.Slots[0][1]...)}}
	savedParams := [][]float32{append([]float32(nil), params[0]...), append([]float32(nil), params[1]...)}
	o.Step(0.1, params, grads)

	r := NewLARS(sizes, nil, LARSConfig{})
	if err := r.SetState(saved); err != nil {
		t.Fatal(err)
	}
	r.Step(0.1, savedParams, grads)
	for k := range params {
		for i := range params[k] {
			if savedParams[k][i] != params[k][i] {
				t.Fatalf("resumed tensor %d element %d = %v, uninterrupted %v", k, i, savedParams[k][i], params[k][i])
			}
		}
	}

	bad := []struct {
		name string
		s    State
		want string
	}{
		{"kind", State{Kind: "adam", Slots: saved.Slots}, "resume with the optimizer"},
		{"slots", State{Kind: "lars", Slots: [][][]float32{saved.Slots[0], saved.Slots[0]}}, "buffers per tensor"},
		{"tensors", State{Kind: "lars", Slots: [][][]float32{saved.Slots[0][:1]}}, "1 tensors, want 2"},
		{"length", State{Kind: "lars", Slots: [][][]float32{{{1, 2, 3}, {1}}}}, "tensor 1 has 1 values, want 2"},
		{"steps", State{Kind: "lars", Steps: -1, Slots: saved.Slots}, "negative step count"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			err := NewLARS(sizes, nil, LARSConfig{}).SetState(tc.s)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("SetState error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestPlanBalance(t *testing.T) {
	tests := []struct {
		sizes   []int
		workers int
		maxLoad int
	}{
		{[]int{10, 10, 10, 10}, 2, 20},
		{[]int{7, 5, 4, 3, 1}, 2, 10},
		{[]int{100, 1, 1, 1}, 4, 100},
		{[]int{1, 2}, 8, 2},
	}
	for _, tc := range tests {
		p := newPlan(tc.sizes, tc.workers)
		seen := make([]bool, len(tc.sizes))
		for _, g := range p.groups {
			load := 0
			for _, t2 := range g {
				if seen[t2] {
					t.Fatalf("sizes %v: tensor %d in two groups", tc.sizes, t2)
				}
				seen[t2] = true
				load += tc.sizes[t2]
			}
			if load > tc.maxLoad {
				t.Errorf("sizes %v, %d workers: group load %d, want at most %d", tc.sizes, tc.workers, load, tc.maxLoad)
			}
		}
		for i, s := range seen {
			if !s {
				t.Errorf("sizes %v: tensor %d in no group", tc.sizes, i)
			}
		}
	}
}
