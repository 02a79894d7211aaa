package metrics

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// benchStep is a typical step record.
var benchStep = Step{Epoch: 3, Loss: 5.123456789, LR: 0.299, StepSeconds: 0.2, DataWaitSeconds: 0.0004, ImagesPerSecond: 640}

// BenchmarkReport measures Reporter.Report per step: metrics.jsonl on the
// test's temporary directory, Prometheus, the log lines (every 50 steps) and,
// in "terminal", the progress bar (redrawn every step: the worst case).
func BenchmarkReport(b *testing.B) {
	cases := []struct {
		name     string
		file     bool
		terminal bool
	}{
		{"prometheus+log", false, false},
		{"jsonl+prometheus+log", true, false},
		{"jsonl+prometheus+log+terminal", true, true},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			opts := Options{Run: testRun, Out: discardNoAlloc{}, StepsPerEpoch: 192, Epochs: 500, TotalSteps: 96000}
			if c.file {
				opts.RunDir = b.TempDir()
			}
			if c.terminal {
				clock := &fakeClock{}
				opts.IsTerminal = func(io.Writer) bool { return true }
				opts.Now = func() time.Time { clock.advance(time.Second); return clock.t }
			}
			r, err := New(opts)
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			s := benchStep
			b.ReportAllocs()
			for b.Loop() {
				if err := r.Report(s); err != nil {
					b.Fatal(err)
				}
				s.Step++
				s.Epoch = int(s.Step / 192)
			}
		})
	}
}

// BenchmarkJSONL compares writing each line with its own write(2), as
// JSONLWriter does, with buffering the lines in a bufio.Writer.
func BenchmarkJSONL(b *testing.B) {
	b.Run("write-per-step", func(b *testing.B) {
		w, err := OpenJSONL(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		defer w.Close()
		s := benchStep
		b.ReportAllocs()
		for b.Loop() {
			if err := w.Write(s); err != nil {
				b.Fatal(err)
			}
			s.Step++
		}
	})
	b.Run("bufio", func(b *testing.B) {
		f, err := os.Create(filepath.Join(b.TempDir(), FileName))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		bw := bufio.NewWriter(f)
		buf := make([]byte, 0, 512)
		s := benchStep
		b.ReportAllocs()
		for b.Loop() {
			buf = append(s.AppendJSON(buf[:0]), '\n')
			if _, err := bw.Write(buf); err != nil {
				b.Fatal(err)
			}
			s.Step++
		}
		if err := bw.Flush(); err != nil {
			b.Fatal(err)
		}
	})
}

func BenchmarkAppendJSON(b *testing.B) {
	buf := make([]byte, 0, 512)
	s := benchStep
	b.ReportAllocs()
	for b.Loop() {
		buf = s.AppendJSON(buf[:0])
		s.Step++
	}
}

func BenchmarkObserve(b *testing.B) {
	m, err := NewMetrics(testRun)
	if err != nil {
		b.Fatal(err)
	}
	s := benchStep
	b.ReportAllocs()
	for b.Loop() {
		m.Observe(s)
		s.Step++
	}
}
