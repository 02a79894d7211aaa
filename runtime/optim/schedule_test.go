package optim

import (
	"math"
	"strings"
	"testing"
)

func TestScaling(t *testing.T) {
	tests := []struct {
		scaling Scaling
		base    float64
		batch   int
		want    float64
	}{
		{Linear, 0.3, 256, 0.3},
		{Linear, 0.3, 128, 0.15},
		{Linear, 0.3, 4096, 4.8},
		{Sqrt, 0.075, 4096, 4.8},
		{Sqrt, 0.075, 256, 1.2},
		{Sqrt, 1, 2, math.Sqrt2},
		{None, 3e-4, 128, 3e-4},
	}
	for _, tc := range tests {
		if got := tc.scaling.Scale(tc.base, tc.batch); !closeTo(got, tc.want, 1e-15, 0) {
			t.Errorf("%v.Scale(%g, %d) = %g, want %g", tc.scaling, tc.base, tc.batch, got, tc.want)
		}
	}
}

func TestParseScaling(t *testing.T) {
	for _, s := range []string{"linear", "sqrt", "none"} {
		got, err := ParseScaling(s)
		if err != nil || got.String() != s {
			t.Errorf("ParseScaling(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := ParseScaling("cubic"); err == nil || !strings.Contains(err.Error(), "use linear or sqrt") {
		t.Errorf("ParseScaling(cubic) error = %v, want one saying linear or sqrt", err)
	}
}

func TestScheduleLR(t *testing.T) {
	// Peak 0.6 = 0.3*512/256, 10 warm-up steps of 110.
	warm, err := NewSchedule(0.3, 512, Linear, 10, 110)
	if err != nil {
		t.Fatal(err)
	}
	noWarm, err := NewSchedule(0.075, 4096, Sqrt, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		s    Schedule
		step int
		want float64
	}{
		{"warm-up start", warm, 0, 0},
		{"warm-up middle", warm, 5, 0.3},
		{"warm-up last", warm, 9, 0.54},
		{"end of warm-up", warm, 10, 0.6},
		{"decay middle", warm, 60, 0.3},
		// 0.6*0.5*(1+cos(0.99*pi))
		{"last step", warm, 109, 0.00014803189028052},
		{"after the run", warm, 110, 0},
		{"no warm-up start", noWarm, 0, 4.8},
		{"no warm-up quarter", noWarm, 25, 4.8 * 0.5 * (1 + math.Sqrt2/2)},
		{"no warm-up middle", noWarm, 50, 2.4},
		{"no warm-up last", noWarm, 99, 4.8 * 0.5 * (1 + math.Cos(math.Pi*99/100))},
	}
	for _, tc := range tests {
		if got := tc.s.LR(tc.step); !closeTo(got, tc.want, 1e-12, 1e-15) {
			t.Errorf("%s: LR(%d) = %.17g, want %.17g", tc.name, tc.step, got, tc.want)
		}
	}
}

func TestNewScheduleErrors(t *testing.T) {
	tests := []struct {
		name          string
		base          float64
		batch         int
		warmup, total int
		want          string
	}{
		{"zero lr", 0, 256, 0, 10, "positive base learning rate"},
		{"nan lr", math.NaN(), 256, 0, 10, "positive base learning rate"},
		{"batch", 0.3, 0, 0, 10, "positive batch size"},
		{"total", 0.3, 256, 0, 0, "at least one step"},
		{"warm-up too long", 0.3, 256, 10, 10, "fewer warm-up epochs"},
		{"negative warm-up", 0.3, 256, -1, 10, "fewer warm-up epochs"},
	}
	for _, tc := range tests {
		_, err := NewSchedule(tc.base, tc.batch, Linear, tc.warmup, tc.total)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error = %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

func TestScheduleWithoutScaling(t *testing.T) {
	s, err := NewSchedule(3e-4, 128, None, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if s.Peak != 3e-4 || s.LR(0) != 3e-4 {
		t.Errorf("unscaled schedule: peak %g, lr(0) %g, want 3e-4", s.Peak, s.LR(0))
	}
}
