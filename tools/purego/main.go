// Command purego runs an exported simclr-ort encoder in a pure-Go ONNX
// runtime (github.com/owulveryck/onnx-go with its gorgonnx backend) and in
// ONNX Runtime on the same images, and fails when their features differ by
// more than 1e-4 of the feature scale: the file runs elsewhere with the same
// numbers. onnx-go v0.5.0 builds only against the old gorgonia.org/tensor
// v0.9.3 that go.mod pins. It must not import onnxpb: onnx-go registers the
// same protobuf names (onnx.ModelProto, ...).
//
// Usage (from the repository root): go run ./tools/purego [-ort-lib PATH] ENCODER.onnx...
package main

import (
	"flag"
	"fmt"
	"math"
	"os"

	onnx "github.com/owulveryck/onnx-go"
	"github.com/owulveryck/onnx-go/backend/x/gorgonnx"
	ort "github.com/yalue/onnxruntime_go"
	"gorgonia.org/tensor"
)

const tolerance = 1e-4

func main() {
	lib := flag.String("ort-lib", ".cache/onnxruntime/libonnxruntime.so", "ONNX Runtime shared library")
	images := flag.Int("images", 3, "images per check")
	flag.Parse()
	ort.SetSharedLibraryPath(*lib)
	if err := ort.InitializeEnvironment(); err != nil {
		fmt.Fprintf(os.Stderr, "purego: load ONNX Runtime from %s: %v (run `make setup`)\n", *lib, err)
		os.Exit(2)
	}
	failed := false
	for _, path := range flag.Args() {
		if err := check(path, *images); err != nil {
			fmt.Fprintf(os.Stderr, "purego: %s: %v\n", path, err)
			failed = true
		}
	}
	if failed || flag.NArg() == 0 {
		os.Exit(1)
	}
}

func check(path string, n int) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	backend := gorgonnx.NewGraph()
	m := onnx.NewModel(backend)
	if err := m.UnmarshalBinary(b); err != nil {
		return fmt.Errorf("onnx-go cannot read it: %w", err)
	}
	inputs, _, err := ort.GetInputOutputInfoWithONNXData(b)
	if err != nil || len(inputs) != 1 || len(inputs[0].Dimensions) != 4 {
		return fmt.Errorf("not an encoder with one [N,3,H,W] input (%v)", err)
	}
	size := int(inputs[0].Dimensions[2])
	data := make([]float32, n*3*size*size)
	for i := range data {
		data[i] = float32((i*7919)%251) / 251
	}
	if err := m.SetInput(0, tensor.New(tensor.WithShape(n, 3, size, size), tensor.WithBacking(append([]float32(nil), data...)))); err != nil {
		return err
	}
	if err := backend.Run(); err != nil {
		return fmt.Errorf("onnx-go cannot run it: %w", err)
	}
	outs, err := m.GetOutputTensors()
	if err != nil {
		return err
	}
	pure := outs[0].Data().([]float32)
	x, err := ort.NewTensor(ort.NewShape(int64(n), 3, int64(size), int64(size)), data)
	if err != nil {
		return err
	}
	defer x.Destroy()
	y, err := ort.NewEmptyTensor[float32](ort.NewShape(int64(n), int64(len(pure)/n)))
	if err != nil {
		return err
	}
	defer y.Destroy()
	s, err := ort.NewAdvancedSessionWithONNXData(b, []string{"images"}, []string{"features"}, []ort.Value{x}, []ort.Value{y}, nil)
	if err != nil {
		return err
	}
	defer s.Destroy()
	if err := s.Run(); err != nil {
		return err
	}
	var diff, scale float64
	for i, v := range y.GetData() {
		diff = math.Max(diff, math.Abs(float64(v-pure[i])))
		scale = math.Max(scale, math.Abs(float64(v)))
	}
	verdict := "PASS"
	if !(diff <= tolerance*scale) {
		verdict = "FAIL"
	}
	fmt.Printf("%s: %d images %dx%d, max |onnx-go - ONNX Runtime| = %.3g, feature scale %.3g, relative %.2e: %s\n",
		path, n, size, size, diff, scale, diff/scale, verdict)
	if verdict == "FAIL" {
		return fmt.Errorf("features differ beyond %g of their scale", tolerance)
	}
	return nil
}
