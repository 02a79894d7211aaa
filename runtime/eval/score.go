package eval

import "math"

// Accuracy is a top-1 accuracy on a test split with its sampling error.
type Accuracy struct {
	// Top1 is the fraction of test images classified correctly.
	Top1 float64
	// StdErr is the binomial standard error of Top1, √(p(1-p)/n): how much
	// it would vary over test sets of the same size.
	StdErr float64
	// Correct and Images are the counts behind it.
	Correct, Images int
}

// Score is the accuracy of predicted classes against labels.
func Score(predicted, labels []int) Accuracy {
	if len(predicted) != len(labels) {
		panic("eval: Score of predictions and labels of different lengths")
	}
	a := Accuracy{Images: len(labels)}
	for i, p := range predicted {
		if p == labels[i] {
			a.Correct++
		}
	}
	if a.Images > 0 {
		a.Top1 = float64(a.Correct) / float64(a.Images)
		a.StdErr = math.Sqrt(a.Top1 * (1 - a.Top1) / float64(a.Images))
	}
	return a
}

// Difference compares two classifiers on the same test images.
type Difference struct {
	// Points is accuracy(a) - accuracy(b), in percentage points.
	Points float64
	// StdErr is its standard error in points from the paired outcomes
	// (each image is right or wrong under both): √(b + c - (b-c)²/n)/n
	// for b images only a gets right and c only b does. It is smaller than
	// the two accuracies' errors combined, because both see the same
	// images.
	StdErr float64
	// OnlyA and OnlyB count the images only a, or only b, classifies
	// correctly.
	OnlyA, OnlyB int
}

// Compare is the paired difference of two predictions of the same labels.
func Compare(a, b, labels []int) Difference {
	if len(a) != len(labels) || len(b) != len(labels) {
		panic("eval: Compare of predictions and labels of different lengths")
	}
	var d Difference
	for i, l := range labels {
		switch ra, rb := a[i] == l, b[i] == l; {
		case ra && !rb:
			d.OnlyA++
		case rb && !ra:
			d.OnlyB++
		}
	}
	n := float64(len(labels))
	if n == 0 {
		return d
	}
	onlyA, onlyB := float64(d.OnlyA), float64(d.OnlyB)
	d.Points = 100 * (onlyA - onlyB) / n
	d.StdErr = 100 * math.Sqrt(math.Max(onlyA+onlyB-(onlyA-onlyB)*(onlyA-onlyB)/n, 0)) / n
	return d
}
