package export_test

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/simclr-ort/simclr-ort/graphs"
	"github.com/simclr-ort/simclr-ort/internal/gradcheck"
	"github.com/simclr-ort/simclr-ort/internal/npy"
	"github.com/simclr-ort/simclr-ort/runtime/checkpoint"
	"github.com/simclr-ort/simclr-ort/runtime/export"
	"github.com/simclr-ort/simclr-ort/runtime/ort"
)

func TestSafetensorsRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		tensors []export.Tensor
		meta    map[string]string
	}{
		{"empty", nil, nil},
		{"metadata only", nil, map[string]string{"format": "pt", "quote\"d": "new\nline"}},
		{"f32 and i64", []export.Tensor{
			{Name: "conv1.weight", Shape: []int64{2, 1, 1, 3}, F32: []float32{1, -2, 3.5, 0, 1e-30, -0}},
			{Name: "bn1.num_batches_tracked", Shape: []int64{}, I64: []int64{1 << 40}},
			{Name: "odd", Shape: []int64{1}, F32: []float32{7}},
		}, map[string]string{"format": "pt"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "w.safetensors")
			if err := export.SaveSafetensors(path, tt.tensors, tt.meta); err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if n := binary.LittleEndian.Uint64(raw); (8+n)%8 != 0 || raw[8] != '{' {
				t.Errorf("header length %d: data does not start 8-byte aligned, or header does not start with {", n)
			}
			got, meta, err := export.ReadSafetensors(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.tensors) {
				t.Fatalf("read %d tensors, wrote %d", len(got), len(tt.tensors))
			}
			for i, w := range tt.tensors {
				g := got[i]
				if g.Name != w.Name || !slices.Equal(g.Shape, w.Shape) || !slices.Equal(g.F32, w.F32) || !slices.Equal(g.I64, w.I64) || g.DType() != w.DType() {
					t.Errorf("tensor %d: read %+v, wrote %+v", i, g, w)
				}
			}
			for k, v := range tt.meta {
				if meta[k] != v {
					t.Errorf("metadata %q = %q, wrote %q", k, meta[k], v)
				}
			}
			if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
				t.Errorf("the folder holds %d files, want only the output (no temporary file left)", len(entries))
			}
		})
	}
}

func TestSafetensorsRejects(t *testing.T) {
	good := func() []byte {
		var b bytes.Buffer
		if err := export.EncodeSafetensors(&b, []export.Tensor{{Name: "a", Shape: []int64{2}, F32: []float32{1, 2}}}, nil); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	withHeader := func(h string, data int) []byte {
		b := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
		return append(append(b, h...), make([]byte, data)...)
	}
	tests := []struct {
		name string
		file []byte
		want string
	}{
		{"short", []byte{1, 2}, "shorter than"},
		{"header past end", binary.LittleEndian.AppendUint64(nil, 1<<20), "does not fit"},
		{"not json", withHeader("{nope", 0), "header"},
		{"hole", withHeader(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8), "hole"},
		{"size", withHeader(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, 8), "needs 12"},
		{"dtype", withHeader(`{"a":{"dtype":"F16","shape":[4],"data_offsets":[0,8]}}`, 8), "F16"},
		{"trailing", append(good(), 0, 0, 0, 0), "after the last tensor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.safetensors")
			if err := os.WriteFile(path, tt.file, 0o644); err != nil {
				t.Fatal(err)
			}
			_, _, err := export.ReadSafetensors(path)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one that says %q", err, tt.want)
			}
		})
	}
	for _, tt := range []struct {
		name    string
		tensors []export.Tensor
	}{
		{"wrong size", []export.Tensor{{Name: "a", Shape: []int64{3}, F32: []float32{1}}}},
		{"repeated name", []export.Tensor{{Name: "a", Shape: []int64{1}, F32: []float32{1}}, {Name: "a", Shape: []int64{1}, F32: []float32{1}}}},
		{"reserved name", []export.Tensor{{Name: "__metadata__", Shape: []int64{1}, F32: []float32{1}}}},
		{"two dtypes", []export.Tensor{{Name: "a", Shape: []int64{1}, F32: []float32{1}, I64: []int64{1}}}},
	} {
		t.Run("encode "+tt.name, func(t *testing.T) {
			if err := export.EncodeSafetensors(&bytes.Buffer{}, tt.tensors, nil); err == nil {
				t.Errorf("EncodeSafetensors accepted %+v", tt.tensors)
			}
		})
	}
}

