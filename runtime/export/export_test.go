package export_test

import (
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/simclr-ort/simclr-ort/gen"
	"github.com/simclr-ort/simclr-ort/graphs"
	"github.com/simclr-ort/simclr-ort/internal/gradcheck"
	"github.com/simclr-ort/simclr-ort/runtime/checkpoint"
	"github.com/simclr-ort/simclr-ort/runtime/export"
	"github.com/simclr-ort/simclr-ort/runtime/optim"
	"github.com/simclr-ort/simclr-ort/runtime/ort"
	"github.com/simclr-ort/simclr-ort/runtime/step"
)

// randomCheckpoint is a checkpoint of freshly initialised weights with
// running statistics away from their defaults.
func randomCheckpoint(t *testing.T, cfg graphs.Config) (*checkpoint.Checkpoint, *graphs.Manifest, []byte) {
	t.Helper()
	b, err := gen.Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := b.Manifest
	r := rand.New(rand.NewPCG(5, 6))
	params := step.NewTensors(m.Params, r)
	buffers := step.NewTensors(m.Buffers, r)
	// Running statistics and BatchNorm biases away from their defaults, but
	// mild: a mean shifted by +0.2 everywhere drives every ReLU of the last
	// layers to 0, and a comparison of zero features proves nothing.
	for i, t := range m.Buffers {
		for j := range buffers[i] {
			if t.Role == "bn_running_mean" {
				buffers[i][j] = 0.05 * float32(r.NormFloat64())
			} else {
				buffers[i][j] = 0.8 + 0.4*r.Float32()
			}
		}
	}
	for i, t := range m.Params {
		if t.Role == "bn_bias" {
			for j := range params[i] {
				params[i][j] = 0.1 + 0.1*float32(r.NormFloat64())
			}
		}
	}
	ck, err := checkpoint.New(m, params, buffers, optim.State{Kind: "lars"})
	if err != nil {
		t.Fatal(err)
	}
	ck.Step = 42
	return ck, m, b.Inference
}

// TestExportedEncoderMatchesTheGraphItCameFrom runs the exported file at a
// batch size the run never used and compares it with the inference graph fed
// the same weights as inputs.
func TestExportedEncoderMatchesTheGraphItCameFrom(t *testing.T) {
	gradcheck.InitORT(t)
	cfg := graphs.Config{Arch: "resnet18", Stem: "imagenet", ImageSize: 32, Pairs: 4}.Defaults()
	ck, m, inference := randomCheckpoint(t, cfg)
	model, err := export.Encoder(ck, export.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const batch = 3
	images := make([]float32, batch*3*32*32)
	r := rand.New(rand.NewPCG(1, 1))
	for i := range images {
		images[i] = r.Float32()
	}
	imgShape := []int64{batch, 3, 32, 32}
	got := make([]float32, batch*512)
	s, err := ort.NewSession(model, []ort.Binding{{Name: "images", Shape: imgShape, Data: images}},
		[]ort.Binding{{Name: "features", Shape: []int64{batch, 512}, Data: got}}, ort.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Run(); err != nil {
		t.Fatal(err)
	}
	inputs := []ort.Binding{{Name: "images", Shape: imgShape, Data: images}}
	for _, tt := range append(append([]checkpoint.Tensor(nil), ck.Params...), ck.Buffers...) {
		if strings.HasPrefix(tt.Name, "encoder.") {
			inputs = append(inputs, ort.Binding{Name: tt.Name, Shape: tt.Shape, Data: tt.Data})
		}
	}
	want := make([]float32, batch*512)
	ref, err := ort.NewSession(inference, inputs, []ort.Binding{{Name: "features", Shape: []int64{batch, 512}, Data: want}}, ort.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	if err := ref.Run(); err != nil {
		t.Fatal(err)
	}
	var worst, scale float64
	nonzero := 0
	for i := range got {
		worst = math.Max(worst, math.Abs(float64(got[i]-want[i])))
		scale = math.Max(scale, math.Abs(float64(want[i])))
		if want[i] != 0 {
			nonzero++
		}
	}
	if nonzero < len(want)/2 {
		t.Fatalf("only %d of %d features are non-zero: the comparison would prove nothing", nonzero, len(want))
	}
	if worst > 1e-5*scale {
		t.Errorf("exported features differ from the graph's by %.3g (scale %.3g)", worst, scale)
	}
	if m.FeatureDim != 512 {
		t.Errorf("feature dim %d", m.FeatureDim)
	}
}

func TestExportMetadataAndChecker(t *testing.T) {
	gradcheck.InitORT(t)
	cfg := graphs.Config{Arch: "resnet18", Stem: "cifar", ImageSize: 16, Pairs: 4, ProjectionDim: 8}.Defaults()
	ck, _, _ := randomCheckpoint(t, cfg)
	model, err := export.Encoder(ck, export.Options{WithProjector: true})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "encoder.onnx")
	if err := os.WriteFile(path, model, 0o644); err != nil {
		t.Fatal(err)
	}
	script := `
import sys, onnx
m = onnx.load(sys.argv[1])
onnx.checker.check_model(m, full_check=True)
meta = {p.key: p.value for p in m.metadata_props}
assert meta["simclr.arch"] == "resnet18" and meta["simclr.image_size"] == "16" and meta["simclr.training_steps"] == "42", meta
assert meta["simclr.outputs"] == "features,projection", meta
assert [o.name for o in m.graph.output] == ["features", "projection"]
assert [i.name for i in m.graph.input] == ["images"]
assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
assert all(o.domain in ("", "ai.onnx") for o in m.opset_import)
print("ok")
`
	out, err := exec.Command("/usr/bin/python3", "-c", script, path).CombinedOutput()
	if err != nil {
		if os.Getenv("CI") == "" && strings.Contains(string(out), "No module named") {
			t.Skipf("python3-onnx not installed: %s", out)
		}
		t.Fatalf("exported file rejected: %v\n%s", err, out)
	}
}

func TestExportRejectsAnotherConfiguration(t *testing.T) {
	cfg := graphs.Config{Arch: "resnet18", Stem: "cifar", ImageSize: 16, Pairs: 4}.Defaults()
	ck, _, _ := randomCheckpoint(t, cfg)
	ck.Config.Arch = "resnet50"
	if _, err := export.Encoder(ck, export.Options{}); err == nil || !strings.Contains(err.Error(), "another configuration") {
		t.Fatalf("want a configuration error, got %v", err)
	}
}
