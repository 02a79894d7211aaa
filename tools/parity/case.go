package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/simclr-ort/simclr-ort/gen"
	"github.com/simclr-ort/simclr-ort/gen/simclr"
	"github.com/simclr-ort/simclr-ort/graphs"
	"github.com/simclr-ort/simclr-ort/internal/npy"
	"github.com/simclr-ort/simclr-ort/runtime/ort"
	"github.com/simclr-ort/simclr-ort/runtime/step"
)

// Graph variants a run can use.
const (
	// variantDefault is the graph training runs (on the CPU, small-map
	// convolutions as patches and one Gemm).
	variantDefault = "default"
	// variantConvNodes keeps every convolution a Conv node.
	variantConvNodes = "conv-nodes"
)

// runSpec is one ONNX Runtime run of a case: a graph variant at a thread
// count. Every run of a case has the same parameters and views.
type runSpec struct {
	Dir        string `json:"dir"`
	ORTThreads int    `json:"ort_threads"`
	Variant    string `json:"variant"`
	// Identical says whether the graph with decision outputs gave the same
	// loss and gradients, bit for bit, as the same graph without them, and
	// Difference the largest relative L2 difference of the loss or a
	// tensor between the two (ONNX Runtime may fuse differently when an
	// intermediate value is also an output).
	Checked    bool    `json:"checked_without_decisions"`
	Identical  bool    `json:"identical_without_decisions"`
	Difference float64 `json:"difference_without_decisions"`
}

// caseFile is case.json: the configuration (graphs.Config's JSON fields)
// plus what reference.py needs besides.
type caseFile struct {
	Name string `json:"name"`
	graphs.Config
	Seed       uint64            `json:"seed"`
	Mutant     string            `json:"mutant,omitempty"`
	BNEps      float64           `json:"bn_eps"`
	BNMomentum float64           `json:"bn_momentum"`
	Params     []string          `json:"params"`
	Buffers    []string          `json:"buffers"`
	Decisions  []simclr.Decision `json:"decisions"`
	Runs       []runSpec         `json:"runs"`
	// TorchThreads are the PyTorch thread counts to evaluate the float64
	// reference with.
	TorchThreads []int `json:"torch_threads"`
}

// kernels is the generator's kernel choice for every run (flag -kernels).
var kernels = simclr.KernelsONNX

// writeCase writes one case directory: the parameters and views drawn from
// seed, and one subdirectory per run with ONNX Runtime's loss, gradients,
// new running statistics and decisions. Sessions come from (and stay in)
// sessions, so a sweep builds each graph and session once. With
// checkIdentical, each run is repeated on the graph without decision
// outputs, to report whether they change ONNX Runtime's result.
func writeCase(dir string, cfg graphs.Config, seed uint64, runs []runSpec, torchThreads []int, mutant string, sessions *sessionCache, checkIdentical bool) error {
	base, err := sessions.build(cfg, simclr.Options{Mutant: mutant})
	if err != nil {
		return err
	}
	m := base.Manifest
	r := rand.New(rand.NewPCG(seed, 7))
	params := step.NewTensors(m.Params, r)
	buffers := step.NewTensors(m.Buffers, r)
	// BatchNorm parameters and running statistics away from their defaults,
	// as in a network that has trained a while: every term of the BatchNorm
	// gradient is then exercised, and features differ more between views.
	for i, t := range m.Params {
		switch t.Role {
		case "bn_weight":
			for j := range params[i] {
				params[i][j] = 0.5 + r.Float32()
			}
		case "bn_bias":
			for j := range params[i] {
				params[i][j] = 0.2 * float32(r.NormFloat64())
			}
		}
	}
	for i := range buffers {
		for j := range buffers[i] {
			buffers[i][j] += 0.1 * float32(r.Float64())
		}
	}
	views := make([]float32, 2*cfg.Pairs*3*cfg.ImageSize*cfg.ImageSize)
	fillViews(views, cfg.Pairs, cfg.ImageSize, r)

	cf := caseFile{Name: cfg.Name(), Config: cfg, Seed: seed, Mutant: mutant, BNEps: m.BNEpsilon, BNMomentum: m.BNMomentum, TorchThreads: torchThreads}
	if err := os.MkdirAll(filepath.Join(dir, "params"), 0o755); err != nil {
		return err
	}
	// A verdict of an earlier run of this directory (-keep) must not be
	// read as this one's.
	os.Remove(filepath.Join(dir, "result.json"))
	viewsShape := []int64{2 * int64(cfg.Pairs), 3, int64(cfg.ImageSize), int64(cfg.ImageSize)}
	if err := npy.SaveFloat32(filepath.Join(dir, "views.npy"), viewsShape, views); err != nil {
		return err
	}
	for i, t := range m.Params {
		cf.Params = append(cf.Params, t.Name)
		if err := npy.SaveFloat32(filepath.Join(dir, "params", t.Name+".npy"), t.Shape, params[i]); err != nil {
			return err
		}
	}
	for i, t := range m.Buffers {
		cf.Buffers = append(cf.Buffers, t.Name)
		if err := npy.SaveFloat32(filepath.Join(dir, "params", t.Name+".npy"), t.Shape, buffers[i]); err != nil {
			return err
		}
	}
	in := stepInputs{views: views, params: params, buffers: buffers}
	runs = append([]runSpec(nil), runs...)
	for i, spec := range runs {
		opts := simclr.Options{ConvNodes: spec.Variant == variantConvNodes, Mutant: mutant, Decisions: true, Kernels: kernels}
		withDecisions, probed, err := sessions.run(cfg, opts, spec.ORTThreads, in)
		if err != nil {
			return fmt.Errorf("run %s: %w", spec.Dir, err)
		}
		cf.Decisions = probed.Decisions
		if checkIdentical {
			runs[i].Checked = true
			opts.Decisions = false
			without, _, err := sessions.run(cfg, opts, spec.ORTThreads, in)
			if err != nil {
				return fmt.Errorf("run %s without decisions: %w", spec.Dir, err)
			}
			runs[i].Identical, runs[i].Difference = withDecisions.compare(without)
		}
		if err := withDecisions.save(filepath.Join(dir, spec.Dir), probed); err != nil {
			return err
		}
	}
	cf.Runs = runs
	b, err := json.MarshalIndent(cf, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "case.json"), b, 0o644)
}

