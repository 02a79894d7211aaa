package metrics

import (
	"bytes"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReporterTerminal(t *testing.T) {
	var out bytes.Buffer
	clock := &fakeClock{}
	dir := t.TempDir()
	r, err := New(Options{
		Run:           testRun,
		RunDir:        dir,
		Out:           &out,
		LogEvery:      2,
		StepsPerEpoch: 4,
		Epochs:        2,
		TotalSteps:    8,
		IsTerminal:    func(io.Writer) bool { return true },
		Now:           clock.now,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range run(0, 8, 4, 0.15) {
		clock.advance(10 * time.Millisecond)
		s.ImagesPerSecond = 0 // the Reporter fills it in: 128 / 0.5 s
		if err := r.Report(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"Step [0/4]\t Loss: 4\t lr: 0.15\t images/s: 256.0",
		"Step [2/4]\t Loss: 2\t lr: 0.15\t images/s: 256.0",
		"Epoch [0/2]\t Loss: 2.5\t lr: 0.15\t images/s: 256.0",
		"Step [0/4]\t Loss: 4\t lr: 0.15\t images/s: 256.0",
		"Step [2/4]\t Loss: 2\t lr: 0.15\t images/s: 256.0",
		"Epoch [1/2]\t Loss: 2.5\t lr: 0.15\t images/s: 256.0",
		"8/8 [========================] 100%  loss 1.0000  256.0 img/s  ETA 0:00",
	}
	if got := renderTerminal(t, out.String()); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("screen:\n%s\nwant:\n%s\nraw: %q", strings.Join(got, "\n"), strings.Join(want, "\n"), out.String())
	}
	if !strings.Contains(out.String(), "\r") {
		t.Errorf("no progress bar drawn on a terminal")
	}
	steps := readJSONL(t, filepath.Join(dir, FileName))
	if len(steps) != 8 || steps[7].ImagesPerSecond != 256 {
		t.Errorf("metrics.jsonl holds %d steps, the last %+v; want 8 with images_per_second 256", len(steps), steps[len(steps)-1])
	}
}

func TestReporterNotTerminal(t *testing.T) {
	var out bytes.Buffer
	r, err := New(Options{Run: testRun, Out: &out, LogEvery: 3, StepsPerEpoch: 4, TotalSteps: 6})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range run(0, 6, 4, 0.1) {
		if err := r.Report(s); err != nil {
			t.Fatal(err)
		}
	}
	if r.JSONLPath() != "" || r.MetricsAddr() != "" || r.MetricsURL() != "" {
		t.Errorf("JSONLPath %q, MetricsAddr %q, MetricsURL %q: want none without RunDir and MetricsAddr", r.JSONLPath(), r.MetricsAddr(), r.MetricsURL())
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	want := "Step [0/4]\t Loss: 4\t lr: 0.1\t images/s: 256.0\n" +
		"Step [3/4]\t Loss: 1\t lr: 0.1\t images/s: 256.0\n" +
		"Epoch [0]\t Loss: 2.5\t lr: 0.1\t images/s: 256.0\n" +
		"Step [0/4]\t Loss: 4\t lr: 0.1\t images/s: 256.0\n" +
		"Epoch [1]\t Loss: 3.5\t lr: 0.1\t images/s: 256.0\t (partial: 2/4 steps)\n"
	if out.String() != want {
		t.Errorf("output:\n%q\nwant:\n%q", out.String(), want)
	}
}

func TestReporterClose(t *testing.T) {
	dir := t.TempDir()
	r, err := New(Options{Run: testRun, RunDir: dir, MetricsAddr: "127.0.0.1:0", Out: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Report(Step{Loss: 1, StepSeconds: 1}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := r.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	if err := r.Report(Step{Step: 1}); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Report after Close: %v, want an error saying the reporter is closed", err)
	}
	if n := len(readJSONL(t, filepath.Join(dir, FileName))); n != 1 {
		t.Errorf("metrics.jsonl holds %d steps, want 1", n)
	}
}

func TestNewErrors(t *testing.T) {
	m, err := NewMetrics(testRun)
	if err != nil {
		t.Fatal(err)
	}
	busy, err := Serve("127.0.0.1:0", m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close(t.Context())
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no batch size", Options{Out: io.Discard}, "batch size"},
		{"address in use", Options{Run: testRun, RunDir: t.TempDir(), MetricsAddr: busy.Addr(), Out: io.Discard}, "listen on"},
		{"bad address", Options{Run: testRun, MetricsAddr: "no-port", Out: io.Discard}, "listen on"},
	}
	for _, tt := range tests {
		r, err := New(tt.opts)
		if err == nil {
			r.Close()
			t.Errorf("%s: New succeeded", tt.name)
			continue
		}
		if !strings.HasPrefix(err.Error(), "metrics: ") || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want a metrics: error about %q", tt.name, err, tt.want)
		}
	}
}
