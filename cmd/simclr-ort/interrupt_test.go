package main

import (
	"bufio"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/simclr-ort/simclr-ort/internal/gradcheck"
	"github.com/simclr-ort/simclr-ort/runtime/checkpoint"
)

// TestHelperProcess runs the command line in a child process for the tests
// below; it does nothing in a normal test run.
func TestHelperProcess(t *testing.T) {
	if os.Getenv("SIMCLR_HELPER_PROCESS") != "1" {
		return
	}
	ctx, stop := interruptContext()
	defer stop()
	args := strings.Split(os.Getenv("SIMCLR_HELPER_ARGS"), "\n")
	os.Exit(run(ctx, args))
}

// TestCtrlCWritesCheckpointAndExits130 interrupts a training run with
// SIGINT (Ctrl-C) and with SIGTERM (a cancelled mpirun or Slurm job): it
// must save a checkpoint that loads and exit with status 130.
func TestCtrlCWritesCheckpointAndExits130(t *testing.T) {
	gradcheck.InitORT(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) { interruptTraining(t, sig) })
	}
}

func interruptTraining(t *testing.T, sig syscall.Signal) {
	data := t.TempDir()
	for c := 0; c < 2; c++ {
		dir := filepath.Join(data, fmt.Sprintf("class%d", c))
		os.MkdirAll(dir, 0o755)
		for i := 0; i < 8; i++ {
			img := image.NewNRGBA(image.Rect(0, 0, 12, 12))
			for p := range img.Pix {
				img.Pix[p] = uint8(p*7 + i*31 + c*90)
			}
			img.Set(0, 0, color.NRGBA{255, 0, 0, 255})
			f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%d.png", i)))
			if err != nil {
				t.Fatal(err)
			}
			png.Encode(f, img)
			f.Close()
		}
	}
	out := filepath.Join(t.TempDir(), "run")
	args := []string{"train", "--data", "folder:" + data, "--arch", "resnet18", "--stem", "cifar", "--image-size", "12",
		"--batch-size", "4", "--projection-dim", "8", "--steps", "100000", "--log-every", "1", "--threads", "1", "--workers", "1", "--out", out}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "SIMCLR_HELPER_PROCESS=1", "SIMCLR_HELPER_ARGS="+strings.Join(args, "\n"))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	steps := 0
	for lines.Scan() && steps < 3 {
		if strings.HasPrefix(lines.Text(), "Step [") {
			steps++
		}
	}
	if steps < 3 {
		cmd.Process.Kill()
		t.Fatalf("the run printed %d step lines before ending", steps)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	go func() {
		for lines.Scan() {
		}
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("no exit within 60 s of %v", sig)
	}
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Fatalf("exit status %d after %v (%v), want 130", code, sig, err)
	}
	ck, err := checkpoint.Load(filepath.Join(out, "checkpoint.ckpt"))
	if err != nil {
		t.Fatalf("no usable checkpoint after %v: %v", sig, err)
	}
	if ck.Step < 3 {
		t.Errorf("checkpoint at step %d, want at least 3", ck.Step)
	}
}
