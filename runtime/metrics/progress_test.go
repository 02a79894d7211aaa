package metrics

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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
	devZero, err := os.OpenFile("/dev/zero", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devZero.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	tests := []struct {
		name string
		w    any
	}{
		{"buffer", &bytes.Buffer{}},
		{"regular file", file},
		{"null device", devNull},
		{"another character device", devZero}, // taken for a terminal before golang.org/x/term
		{"pipe", w},
	}
	for _, tt := range tests {
		if IsTerminal(tt.w.(interface{ Write([]byte) (int, error) })) {
			t.Errorf("%s is taken for a terminal", tt.name)
		}
	}
	t.Run("pseudo-terminal", func(t *testing.T) {
		_, tty := openPTY(t, 80)
		if !IsTerminal(tty) {
			t.Errorf("%s is not taken for a terminal", tty.Name())
		}
	})
}

// openPTY opens a pseudo-terminal of cols columns: its controlling side,
// whose output is what a terminal emulator would show, and the terminal
// itself, as a program's stdout.
func openPTY(t testing.TB, cols uint16) (ctl, tty *os.File) {
	t.Helper()
	ctl, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { ctl.Close() })
	fd := int(ctl.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pseudo-terminal number: %v", err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { tty.Close() })
	if err := unix.IoctlSetWinsize(int(tty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: cols}); err != nil {
		t.Fatalf("set the window size: %v", err)
	}
	return ctl, tty
}

// TestProgressFitsTheTerminal draws on terminals of several widths: the
// line must never reach the last column (a line that wraps is not redrawn
// in place by "\r": each redraw would leave a line behind).
func TestProgressFitsTheTerminal(t *testing.T) {
	step := Step{Step: 11, Loss: 5.43214, StepSeconds: 0.5, ImagesPerSecond: 256}
	tests := []struct {
		cols int
		want string
	}{
		{0, " 12/100 [==>                     ]  12%  loss 5.4321  256.0 img/s  ETA 0:44"},
		{120, " 12/100 [==>                     ]  12%  loss 5.4321  256.0 img/s  ETA 0:44"},
		{76, " 12/100 [==>                     ]  12%  loss 5.4321  256.0 img/s  ETA 0:44"}, // 75 columns
		{75, " 12/100  12%  loss 5.4321  256.0 img/s  ETA 0:44"},
		{49, " 12/100  12%  loss 5.4321  256.0 img/s  ETA 0:44"}, // 48 columns
		{48, " 12/100  12%  loss 5.4321  256.0 img/s  ETA 0:4"},
		{30, " 12/100  12%  loss 5.4321  25"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.cols), func(t *testing.T) {
			var b bytes.Buffer
			p := NewProgress(&b, 100, (&fakeClock{}).now)
			p.width = func() int { return tt.cols }
			p.Update(step)
			if got := renderTerminal(t, b.String()); len(got) != 1 || got[0] != tt.want {
				t.Errorf("screen %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("pseudo-terminal", func(t *testing.T) {
		ctl, tty := openPTY(t, 40)
		screen := make(chan string)
		go func() {
			b, _ := io.ReadAll(ctl) // until tty is closed
			screen <- string(b)
		}()
		clock := &fakeClock{}
		p := NewProgress(tty, 1000, clock.now)
		if cols := p.width(); cols != 40 {
			t.Errorf("width %d, want the terminal's 40", cols)
		}
		for i := range int64(20) {
			clock.advance(time.Second)
			p.Update(Step{Step: i, Loss: 5.43214, StepSeconds: 0.5, ImagesPerSecond: 256})
			p.Writer().Write([]byte("a log line\n"))
		}
		p.Finish()
		tty.Close()
		lines := renderTerminal(t, <-screen)
		if len(lines) != 21 || lines[20] != "  20/1000   2%  loss 5.4321  256.0 img/" {
			t.Errorf("screen %q, want 20 log lines and the last bar cut to 39 columns", lines)
		}
	})
}

// BenchmarkProgressRedraw is the cost of one redraw (the worst case: a
// redraw every step) into a buffer and onto a pseudo-terminal, where the
// width is asked for each time.
func BenchmarkProgressRedraw(b *testing.B) {
	b.Run("discard", func(b *testing.B) { benchmarkRedraw(b, discardNoAlloc{}) })
	b.Run("pseudo-terminal", func(b *testing.B) {
		ctl, tty := openPTY(b, 100)
		go io.Copy(io.Discard, ctl)
		benchmarkRedraw(b, tty)
	})
}

func benchmarkRedraw(b *testing.B, w io.Writer) {
	clock := &fakeClock{}
	p := NewProgress(w, 1<<40, clock.now)
	s := Step{Loss: 5, StepSeconds: 0.2, ImagesPerSecond: 640}
	b.ReportAllocs()
	for b.Loop() {
		clock.advance(time.Second)
		s.Step++
		p.Update(s)
	}
}