// TestStateDictNames checks the names against torchvision's ResNet18
// state_dict without PyTorch: every manifest tensor once, without its
// prefix, and one num_batches_tracked per BatchNorm layer.
func TestStateDictNames(t *testing.T) {
	cfg := graphs.Config{Arch: "resnet18", Stem: "cifar", ImageSize: 16, Pairs: 4, ProjectionDim: 8, BNGroups: 2}.Defaults()
	ck, m, _ := randomCheckpoint(t, cfg)
	enc, proj, err := export.StateDicts(ck)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]export.Tensor{}
	for _, x := range append(append([]export.Tensor(nil), enc...), proj...) {
		names[x.Name] = x
	}
	// torchvision's resnet18 state_dict without fc: 60 parameters, 40
	// running statistics, 20 num_batches_tracked.
	if len(enc) != 120 || len(proj) != 2 {
		t.Errorf("%d encoder and %d projector tensors, want 120 and 2", len(enc), len(proj))
	}
	for _, want := range []string{"conv1.weight", "bn1.running_var", "layer4.1.bn2.num_batches_tracked", "layer2.0.downsample.1.running_mean", "0.weight", "2.weight"} {
		if _, ok := names[want]; !ok {
			t.Errorf("no tensor %s", want)
		}
	}
	if got := names["bn1.num_batches_tracked"]; got.DType() != "I64" || len(got.Shape) != 0 || got.I64[0] != 42*2 {
		t.Errorf("bn1.num_batches_tracked = %+v, want the I64 scalar 84 (42 steps x 2 BatchNorm groups)", got)
	}
	if enc[0].Name != "conv1.weight" || enc[3].Name != "bn1.running_mean" || enc[5].Name != "bn1.num_batches_tracked" {
		t.Errorf("not in torchvision's order: %s %s %s", enc[0].Name, enc[3].Name, enc[5].Name)
	}
	if len(m.Params)+len(m.Buffers)+20 != len(enc)+len(proj) {
		t.Errorf("manifest has %d params and %d buffers, the state dicts %d tensors", len(m.Params), len(m.Buffers), len(enc)+len(proj))
	}
	files, err := export.WriteSafetensors(filepath.Join(t.TempDir(), "enc.safetensors"), ck, export.Options{WithProjector: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || !strings.HasSuffix(files[1], "enc.projector.safetensors") {
		t.Fatalf("wrote %v, want the encoder and enc.projector.safetensors", files)
	}
	_, meta, err := export.ReadSafetensors(files[1])
	if err != nil {
		t.Fatal(err)
	}
	if meta["simclr.part"] != "projector" || meta[export.KeyArch] != "resnet18" || meta[export.KeyProjectionDim] != "8" || meta["format"] != "pt" {
		t.Errorf("projector metadata %v", meta)
	}
}

// trainedLikeCheckpoint is randomCheckpoint with running statistics that
// keep eval-mode features alive: means within 0.02 of 0 and variances in
// [0.5, 1.5). randomCheckpoint's means (up to +0.2 on every layer) push
// every pre-ReLU activation of a random-init ResNet below zero, so its
// features are all 0 and would compare equal whatever the weights.
func trainedLikeCheckpoint(t *testing.T, cfg graphs.Config) *checkpoint.Checkpoint {
	ck, m, _ := randomCheckpoint(t, cfg)
	r := rand.New(rand.NewPCG(7, 8))
	for i, b := range ck.Buffers {
		for j := range b.Data {
			if m.Buffers[i].Role == "bn_running_mean" {
				b.Data[j] = 0.02 * (2*r.Float32() - 1)
			} else {
				b.Data[j] = 0.5 + r.Float32()
			}
		}
	}
	return ck
}

var relDiff = regexp.MustCompile(`features ([0-9.e+-]+) projection ([0-9.e+-]+)`)

// TestSafetensorsInTorchvision loads the safetensors export into
// torchvision's ResNet with Debian's python3-torch (the file read with json
// and numpy) and compares its eval-mode features and the projector's z with
// the ONNX export's, run through ONNX Runtime, on the same images.
func TestSafetensorsInTorchvision(t *testing.T) {
	gradcheck.InitORT(t)
	if out, err := exec.Command("/usr/bin/python3", "-c", "import torch, torchvision, numpy").CombinedOutput(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("python3-torch and python3-torchvision are required in CI (make setup-system): %s", out)
		}
		t.Skipf("/usr/bin/python3 lacks torch or torchvision (make setup-system installs Debian's python3-torch): %s", out)
	}
	const tolerance = 1e-4
	for _, cfg := range []graphs.Config{
		{Arch: "resnet18", Stem: "imagenet", ImageSize: 32, Pairs: 4, ProjectionDim: 16},
		{Arch: "resnet18", Stem: "cifar", ImageSize: 16, Pairs: 4, ProjectionDim: 8},
		{Arch: "resnet50", Stem: "cifar", ImageSize: 16, Pairs: 4, ProjectionDim: 8},
	} {
		cfg = cfg.Defaults()
		t.Run(cfg.Name(), func(t *testing.T) {
			dir := t.TempDir()
			ck := trainedLikeCheckpoint(t, cfg)
			model, err := export.Encoder(ck, export.Options{WithProjector: true})
			if err != nil {
				t.Fatal(err)
			}
			const batch = 5
			s, d, p := int64(cfg.ImageSize), int64(graphs.FeatureDim(cfg.Arch)), int64(cfg.ProjectionDim)
			images := make([]float32, batch*3*s*s)
			r := rand.New(rand.NewPCG(3, 4))
			for i := range images {
				images[i] = r.Float32()
			}
			feats, z := make([]float32, batch*d), make([]float32, batch*p)
			sess, err := ort.NewSession(model, []ort.Binding{{Name: graphs.InferenceInput, Shape: []int64{batch, 3, s, s}, Data: images}},
				[]ort.Binding{{Name: graphs.InferenceOutput, Shape: []int64{batch, d}, Data: feats}, {Name: graphs.ProjectionOutput, Shape: []int64{batch, p}, Data: z}},
				ort.Options{IntraOpThreads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer sess.Close()
			if err := sess.Run(); err != nil {
				t.Fatal(err)
			}
			nonzero := 0
			for _, f := range feats {
				if f != 0 {
					nonzero++
				}
			}
			if nonzero < len(feats)/4 {
				t.Fatalf("only %d of %d features are non-zero: the comparison would say nothing", nonzero, len(feats))
			}
			for name, a := range map[string]struct {
				shape []int64
				data  []float32
			}{"images.npy": {[]int64{batch, 3, s, s}, images}, "features.npy": {[]int64{batch, d}, feats}, "projection.npy": {[]int64{batch, p}, z}} {
				if err := npy.SaveFloat32(filepath.Join(dir, name), a.shape, a.data); err != nil {
					t.Fatal(err)
				}
			}
			enc := filepath.Join(dir, "encoder.safetensors")
			if _, err := export.WriteSafetensors(enc, ck, export.Options{WithProjector: true}); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command("/usr/bin/python3", "testdata/torchvision_load.py", enc,
				filepath.Join(dir, "images.npy"), filepath.Join(dir, "features.npy"), filepath.Join(dir, "projection.npy")).CombinedOutput()
			if err != nil {
				t.Fatalf("torchvision rejected the file: %v\n%s", err, out)
			}
			t.Logf("%s", bytes.TrimSpace(out))
			m := relDiff.FindSubmatch(out)
			if m == nil {
				t.Fatalf("no differences in the script's output:\n%s", out)
			}
			for i, what := range []string{"features", "projection"} {
				v, err := strconv.ParseFloat(string(m[i+1]), 64)
				if err != nil || v > tolerance {
					t.Errorf("torchvision's %s differ from ONNX Runtime's by %s of their scale, want at most %g", what, m[i+1], tolerance)
				}
			}
		})
	}
}
