package eval

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/optimize"
)

// LinearOptions configure the linear probe; zero fields mean defaults.
type LinearOptions struct {
	// L2 is the weight penalty λ/2·‖W‖² added to the mean cross-entropy
	// (0 means 1e-4).
	L2 float64
	// MaxIterations bounds L-BFGS (0 means 500).
	MaxIterations int
}

// Linear is the linear-probe protocol: multinomial logistic regression on
// the frozen training features, standardised with the training mean and
// standard deviation, fitted by L-BFGS (gonum's optimize); it returns the
// top-1 accuracy on the test features.
func Linear(train []float32, trainLabels []int, test []float32, testLabels []int, dim int, o LinearOptions) (float64, error) {
	predicted, err := LinearPredict(train, trainLabels, test, dim, o)
	if err != nil {
		return 0, err
	}
	return Score(predicted, testLabels).Top1, nil
}

// LinearPredict is Linear's predicted class of every test feature.
func LinearPredict(train []float32, trainLabels []int, test []float32, dim int, o LinearOptions) ([]int, error) {
	if o.L2 == 0 {
		o.L2 = 1e-4
	}
	if o.MaxIterations == 0 {
		o.MaxIterations = 500
	}
	classes := 0
	for _, l := range trainLabels {
		classes = max(classes, l+1)
	}
	mean, std := standardisation(train, dim)
	x := standardise(train, dim, mean, std)
	xt := standardise(test, dim, mean, std)
	width := dim + 1 // weights and bias per class
	logits := make([]float64, classes)
	problem := optimize.Problem{
		Func: func(w []float64) float64 {
			f, _ := objective(w, nil, x, trainLabels, dim, classes, width, o.L2, logits)
			return f
		},
		Grad: func(grad, w []float64) {
			objective(w, grad, x, trainLabels, dim, classes, width, o.L2, logits)
		},
	}
	w0 := make([]float64, classes*width)
	res, err := optimize.Minimize(problem, w0, &optimize.Settings{MajorIterations: o.MaxIterations}, &optimize.LBFGS{})
	if err != nil && res == nil {
		return nil, fmt.Errorf("eval: linear probe: %w", err)
	}
	w := res.X
	predicted := make([]int, len(test)/dim)
	for i := range predicted {
		row := xt[i*dim : (i+1)*dim]
		best, bestScore := 0, math.Inf(-1)
		for c := 0; c < classes; c++ {
			s := score(w[c*width:(c+1)*width], row)
			if s > bestScore {
				best, bestScore = c, s
			}
		}
		predicted[i] = best
	}
	return predicted, nil
}

func score(wc []float64, row []float64) float64 {
	s := wc[len(wc)-1]
	for j, v := range row {
		s += wc[j] * v
	}
	return s
}

// objective is the mean cross-entropy plus the L2 penalty, and its gradient
// when grad is not nil.
func objective(w, grad []float64, x []float64, labels []int, dim, classes, width int, l2 float64, logits []float64) (float64, []float64) {
	n := len(labels)
	if grad != nil {
		clear(grad)
	}
	var loss float64
	for i := 0; i < n; i++ {
		row := x[i*dim : (i+1)*dim]
		maxLogit := math.Inf(-1)
		for c := 0; c < classes; c++ {
			logits[c] = score(w[c*width:(c+1)*width], row)
			maxLogit = math.Max(maxLogit, logits[c])
		}
		var sum float64
		for c := range logits {
			logits[c] = math.Exp(logits[c] - maxLogit)
			sum += logits[c]
		}
		loss -= math.Log(logits[labels[i]] / sum)
		if grad == nil {
			continue
		}
		for c := 0; c < classes; c++ {
			g := logits[c] / sum
			if c == labels[i] {
				g--
			}
			g /= float64(n)
			gc := grad[c*width : (c+1)*width]
			for j, v := range row {
				gc[j] += g * v
			}
			gc[dim] += g
		}
	}
	loss /= float64(n)
	for c := 0; c < classes; c++ {
		for j := 0; j < dim; j++ {
			v := w[c*width+j]
			loss += 0.5 * l2 * v * v
			if grad != nil {
				grad[c*width+j] += l2 * v
			}
		}
	}
	return loss, grad
}

func standardisation(f []float32, dim int) (mean, std []float64) {
	n := len(f) / dim
	mean, std = make([]float64, dim), make([]float64, dim)
	for i := 0; i < n; i++ {
		for j := 0; j < dim; j++ {
			mean[j] += float64(f[i*dim+j])
		}
	}
	for j := range mean {
		mean[j] /= float64(n)
	}
	for i := 0; i < n; i++ {
		for j := 0; j < dim; j++ {
			d := float64(f[i*dim+j]) - mean[j]
			std[j] += d * d
		}
	}
	for j := range std {
		std[j] = math.Sqrt(std[j]/float64(n)) + 1e-8
	}
	return mean, std
}

func standardise(f []float32, dim int, mean, std []float64) []float64 {
	out := make([]float64, len(f))
	for i, v := range f {
		j := i % dim
		out[i] = (float64(v) - mean[j]) / std[j]
	}
	return out
}
