package checkpoint

import (
	"bytes"
	"encoding/binary"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/simclr-ort/simclr-ort/graphs"
	"github.com/simclr-ort/simclr-ort/runtime/optim"
)

// testConfig is a small configuration for the synthetic manifest.
var testConfig = graphs.Config{Arch: "resnet18", Stem: "cifar", ImageSize: 32, Pairs: 128, ProjectionDim: 64, Temperature: 0.5, BNGroups: 1, BNLowering: "onnx"}

// testManifest is a tiny manifest with the roles of a real one.
func testManifest() *graphs.Manifest {
	return &graphs.Manifest{
		Config: testConfig,
		Params: []graphs.Tensor{
			{Name: "encoder.conv1.weight", Shape: []int64{4, 3, 3, 3}, Role: "conv_weight"},
			{Name: "encoder.bn1.weight", Shape: []int64{4}, Role: "bn_weight", LARSExclude: true},
			{Name: "encoder.bn1.bias", Shape: []int64{4}, Role: "bn_bias", LARSExclude: true},
			{Name: "projector.0.weight", Shape: []int64{2, 4}, Role: "linear_weight"},
		},
		Buffers: []graphs.Tensor{
			{Name: "encoder.bn1.running_mean", Shape: []int64{4}, Role: "bn_running_mean"},
			{Name: "encoder.bn1.running_var", Shape: []int64{4}, Role: "bn_running_var"},
		},
	}
}

// filled returns one buffer per tensor, element i of tensor t being
// f(t, i).
func filled(ts []graphs.Tensor, f func(t, i int) float32) [][]float32 {
	out := make([][]float32, len(ts))
	for t, s := range ts {
		out[t] = make([]float32, s.Size())
		for i := range out[t] {
			out[t][i] = f(t, i)
		}
	}
	return out
}

// special holds values whose bits must survive a round trip.
var special = []float32{
	float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)),
	math.Float32frombits(0x7fc00123), math.Float32frombits(0xffa00001), // NaNs with payloads
	math.Float32frombits(1), math.MaxFloat32, -math.SmallestNonzeroFloat32,
}

// sample returns a checkpoint of testManifest with the given optimizer
// kind ("", "lars" or "adam") and values that depend on seed.
func sample(t testing.TB, kind string, seed float32) *Checkpoint {
	t.Helper()
	m := testManifest()
	val := func(t, i int) float32 { return seed + float32(t) + float32(i)/64 }
	params := filled(m.Params, val)
	copy(params[0], special)
	buffers := filled(m.Buffers, func(t, i int) float32 { return -val(t, i) })
	st := optim.State{Kind: kind, Steps: int64(seed)}
	switch kind {
	case "lars":
		st.Slots = [][][]float32{filled(m.Params, func(t, i int) float32 { return val(t, i) / 3 })}
	case "adam":
		st.Slots = [][][]float32{
			filled(m.Params, func(t, i int) float32 { return val(t, i) / 3 }),
			filled(m.Params, func(t, i int) float32 { return val(t, i) * val(t, i) }),
		}
	}
	ck, err := New(m, params, buffers, st)
	if err != nil {
		t.Fatal(err)
	}
	ck.Step = int64(seed)
	ck.Epoch = 3
	ck.StepInEpoch = 17
	ck.Seed = math.MaxUint64 - 1 // above 2^53: must not pass through a float64
	ck.Schedule = optim.Schedule{Peak: 0.15 * 0.1, WarmupSteps: 10, TotalSteps: 1000}
	ck.Meta = map[string]string{"args": "train --arch resnet18 --stem cifar", "version": "v0.1.0 \"quoted\" ü"}
	ck.Saved = time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.FixedZone("CET", 3600))
	return ck
}

