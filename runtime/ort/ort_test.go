package ort_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/simclr-ort/simclr-ort/gen/graph"
	"github.com/simclr-ort/simclr-ort/internal/gradcheck"
	"github.com/simclr-ort/simclr-ort/runtime/ort"
)

func TestFindLibraryErrorsSayHowToGetIt(t *testing.T) {
	_, err := ort.FindLibrary("/nonexistent/libonnxruntime.so")
	if err == nil || !strings.Contains(err.Error(), "make setup") || !strings.Contains(err.Error(), "--ort-lib or "+ort.LibraryEnv) {
		t.Fatalf("want an error that names where the path came from and says how to get the library, got %v", err)
	}
}

func TestNoLibraryAnywhere(t *testing.T) {
	dir := t.TempDir()
	wd, _ := os.Getwd()
	defer os.Chdir(wd)
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	_, err := ort.FindLibrary("")
	// Beside the test binary there is no library either.
	if err == nil {
		if _, statErr := os.Stat(filepath.Join(filepath.Dir(os.Args[0]), "libonnxruntime.so")); statErr == nil {
			t.Skip("a library sits beside the test binary")
		}
		t.Fatal("want an error with no library anywhere")
	}
	if !strings.Contains(err.Error(), "make setup") || !strings.Contains(err.Error(), ort.LibraryEnv) {
		t.Errorf("error does not say how to get the library: %v", err)
	}
}

func identityModel(t *testing.T) []byte {
	g := graph.New("id")
	x := g.Input("x", graph.Float, graph.Shape{2})
	g.Output("y", g.Neg(x))
	m, err := graph.Marshal(g.Model("test", nil))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestCUDAWithoutProviderIsAClearError: the CPU library has no CUDA
// provider; asking for it must fail, naming what is missing, never run on
// the CPU instead.
func TestCUDAWithoutProviderIsAClearError(t *testing.T) {
	gradcheck.InitORT(t)
	x, y := []float32{1, 2}, make([]float32, 2)
	s, err := ort.NewSession(identityModel(t), []ort.Binding{{Name: "x", Shape: []int64{2}, Data: x}},
		[]ort.Binding{{Name: "y", Shape: []int64{2}, Data: y}}, ort.Options{Provider: "cuda"})
	if err == nil {
		s.Close()
		t.Skip("this ONNX Runtime library has a working CUDA provider")
	}
	for _, want := range []string{"CUDA", "libonnxruntime_providers_cuda.so", "cuDNN", "--ep cpu"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("CUDA error does not mention %q: %v", want, err)
		}
	}
}

func TestSessionWritesOutputsInPlace(t *testing.T) {
	gradcheck.InitORT(t)
	x, y := []float32{1, 2}, make([]float32, 2)
	s, err := ort.NewSession(identityModel(t), []ort.Binding{{Name: "x", Shape: []int64{2}, Data: x}},
		[]ort.Binding{{Name: "y", Shape: []int64{2}, Data: y}}, ort.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, v := range []float32{3, -4} {
		x[0] = v
		if err := s.Run(); err != nil {
			t.Fatal(err)
		}
		if y[0] != -v || y[1] != -2 {
			t.Fatalf("after x[0]=%v: y=%v", v, y)
		}
	}
}

func TestBadBindingsAreErrors(t *testing.T) {
	gradcheck.InitORT(t)
	_, err := ort.NewSession(identityModel(t), []ort.Binding{{Name: "x", Shape: []int64{3}, Data: make([]float32, 2)}},
		[]ort.Binding{{Name: "y", Shape: []int64{2}, Data: make([]float32, 2)}}, ort.Options{})
	if err == nil || !strings.Contains(err.Error(), "has 2 values") {
		t.Fatalf("want a size error, got %v", err)
	}
	_, err = ort.NewSession(identityModel(t), nil, nil, ort.Options{Provider: "tpu"})
	if err == nil || !strings.Contains(err.Error(), "unknown execution provider") {
		t.Fatalf("want an unknown-provider error, got %v", err)
	}
}
