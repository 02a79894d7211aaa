package checkpoint

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/simclr-ort/simclr-ort/runtime/optim"
)

// The crash test's child process saves to the path in helperPathEnv,
// starting at the step in helperStepEnv.
const (
	helperPathEnv = "SIMCLR_ORT_CHECKPOINT_HELPER_PATH"
	helperStepEnv = "SIMCLR_ORT_CHECKPOINT_HELPER_STEP"
)

// crashSizes are the parameter sizes of the crash test's checkpoints:
// about 15 MB of parameters and 15 MB of momentum.
var crashSizes = []int{1 << 20, 1 << 20, 1 << 20, 3 << 18, 1000, 64, 1}

// crashValue is element i of parameter t at step; slots hold its negation.
// Every value is exact in float32.
func crashValue(step int64, t, i int) float32 {
	return float32(step) + float32(t) + float32(i%251)/256
}

// crashCheckpoint allocates the crash test's checkpoint.
func crashCheckpoint() *Checkpoint {
	ck := &Checkpoint{Config: testConfig, ManifestIdentity: "crash", Optimizer: optim.State{Kind: "lars", Slots: [][][]float32{make([][]float32, len(crashSizes))}}}
	for t, n := range crashSizes {
		ck.Params = append(ck.Params, Tensor{Name: fmt.Sprintf("p%d", t), Shape: []int64{int64(n)}, Data: make([]float32, n)})
		ck.Optimizer.Slots[0][t] = make([]float32, n)
	}
	ck.Buffers = []Tensor{{Name: "b", Shape: []int64{2}, Data: make([]float32, 2)}}
	return ck
}

// setCrashStep fills ck with the state of step.
func setCrashStep(ck *Checkpoint, step int64) {
	ck.Step, ck.Epoch, ck.StepInEpoch = step, int(step/100), int(step%100)
	ck.Optimizer.Steps = step
	ck.Meta = map[string]string{"step": strconv.FormatInt(step, 10)}
	for t, p := range ck.Params {
		slot := ck.Optimizer.Slots[0][t]
		for i := range p.Data {
			v := crashValue(step, t, i)
			p.Data[i], slot[i] = v, -v
		}
	}
	ck.Buffers[0].Data[0], ck.Buffers[0].Data[1] = float32(step), -float32(step)
}

// checkCrashStep returns an error unless ck is a complete checkpoint of
// one step, and that step.
func checkCrashStep(ck *Checkpoint) (int64, error) {
	step := ck.Step
	if ck.Epoch != int(step/100) || ck.StepInEpoch != int(step%100) || ck.Optimizer.Steps != step || ck.Meta["step"] != strconv.FormatInt(step, 10) {
		return step, fmt.Errorf("step %d: inconsistent position: epoch %d, step in epoch %d, optimizer steps %d, meta %v", step, ck.Epoch, ck.StepInEpoch, ck.Optimizer.Steps, ck.Meta)
	}
	if len(ck.Params) != len(crashSizes) || len(ck.Optimizer.Slots) != 1 || len(ck.Buffers) != 1 {
		return step, fmt.Errorf("step %d: %d parameters, %d slots, %d buffers", step, len(ck.Params), len(ck.Optimizer.Slots), len(ck.Buffers))
	}
	for t, p := range ck.Params {
		slot := ck.Optimizer.Slots[0][t]
		if len(p.Data) != crashSizes[t] || len(slot) != crashSizes[t] {
			return step, fmt.Errorf("step %d: parameter %d has %d values and %d momenta, want %d", step, t, len(p.Data), len(slot), crashSizes[t])
		}
		for i, v := range p.Data {
			if want := crashValue(step, t, i); v != want || slot[i] != -want {
				return step, fmt.Errorf("step %d: parameter %d element %d is %v (momentum %v), want %v", step, t, i, v, slot[i], want)
			}
		}
	}
	if b := ck.Buffers[0].Data; b[0] != float32(step) || b[1] != -float32(step) {
		return step, fmt.Errorf("step %d: buffer holds %v", step, b)
	}
	return step, nil
}

// TestHelperProcess is the crash test's child: it saves checkpoints of
// increasing steps to one path until it is killed.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv(helperPathEnv)
	if path == "" {
		t.Skip("child process of TestCrashDuringSave; runs only when that test starts it")
	}
	step, err := strconv.ParseInt(os.Getenv(helperStepEnv), 10, 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bad step:", err)
		os.Exit(2)
	}
	ck := crashCheckpoint()
	setCrashStep(ck, step)
	fmt.Println("ready") // the parent's random delay starts at the first Save
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		if err := Save(path, ck); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		step++
		setCrashStep(ck, step)
	}
	fmt.Fprintln(os.Stderr, "not killed within a minute")
	os.Exit(4)
}

// TestCrashDuringSave kills a process that keeps saving ~30 MB checkpoints
// with SIGKILL at random moments; after every kill the checkpoint must load
// and be one complete, consistent step, no older than the last one seen.
func TestCrashDuringSave(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "js" || runtime.GOOS == "wasip1" {
		t.Skipf("needs SIGKILL and POSIX rename semantics, which %s lacks", runtime.GOOS)
	}
	kills := 20
	if testing.Short() {
		kills = 5
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "ck.bin")
	ck := crashCheckpoint()
	setCrashStep(ck, 0)
	if err := Save(path, ck); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	last, torn := int64(0), 0
	for k := range kills {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
		cmd.Env = append(os.Environ(), helperPathEnv+"="+path, helperStepEnv+"="+strconv.FormatInt(last+1, 10))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if line, err := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child did not start: %q, %v; stderr: %s", line, err, stderr.String())
		}
		delay := time.Duration(5+rng.IntN(196)) * time.Millisecond
		time.Sleep(delay)
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		err = cmd.Wait()
		if !strings.Contains(fmt.Sprint(err), "killed") {
			t.Fatalf("kill %d: child ended with %v, not by the kill; stderr: %s", k, err, stderr.String())
		}
		tmp := tempFiles(t, dir)
		if len(tmp) > 1 {
			t.Errorf("kill %d: %d temporary files, want at most the killed Save's: %v", k, len(tmp), tmp)
		}
		torn += len(tmp)

		got, err := Load(path)
		if err != nil {
			t.Fatalf("kill %d after %v: %v", k, delay, err)
		}
		step, err := checkCrashStep(got)
		if err != nil {
			t.Fatalf("kill %d after %v: %v", k, delay, err)
		}
		if step < last {
			t.Fatalf("kill %d after %v: checkpoint went back from step %d to %d", k, delay, last, step)
		}
		t.Logf("kill %d after %v: step %d intact, %d temporary file(s) left", k, delay, step, len(tmp))
		last = step
	}
	if !testing.Short() { // a few kills may all land outside Save
		if last == 0 {
			t.Error("no child ever completed a Save; the test did not exercise replacing a checkpoint")
		}
		if torn == 0 {
			t.Error("no kill interrupted a Save; the test did not exercise a torn write")
		}
	}
	// The next Save removes the killed Saves' temporary file.
	setCrashStep(ck, last+1)
	if err := Save(path, ck); err != nil {
		t.Fatal(err)
	}
	if tmp := tempFiles(t, dir); len(tmp) > 0 {
		t.Errorf("temporary files left after a successful Save: %v", tmp)
	}
	t.Logf("%d kills, %d interrupted a Save, last step %d", kills, torn, last)
}