// assertEqual fails unless got and want hold the same state, with
// bit-identical floats.
func assertEqual(t *testing.T, got, want *Checkpoint) {
	t.Helper()
	if got.Version != FormatVersion {
		t.Errorf("Version = %d, want %d", got.Version, FormatVersion)
	}
	if got.ManifestIdentity != want.ManifestIdentity || got.Config != want.Config {
		t.Errorf("identity, config = %s, %+v, want %s, %+v", got.ManifestIdentity, got.Config, want.ManifestIdentity, want.Config)
	}
	if got.Step != want.Step || got.Epoch != want.Epoch || got.StepInEpoch != want.StepInEpoch || got.Seed != want.Seed {
		t.Errorf("position = %d %d %d %d, want %d %d %d %d", got.Step, got.Epoch, got.StepInEpoch, got.Seed, want.Step, want.Epoch, want.StepInEpoch, want.Seed)
	}
	if got.Schedule != want.Schedule {
		t.Errorf("Schedule = %+v, want %+v", got.Schedule, want.Schedule)
	}
	if !maps.Equal(got.Meta, want.Meta) {
		t.Errorf("Meta = %q, want %q", got.Meta, want.Meta)
	}
	if !got.Saved.Equal(want.Saved) {
		t.Errorf("Saved = %v, want %v", got.Saved, want.Saved)
	}
	assertTensors(t, "params", got.Params, want.Params)
	assertTensors(t, "buffers", got.Buffers, want.Buffers)
	if got.Optimizer.Kind != want.Optimizer.Kind || got.Optimizer.Steps != want.Optimizer.Steps || len(got.Optimizer.Slots) != len(want.Optimizer.Slots) {
		t.Fatalf("optimizer = %s, %d steps, %d slots, want %s, %d, %d", got.Optimizer.Kind, got.Optimizer.Steps, len(got.Optimizer.Slots), want.Optimizer.Kind, want.Optimizer.Steps, len(want.Optimizer.Slots))
	}
	for k := range want.Optimizer.Slots {
		if len(got.Optimizer.Slots[k]) != len(want.Optimizer.Slots[k]) {
			t.Fatalf("slot %d has %d tensors, want %d", k, len(got.Optimizer.Slots[k]), len(want.Optimizer.Slots[k]))
		}
		for i := range want.Optimizer.Slots[k] {
			assertBits(t, "slot", got.Optimizer.Slots[k][i], want.Optimizer.Slots[k][i])
		}
	}
}

func assertTensors(t *testing.T, what string, got, want []Tensor) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d tensors, want %d", what, len(got), len(want))
	}
	for i := range want {
		if got[i].Name != want[i].Name || !slices.Equal(got[i].Shape, want[i].Shape) {
			t.Errorf("%s %d = %s %v, want %s %v", what, i, got[i].Name, got[i].Shape, want[i].Name, want[i].Shape)
		}
		assertBits(t, want[i].Name, got[i].Data, want[i].Data)
	}
}

func assertBits(t *testing.T, name string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", name, len(got), len(want))
	}
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s[%d] = %v (%#08x), want %v (%#08x)", name, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
		}
	}
}

// tempFiles lists the temporary files of Save in dir.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.tmp-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRoundTrip(t *testing.T) {
	scalarAndEmpty := &Checkpoint{
		Config: testConfig,
		Params: []Tensor{
			{Name: "scalar", Shape: nil, Data: []float32{special[3]}},
			{Name: "empty", Shape: []int64{0, 3}, Data: []float32{}},
			{Name: "vector", Shape: []int64{3}, Data: []float32{1, 2, 3}},
		},
		Optimizer: optim.State{Kind: "lars", Steps: 1, Slots: [][][]float32{{{7}, nil, {4, 5, 6}}}},
		Saved:     time.Unix(1, 2),
	}
	noBuffers := sample(t, "", 9)
	noBuffers.Buffers, noBuffers.Meta = nil, nil
	for _, tc := range []struct {
		name string
		ck   *Checkpoint
	}{
		{"lars", sample(t, "lars", 42)},
		{"adam", sample(t, "adam", 7)},
		{"no optimizer state or buffers", noBuffers},
		{"scalar and empty tensors", scalarAndEmpty},
		{"nothing", &Checkpoint{Saved: time.Unix(0, 1)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ck.bin")
			if err := Save(path, tc.ck); err != nil {
				t.Fatal(err)
			}
			got, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			assertEqual(t, got, tc.ck)
			if tmp := tempFiles(t, filepath.Dir(path)); len(tmp) > 0 {
				t.Errorf("temporary files left: %v", tmp)
			}

			// The file is Encode's bytes, Encode is deterministic, and
			// Decode reads them back.
			file, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := Encode(&buf, tc.ck); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), file) {
				t.Errorf("Encode wrote %d bytes that differ from Save's %d", buf.Len(), len(file))
			}
			if hlen := binary.LittleEndian.Uint32(file[12:]); (prefixLen+hlen)%dataAlign != 0 {
				t.Errorf("data starts at %d, not a multiple of %d", prefixLen+hlen, dataAlign)
			}
			got, err = Decode(bytes.NewReader(file))
			if err != nil {
				t.Fatal(err)
			}
			assertEqual(t, got, tc.ck)
		})
	}
}

