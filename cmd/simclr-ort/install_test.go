package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMakeInstallRunsAnywhere installs with `make install` into a temporary
// DESTDIR and PREFIX and runs the installed command from a directory outside
// the repository, with ONNXRUNTIME_SHARED_LIBRARY_PATH unset: it must find
// the library it was installed with, and say how to get one once that is
// gone.
func TestMakeInstallRunsAnywhere(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and installs the command (-short)")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skipf("make is not installed: %v", err)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, ".cache/onnxruntime/libonnxruntime.so.1")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI needs the ONNX Runtime library of make setup: %v", err)
		}
		t.Skipf("no ONNX Runtime library to install (run make setup): %v", err)
	}
	dest := t.TempDir()
	const prefix = "/opt/simclr-ort-test"
	out, err := exec.Command("make", "-C", root, "install", "DESTDIR="+dest, "PREFIX="+prefix).CombinedOutput()
	if err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	bin := filepath.Join(dest, prefix, "bin", "simclr-ort")
	lib := filepath.Join(dest, prefix, "lib", "simclr-ort", "libonnxruntime.so")
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ONNXRUNTIME_SHARED_LIBRARY_PATH=") {
			env = append(env, kv)
		}
	}
	step := func() (string, error) {
		cmd := exec.Command(bin, "step", "--arch", "resnet18", "--stem", "cifar", "--image-size", "16", "--batch-size", "4", "--steps", "1")
		cmd.Dir = t.TempDir() // no .cache/onnxruntime here or above
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := step(); err != nil || !strings.Contains(out, "step 0: loss") {
		t.Fatalf("the installed command did not run a step: %v\n%s", err, out)
	}
	if err := os.Remove(lib); err != nil {
		t.Fatal(err)
	}
	if out, err := step(); err == nil || !strings.Contains(out, "no ONNX Runtime library found") || !strings.Contains(out, "make setup") {
		t.Errorf("without its library the installed command should say how to get one; got %v\n%s", err, out)
	}
}
