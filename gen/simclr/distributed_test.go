package simclr

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/simclr-ort/simclr-ort/graphs"
	"github.com/simclr-ort/simclr-ort/internal/gradcheck"
	"github.com/simclr-ort/simclr-ort/runtime/ort"
)

// Tolerances of the split step against the single training graph. With one
// rank the same ops run on the same batch, so only the order of float32
// sums may differ; with two ranks the convolutions and BatchNorm run on
// other batch shapes than the single graph's, and the gradients of a
// random-init network pass through BatchNorm's nearly cancelling sums.
const (
	tolOneRankLoss  = 1e-6
	tolOneRankGrad  = 1e-5
	tolTwoRankLoss  = 1e-5
	tolTwoRankGrad  = 1e-4
	tolRunningStats = 1e-5
	// tolLossGradFD bounds the loss graph's dz_all against central
	// differences of its float32 loss.
	tolLossGradFD = 2e-3
	// tolInitialLoss: at initialisation the projections are alike and the
	// loss is near ln(2nW-1) (runtime/step's tolerance).
	tolInitialLoss = 0.01
)

// tensor is a named buffer bound to a session.
type tensor struct {
	shape []int64
	data  []float32
}

func newTensor(shape []int64) *tensor {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return &tensor{shape: shape, data: make([]float32, n)}
}

// runner is a model bound to named buffers.
type runner struct {
	s   *ort.Session
	in  map[string]*tensor
	out map[string]*tensor
}

