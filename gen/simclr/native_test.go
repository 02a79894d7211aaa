package simclr

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/simclr-ort/simclr-ort/graphs"
	"github.com/simclr-ort/simclr-ort/internal/gradcheck"
	"github.com/simclr-ort/simclr-ort/internal/nativeop"
	"github.com/simclr-ort/simclr-ort/runtime/ort"
	"github.com/simclr-ort/simclr-ort/runtime/step"
)

// A native training step is the standard one with convolutions summed in
// another order (oneDNN's blocking, Winograd's transforms, dense products
// instead of ONNX Runtime's sums: 1e-7 to 2e-6 of the scale per op). Carried
// through BatchNorm's nearly cancelling sums of a random-init network, that
// reordering alone moves some ResNet50 gradients far more than float32's
// epsilon: the two standard formulations (Conv nodes, and patches+Gemm)
// already disagree by 2-5e-2 on some BatchNorm bias gradient, and the loss
// and running means (near zero at layer4's 1x1 maps) by 1e-5 or so. So
// every gradient is held against the Conv-node step within noiseFactor times
// that configuration's float32 noise, never tighter than tolNativeGrad; the
// loss and running statistics within each case's tolerance. The noise is
// the worst of two disagreements with the Conv-node step: the other
// standard formulation's (patches+Gemm), and the Conv-node step's own on
// views multiplied by 1±viewJitter, the size of the native ops' own worst
// disagreement with the standard ones (2e-6 of the scale, Winograd's). A
// perturbation that small already flips a ReLU input near zero here and
// there, and with it a BatchNorm gradient by 1e-2 on these random-init
// batches.
const (
	noiseFactor   = 5
	tolNativeGrad = 1e-4
	viewJitter    = 3e-6
)

// runStep runs one training step of a built configuration on fixed random
// weights and views; with jitter, every view is multiplied by 1±jitter
// (random signs), a perturbation at the level of float32 rounding.
func runStep(t *testing.T, b *Built, native bool, jitter float32) *step.Model {
	t.Helper()
	md, err := step.New(b.Manifest, b.Train, ort.Options{IntraOpThreads: 2, NativeKernels: native})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { md.Close() })
	r := rand.New(rand.NewPCG(3, 4))
	md.Initialize(r)
	signs := rand.New(rand.NewPCG(5, 6))
	for i := range md.Views {
		md.Views[i] = r.Float32()
		if jitter != 0 {
			md.Views[i] *= 1 + jitter*float32(2*signs.IntN(2)-1)
		}
	}
	if _, err := md.Run(); err != nil {
		t.Fatal(err)
	}
	return md
}

// stepDiff is how far one step's results are from another's: the loss's
// relative difference and the worst relative L2 difference over the
// gradients and over the new running statistics.
type stepDiff struct {
	loss, grad, stats float64
	gradName          string
}

func diffSteps(got, want *step.Model) stepDiff {
	d := stepDiff{loss: gradcheck.RelL2(got.Loss, want.Loss)}
	for i, p := range want.Manifest.Params {
		if rel := gradcheck.RelL2(got.Grads[i], want.Grads[i]); rel >= d.grad {
			d.grad, d.gradName = rel, p.Name
		}
	}
	for i := range want.Manifest.Buffers {
		d.stats = max(d.stats, gradcheck.RelL2(got.NewBuffers[i], want.NewBuffers[i]))
	}
	return d
}

