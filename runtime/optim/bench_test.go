package optim

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// resnet18Sizes returns the parameter tensor sizes of a ResNet18 encoder
// encoder (ImageNet stem, no fc) followed by the SimCLR projector
// (512->512->64, no biases), and whether each is excluded (BatchNorm): 62
// tensors, 11.47M floats.
func resnet18Sizes() (sizes []int, excluded []bool) {
	conv := func(cout, cin, k int) {
		sizes = append(sizes, cout*cin*k*k)
		excluded = append(excluded, false)
	}
	bn := func(c int) {
		sizes = append(sizes, c, c)
		excluded = append(excluded, true, true)
	}
	conv(64, 3, 7)
	bn(64)
	in := 64
	for stage, out := range []int{64, 128, 256, 512} {
		for block := range 2 {
			cin := in
			if block == 1 {
				cin = out
			}
			conv(out, cin, 3)
			bn(out)
			conv(out, out, 3)
			bn(out)
			if block == 0 && stage > 0 {
				conv(out, cin, 1)
				bn(out)
			}
		}
		in = out
	}
	conv(512, 512, 1)
	conv(64, 512, 1)
	return sizes, excluded
}

func BenchmarkLARSResNet18(b *testing.B) {
	sizes, excluded := resnet18Sizes()
	total := 0
	for _, n := range sizes {
		total += n
	}
	rng := rand.New(rand.NewPCG(1, 1))
	params := make([][]float32, len(sizes))
	grads := make([][]float32, len(sizes))
	for k, n := range sizes {
		params[k] = make([]float32, n)
		grads[k] = make([]float32, n)
		for i := range n {
			params[k][i] = float32(rng.NormFloat64() * 0.05)
			grads[k][i] = float32(rng.NormFloat64() * 0.001)
		}
	}
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("tensors=%d/floats=%d/workers=%d", len(sizes), total, workers), func(b *testing.B) {
			o := NewLARS(sizes, excluded, LARSConfig{Workers: workers})
			b.SetBytes(int64(total) * 4)
			b.ReportAllocs()
			for b.Loop() {
				o.Step(1e-6, params, grads)
			}
		})
	}
}

func BenchmarkAdamResNet18(b *testing.B) {
	sizes, _ := resnet18Sizes()
	params := make([][]float32, len(sizes))
	grads := make([][]float32, len(sizes))
	total := 0
	for k, n := range sizes {
		params[k] = make([]float32, n)
		grads[k] = make([]float32, n)
		total += n
	}
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			o := NewAdam(sizes, AdamConfig{Workers: workers})
			b.SetBytes(int64(total) * 4)
			b.ReportAllocs()
			for b.Loop() {
				o.Step(1e-6, params, grads)
			}
		})
	}
}

func TestResNet18Sizes(t *testing.T) {
	sizes, _ := resnet18Sizes()
	total := 0
	for _, n := range sizes {
		total += n
	}
	if len(sizes) != 62 || total != 11471424 {
		t.Errorf("resnet18Sizes: %d tensors, %d floats; want 62 and 11471424", len(sizes), total)
	}
}
