package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/simclr-ort/simclr-ort/internal/gradcheck"
)

// runCapture runs the command and returns its exit code and what it
// printed on stdout.
func runCapture(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var buf bytes.Buffer
	saved := stdout
	stdout = &buf
	defer func() { stdout = saved }()
	return run(context.Background(), args), buf.String()
}

// TestConfigFileReproducesTheRun: a run from a config file, then its
// RUNDIR/config.yaml given to a new run, give identical per-step losses.
func TestConfigFileReproducesTheRun(t *testing.T) {
	gradcheck.InitORT(t)
	data := smallFolder(t)
	file := filepath.Join(t.TempDir(), "run.yaml")
	if err := os.WriteFile(file, []byte("data: folder:"+data+"\narch: resnet18\nstem: cifar\nimage-size: 12\nbatch-size: 4\n"+
		"projection-dim: 8\nsteps: 4\nseed: 9\ntemperature: 0.3\nthreads: 1\nworkers: 1\nlog-every: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	first, second := filepath.Join(t.TempDir(), "first"), filepath.Join(t.TempDir(), "second")
	// A flag on the command line overrides the file.
	if code := run(context.Background(), []string{"train", "--config", file, "--crop-scale-min", "0.3", "--out", first}); code != 0 {
		t.Fatalf("train --config exited %d", code)
	}
	recorded, err := os.ReadFile(filepath.Join(first, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"temperature: 0.3", "crop-scale-min: 0.3", "lr: 0.3", "weight-decay: 1e-06", "seed: 9"} {
		if !strings.Contains(string(recorded), want) {
			t.Errorf("config.yaml does not record %q:\n%s", want, recorded)
		}
	}
	if code := run(context.Background(), []string{"train", "--config", filepath.Join(first, "config.yaml"), "--out", second}); code != 0 {
		t.Fatalf("train --config RUNDIR/config.yaml exited %d", code)
	}
	a, b := losses(t, first), losses(t, second)
	if len(a) != 4 || len(b) != 4 {
		t.Fatalf("%d and %d steps", len(a), len(b))
	}
	for s := range int64(4) {
		if a[s] != b[s] {
			t.Errorf("step %d: loss %v, reproduced %v", s, a[s], b[s])
		}
	}
}

func TestConfigFileErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"unknown key", "batchsize: 8\n", []string{`unknown key "batchsize"`, `did you mean "batch-size"`}},
		{"reference's unknown key", "batch_size: 8\nresnett: resnet50\n", []string{`unknown key "resnett"`, `did you mean "resnet"`}},
		{"not a mapping", "- a\n- b\n", []string{"not a YAML mapping"}},
		{"wrong type", "batch-size: many\n", []string{"batch-size", "many"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".yaml")
			os.WriteFile(file, []byte(tc.yaml), 0o644)
			var c trainConfig
			_, err := loadTrainConfig(file, &c)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestReferenceConfig: the PyTorch reference's config.yaml, unchanged, maps
// onto simclr-ort's settings, and what has no meaning here is reported.
func TestReferenceConfig(t *testing.T) {
	reference := `# distributed training
nodes: 1
gpus: 1
nr: 0
dataparallel: 0
workers: 8
dataset_dir: "./datasets"

# train options
seed: 42
batch_size: 128
image_size: 224
start_epoch: 0
epochs: 100
dataset: "CIFAR10"
pretrain: True

# model options
resnet: "resnet50"
projection_dim: 64

# loss options
optimizer: "Adam"
weight_decay: 1.0e-6
temperature: 0.5

# reload options
model_path: "save"
epoch_num: 100
reload: False

# logistic regression options
logistic_batch_size: 256
logistic_epochs: 500
`
	file := filepath.Join(t.TempDir(), "config.yaml")
	os.WriteFile(file, []byte(reference), 0o644)
	c := defaultTrainConfig()
	l, err := loadTrainConfig(file, &c)
	if err != nil {
		t.Fatal(err)
	}
	notes := &l.notes
	if c.Arch != "resnet50" || c.BatchSize != 128 || c.Seed != 42 || c.Optimizer != "adam" || c.WeightDecay != 1e-6 ||
		c.Data != "cifar10:./datasets" || c.Workers != 8 || c.Epochs != 100 || c.ImageSize != 224 || l.out != "save" {
		t.Errorf("mapped to %+v (out %q)", c, l.out)
	}
	for _, k := range referenceKeys {
		if !strings.Contains(notes.String(), "  "+k+" ") {
			t.Errorf("the mapping does not mention %s:\n%s", k, notes.String())
		}
	}
	if !strings.Contains(notes.String(), "pretrain") || !strings.Contains(notes.String(), "not used") {
		t.Errorf("keys without meaning are not reported:\n%s", notes.String())
	}
}

// TestImpossibleTrainFlags: every impossible value is refused with exit
// status 2 and an error naming the flag, before anything is trained.
func TestImpossibleTrainFlags(t *testing.T) {
	gradcheck.InitORT(t)
	data := smallFolder(t)
	for _, tc := range [][]string{
		{"--steps", "-1"}, {"--epochs", "-5"}, {"--temperature", "0"}, {"--batch-size", "0"}, {"--stop-after", "-1"},
		{"--checkpoint-every", "-1"}, {"--workers", "-1"}, {"--threads", "-1"}, {"--projection-dim", "0"},
		{"--image-size", "100000"}, {"--lr", "-0.1"}, {"--crop-scale-min", "0"}, {"--keep-checkpoints", "0"},
		{"--checkpoint-every-minutes", "-2"}, {"--log-every", "0"}, {"--jpeg-decoder", "fast"},
	} {
		t.Run(strings.Join(tc, " "), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "run")
			args := append(trainArgs(data, out, "--steps", "2"), tc...)
			if code := run(context.Background(), args); code != 2 {
				t.Errorf("%v exited %d, want 2", tc, code)
			}
			if _, err := os.Stat(filepath.Join(out, "checkpoint.ckpt")); err == nil {
				t.Error("a checkpoint was written")
			}
		})
	}
}

// TestEvalEvery: --eval-every writes kNN records to metrics.jsonl while
// training, on the dataset's test split.
func TestEvalEvery(t *testing.T) {
	gradcheck.InitORT(t)
	root := t.TempDir()
	for _, split := range []string{"train", "test"} {
		folder := smallFolder(t)
		if err := os.Rename(folder, filepath.Join(root, split)); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(t.TempDir(), "run")
	args := []string{"train", "--data", "folder:" + root, "--arch", "resnet18", "--stem", "cifar", "--image-size", "12",
		"--projection-dim", "8", "--threads", "1", "--workers", "1", "--batch-size", "4", "--steps", "4", "--out", dir,
		"--eval-every", "2", "--eval-k", "5", "--eval-train-images", "20", "--eval-test-images", "10"}
	if code := run(context.Background(), args); code != 0 {
		t.Fatalf("train --eval-every exited %d", code)
	}
	b, err := os.ReadFile(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), `"knn_top1":`); n != 3 {
		t.Errorf("%d kNN records after 4 steps with --eval-every 2, want 3 (at steps 0, 2 and 4):\n%s", n, b)
	}
	if !strings.Contains(string(b), `"knn_images":10`) {
		t.Errorf("the kNN records do not say they classified 10 held-out images:\n%s", b)
	}
}

// TestDependentDefaultsFollowTheCommandLine: a recorded configuration given
// back with another optimizer or provider does not keep the learning rate,
// weight decay or graph variant that were the old choice's defaults.
func TestDependentDefaultsFollowTheCommandLine(t *testing.T) {
	gradcheck.InitORT(t)
	data := smallFolder(t)
	first := filepath.Join(t.TempDir(), "first")
	if code := run(context.Background(), trainArgs(data, first, "--batch-size", "4", "--steps", "1")); code != 0 {
		t.Fatalf("train exited %d", code)
	}
	second := filepath.Join(t.TempDir(), "second")
	if code := run(context.Background(), []string{"train", "--config", filepath.Join(first, "config.yaml"), "--optimizer", "adam", "--out", second}); code != 0 {
		t.Fatalf("train --config ... --optimizer adam exited %d", code)
	}
	b, err := os.ReadFile(filepath.Join(second, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"optimizer: adam", "lr: 0.0003", "weight-decay: 0\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("config.yaml does not record %q:\n%s", want, b)
		}
	}
}