func TestSavedDefaultsToNow(t *testing.T) {
	ck := sample(t, "lars", 1)
	ck.Saved = time.Time{}
	path := filepath.Join(t.TempDir(), "ck.bin")
	before := time.Now()
	if err := Save(path, ck); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	if !ck.Saved.IsZero() {
		t.Errorf("Save modified ck.Saved to %v", ck.Saved)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Saved.Before(before.Truncate(time.Nanosecond)) || got.Saved.After(after) {
		t.Errorf("Saved = %v, want between %v and %v", got.Saved, before, after)
	}
}

func TestNewAndRestore(t *testing.T) {
	m := testManifest()
	ck := sample(t, "lars", 5)
	// New aliases the caller's buffers.
	ck.Params[1].Data[0] = 99
	path := filepath.Join(t.TempDir(), "ck.bin")
	if err := Save(path, ck); err != nil {
		t.Fatal(err)
	}
	loaded, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.ManifestIdentity != m.Identity() || loaded.Config != m.Config {
		t.Errorf("identity, config = %s %+v, want %s %+v", loaded.ManifestIdentity, loaded.Config, m.Identity(), m.Config)
	}
	params := filled(m.Params, func(int, int) float32 { return 0 })
	buffers := filled(m.Buffers, func(int, int) float32 { return 0 })
	if err := loaded.Restore(m, params, buffers); err != nil {
		t.Fatal(err)
	}
	for i := range params {
		assertBits(t, m.Params[i].Name, params[i], ck.Params[i].Data)
	}
	for i := range buffers {
		assertBits(t, m.Buffers[i].Name, buffers[i], ck.Buffers[i].Data)
	}
	lars := optim.NewLARS([]int{108, 4, 4, 8}, []bool{false, true, true, false}, optim.LARSConfig{})
	if err := lars.SetState(loaded.Optimizer); err != nil {
		t.Errorf("LARS.SetState(loaded.Optimizer): %v", err)
	}
}

func TestNewErrors(t *testing.T) {
	m := testManifest()
	params := filled(m.Params, func(int, int) float32 { return 1 })
	buffers := filled(m.Buffers, func(int, int) float32 { return 1 })
	short := slices.Clone(params)
	short[3] = short[3][:7]
	for _, tc := range []struct {
		name            string
		params, buffers [][]float32
		want            string
	}{
		{"missing parameter", params[:3], buffers, "got 3 parameter tensors, the manifest has 4"},
		{"short parameter", short, buffers, "parameter 3 (projector.0.weight) has 7 values, its shape [2 4] needs 8"},
		{"missing buffer", params, buffers[:1], "got 1 buffer tensors, the manifest has 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(m, tc.params, tc.buffers, optim.State{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestRestoreErrors(t *testing.T) {
	ck := sample(t, "lars", 5)
	renamed := testManifest()
	renamed.Params[2].Name = "encoder.bn2.bias"
	reshaped := testManifest()
	reshaped.Params[3].Shape = []int64{4, 2}
	fewer := testManifest()
	fewer.Buffers = fewer.Buffers[:1]
	for _, tc := range []struct {
		name string
		m    *graphs.Manifest
		// shorten shortens the destination of parameter 0.
		shorten bool
		want    string
	}{
		{"renamed", renamed, false, "parameter 2 is encoder.bn1.bias in the checkpoint but encoder.bn2.bias in the manifest"},
		{"reshaped", reshaped, false, "parameter projector.0.weight has shape [2 4] in the checkpoint but [4 2] in the manifest"},
		{"fewer buffers", fewer, false, "the checkpoint has 2 buffer tensors, the manifest 1"},
		{"short destination", testManifest(), true, "the buffer for parameter encoder.conv1.weight has 107 values, its shape [4 3 3 3] needs 108"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			params := filled(tc.m.Params, func(int, int) float32 { return -1 })
			buffers := filled(tc.m.Buffers, func(int, int) float32 { return -1 })
			if tc.shorten {
				params[0] = params[0][:107]
			}
			err := ck.Restore(tc.m, params, buffers)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "resume with the configuration") {
				t.Fatalf("Restore: %v, want an error containing %q", err, tc.want)
			}
			for _, d := range append(params, buffers...) {
				for _, v := range d {
					if v != -1 {
						t.Fatal("a failed Restore changed the destination buffers")
					}
				}
			}
		})
	}
}

func TestCompatible(t *testing.T) {
	m := testManifest()
	ck := sample(t, "lars", 1)
	other := func(f func(*graphs.Config)) graphs.Config {
		c := testConfig
		f(&c)
		return c
	}
	for _, tc := range []struct {
		name     string
		identity string
		cfg      graphs.Config
		want     []string // substrings; none means compatible
	}{
		{"same", m.Identity(), testConfig, nil},
		{"architecture", "x", other(func(c *graphs.Config) { c.Arch = "resnet50" }), []string{
			"checkpoint: written for resnet18-cifar-32px-n128-p64-t0.5 but this run is resnet50-cifar-32px-n128-p64-t0.5",
			"(checkpoint --arch resnet18, this run resnet50)",
			"resume with --arch resnet18 or start a new --out",
		}},
		{"batch and temperature", "x", other(func(c *graphs.Config) { c.Pairs, c.Temperature = 256, 0.1 }), []string{
			"checkpoint --batch-size 128, this run 256; checkpoint --temperature 0.5, this run 0.1",
			"resume with --batch-size 128 --temperature 0.5 or start a new --out",
		}},
		{"stem, size, projection", "x", other(func(c *graphs.Config) { c.Stem, c.ImageSize, c.ProjectionDim = "imagenet", 224, 128 }), []string{
			"--stem cifar, this run imagenet", "--image-size 32, this run 224", "--projection-dim 64, this run 128",
			"resume with --stem cifar --image-size 32 --projection-dim 64 or",
		}},
		{"batchnorm", "x", other(func(c *graphs.Config) { c.BNGroups, c.BNLowering = 2, "primitive" }), []string{
			"resume with --bn-groups 1 --bn-lowering onnx or start a new --out",
		}},
		{"CUDA graph variant", "x", other(func(c *graphs.Config) { c.BNLowering, c.ConvGrad = "primitive", "gpu" }), []string{
			"checkpoint --bn-lowering onnx, this run primitive; checkpoint --conv-grad cpu, this run gpu",
			"resume with --bn-lowering onnx --conv-grad cpu or start a new --out",
		}},
		{"layout", "0123456789abcdef", testConfig, []string{
			"written for resnet18-cifar-32px-n128-p64-t0.5 graphs with parameter layout " + m.Identity(),
			"have layout 0123456789abcdef", "another simclr-ort version",
			"resume with the simclr-ort that wrote the checkpoint (v0.1.0", "or start a new --out",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Compatible(ck, tc.identity, tc.cfg)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Compatible: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Compatible accepted a different run")
			}
			t.Log(err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Compatible: %v\nwant it to contain %q", err, w)
				}
			}
		})
	}
	if err := Compatible(nil, "", testConfig); err == nil {
		t.Error("Compatible(nil) = nil")
	}
}

func TestCheckSchedule(t *testing.T) {
	ck := sample(t, "lars", 1)
	if err := ck.CheckSchedule(ck.Schedule); err != nil {
		t.Fatalf("CheckSchedule(same): %v", err)
	}
	s := ck.Schedule
	s.TotalSteps = 2000
	err := ck.CheckSchedule(s)
	want := "peak learning rate 0.015, 10 warm-up steps and 1000 steps in all, but this run has 0.015, 10 and 2000"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("CheckSchedule: %v, want an error containing %q", err, want)
	}
	t.Log(err)
}