// stepInputs are a case's views, parameters and running statistics.
type stepInputs struct {
	views           []float32
	params, buffers [][]float32
}

// stepOutputs are one run's results, in manifest order.
type stepOutputs struct {
	loss       []float32
	grads, new [][]float32
	decisions  [][]float32
}

// boundStep is a training graph's session bound to its buffers.
type boundStep struct {
	built   *simclr.Built
	in      stepInputs
	out     *stepOutputs
	session *ort.Session
}

// sessionCache holds built graphs and bound sessions by configuration,
// generator options and thread count.
type sessionCache struct {
	built    map[string]*simclr.Built
	sessions map[string]*boundStep
}

func newSessionCache() *sessionCache {
	return &sessionCache{built: map[string]*simclr.Built{}, sessions: map[string]*boundStep{}}
}

func (c *sessionCache) build(cfg graphs.Config, opts simclr.Options) (*simclr.Built, error) {
	key := fmt.Sprintf("%s|%+v", cfg.Name(), opts)
	if b, ok := c.built[key]; ok {
		return b, nil
	}
	b, err := gen.BuildWith(cfg, opts)
	if err != nil {
		return nil, err
	}
	c.built[key] = b
	return b, nil
}

// run runs one step of the graph on the inputs (copied into the session's
// buffers); the outputs are the session's, valid until its next run.
func (c *sessionCache) run(cfg graphs.Config, opts simclr.Options, threads int, in stepInputs) (*stepOutputs, *simclr.Built, error) {
	key := fmt.Sprintf("%s|%+v|%d", cfg.Name(), opts, threads)
	s, ok := c.sessions[key]
	if !ok {
		b, err := c.build(cfg, opts)
		if err != nil {
			return nil, nil, err
		}
		sessionOpts := provider
		sessionOpts.IntraOpThreads = threads
		if s, err = bindStep(b, sessionOpts); err != nil {
			return nil, nil, err
		}
		c.sessions[key] = s
	}
	copy(s.in.views, in.views)
	for i := range in.params {
		copy(s.in.params[i], in.params[i])
	}
	for i := range in.buffers {
		copy(s.in.buffers[i], in.buffers[i])
	}
	if err := s.session.Run(); err != nil {
		return nil, nil, err
	}
	return s.out, s.built, nil
}

// Close releases every session.
func (c *sessionCache) Close() {
	for _, s := range c.sessions {
		s.session.Close()
	}
	c.sessions = map[string]*boundStep{}
}

