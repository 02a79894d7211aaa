package eval

import (
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkLinearFashionMNISTSize fits the linear probe on features of
// full Fashion-MNIST's size (60,000 x 512, 10 classes; 10,000 test), with
// classes that overlap as real features do.
func BenchmarkLinearFashionMNISTSize(b *testing.B) {
	const n, m, dim, classes = 60000, 10000, 512, 10
	r := rand.New(rand.NewPCG(5, 6))
	centres := make([]float32, classes*dim)
	for i := range centres {
		centres[i] = float32(r.NormFloat64())
	}
	feat := func(rows int) ([]float32, []int) {
		f, l := make([]float32, rows*dim), make([]int, rows)
		for i := range l {
			l[i] = r.IntN(classes)
			for j := 0; j < dim; j++ {
				f[i*dim+j] = 0.15*centres[l[i]*dim+j] + float32(r.NormFloat64())
			}
		}
		return f, l
	}
	train, labels := feat(n)
	test, testLabels := feat(m)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		acc, err := Linear(train, labels, test, testLabels, dim, LinearOptions{})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(acc, "top1")
		b.ReportMetric(time.Since(start).Seconds(), "s/fit")
	}
}