func newRunner(t *testing.T, model []byte, in, out map[string]*tensor, opts ort.Options) *runner {
	t.Helper()
	var ins, outs []ort.Binding
	for _, k := range sortedNames(in) {
		ins = append(ins, ort.Binding{Name: k, Shape: in[k].shape, Data: in[k].data})
	}
	for _, k := range sortedNames(out) {
		outs = append(outs, ort.Binding{Name: k, Shape: out[k].shape, Data: out[k].data})
	}
	opts.IntraOpThreads = 1
	s, err := ort.NewSession(model, ins, outs, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &runner{s: s, in: in, out: out}
}

func (r *runner) run(t *testing.T) {
	t.Helper()
	if err := r.s.Run(); err != nil {
		t.Fatal(err)
	}
}

func sortedNames(m map[string]*tensor) []string { return slices.Sorted(maps.Keys(m)) }

// fill draws a tensor from its initialiser; with perturb, BatchNorm's
// affine parameters and running statistics get a random perturbation so
// that no gradient or update is special.
func fill(r *rand.Rand, spec graphs.Tensor, dst []float32, perturb bool) {
	noise := 0.0
	if perturb {
		noise = 0.1
	}
	for i := range dst {
		switch spec.Init.Dist {
		case "normal":
			dst[i] = float32(r.NormFloat64() * spec.Init.Std)
		case "uniform":
			dst[i] = float32((2*r.Float64() - 1) * spec.Init.Bound)
		default:
			dst[i] = float32(spec.Init.Value + noise*r.NormFloat64())
		}
	}
}

// splitStep runs the distributed graphs of one rank configuration for
// world ranks emulated in one process: every rank's forward, the loss on
// the gathered z, every rank's backward on its block of dz_all; it returns
// the loss, the summed partial gradients and the averaged new running
// statistics, in manifest order.
type splitStep struct {
	m                  *graphs.Distributed
	fwd, loss, bwd     *runner
	params, buffers    [][]float32
	viewsPerRank, zLen int
}

func newSplitStep(t *testing.T, b *DistributedBuilt, opts ort.Options) *splitStep {
	m := b.Manifest
	c := m.Config
	views := []int64{2 * int64(c.Pairs), 3, int64(c.ImageSize), int64(c.ImageSize)}
	zShape := []int64{2 * int64(c.Pairs), int64(c.ProjectionDim)}
	fwdIn := map[string]*tensor{m.Input: newTensor(views)}
	fwdOut := map[string]*tensor{m.Projection: newTensor(zShape)}
	bwdIn := map[string]*tensor{m.Input: newTensor(views), m.ProjectionGrad: newTensor(zShape)}
	bwdOut := map[string]*tensor{}
	s := &splitStep{m: m}
	for _, p := range m.Params {
		fwdIn[p.Name] = newTensor(p.Shape)
		bwdIn[p.Name] = &tensor{shape: p.Shape, data: fwdIn[p.Name].data}
		bwdOut[p.Output] = newTensor(p.Shape)
		s.params = append(s.params, fwdIn[p.Name].data)
	}
	for _, bf := range m.Buffers {
		fwdIn[bf.Name] = newTensor(bf.Shape)
		fwdOut[bf.Output] = newTensor(bf.Shape)
		s.buffers = append(s.buffers, fwdIn[bf.Name].data)
	}
	for _, a := range m.Saved {
		if fwdOut[a.Name] != nil || bwdIn[a.Name] != nil {
			t.Fatalf("saved activation %s has the name of another input or output", a.Name)
		}
		fwdOut[a.Name] = newTensor(a.Shape)
		bwdIn[a.Name] = newTensor(a.Shape)
	}
	gathered := []int64{zShape[0] * int64(m.World), zShape[1]}
	s.fwd = newRunner(t, b.Forward, fwdIn, fwdOut, opts)
	s.loss = newRunner(t, b.Loss, map[string]*tensor{m.Gathered: newTensor(gathered)},
		map[string]*tensor{m.Loss: newTensor([]int64{1}), m.GatheredGrad: newTensor(gathered)}, opts)
	s.bwd = newRunner(t, b.Backward, bwdIn, bwdOut, opts)
	s.viewsPerRank = len(fwdIn[m.Input].data)
	s.zLen = len(fwdOut[m.Projection].data)
	return s
}

// run executes the step on views holding every rank's batch in rank order.
func (s *splitStep) run(t *testing.T, views []float32) (loss float32, grads, newBuffers [][]float64) {
	m := s.m
	saved := make([]map[string][]float32, m.World)
	for _, bf := range m.Buffers {
		newBuffers = append(newBuffers, make([]float64, len(s.fwd.out[bf.Output].data)))
	}
	gathered := s.loss.in[m.Gathered].data
	for r := 0; r < m.World; r++ {
		copy(s.fwd.in[m.Input].data, views[r*s.viewsPerRank:(r+1)*s.viewsPerRank])
		s.fwd.run(t)
		copy(gathered[r*s.zLen:], s.fwd.out[m.Projection].data)
		saved[r] = map[string][]float32{}
		for _, a := range m.Saved {
			saved[r][a.Name] = append([]float32(nil), s.fwd.out[a.Name].data...)
		}
		for i, bf := range m.Buffers { // all-reduce, mean
			for j, x := range s.fwd.out[bf.Output].data {
				newBuffers[i][j] += float64(x) / float64(m.World)
			}
		}
	}
	s.loss.run(t)
	loss = s.loss.out[m.Loss].data[0]
	for _, p := range m.Params {
		grads = append(grads, make([]float64, len(s.bwd.out[p.Output].data)))
	}
	for r := 0; r < m.World; r++ {
		copy(s.bwd.in[m.Input].data, views[r*s.viewsPerRank:(r+1)*s.viewsPerRank])
		for _, a := range m.Saved {
			copy(s.bwd.in[a.Name].data, saved[r][a.Name])
		}
		copy(s.bwd.in[m.ProjectionGrad].data, s.loss.out[m.GatheredGrad].data[r*s.zLen:(r+1)*s.zLen])
		s.bwd.run(t)
		for i, p := range m.Params { // all-reduce, sum
			for j, x := range s.bwd.out[p.Output].data {
				grads[i][j] += float64(x)
			}
		}
	}
	return loss, grads, newBuffers
}

// trainStep is the single training graph of a configuration.
type trainStep struct {
	m      *graphs.Manifest
	r      *runner
	params [][]float32
}

func newTrainStep(t *testing.T, b *Built, opts ort.Options) *trainStep {
	m := b.Manifest
	c := m.Config
	in := map[string]*tensor{m.Input: newTensor([]int64{2 * int64(c.Pairs), 3, int64(c.ImageSize), int64(c.ImageSize)})}
	out := map[string]*tensor{m.Loss: newTensor([]int64{1})}
	s := &trainStep{m: m}
	for _, p := range m.Params {
		in[p.Name] = newTensor(p.Shape)
		out[p.Output] = newTensor(p.Shape)
		s.params = append(s.params, in[p.Name].data)
	}
	for _, bf := range m.Buffers {
		in[bf.Name] = newTensor(bf.Shape)
		out[bf.Output] = newTensor(bf.Shape)
	}
	s.r = newRunner(t, b.Train, in, out, opts)
	return s
}

func toFloat32(xs []float64) []float32 {
	out := make([]float32, len(xs))
	for i, x := range xs {
		out[i] = float32(x)
	}
	return out
}

// TestSplitStepMatchesTrainingGraph runs Forward, Loss and Backward of
// BuildDistributed for W ranks emulated in one process (gradients summed,
// running statistics averaged, as graphs.Distributed says) and compares
// them with the single training graph of the equivalent configuration
// (W·n pairs in W shards) on the same views: the loss, every gradient and
// every new running statistic. Both sides keep their convolutions as Conv
// nodes (Options.ConvNodes): the split is exact only where a view's result
// does not depend on the rest of the batch, and the Gemm form's blocking
// does (TestConvsAsGemm checks that form on its own). The native kernels'
// split runs against the native single graph.
func TestSplitStepMatchesTrainingGraph(t *testing.T) {
	gradcheck.InitORT(t)
	convNodes := Options{ConvNodes: true}
	native := Options{Kernels: KernelsNative}
	for _, c := range []struct {
		cfg               graphs.Config
		world             int
		opts              Options
		tolLoss, tolGrads float64
	}{
		{graphs.Config{Arch: "resnet18", Stem: "cifar", ImageSize: 8, Pairs: 4}, 1, convNodes, tolOneRankLoss, tolOneRankGrad},
		{graphs.Config{Arch: "resnet18", Stem: "imagenet", ImageSize: 16, Pairs: 3, BNGroups: 2, BNLowering: "primitive"}, 1, convNodes, tolOneRankLoss, tolOneRankGrad},
		{graphs.Config{Arch: "resnet18", Stem: "cifar", ImageSize: 8, Pairs: 4}, 2, convNodes, tolTwoRankLoss, tolTwoRankGrad},
		{graphs.Config{Arch: "resnet18", Stem: "cifar", ImageSize: 8, Pairs: 2, BNGroups: 2}, 2, convNodes, tolTwoRankLoss, tolTwoRankGrad},
		{graphs.Config{Arch: "resnet18", Stem: "imagenet", ImageSize: 16, Pairs: 3}, 2, convNodes, tolTwoRankLoss, tolTwoRankGrad},
		{graphs.Config{Arch: "resnet18", Stem: "cifar", ImageSize: 8, Pairs: 4}, 2, native, tolTwoRankLoss, tolTwoRankGrad},
		{graphs.Config{Arch: "resnet18", Stem: "imagenet", ImageSize: 16, Pairs: 3}, 2, native, tolTwoRankLoss, tolTwoRankGrad},
	} {
		cfg := c.cfg.Defaults()
		name := fmt.Sprintf("%s-world%d", cfg.Name(), c.world)
		if c.opts.Kernels == KernelsNative {
			name += "-native"
		}
		t.Run(name, func(t *testing.T) {
			ortOpts := ort.Options{}
			if c.opts.Kernels == KernelsNative {
				gradcheck.InitNative(t)
				ortOpts.NativeKernels = true
			}
			dist, err := BuildDistributed(cfg, c.world, "test", c.opts)
			if err != nil {
				t.Fatal(err)
			}
			eq := dist.Manifest.Equivalent()
			if c.world == 1 && eq != cfg {
				t.Fatalf("the equivalent of one rank is %+v, not the rank's own %+v", eq, cfg)
			}
			single, err := BuildWith(eq, "test", c.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := dist.Manifest.Identity(), single.Manifest.Identity(); got != want {
				t.Errorf("identity %s, the equivalent graph's %s", got, want)
			}
			split, train := newSplitStep(t, dist, ortOpts), newTrainStep(t, single, ortOpts)
			r := rand.New(rand.NewPCG(7, uint64(c.world)))
			for i, p := range single.Manifest.Params {
				fill(r, p, train.params[i], true)
				copy(split.params[i], train.params[i])
			}
			for i, bf := range single.Manifest.Buffers {
				fill(r, bf, train.r.in[bf.Name].data, true)
				copy(split.buffers[i], train.r.in[bf.Name].data)
			}
			views := train.r.in[single.Manifest.Input].data
			for i := range views {
				views[i] = r.Float32()
			}
			train.r.run(t)
			loss, grads, newBuffers := split.run(t, views)

			want := train.r.out[single.Manifest.Loss].data[0]
			if rel := math.Abs(float64(loss-want)) / math.Abs(float64(want)); rel > c.tolLoss {
				t.Errorf("loss %.7f, single graph %.7f: relative error %.2g > %.2g", loss, want, rel, c.tolLoss)
			} else {
				t.Logf("loss %.7f, single graph %.7f: relative error %.2g", loss, want, rel)
			}
			worst, worstName := -1.0, ""
			for i, p := range single.Manifest.Params {
				rel := gradcheck.RelL2(toFloat32(grads[i]), train.r.out[p.Output].data)
				if rel > c.tolGrads || math.IsNaN(rel) {
					t.Errorf("gradient of %s: relative L2 error %.2g > %.2g", p.Name, rel, c.tolGrads)
				}
				if rel > worst {
					worst, worstName = rel, p.Name
				}
			}
			t.Logf("%d gradients, worst relative L2 error %.2g (%s)", len(grads), worst, worstName)
			worst, worstName = -1, ""
			for i, bf := range single.Manifest.Buffers {
				rel := gradcheck.RelL2(toFloat32(newBuffers[i]), train.r.out[bf.Output].data)
				if rel > tolRunningStats || math.IsNaN(rel) {
					t.Errorf("new %s: relative L2 error %.2g > %.2g", bf.Name, rel, tolRunningStats)
				}
				if rel > worst {
					worst, worstName = rel, bf.Name
				}
			}
			t.Logf("%d running statistics, worst relative L2 error %.2g (%s)", len(newBuffers), worst, worstName)
		})
	}
}

// TestSplitStepInitialLoss checks that the split step's loss at
// initialisation is ln(2nW-1): every projection is then alike, so all
// 2nW-1 logits of an anchor are nearly equal, whichever rank holds them.
func TestSplitStepInitialLoss(t *testing.T) {
	gradcheck.InitORT(t)
	for _, world := range []int{1, 2} {
		cfg := graphs.Config{Arch: "resnet18", Stem: "cifar", ImageSize: 16, Pairs: 8}.Defaults()
		t.Run(fmt.Sprintf("%s-world%d", cfg.Name(), world), func(t *testing.T) {
			b, err := BuildDistributed(cfg, world, "test", Options{})
			if err != nil {
				t.Fatal(err)
			}
			split := newSplitStep(t, b, ort.Options{})
			r := rand.New(rand.NewPCG(8, 9))
			for i, p := range b.Manifest.Params {
				fill(r, p, split.params[i], false)
			}
			for i, bf := range b.Manifest.Buffers {
				fill(r, bf, split.buffers[i], false)
			}
			views := make([]float32, world*split.viewsPerRank)
			for i := range views {
				views[i] = r.Float32()
			}
			loss, _, _ := split.run(t, views)
			n := 2*cfg.Pairs*world - 1
			want := math.Log(float64(n))
			if rel := math.Abs(float64(loss)-want) / want; rel > tolInitialLoss {
				t.Errorf("initial loss %.5f, want ln(%d) = %.5f within %.0f%% (off by %.2f%%)", loss, n, want, 100*tolInitialLoss, 100*rel)
			} else {
				t.Logf("initial loss %.5f, ln(%d) = %.5f (%.3f%% off)", loss, n, want, 100*rel)
			}
		})
	}
}

// TestLossGraphGradient checks the loss graph's dz_all against central
// differences of its own loss output, for one and two ranks.
func TestLossGraphGradient(t *testing.T) {
	gradcheck.InitORT(t)
	for _, world := range []int{1, 2} {
		t.Run(fmt.Sprint("world", world), func(t *testing.T) {
			cfg := graphs.Config{Arch: "resnet18", Stem: "cifar", ImageSize: 8, Pairs: 2, ProjectionDim: 3, Temperature: 0.2}
			b, err := BuildDistributed(cfg, world, "test", Options{})
			if err != nil {
				t.Fatal(err)
			}
			m := b.Manifest
			shape := []int64{int64(4 * world), 3}
			z, loss, dz := newTensor(shape), newTensor([]int64{1}), newTensor(shape)
			lr := newRunner(t, b.Loss, map[string]*tensor{m.Gathered: z}, map[string]*tensor{m.Loss: loss, m.GatheredGrad: dz}, ort.Options{})
			r := rand.New(rand.NewPCG(5, 6))
			for i := range z.data {
				z.data[i] = float32(r.NormFloat64())
			}
			lr.run(t)
			analytic := append([]float32(nil), dz.data...)
			const eps = 1e-2
			fd := make([]float32, len(z.data))
			for i := range z.data {
				orig := z.data[i]
				z.data[i] = orig + eps
				lr.run(t)
				plus := float64(loss.data[0])
				z.data[i] = orig - eps
				lr.run(t)
				minus := float64(loss.data[0])
				z.data[i] = orig
				fd[i] = float32((plus - minus) / (float64(orig+eps) - float64(orig-eps)))
			}
			if rel := gradcheck.RelL2(analytic, fd); rel > tolLossGradFD || math.IsNaN(rel) {
				t.Errorf("dz_all relative L2 error %.3g > %.3g against finite differences", rel, tolLossGradFD)
			} else {
				t.Logf("dz_all relative L2 error %.2g against finite differences", rel)
			}
		})
	}
}

// TestSavedActivationSize pins the size of what the forward graph hands to
// the backward graph for ResNet18 at 28x28 with 64 pairs per rank, the
// figures quoted at BuildDistributed, and checks that every saved tensor
// is float32-sized and named apart from the other inputs.
func TestSavedActivationSize(t *testing.T) {
	for _, c := range []struct {
		stem   string
		floats int64
	}{{"cifar", 117155200}, {"imagenet", 10691968}} {
		b, err := BuildDistributed(graphs.Config{Arch: "resnet18", Stem: c.stem, ImageSize: 28, Pairs: 64}, 2, "test", Options{})
		if err != nil {
			t.Fatal(err)
		}
		got := b.Manifest.SavedSize()
		t.Logf("%s stem: %d saved tensors, %d floats (%.0f MB)", c.stem, len(b.Manifest.Saved), got, float64(4*got)/1e6)
		if got != c.floats {
			t.Errorf("%s stem: %d saved floats, want %d; update the figures at BuildDistributed and here", c.stem, got, c.floats)
		}
	}
}

// TestBuildDistributedRefuses checks the configuration errors.
func TestBuildDistributedRefuses(t *testing.T) {
	for _, c := range []struct {
		cfg   graphs.Config
		world int
	}{
		{graphs.Config{Arch: "resnet18", Stem: "cifar", ImageSize: 8, Pairs: 4, Shards: 2}, 2},
		{graphs.Config{Arch: "resnet18", Stem: "cifar", ImageSize: 8, Pairs: 4}, 0},
		{graphs.Config{Arch: "resnet9", Stem: "cifar", ImageSize: 8, Pairs: 4}, 2},
	} {
		if _, err := BuildDistributed(c.cfg, c.world, "test", Options{}); err == nil {
			t.Errorf("BuildDistributed(%+v, %d) succeeded", c.cfg, c.world)
		} else {
			t.Log(err)
		}
	}
}

// TestBuildDistributedIsDeterministic builds the graphs twice and compares
// bytes.
func TestBuildDistributedIsDeterministic(t *testing.T) {
	cfg := graphs.Config{Arch: "resnet18", Stem: "imagenet", ImageSize: 32, Pairs: 4, BNGroups: 2}
	a, err := BuildDistributed(cfg, 2, "test", Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := BuildDistributed(cfg, 2, "test", Options{})
	if err != nil {
		t.Fatal(err)
	}
	ma, _ := a.Manifest.Encode()
	mb, _ := b.Manifest.Encode()
	if !slices.Equal(a.Forward, b.Forward) || !slices.Equal(a.Loss, b.Loss) || !slices.Equal(a.Backward, b.Backward) || !slices.Equal(ma, mb) {
		t.Error("two builds of the same configuration differ")
	}
}
