package train_test

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/simclr-ort/simclr-ort/graphs"
	"github.com/simclr-ort/simclr-ort/internal/gradcheck"
	"github.com/simclr-ort/simclr-ort/runtime/train"
)

// imageFolder writes a small ImageFolder dataset of real PNG files: two
// classes of smooth random patterns, plus the given number of corrupt files.
func imageFolder(t *testing.T, perClass, corrupt int) string {
	t.Helper()
	root := t.TempDir()
	r := rand.New(rand.NewPCG(3, 4))
	for c, class := range []string{"circles", "stripes"} {
		dir := filepath.Join(root, class)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < perClass; i++ {
			img := image.NewNRGBA(image.Rect(0, 0, 20, 20))
			fx, fy, phase := 0.2+r.Float64(), 0.2+r.Float64(), r.Float64()*6
			for y := 0; y < 20; y++ {
				for x := 0; x < 20; x++ {
					v := 0.5 + 0.5*math.Sin(fx*float64(x)+fy*float64(y)*float64(c)+phase)
					img.Set(x, y, color.NRGBA{uint8(255 * v), uint8(200 * (1 - v)), uint8(120 + 100*v*float64(c)), 255})
				}
			}
			f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%03d.png", i)))
			if err != nil {
				t.Fatal(err)
			}
			if err := png.Encode(f, img); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
		for i := 0; i < corrupt; i++ {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("broken%d.png", i)), []byte("\x89PNG\r\n\x1a\nnot really"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

func options(data, out string) train.Options {
	return train.Options{
		Config: graphs.Config{Arch: "resnet18", Stem: "cifar", ImageSize: 16, Pairs: 8, ProjectionDim: 16},
		Data:   "folder:" + data, Steps: 6, OutDir: out, Seed: 7, Workers: 2, Threads: 2,
		CheckpointEvery: 1, Out: io.Discard,
	}
}

// TestResumeReproducesLosses: 6 steps straight and 3 + resume 3 give the
// same per-step losses.
func TestResumeReproducesLosses(t *testing.T) {
	gradcheck.InitORT(t)
	data := imageFolder(t, 12, 0)
	straight, err := train.Run(context.Background(), options(data, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	split := options(data, t.TempDir())
	split.StopAfter = 3
	first, err := train.Run(context.Background(), split)
	if err != nil {
		t.Fatal(err)
	}
	split.StopAfter, split.Resume = 0, true
	second, err := train.Run(context.Background(), split)
	if err != nil {
		t.Fatal(err)
	}
	resumed := append(first.Losses, second.Losses...)
	if len(resumed) != len(straight.Losses) || second.FirstStep != 3 {
		t.Fatalf("resumed run has %d losses from step %d, straight %d", len(resumed), second.FirstStep, len(straight.Losses))
	}
	for i := range resumed {
		if rel := math.Abs(resumed[i]-straight.Losses[i]) / straight.Losses[i]; rel > 1e-4 {
			t.Errorf("step %d: resumed loss %.7f, straight %.7f (relative %.1e)", i, resumed[i], straight.Losses[i], rel)
		}
	}
}

// TestBadInput: each mistake a user can make is an error that says what is
// wrong, or, for corrupt images, a counted skip.
func TestBadInput(t *testing.T) {
	gradcheck.InitORT(t)
	data := imageFolder(t, 6, 0)
	empty := t.TempDir()
	os.MkdirAll(filepath.Join(empty, "nothing"), 0o755)
	done := t.TempDir()
	if _, err := train.Run(context.Background(), options(data, done)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(o *train.Options)
		want   string
	}{
		{"empty dataset", func(o *train.Options) { o.Data = "folder:" + empty }, "no image files"},
		{"missing dataset", func(o *train.Options) { o.Data = "folder:/nonexistent/data" }, "/nonexistent/data"},
		{"batch larger than dataset", func(o *train.Options) { o.Config.Pairs = 64 }, "larger than the dataset"},
		{"unknown architecture", func(o *train.Options) { o.Config.Arch = "resnet7" }, "unknown architecture"},
		{"checkpoint exists without resume", func(o *train.Options) { o.OutDir = done }, "--resume"},
		{"resume another configuration", func(o *train.Options) { o.OutDir, o.Resume, o.Config.ProjectionDim = done, true, 32 }, "--projection-dim 16"},
		{"resume without checkpoint", func(o *train.Options) { o.Resume = true }, "checkpoint"},
		{"unknown optimizer", func(o *train.Options) { o.Optimizer = "sgd" }, "unknown optimizer"},
		{"no run directory", func(o *train.Options) { o.OutDir = "" }, "--out"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := options(data, t.TempDir())
			tc.mutate(&o)
			_, err := train.Run(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error mentioning %q, got %v", tc.want, err)
			}
		})
	}
}

func TestCorruptImagesAreSkippedAndCounted(t *testing.T) {
	gradcheck.InitORT(t)
	o := options(imageFolder(t, 8, 2), t.TempDir())
	o.Steps = 4
	res, err := train.Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Skipped == 0 {
		t.Errorf("4 corrupt of 20 images, 4 steps of 8: want skipped images counted, got 0")
	}
	t.Logf("%d images skipped", res.Skipped)
}

// TestDivergenceStopsWithoutSaving: a non-finite loss stops the run and
// writes no checkpoint of the broken state.
func TestDivergenceStopsWithoutSaving(t *testing.T) {
	gradcheck.InitORT(t)
	o := options(imageFolder(t, 8, 0), t.TempDir())
	o.BaseLR = 1e30
	_, err := train.Run(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "diverged") {
		t.Fatalf("want a divergence error, got %v", err)
	}
	if _, statErr := os.Stat(filepath.Join(o.OutDir, train.CheckpointFile)); statErr == nil {
		t.Error("a checkpoint was written after the loss diverged")
	}
}

// TestPrometheusEndpointDuringRun scrapes the real HTTP endpoint while
// training runs.
func TestPrometheusEndpointDuringRun(t *testing.T) {
	gradcheck.InitORT(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	o := options(imageFolder(t, 12, 0), t.TempDir())
	o.Steps, o.MetricsAddr = 12, addr
	var wg sync.WaitGroup
	var scraped string
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			resp, err := http.Get("http://" + addr + "/metrics")
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				// The counters are updated one after the other and
				// gathered concurrently, so a scrape may fall between
				// them; wait for one that shows two or more whole steps.
				steps, okSteps := metricValue(string(b), "simclr_steps_total")
				images, okImages := metricValue(string(b), "simclr_images_processed_total")
				if okSteps && okImages && steps >= 2 && images == steps*float64(o.Config.Pairs) {
					scraped = string(b)
					return
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	_, err = train.Run(context.Background(), o)
	cancel()
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if scraped == "" {
		t.Fatal("no scrape during the run showed two whole steps (steps_total and images_processed_total = steps x batch)")
	}
	for _, want := range []string{"simclr_loss ", "simclr_learning_rate ", "simclr_step_duration_seconds_bucket", "simclr_images_processed_total ", "simclr_data_wait_seconds"} {
		if !strings.Contains(scraped, want) {
			t.Errorf("scrape during the run lacks %q", want)
		}
	}
}

// metricValue returns the value of an unlabelled metric in a Prometheus
// text exposition.
func metricValue(exposition, name string) (float64, bool) {
	for _, line := range strings.Split(exposition, "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}
