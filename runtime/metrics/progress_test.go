package metrics

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeClock is a clock a test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// renderTerminal plays terminal output as a terminal shows it: "\r" moves
// to the start of the line, "\x1b[K" erases to its end, "\n" starts a new
// line. It returns the screen's lines.
func renderTerminal(t *testing.T, out string) []string {
	t.Helper()
	lines := []string{""}
	col := 0
	for i := 0; i < len(out); i++ {
		cur := &lines[len(lines)-1]
		switch c := out[i]; {
		case c == '\r':
			col = 0
		case c == '\n':
			lines = append(lines, "")
			col = 0
		case strings.HasPrefix(out[i:], "\x1b[K"):
			*cur = (*cur)[:col]
			i += 2
		case c == '\x1b':
			t.Fatalf("unexpected escape sequence at %q", out[i:])
		default:
			if col < len(*cur) {
				*cur = (*cur)[:col] + string(c) + (*cur)[col+1:]
			} else {
				*cur += string(c)
			}
			col++
		}
	}
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

func TestProgressRender(t *testing.T) {
	tests := []struct {
		name  string
		total int64
		steps []Step
		want  string
	}{
		{
			name:  "bar",
			total: 100,
			steps: []Step{{Step: 11, Loss: 5.43214, StepSeconds: 0.5, ImagesPerSecond: 256}},
			want:  "\r 12/100 [==>                     ]  12%  loss 5.4321  256.0 img/s  ETA 0:44\x1b[K",
		},
		{
			name:  "done",
			total: 10000,
			steps: []Step{{Step: 9999, Loss: 0.1, StepSeconds: 0.25, ImagesPerSecond: 512}},
			want:  "\r10000/10000 [========================] 100%  loss 0.1000  512.0 img/s  ETA 0:00\x1b[K",
		},
		{
			name:  "hours",
			total: 100000,
			steps: []Step{{Step: 0, Loss: 5.5, StepSeconds: 0.5, ImagesPerSecond: 256}},
			want:  "\r     1/100000 [>                       ]   0%  loss 5.5000  256.0 img/s  ETA 13:53:20\x1b[K",
		},
		{
			name:  "total unknown",
			total: 0,
			steps: []Step{{Step: 11, Loss: 5.43214, StepSeconds: 0.5, ImagesPerSecond: 256}},
			want:  "\rstep 12  loss 5.4321  256.0 img/s\x1b[K",
		},
		{
			name:  "smoothed",
			total: 10,
			steps: []Step{
				{Step: 0, Loss: 5, StepSeconds: 1, ImagesPerSecond: 100},
				{Step: 1, Loss: 4, StepSeconds: 2, ImagesPerSecond: 50},
			},
			// 100 images per step in 1.1 s on average; 8 steps to go.
			want: "\r 2/10 [====>                   ]  20%  loss 4.0000  90.9 img/s  ETA 0:09\x1b[K",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			clock := &fakeClock{}
			p := NewProgress(&b, tt.total, clock.now)
			for _, s := range tt.steps {
				b.Reset()
				clock.advance(time.Second)
				p.Update(s)
			}
			if got := b.String(); got != tt.want {
				t.Errorf("line\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestProgressRedrawRate(t *testing.T) {
	const total, stepTime = 200, 30 * time.Millisecond
	var b bytes.Buffer
	clock := &fakeClock{}
	p := NewProgress(&b, total, clock.now)
	for i := range int64(total) {
		clock.advance(stepTime)
		p.Update(Step{Step: i, Loss: 1, StepSeconds: stepTime.Seconds(), ImagesPerSecond: 100})
	}
	p.Finish()
	p.Finish() // does nothing
	redraws := strings.Count(b.String(), "img/s")
	// 6 s of steps: one redraw every 4 steps (120 ms), the first, and the last.
	if elapsed := time.Duration(total) * stepTime; redraws > int(elapsed/ProgressInterval)+2 || redraws < 40 {
		t.Errorf("%d redraws in %v, want at most one per %v", redraws, elapsed, ProgressInterval)
	}
	screen := renderTerminal(t, b.String())
	if want := "200/200 [========================] 100%  loss 1.0000  100.0 img/s  ETA 0:00"; len(screen) != 1 || screen[0] != want {
		t.Errorf("screen %q, want the final bar %q", screen, want)
	}
	if !strings.HasSuffix(b.String(), "\n") {
		t.Errorf("Finish did not end the line")
	}
}

func TestProgressWriter(t *testing.T) {
	var b bytes.Buffer
	clock := &fakeClock{}
	p := NewProgress(&b, 10, clock.now)
	p.Update(Step{Step: 0, Loss: 2, StepSeconds: 1, ImagesPerSecond: 10})
	p.Writer().Write([]byte("a log line\n"))
	// Within ProgressInterval of the last redraw, yet redrawn since the log
	// line erased the bar.
	p.Update(Step{Step: 1, Loss: 1, StepSeconds: 1, ImagesPerSecond: 10})
	p.Finish()
	want := []string{
		"a log line",
		" 2/10 [====>                   ]  20%  loss 1.0000  10.0 img/s  ETA 0:08",
	}
	if got := renderTerminal(t, b.String()); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("screen\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestProgressNoAlloc(t *testing.T) {
	clock := &fakeClock{}
	p := NewProgress(discardNoAlloc{}, 1<<40, clock.now)
	s := Step{Loss: 5, StepSeconds: 0.2, ImagesPerSecond: 640}
	if n := testing.AllocsPerRun(100, func() {
		clock.advance(time.Second) // redraw every time
		s.Step++
		p.Update(s)
		p.Writer().Write(newline)
	}); n != 0 {
		t.Errorf("Progress allocates %v times per redraw, want 0", n)
	}
}

func TestIsTerminal(t *testing.T) {
	file, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	tests := []struct {
		name string
		w    any
	}{
		{"buffer", &bytes.Buffer{}},
		{"regular file", file},
		{"null device", devNull},
	}
	for _, tt := range tests {
		if IsTerminal(tt.w.(interface{ Write([]byte) (int, error) })) {
			t.Errorf("%s is taken for a terminal", tt.name)
		}
	}
	t.Run("tty", func(t *testing.T) {
		tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0)
		if err != nil {
			t.Skipf("no controlling terminal to test with: %v", err)
		}
		defer tty.Close()
		if !IsTerminal(tty) {
			t.Errorf("/dev/tty is not taken for a terminal")
		}
	})
}
