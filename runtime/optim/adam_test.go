package optim

import (
	"strings"
	"testing"
)

func TestAdamHandComputed(t *testing.T) {
	// Expected values from torch.optim.Adam's update rule evaluated in
	// float64 by hand (see the comments for step 1).
	tests := []struct {
		name  string
		cfg   AdamConfig
		lr    float64
		w     float32
		grads []float32
		wantW []float64 // after each step
		wantM []float64
		wantV []float64
	}{
		{
			// Step 1: m = 0.05, v = 0.00025, m/(1-0.9) = 0.5,
			// sqrt(v/(1-0.999)) = 0.5, w = 1 - 0.1*0.5/(0.5+1e-8).
			name: "defaults", lr: 0.1, w: 1, grads: []float32{0.5, 0.25, -1},
			wantW: []float64{0.900000002, 0.8067820404774624, 0.8274177428854115},
			wantM: []float64{0.05, 0.07, -0.037},
			wantV: []float64{0.00025, 0.00031225, 0.00131193775},
		},
		{
			// Zero gradient, weight decay 0.5: g = 0.5*w = -1.
			name: "weight decay", cfg: AdamConfig{WeightDecay: 0.5}, lr: 0.01, w: -2, grads: []float32{0, 0},
			wantW: []float64{-1.9900000001, -1.9800013381541135},
			wantM: []float64{-0.1, -0.1895},
			wantV: []float64{0.001, 0.001989025},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := []float32{tc.w}
			o := NewAdam([]int{1}, tc.cfg)
			for step, g := range tc.grads {
				o.Step(tc.lr, [][]float32{w}, [][]float32{{g}})
				s := o.State()
				checkSlice(t, "w", w, tc.wantW[step:step+1], relTol32, absTol32)
				checkSlice(t, "m", s.Slots[0][0], tc.wantM[step:step+1], relTol32, absTol32)
				checkSlice(t, "v", s.Slots[1][0], tc.wantV[step:step+1], relTol32, 1e-10)
				if s.Steps != int64(step+1) {
					t.Errorf("Steps = %d, want %d", s.Steps, step+1)
				}
				if t.Failed() {
					t.Fatalf("after step %d", step+1)
				}
			}
		})
	}
}

func TestAdamDefaults(t *testing.T) {
	c := NewAdam([]int{1}, AdamConfig{}).Config()
	if c.Beta1 != 0.9 || c.Beta2 != 0.999 || c.Eps != 1e-8 || c.WeightDecay != 0 {
		t.Errorf("defaults = %+v, want betas 0.9/0.999, eps 1e-8, no weight decay", c)
	}
	if DefaultAdamLR != 3e-4 {
		t.Errorf("DefaultAdamLR = %g, want 3e-4", DefaultAdamLR)
	}
}

func TestAdamResume(t *testing.T) {
	sizes := []int{4, 1}
	params := [][]float32{{1, -2, 3, 0}, {5}}
	grads := [][]float32{{0.1, 0.2, -0.3, 0.4}, {-1}}
	o := NewAdam(sizes, AdamConfig{Workers: 2})
	o.Step(0.01, params, grads)
	s := o.State()
	saved := State{Kind: s.Kind, Steps: s.Steps}
	for _, slot := range s.Slots {
		var c [][]float32
		for _, b := range slot {
			c = append(c, append([]float32(nil), b...))
		}
		saved.Slots = append(saved.Slots, c)
	}
	resumed := [][]float32{append([]float32(nil), params[0]...), append([]float32(nil), params[1]...)}
	o.Step(0.01, params, grads)

	r := NewAdam(sizes, AdamConfig{Workers: 1})
	if err := r.SetState(saved); err != nil {
		t.Fatal(err)
	}
	r.Step(0.01, resumed, grads)
	for k := range params {
		for i := range params[k] {
			if resumed[k][i] != params[k][i] {
				t.Fatalf("resumed tensor %d element %d = %v, uninterrupted %v", k, i, resumed[k][i], params[k][i])
			}
		}
	}
	if err := r.SetState(State{Kind: "lars", Slots: saved.Slots[:1]}); err == nil || !strings.Contains(err.Error(), `"lars"`) {
		t.Errorf("SetState(lars state) error = %v, want a kind mismatch", err)
	}
}
