package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/simclr-ort/simclr-ort/internal/gradcheck"
	"github.com/simclr-ort/simclr-ort/internal/rundir"
)

// startTrain runs the command line in a child process and returns once it
// has printed steps step lines; the rest of its stdout is drained.
func startTrain(t *testing.T, steps int, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "SIMCLR_HELPER_PROCESS=1", "SIMCLR_HELPER_ARGS="+strings.Join(args, "\n"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	seen := 0
	for seen < steps && lines.Scan() {
		if strings.HasPrefix(lines.Text(), "Step [") {
			seen++
		}
	}
	if seen < steps {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the run printed %d step lines before ending:\n%s", seen, stderr.String())
	}
	go func() {
		for lines.Scan() {
		}
	}()
	return cmd, &stderr
}

// TestCtrlCThenThePrintedCommand: a run stopped with Ctrl-C prints how to
// continue; exactly that command (train --resume RUNDIR, nothing else)
// finishes the run with the per-step losses of an uninterrupted run.
func TestCtrlCThenThePrintedCommand(t *testing.T) {
	gradcheck.InitORT(t)
	data := smallFolder(t)
	flags := []string{"--batch-size", "4", "--steps", "10", "--crop-scale-min", "0.25", "--temperature", "0.2", "--lr", "0.6"}
	straight, stopped := filepath.Join(t.TempDir(), "straight"), filepath.Join(t.TempDir(), "stopped")
	if code := run(context.Background(), trainArgs(data, straight, flags...)); code != 0 {
		t.Fatalf("uninterrupted run exited %d", code)
	}
	cmd, stderr := startTrain(t, 3, trainArgs(data, stopped, flags...)...)
	cmd.Process.Signal(syscall.SIGINT)
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Fatalf("exit status %d after Ctrl-C, want 130:\n%s", code, stderr)
	}
	m := regexp.MustCompile(`continue with: simclr-ort (train --resume \S+)\n`).FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("the interrupted run does not say how to continue:\n%s", stderr)
	}
	printed := strings.Fields(m[1])
	if code := run(context.Background(), printed); code != 0 {
		t.Fatalf("simclr-ort %s exited %d", strings.Join(printed, " "), code)
	}
	want, got := losses(t, straight), losses(t, stopped)
	if len(got) != 10 {
		t.Fatalf("%d steps after the resume, want 10", len(got))
	}
	for s, l := range want {
		if got[s] != l {
			t.Errorf("step %d: loss %v after Ctrl-C and %q, %v uninterrupted", s, got[s], strings.Join(printed, " "), l)
		}
	}
}

// TestResumeRefusesWhatWouldChangeTheResult: flags that change the run are
// refused by name with both values; flags that cannot are taken.
func TestResumeRefusesWhatWouldChangeTheResult(t *testing.T) {
	gradcheck.InitORT(t)
	data := smallFolder(t)
	dir := filepath.Join(t.TempDir(), "run")
	if code := run(context.Background(), trainArgs(data, dir, "--batch-size", "4", "--steps", "4", "--stop-after", "2")); code != 0 {
		t.Fatalf("train exited %d", code)
	}
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"--lr", "0.9"}, 2},
		{[]string{"--batch-size", "8"}, 2},
		{[]string{"--seed", "6"}, 2},
		{[]string{"--config", filepath.Join(dir, "config.yaml")}, 2},
		{[]string{"--workers", "2", "--log-every", "2"}, 0},
	} {
		code := run(context.Background(), append([]string{"train", "--resume", dir}, tc.args...))
		if code != tc.code {
			t.Errorf("--resume with %v exited %d, want %d", tc.args, code, tc.code)
		}
	}
	if got := losses(t, dir); len(got) != 4 {
		t.Errorf("%d steps recorded, want 4", len(got))
	}
}

// TestRunDirectoryIsLocked: a second train of the same directory, fresh or
// --resume, is refused while the first runs, naming it; after the first
// ends (killed), the directory is free.
func TestRunDirectoryIsLocked(t *testing.T) {
	gradcheck.InitORT(t)
	data := smallFolder(t)
	dir := filepath.Join(t.TempDir(), "run")
	first, _ := startTrain(t, 2, trainArgs(data, dir, "--batch-size", "4", "--steps", "100000", "--checkpoint-every-steps", "1")...)
	defer first.Process.Kill()
	// A directory whose run has written no checkpoint yet: still in use,
	// not "no checkpoint".
	early := filepath.Join(t.TempDir(), "early")
	os.MkdirAll(early, 0o755)
	held, err := rundir.Acquire(early, "simclr-ort train --out "+early)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	for _, args := range [][]string{
		trainArgs(data, dir, "--batch-size", "4", "--steps", "3"),
		{"train", "--resume", dir},
		{"train", "--resume", early},
	} {
		var errBuf bytes.Buffer
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
		cmd.Env = append(os.Environ(), "SIMCLR_HELPER_PROCESS=1", "SIMCLR_HELPER_ARGS="+strings.Join(args, "\n"))
		cmd.Stderr = &errBuf
		cmd.Run()
		msg := errBuf.String()
		if cmd.ProcessState.ExitCode() == 0 || !strings.Contains(msg, "in use") || !strings.Contains(msg, "pid") {
			t.Errorf("%v while another run holds the directory: exit %d, %q; want a refusal naming the other process", args[:3], cmd.ProcessState.ExitCode(), msg)
		}
	}
	first.Process.Kill()
	first.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code := run(context.Background(), []string{"train", "--resume", dir, "--steps", "100000", "--stop-after", "1"})
		if code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("--resume after the first run was killed exited %d", code)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
