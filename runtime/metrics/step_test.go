package metrics

import (
	"encoding/json"
	"math"
	"slices"
	"testing"
)

// jsonFields are the field names of a metrics.jsonl line, skipped_images
// aside.
var jsonFields = []string{"step", "epoch", "loss", "lr", "step_seconds", "data_wait_seconds", "images_per_second"}

func TestStepAppendJSON(t *testing.T) {
	tests := []struct {
		name   string
		step   Step
		fields []string
	}{
		{"zero", Step{}, jsonFields},
		{"typical", Step{Step: 299, Epoch: 2, Loss: 5.547216415405273, LR: 0.15, StepSeconds: 0.125, DataWaitSeconds: 0.0004, ImagesPerSecond: 1024}, jsonFields},
		{"tiny and huge", Step{Step: 1 << 40, Epoch: 500, Loss: 1e-300, LR: 3e-7, StepSeconds: 1e21, DataWaitSeconds: 5e-324, ImagesPerSecond: math.MaxFloat64}, jsonFields},
		{"negative", Step{Step: 0, Loss: -0.5, LR: -1e-9}, jsonFields},
		{"skipped", Step{Step: 7, Loss: 4.2, SkippedImages: 3}, append(slices.Clone(jsonFields), "skipped_images")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.step.AppendJSON(nil)
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("line %s does not parse: %v", b, err)
			}
			var keys []string
			for k := range m {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			want := slices.Sorted(slices.Values(tt.fields))
			if !slices.Equal(keys, want) {
				t.Errorf("fields %v, want %v", keys, want)
			}
			var got Step
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("line %s does not parse into Step: %v", b, err)
			}
			if got != tt.step {
				t.Errorf("round trip of %s: got %+v, want %+v", b, got, tt.step)
			}
			// The hand-written encoding agrees with encoding/json's.
			ref, err := json.Marshal(tt.step)
			if err != nil {
				t.Fatal(err)
			}
			var refStep Step
			if err := json.Unmarshal(ref, &refStep); err != nil {
				t.Fatal(err)
			}
			if refStep != got {
				t.Errorf("encoding/json gives %s, AppendJSON %s", ref, b)
			}
		})
	}
}

func TestStepAppendJSONNonFinite(t *testing.T) {
	s := Step{Step: 3, Loss: math.NaN(), LR: math.Inf(1), StepSeconds: math.Inf(-1)}
	b := s.AppendJSON(nil)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("line %s does not parse: %v", b, err)
	}
	for _, k := range []string{"loss", "lr", "step_seconds"} {
		if v, ok := m[k]; !ok || v != nil {
			t.Errorf("%s = %v (present %v), want null", k, v, ok)
		}
	}
}

func TestStepAppendJSONNoAlloc(t *testing.T) {
	s := Step{Step: 12345, Epoch: 3, Loss: 5.123456789, LR: 0.3, StepSeconds: 0.2, DataWaitSeconds: 0.001, ImagesPerSecond: 640, SkippedImages: 2}
	buf := make([]byte, 0, 512)
	if n := testing.AllocsPerRun(100, func() { buf = s.AppendJSON(buf[:0]) }); n != 0 {
		t.Errorf("AppendJSON allocates %v times per call, want 0", n)
	}
}
