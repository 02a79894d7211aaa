package ort

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/simclr-ort/simclr-ort/gen/graph"
	"github.com/simclr-ort/simclr-ort/internal/nativeop"
)

// checkDeclarations compiles a C file that includes the vendor's header
// and native.h and asserts, at compile time, that every declaration of
// native.h matches the vendor's.
func checkDeclarations(t *testing.T, includeDir, header string, asserts []string) {
	t.Helper()
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	if _, err := exec.LookPath(cc); err != nil {
		t.Skipf("no C compiler (%s) to check native.h against %s", cc, header)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	src := "#include <stddef.h>\n#include <" + header + ">\n#include \"native.h\"\n" + strings.Join(asserts, "\n") + "\n"
	file := filepath.Join(t.TempDir(), "check.c")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-std=c11", "-fsyntax-only", "-I", wd}
	if includeDir != "" {
		args = append(args, "-I", includeDir)
	}
	out, err := exec.Command(cc, append(args, file)...).CombinedOutput()
	if err != nil {
		t.Fatalf("native.h disagrees with %s:\n%s", header, out)
	}
	t.Logf("%d declarations of native.h match %s", len(asserts), header)
}

// TestNativeDeclarationsORT checks native.h's OrtApi positions, its
// OrtCustomOp member by member and its enumerators against the
// onnxruntime_c_api.h that onnxruntime_go ships.
func TestNativeDeclarationsORT(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/yalue/onnxruntime_go").Output()
	if err != nil {
		t.Skipf("cannot locate onnxruntime_go's source (go list: %v)", err)
	}
	var asserts []string
	for name, pos := range nativeAPIPositions() {
		asserts = append(asserts, fmt.Sprintf("_Static_assert(offsetof(OrtApi, %s) == %d * sizeof(void*), \"OrtApi position of %s\");", name, pos, name))
	}
	members := customOpMembers()
	for _, m := range members {
		asserts = append(asserts, fmt.Sprintf("_Static_assert(offsetof(OrtCustomOp, %s) == offsetof(simclr_OrtCustomOp, %s), \"OrtCustomOp member %s\");", m, m, m))
	}
	asserts = append(asserts, "_Static_assert(sizeof(OrtCustomOp) == sizeof(simclr_OrtCustomOp), \"OrtCustomOp has members native.h lacks\");")
	for name, v := range nativeEnums() {
		asserts = append(asserts, fmt.Sprintf("_Static_assert(%s == %d, \"%s\");", name, v, name))
	}
	slices.Sort(asserts)
	checkDeclarations(t, strings.TrimSpace(string(out)), "onnxruntime_c_api.h", asserts)
}

// TestNativeDeclarationsDNNL checks native.h's oneDNN constants and
// descriptor sizes against dnnl.h (Debian's libdnnl-dev), when installed.
func TestNativeDeclarationsDNNL(t *testing.T) {
	const header = "/usr/include/oneapi/dnnl/dnnl.h"
	if _, err := os.Stat(header); err != nil {
		t.Skipf("no %s to check native.h against (install libdnnl-dev)", header)
	}
	var asserts []string
	for expr, v := range dnnlDeclarations() {
		asserts = append(asserts, fmt.Sprintf("_Static_assert(%s == %d, \"%s\");", expr, v, expr))
	}
	slices.Sort(asserts)
	checkDeclarations(t, "", "oneapi/dnnl/dnnl.h", asserts)
}

// TestNativeKernelsMatchTheDomain: every op of internal/nativeop has a CPU
// kernel taking its inputs, outputs and attributes, and no op reuses a
// standard ONNX op's name.
func TestNativeKernelsMatchTheDomain(t *testing.T) {
	if err := Init(""); err != nil {
		t.Skipf("ONNX Runtime not available: %v", err)
	}
	if err := LoadNativeKernels(); err != nil {
		t.Skipf("native kernels not available: %v", err)
	}
	for _, def := range nativeop.Ops() {
		op, err := nativeOp(def, 1)
		if err != nil {
			t.Error(err)
			continue
		}
		freeNativeOp(op)
		if forward := strings.HasSuffix(def.Name, "Forward"); graph.HasVJP(def.Name) != forward {
			t.Errorf("%s: gradient rule %v; the *Forward ops have one, their gradients none", def.Name, graph.HasVJP(def.Name))
		}
		for _, standard := range []string{"Conv", "ConvTranspose", "BatchNormalization", "Gemm", "MatMul", "Relu"} {
			if def.Name == standard {
				t.Errorf("native op %s reuses a standard ONNX op's name; the gradient rules are found by op type", def.Name)
			}
		}
	}
	info, err := NativeKernelsInfo()
	if err != nil {
		t.Fatal(err)
	}
	t.Log(info)
}

// TestModelImports reads the opset imports of a serialised model.
func TestModelImports(t *testing.T) {
	g := graph.New("imports")
	x := g.Input("x", graph.Float, graph.Shape{1, 2, 3, 3})
	w := g.Input("w", graph.Float, graph.Shape{2, 2, 3, 3})
	g.Output("y", g.Conv(x, w, graph.ConvAttrs{}))
	standard, err := graph.Marshal(g.Model("test", map[string]string{"note": nativeop.Domain}))
	if err != nil {
		t.Fatal(err)
	}
	if modelImports(standard, nativeop.Domain) {
		t.Error("a standard graph (that names the domain in its metadata) reported as importing it")
	}
	g = graph.New("imports")
	x = g.Input("x", graph.Float, graph.Shape{1, 2, 3, 3})
	w = g.Input("w", graph.Float, graph.Shape{2, 2, 3, 3})
	g.Output("y", g.NativeConv(x, w, graph.ConvAttrs{}, graph.NativeConvPlan{}))
	native, err := graph.Marshal(g.Model("test", nil))
	if err != nil {
		t.Fatal(err)
	}
	if !modelImports(native, nativeop.Domain) {
		t.Error("a graph with native ops not reported as importing the domain")
	}
	if modelImports([]byte("garbage"), nativeop.Domain) {
		t.Error("garbage reported as importing the domain")
	}
}
