package main

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/simclr-ort/simclr-ort/runtime/train"
)

// TestCUDAStepAgreesWithCPU runs the same training step (same seed, hence
// the same weights and views; the GPU graph variant) on the CUDA provider
// and on the CPU, each in a child process with its own ONNX Runtime
// library, and compares the losses. It needs a GPU and the build `make
// setup-gpu` fetches, with the CUDA libraries on LD_LIBRARY_PATH (eval
// "$(tools/cuda-env.sh)"); elsewhere it skips and says which is missing.
// tools/gpu/check.py holds the full check against PyTorch on the GPU.
func TestCUDAStepAgreesWithCPU(t *testing.T) {
	if _, err := exec.LookPath("nvidia-smi"); err != nil {
		t.Skip("no GPU here (no nvidia-smi on PATH)")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	gpuLib := filepath.Join(root, ".cache", "onnxruntime-gpu", "libonnxruntime.so")
	cpuLib := filepath.Join(root, ".cache", "onnxruntime", "libonnxruntime.so")
	for _, lib := range []string{gpuLib, cpuLib} {
		if _, err := os.Stat(lib); err != nil {
			t.Skipf("%s is missing: run make setup and make setup-gpu", lib)
		}
	}
	step := func(ep, lib string) float64 {
		args := []string{"step", "--ep", ep, "--ort-lib", lib, "--arch", "resnet18", "--stem", "imagenet", "--image-size", "32",
			"--batch-size", "16", "--bn-lowering", "primitive", "--conv-grad", "gpu", "--steps", "1", "--seed", "3", "--json"}
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
		cmd.Env = append(os.Environ(), "SIMCLR_HELPER_PROCESS=1", "SIMCLR_HELPER_ARGS="+strings.Join(args, "\n"))
		out, err := cmd.Output()
		if err != nil {
			var stderr string
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			t.Fatalf("step --ep %s: %v\n%s", ep, err, stderr)
		}
		var rep train.BenchReport
		if err := json.Unmarshal(out, &rep); err != nil || len(rep.Losses) != 1 {
			t.Fatalf("step --ep %s printed %q: %v", ep, out, err)
		}
		return float64(rep.Losses[0])
	}
	gpu, cpu := step("cuda", gpuLib), step("cpu", cpuLib)
	if rel := math.Abs(gpu-cpu) / math.Abs(cpu); rel > 1e-4 {
		t.Errorf("loss on CUDA %.7f, on the CPU %.7f: relative difference %.1e > 1e-4", gpu, cpu, rel)
	}
}
