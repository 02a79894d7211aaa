package gen

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/simclr-ort/simclr-ort/gen/simclr"
	"github.com/simclr-ort/simclr-ort/graphs"
)

const graphsDir = "../graphs"

// TestGraphsAreFresh fails when graphs/ differs from what the generator
// writes now: run `go generate ./gen` and commit the result.
func TestGraphsAreFresh(t *testing.T) {
	files, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(graphsDir, name))
		if err != nil {
			t.Errorf("graphs/%s is missing: run `go generate ./gen`", name)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("graphs/%s is stale: run `go generate ./gen` and commit it", name)
		}
	}
	entries, err := os.ReadDir(graphsDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		n := e.Name()
		if (strings.HasSuffix(n, ".onnx") || strings.HasSuffix(n, ".json")) && files[n] == nil {
			t.Errorf("graphs/%s is not generated any more: delete it", n)
		}
	}
}

// TestGenerationIsDeterministic builds everything twice and compares bytes.
func TestGenerationIsDeterministic(t *testing.T) {
	a, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	b, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	for name := range a {
		if !bytes.Equal(a[name], b[name]) {
			t.Errorf("%s differs between two generations", name)
		}
	}
}

// checkerScript runs ONNX's full checker (with strict shape inference) on
// every file named on the command line.
const checkerScript = `
import sys, onnx
for path in sys.argv[1:]:
    onnx.checker.check_model(onnx.load(path), full_check=True)
    print("ok", path)
`

// TestONNXCheckerAcceptsEveryGraph runs onnx.checker.check_model(full_check=True)
// from Debian's python3-onnx on the default set, on the variants
// (BatchNorm groups, primitive lowering, shards) the default set lacks and
// on the distributed forward, loss and backward graphs.
func TestONNXCheckerAcceptsEveryGraph(t *testing.T) {
	python := "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import onnx").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("python3-onnx is required in CI: %v", err)
		}
		t.Skipf("python3-onnx not installed (apt-get install python3-onnx): %v", err)
	}
	paths, err := filepath.Glob(filepath.Join(graphsDir, "*.onnx"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no graphs in %s: %v", graphsDir, err)
	}
	dir := t.TempDir()
	for _, cfg := range []graphs.Config{
		{Arch: "resnet18", Stem: "cifar", ImageSize: 32, Pairs: 4, BNGroups: 2},
		{Arch: "resnet50", Stem: "imagenet", ImageSize: 64, Pairs: 8, BNLowering: "primitive"},
		{Arch: "resnet18", Stem: "cifar", ImageSize: 16, Pairs: 8, BNGroups: 2, Shards: 2},
		{Arch: "resnet18", Stem: "imagenet", ImageSize: 32, Pairs: 4, BNLowering: "primitive", ConvGrad: "gpu"},
	} {
		b, err := Build(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for name, data := range map[string][]byte{b.Manifest.TrainGraph: b.Train, b.Manifest.InferenceGraph: b.Inference} {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			paths = append(paths, p)
		}
	}
	for _, c := range []struct {
		cfg   graphs.Config
		world int
	}{
		{graphs.Config{Arch: "resnet18", Stem: "cifar", ImageSize: 16, Pairs: 4, BNGroups: 2}, 2},
		{graphs.Config{Arch: "resnet50", Stem: "imagenet", ImageSize: 64, Pairs: 4, BNLowering: "primitive"}, 3},
	} {
		b, err := BuildDistributed(c.cfg, c.world, simclr.Options{})
		if err != nil {
			t.Fatal(err)
		}
		m := b.Manifest
		for name, data := range map[string][]byte{m.ForwardGraph: b.Forward, m.LossGraph: b.Loss, m.BackwardGraph: b.Backward} {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	out, err := exec.Command(python, append([]string{"-c", checkerScript}, paths...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("onnx.checker rejected a graph: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
