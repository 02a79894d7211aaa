package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/simclr-ort/simclr-ort/internal/gradcheck"
	"github.com/simclr-ort/simclr-ort/runtime/checkpoint"
)

// TestChaosKills kills a training run with SIGKILL at random moments, 20
// times, some of them while a checkpoint is being written (one is written
// after every step), resuming it each time with train --resume RUNDIR. No
// checkpoint may be lost or corrupt, and every loss recorded, including the
// steps a resumed run repeats, must equal the uninterrupted run's.
func TestChaosKills(t *testing.T) {
	gradcheck.InitORT(t)
	const kills, total = 20, 40
	data := smallFolder(t)
	flags := []string{"--batch-size", "4", "--steps", "40", "--checkpoint-every-steps", "1"}
	straight, chaos := filepath.Join(t.TempDir(), "straight"), filepath.Join(t.TempDir(), "chaos")
	if code := run(context.Background(), trainArgs(data, straight, flags...)); code != 0 {
		t.Fatalf("uninterrupted run exited %d", code)
	}
	want := losses(t, straight)
	r := rand.New(rand.NewPCG(11, 12))
	duringWrite, lost, prevStep := 0, 0, int64(0)
	for k := 0; k < kills; k++ {
		args := trainArgs(data, chaos, flags...)
		if k > 0 {
			args = []string{"train", "--resume", chaos}
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
		cmd.Env = append(os.Environ(), "SIMCLR_HELPER_PROCESS=1", "SIMCLR_HELPER_ARGS="+strings.Join(args, "\n"))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(out)
		wait := 1 + r.IntN(2) // step lines before the kill
		for seen := 0; seen < wait && lines.Scan(); {
			if strings.HasPrefix(lines.Text(), "Step [") {
				seen++
			}
		}
		time.Sleep(time.Duration(r.IntN(120)) * time.Millisecond)
		if tmp, _ := filepath.Glob(filepath.Join(chaos, "checkpoint.ckpt.tmp-*")); len(tmp) > 0 {
			duringWrite++
		}
		cmd.Process.Kill()
		go func() {
			for lines.Scan() {
			}
		}()
		cmd.Wait()
		ck, err := checkpoint.Load(filepath.Join(chaos, "checkpoint.ckpt"))
		if err != nil {
			t.Fatalf("kill %d: the checkpoint is lost or corrupt: %v\n%s", k+1, err, stderr.String())
		}
		if ck.Step < prevStep {
			t.Fatalf("kill %d: the checkpoint went back from step %d to %d", k+1, prevStep, ck.Step)
		}
		recorded := records(t, chaos)
		lost += int(maxStep(recorded) + 1 - ck.Step)
		prevStep = ck.Step
		if ck.Step >= total {
			break
		}
	}
	if code := run(context.Background(), []string{"train", "--resume", chaos}); code != 0 {
		t.Fatalf("the last resume exited %d", code)
	}
	all := records(t, chaos)
	seen := map[int64]bool{}
	for _, rec := range all {
		seen[rec.Step] = true
		if rec.Loss != want[rec.Step] {
			t.Errorf("step %d: loss %v after kills and resumes, %v uninterrupted", rec.Step, rec.Loss, want[rec.Step])
		}
	}
	if len(seen) != total {
		t.Errorf("%d distinct steps recorded, want %d", len(seen), total)
	}
	t.Logf("%d kills (%d while a checkpoint's temporary file existed), %d records compared, %.2f steps lost per kill",
		kills, duringWrite, len(all), float64(lost)/kills)
}

type lossRecord struct {
	Step int64   `json:"step"`
	Loss float64 `json:"loss"`
}

// records is every record of a run's metrics.jsonl, repeats included.
func records(t *testing.T, dir string) []lossRecord {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		return nil
	}
	var out []lossRecord
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var r lossRecord
		if err := json.Unmarshal(line, &r); err != nil {
			// A torn last line: the next resume removes it.
			continue
		}
		out = append(out, r)
	}
	return out
}

func maxStep(rs []lossRecord) int64 {
	m := int64(-1)
	for _, r := range rs {
		m = max(m, r.Step)
	}
	return m
}