// bindStep allocates a training graph's buffers and binds a session to
// them.
func bindStep(b *simclr.Built, opts ort.Options) (*boundStep, error) {
	m := b.Manifest
	c := m.Config
	s := &boundStep{built: b, out: &stepOutputs{loss: make([]float32, 1)}}
	s.in.views = make([]float32, 2*c.Pairs*3*c.ImageSize*c.ImageSize)
	viewsShape := []int64{2 * int64(c.Pairs), 3, int64(c.ImageSize), int64(c.ImageSize)}
	inputs := []ort.Binding{{Name: m.Input, Shape: viewsShape, Data: s.in.views}}
	outputs := []ort.Binding{{Name: m.Loss, Shape: []int64{1}, Data: s.out.loss}}
	for _, t := range m.Params {
		p, g := make([]float32, t.Size()), make([]float32, t.Size())
		s.in.params, s.out.grads = append(s.in.params, p), append(s.out.grads, g)
		inputs = append(inputs, ort.Binding{Name: t.Name, Shape: t.Shape, Data: p})
		outputs = append(outputs, ort.Binding{Name: t.Output, Shape: t.Shape, Data: g})
	}
	for _, t := range m.Buffers {
		v, nv := make([]float32, t.Size()), make([]float32, t.Size())
		s.in.buffers, s.out.new = append(s.in.buffers, v), append(s.out.new, nv)
		inputs = append(inputs, ort.Binding{Name: t.Name, Shape: t.Shape, Data: v})
		outputs = append(outputs, ort.Binding{Name: t.Output, Shape: t.Shape, Data: nv})
	}
	for _, d := range b.Decisions {
		size := int64(1)
		for _, n := range d.Shape {
			size *= n
		}
		buf := make([]float32, size)
		s.out.decisions = append(s.out.decisions, buf)
		outputs = append(outputs, ort.Binding{Name: d.Output, Shape: d.Shape, Data: buf})
	}
	session, err := ort.NewSession(b.Train, inputs, outputs, opts)
	if err != nil {
		return nil, err
	}
	s.session = session
	return s, nil
}

// compare reports whether two runs gave bit-identical loss, gradients and
// running statistics, and their largest relative L2 difference.
func (o *stepOutputs) compare(p *stepOutputs) (identical bool, worst float64) {
	identical = true
	check := func(a, b []float32) {
		var diff, norm float64
		for i := range a {
			if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
				identical = false
			}
			d := float64(a[i]) - float64(b[i])
			diff += d * d
			norm += float64(b[i]) * float64(b[i])
		}
		if norm > 0 {
			worst = max(worst, math.Sqrt(diff/norm))
		}
	}
	check(o.loss, p.loss)
	for i := range o.grads {
		check(o.grads[i], p.grads[i])
	}
	for i := range o.new {
		check(o.new[i], p.new[i])
	}
	return identical, worst
}

// save writes a run's results under dir: loss.npy, grad/, new/ and
// decisions/.
func (o *stepOutputs) save(dir string, b *simclr.Built) error {
	m := b.Manifest
	for _, d := range []string{"grad", "new", "decisions"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := npy.SaveFloat32(filepath.Join(dir, "loss.npy"), []int64{1}, o.loss); err != nil {
		return err
	}
	for i, t := range m.Params {
		if err := npy.SaveFloat32(filepath.Join(dir, "grad", t.Name+".npy"), t.Shape, o.grads[i]); err != nil {
			return err
		}
	}
	for i, t := range m.Buffers {
		if err := npy.SaveFloat32(filepath.Join(dir, "new", t.Name+".npy"), t.Shape, o.new[i]); err != nil {
			return err
		}
	}
	for i, d := range b.Decisions {
		if err := npy.SaveFloat32(filepath.Join(dir, "decisions", d.Output+".npy"), d.Shape, o.decisions[i]); err != nil {
			return err
		}
	}
	return nil
}

// fillViews makes a batch that is well conditioned in float32: distinct
// images (colour, gradient and stripes of random frequency and phase, plus
// noise) whose two views are the image and its mirror with fresh noise. With
// i.i.d. noise images a random-init ResNet maps every view to nearly the
// same z, the NT-Xent gradient becomes a difference of nearly equal numbers,
// and even PyTorch's own float32 result is then several percent away from
// its float64 result.
func fillViews(views []float32, pairs, size int, r *rand.Rand) {
	plane := size * size
	for i := 0; i < pairs; i++ {
		var base [3][]float32
		fx, fy := 1+3*r.Float64(), 1+3*r.Float64()
		phase := 2 * math.Pi * r.Float64()
		for c := range base {
			base[c] = make([]float32, plane)
			colour, amp := 0.2+0.6*r.Float64(), 0.1+0.3*r.Float64()
			for y := 0; y < size; y++ {
				for x := 0; x < size; x++ {
					u, v := float64(x)/float64(size), float64(y)/float64(size)
					val := colour + amp*math.Sin(2*math.Pi*(fx*u+fy*v)+phase+float64(c)) + 0.2*(u-0.5)
					base[c][y*size+x] = float32(val)
				}
			}
		}
		for view := 0; view < 2; view++ {
			row := i + view*pairs
			for c := 0; c < 3; c++ {
				dst := views[(row*3+c)*plane : (row*3+c+1)*plane]
				for y := 0; y < size; y++ {
					for x := 0; x < size; x++ {
						sx := x
						if view == 1 {
							sx = size - 1 - x
						}
						val := base[c][y*size+sx] + 0.05*float32(r.NormFloat64())
						dst[y*size+x] = min(1, max(0, val))
					}
				}
			}
		}
	}
}