// TestNativeStepMatchesStandard: a whole training step of the native
// variant gives the standard variant's loss, gradients and running
// statistics within float32 noise, for ResNet18 (both stems) and ResNet50.
func TestNativeStepMatchesStandard(t *testing.T) {
	gradcheck.InitNative(t)
	for _, c := range []struct {
		cfg               graphs.Config
		tolLoss, tolStats float64
	}{
		// Measured: loss 1e-6, running statistics 2.5e-6; 0 and 9e-7.
		{graphs.Config{Arch: "resnet18", Stem: "imagenet", ImageSize: 32, Pairs: 4}, 1e-5, 1e-5},
		{graphs.Config{Arch: "resnet18", Stem: "cifar", ImageSize: 16, Pairs: 4}, 1e-5, 1e-5},
		// Measured: loss 3.3e-5, running statistics 6.6e-5 (patches+Gemm
		// against Conv nodes: 3.5e-6 and 2.8e-5).
		{graphs.Config{Arch: "resnet50", Stem: "imagenet", ImageSize: 32, Pairs: 4}, 2e-4, 3e-4},
	} {
		cfg := c.cfg
		t.Run(cfg.Defaults().Name(), func(t *testing.T) {
			build := func(opts Options) *Built {
				b, err := BuildWith(cfg, "test", opts)
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			convs, gemm, native := build(Options{ConvNodes: true}), build(Options{}), build(Options{Kernels: KernelsNative})
			if !bytes.Equal(convs.Inference, native.Inference) {
				t.Error("the native variant changed the inference graph")
			}
			want := runStep(t, convs, false, 0)
			noise := diffSteps(runStep(t, gemm, false, 0), want)
			jittered := diffSteps(runStep(t, convs, false, viewJitter), want)
			noise.loss, noise.stats = max(noise.loss, jittered.loss), max(noise.stats, jittered.stats)
			if jittered.grad > noise.grad {
				noise.grad, noise.gradName = jittered.grad, jittered.gradName
			}
			got := runStep(t, native, true, 0)
			d := diffSteps(got, want)
			t.Logf("native vs Conv nodes: loss %.2g, worst gradient %.2g (%s), worst running statistic %.2g; "+
				"the noise (patches+Gemm, or views jittered by 3e-6, vs Conv nodes): loss %.2g, gradient %.2g (%s), running statistic %.2g",
				d.loss, d.grad, d.gradName, d.stats, noise.loss, noise.grad, noise.gradName, noise.stats)
			if !(d.loss < c.tolLoss) {
				t.Errorf("loss %v, standard %v: relative difference %.2g (want < %.2g)", got.Loss[0], want.Loss[0], d.loss, c.tolLoss)
			}
			tolGrad := max(tolNativeGrad, noiseFactor*noise.grad)
			for i, p := range want.Manifest.Params {
				if rel := gradcheck.RelL2(got.Grads[i], want.Grads[i]); !(rel < tolGrad) {
					t.Errorf("gradient of %s: relative L2 difference %.2g (want < %.2g)", p.Name, rel, tolGrad)
				}
			}
			for i, b := range want.Manifest.Buffers {
				if rel := gradcheck.RelL2(got.NewBuffers[i], want.NewBuffers[i]); !(rel < c.tolStats) {
					t.Errorf("%s: relative L2 difference %.2g (want < %.2g)", b.Output, rel, c.tolStats)
				}
			}
		})
	}
}

// TestNativeVariantNeedsTheOption: a native graph imports the domain, and a
// session without ort.Options.NativeKernels refuses it, saying what to do;
// unknown kernels and the GPU variant are refused while building.
func TestNativeVariantNeedsTheOption(t *testing.T) {
	gradcheck.InitORT(t)
	cfg := graphs.Config{Arch: "resnet18", Stem: "cifar", ImageSize: 8, Pairs: 2}
	b, err := BuildWith(cfg, "test", Options{Kernels: KernelsNative})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b.Train, []byte(nativeop.Domain)) {
		t.Fatalf("the native training graph does not mention domain %s", nativeop.Domain)
	}
	_, err = step.New(b.Manifest, b.Train, ort.Options{IntraOpThreads: 1})
	if err == nil || !strings.Contains(err.Error(), "NativeKernels") {
		t.Errorf("a session without NativeKernels: error %v, want one naming ort.Options.NativeKernels", err)
	}
	if _, err := BuildWith(cfg, "test", Options{Kernels: "cudnn"}); err == nil {
		t.Error("unknown kernels accepted")
	}
	gpu := cfg
	gpu.ConvGrad = "gpu"
	if _, err := BuildWith(gpu, "test", Options{Kernels: KernelsNative}); err == nil {
		t.Error("native kernels accepted for the GPU variant")
	}
	plain, err := BuildWith(cfg, "test", Options{})
	if err != nil {
		t.Fatal(err)
	}
	onnx, err := BuildWith(cfg, "test", Options{Kernels: KernelsONNX})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(plain.Train, onnx.Train) {
		t.Errorf("Kernels %q changed the default graph", KernelsONNX)
	}
}

// TestNativeMutantsChangeTheGraph: the parity gate's mutants wrong the
// native variant too (its convolutions' and poolings' rules included).
func TestNativeMutantsChangeTheGraph(t *testing.T) {
	cfg := graphs.Config{Arch: "resnet18", Stem: "imagenet", ImageSize: 32, Pairs: 2}
	plain, err := BuildWith(cfg, "test", Options{Kernels: KernelsNative})
	if err != nil {
		t.Fatal(err)
	}
	for name := range Mutants() {
		b, err := BuildWith(cfg, "test", Options{Kernels: KernelsNative, Mutant: name})
		if err != nil {
			t.Fatalf("mutant %s: %v", name, err)
		}
		if bytes.Equal(b.Train, plain.Train) {
			t.Errorf("mutant %s leaves the native training graph unchanged", name)
		}
	}
}
