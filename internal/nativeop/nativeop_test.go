package nativeop

import (
	"slices"
	"testing"
)

// TestOps: every op has a unique name, tensors and attributes, and its
// Int64 entries name its own tensors.
func TestOps(t *testing.T) {
	names := map[string]bool{}
	for _, op := range Ops() {
		if op.Name == "" || names[op.Name] {
			t.Errorf("op name %q empty or used twice", op.Name)
		}
		names[op.Name] = true
		if len(op.Inputs) == 0 || len(op.Outputs) == 0 || op.Doc == "" {
			t.Errorf("%s: inputs %v, outputs %v, doc %q", op.Name, op.Inputs, op.Outputs, op.Doc)
		}
		tensors := append(append([]string(nil), op.Inputs...), op.Outputs...)
		for _, n := range op.Int64 {
			if !slices.Contains(tensors, n) {
				t.Errorf("%s: Int64 names %s, not one of its tensors %v", op.Name, n, tensors)
			}
		}
		attrs := append(append([]string(nil), op.Attrs...), op.FloatAttrs...)
		slices.Sort(attrs)
		if len(slices.Compact(attrs)) != len(op.Attrs)+len(op.FloatAttrs) {
			t.Errorf("%s: attribute names %v and %v repeat", op.Name, op.Attrs, op.FloatAttrs)
		}
	}
}
