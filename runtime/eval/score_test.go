package eval

import (
	"math"
	"testing"
)

func TestScoreAndCompare(t *testing.T) {
	labels := []int{0, 1, 2, 3, 0, 1, 2, 3}
	a := []int{0, 1, 2, 3, 0, 1, 0, 0} // 6 right
	b := []int{0, 1, 2, 0, 1, 1, 2, 0} // 5 right
	sa := Score(a, labels)
	if sa.Correct != 6 || sa.Top1 != 0.75 || math.Abs(sa.StdErr-math.Sqrt(0.75*0.25/8)) > 1e-12 {
		t.Errorf("Score = %+v", sa)
	}
	d := Compare(a, b, labels)
	// Only a: images 3, 4; only b: image 6.
	if d.OnlyA != 2 || d.OnlyB != 1 || math.Abs(d.Points-12.5) > 1e-12 {
		t.Errorf("Compare = %+v", d)
	}
	want := 100 * math.Sqrt(3-1.0/8) / 8
	if math.Abs(d.StdErr-want) > 1e-12 {
		t.Errorf("paired standard error %g, want %g", d.StdErr, want)
	}
	if same := Compare(a, a, labels); same.Points != 0 || same.StdErr != 0 {
		t.Errorf("Compare of identical predictions = %+v", same)
	}
}
