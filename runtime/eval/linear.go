package eval

import (
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
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
	obj := newLinearObjective(x, trainLabels, dim, classes, o.L2)
	problem := optimize.Problem{
		Func: func(w []float64) float64 { return obj.eval(w) },
		Grad: func(grad, w []float64) {
			obj.eval(w)
			copy(grad, obj.grad)
		},
	}
	w0 := make([]float64, classes*width)
	res, err := optimize.Minimize(problem, w0, &optimize.Settings{MajorIterations: o.MaxIterations,
		Converger: &optimize.FunctionConverge{Relative: 1e-7, Iterations: 10}}, &optimize.LBFGS{})
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

// linearObjective is the mean cross-entropy plus the L2 penalty
// λ/2·‖W‖² (biases unpenalised) of the weights w = [W_c | b_c] per class,
// with its gradient. Both come from one evaluation, cached for the w it was
// made at: L-BFGS asks for the value and the gradient at the same point.
// The products are two matrix multiplications (gonum's BLAS, parallel over
// the cores): logits = X·Wᵀ and ∂/∂W = (P - Y)ᵀ·X / n.
type linearObjective struct {
	x                   blas64.General // [n, dim]
	labels              []int
	dim, classes, width int
	l2                  float64
	logits              blas64.General // [n, classes]
	at, grad            []float64
	loss                float64
	valid               bool
}

func newLinearObjective(x []float64, labels []int, dim, classes int, l2 float64) *linearObjective {
	n := len(labels)
	return &linearObjective{
		x:      blas64.General{Rows: n, Cols: dim, Stride: dim, Data: x},
		labels: labels, dim: dim, classes: classes, width: dim + 1, l2: l2,
		logits: blas64.General{Rows: n, Cols: classes, Stride: classes, Data: make([]float64, n*classes)},
		grad:   make([]float64, classes*(dim+1)),
	}
}

func (o *linearObjective) eval(w []float64) float64 {
	if o.valid && slices.Equal(w, o.at) {
		return o.loss
	}
	o.loss = objective(w, o.grad, o.x, o.labels, o.classes, o.width, o.l2, o.logits)
	o.at, o.valid = append(o.at[:0], w...), true
	return o.loss
}

// objective computes the loss and, when grad is not nil, its gradient.
func objective(w, grad []float64, x blas64.General, labels []int, classes, width int, l2 float64, logits blas64.General) float64 {
	n, dim := x.Rows, x.Cols
	weights := blas64.General{Rows: classes, Cols: dim, Stride: width, Data: w}
	blas64.Gemm(blas.NoTrans, blas.Trans, 1, x, weights, 0, logits)
	var loss float64
	for i := 0; i < n; i++ {
		row := logits.Data[i*classes : (i+1)*classes]
		maxLogit := math.Inf(-1)
		for c := range row {
			row[c] += w[c*width+dim]
			maxLogit = math.Max(maxLogit, row[c])
		}
		var sum float64
		for c := range row {
			row[c] = math.Exp(row[c] - maxLogit)
			sum += row[c]
		}
		loss -= math.Log(row[labels[i]] / sum)
		// row becomes (softmax - one-hot)/n, the gradient of the logits.
		for c := range row {
			row[c] /= sum
		}
		row[labels[i]]--
		for c := range row {
			row[c] /= float64(n)
		}
	}
	loss /= float64(n)
	if grad != nil {
		clear(grad)
		gw := blas64.General{Rows: classes, Cols: dim, Stride: width, Data: grad}
		blas64.Gemm(blas.Trans, blas.NoTrans, 1, logits, x, 0, gw)
		for i := 0; i < n; i++ {
			for c := 0; c < classes; c++ {
				grad[c*width+dim] += logits.Data[i*classes+c]
			}
		}
	}
	for c := 0; c < classes; c++ {
		for j := 0; j < dim; j++ {
			v := w[c*width+j]
			loss += 0.5 * l2 * v * v
			if grad != nil {
				grad[c*width+j] += l2 * v
			}
		}
	}
	return loss
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
