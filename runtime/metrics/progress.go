package metrics

import (
	"io"
	"math"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/term"
)

// ProgressInterval is the shortest time between two redraws of a progress
// bar: at most ten redraws a second.
const ProgressInterval = 100 * time.Millisecond

// progressWidth is the number of cells of the bar itself.
const progressWidth = 24

// smoothing is the weight of the newest step in the moving averages of the
// step time and of the images per step.
const smoothing = 0.1

// Progress draws a one-line progress bar on a terminal and redraws it in
// place with a carriage return:
//
//	1234/10000 [==>                     ]  12%  loss 5.4321  1234.5 img/s  ETA 1:02:03
//
// Throughput and ETA come from exponential moving averages of the step time
// and of the images per step, so they do not jitter from step to step. When
// the run's total number of steps is unknown (0), the bar, percentage and
// ETA are left out. On a terminal narrower than the line, the bar's cells
// go first, then the line is cut to the width, so that it never wraps (a
// wrapped line is not redrawn in place). Progress is meant for terminals
// only; see [IsTerminal]. It does not allocate, on a terminal either
// (BenchmarkProgressRedraw), and is not safe for concurrent use.
type Progress struct {
	w      io.Writer
	total  int64
	digits int // of total
	now    func() time.Time
	width  func() int // the terminal's columns, 0 if unknown

	last    time.Time // time of the last redraw
	drawn   bool      // the bar is on the screen
	stale   bool      // the screen changed under the bar: redraw at the next step
	pending bool      // a step arrived that was not drawn
	cur     Step
	emaSec  float64 // smoothed seconds per step
	emaImg  float64 // smoothed images per step
	started bool
	ended   bool // Finish ended the line and no step came since
	buf     []byte
}

// NewProgress returns a progress bar writing to w for a run of total steps
// (0 if unknown). now gives the time; nil means time.Now.
func NewProgress(w io.Writer, total int64, now func() time.Time) *Progress {
	if now == nil {
		now = time.Now
	}
	total = max(total, 0)
	return &Progress{w: w, total: total, digits: len(strconv.FormatInt(total, 10)), now: now, width: terminalWidth(w), buf: make([]byte, 0, 160)}
}

// Update records s and redraws the bar if ProgressInterval has passed since
// the last redraw, if s is the run's last step, or if a log line was written
// over the bar (see [Progress.Writer]).
func (p *Progress) Update(s Step) {
	p.cur, p.ended = s, false
	img := s.ImagesPerSecond * s.StepSeconds
	if !p.started {
		p.emaSec, p.emaImg, p.started = s.StepSeconds, img, true
	} else {
		p.emaSec += smoothing * (s.StepSeconds - p.emaSec)
		p.emaImg += smoothing * (img - p.emaImg)
	}
	now := p.now()
	if p.drawn && !p.stale && now.Sub(p.last) < ProgressInterval && (p.total == 0 || s.Step+1 < p.total) {
		p.pending = true
		return
	}
	p.draw(now)
}

// Finish draws the last step if it was not drawn and ends the line, leaving
// the bar on the screen. Calling it again does nothing until the next Update.
func (p *Progress) Finish() {
	if !p.started || p.ended {
		return
	}
	p.ended = true
	if p.pending || !p.drawn {
		p.draw(p.now())
	}
	if p.drawn {
		p.w.Write(newline) // the error is ignored: terminal output must not stop training
		p.drawn = false
	}
}

// Clear erases the bar from the screen, so that a line can be written; the
// next Update redraws it.
func (p *Progress) Clear() {
	if p.drawn {
		p.w.Write(clearLine) // the error is ignored: terminal output must not stop training
		p.drawn = false
	}
	p.stale = true
}

// Writer returns a writer for text that shares the terminal with the bar,
// such as a [Logger]'s lines: it erases the bar before each write, and the
// next Update redraws it below the text.
func (p *Progress) Writer() io.Writer { return progressWriter{p} }

type progressWriter struct{ p *Progress }

func (w progressWriter) Write(b []byte) (int, error) {
	w.p.Clear()
	return w.p.w.Write(b)
}

// draw redraws the bar for p.cur, fitted to the terminal's width.
func (p *Progress) draw(now time.Time) {
	b := p.line(true)
	if cols := p.width(); cols > 0 && len(b)-1 > cols-1 { // "\r" takes no column; keep the last one free
		b = p.line(false)
		b = b[:min(len(b), cols)] // "\r" and cols-1 columns
	}
	b = append(b, "\x1b[K"...) // erase what a longer previous line left
	p.buf = b
	p.w.Write(b) // the error is ignored: terminal output must not stop training
	p.last, p.drawn, p.stale, p.pending = now, true, false, false
}

// line renders the bar for p.cur into p.buf, with or without the bar's
// cells, starting with "\r".
func (p *Progress) line(cells bool) []byte {
	s := &p.cur
	done := s.Step + 1
	b := append(p.buf[:0], "\r"...)
	if p.total > 0 {
		done = min(done, p.total)
		b = appendPadded(b, done, p.digits)
		b = append(b, '/')
		b = strconv.AppendInt(b, p.total, 10)
		b = append(b, ' ')
		if cells {
			b = append(b, '[')
			fill := int(done * progressWidth / p.total)
			for i := range progressWidth {
				switch {
				case i < fill:
					b = append(b, '=')
				case i == fill && fill < progressWidth:
					b = append(b, '>')
				default:
					b = append(b, ' ')
				}
			}
			b = append(b, "] "...)
		}
		b = appendPadded(b, done*100/p.total, 3)
		b = append(b, '%')
	} else {
		b = append(b, "step "...)
		b = strconv.AppendInt(b, done, 10)
	}
	b = append(b, "  loss "...)
	b = strconv.AppendFloat(b, s.Loss, 'f', 4, 64)
	b = append(b, "  "...)
	rate := 0.0
	if p.emaSec > 0 {
		rate = p.emaImg / p.emaSec
	}
	b = appendRate(b, rate)
	b = append(b, " img/s"...)
	if p.total > 0 {
		b = append(b, "  ETA "...)
		b = appendClock(b, float64(p.total-done)*p.emaSec)
	}
	return b
}

// appendPadded appends n right-aligned in width columns.
func appendPadded(b []byte, n int64, width int) []byte {
	digits := 1
	for v := n; v >= 10; v /= 10 {
		digits++
	}
	for ; digits < width; digits++ {
		b = append(b, ' ')
	}
	return strconv.AppendInt(b, n, 10)
}

// appendClock appends a duration in seconds as h:mm:ss, or m:ss under an
// hour, or "?" when it is not finite.
func appendClock(b []byte, sec float64) []byte {
	if math.IsNaN(sec) || math.IsInf(sec, 0) || sec < 0 || sec > 1e9 {
		return append(b, '?')
	}
	t := int64(math.Round(sec))
	h, m, s := t/3600, t/60%60, t%60
	if h > 0 {
		b = strconv.AppendInt(b, h, 10)
		b = append(b, ':')
		b = append(b, byte('0'+m/10), byte('0'+m%10))
	} else {
		b = strconv.AppendInt(b, m, 10)
	}
	b = append(b, ':')
	return append(b, byte('0'+s/10), byte('0'+s%10))
}

// Terminal output written as is; package variables, so that writing them
// does not allocate.
var (
	newline   = []byte{'\n'}
	clearLine = []byte("\r\x1b[K") // to the start of the line, erase it
)

// IsTerminal reports whether w is a terminal: a writer with a file
// descriptor (an *os.File) on which golang.org/x/term finds a terminal
// (the TCGETS ioctl succeeds; /dev/null and other character devices are
// not terminals). The descriptor is read through SyscallConn, without
// os.File.Fd's side effect of switching the file to blocking mode. It is
// the default terminal test of a Reporter.
func IsTerminal(w io.Writer) bool {
	sc, ok := w.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	is := false
	rc.Control(func(fd uintptr) { is = term.IsTerminal(int(fd)) })
	return is
}

// terminalWidth returns a function giving w's current number of columns
// (golang.org/x/term's GetSize, asked at each call, so that a resized
// window is followed), or 0 when w is not a terminal.
func terminalWidth(w io.Writer) func() int {
	none := func() int { return 0 }
	sc, ok := w.(syscall.Conn)
	if !ok || !IsTerminal(w) {
		return none
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return none
	}
	// One closure for the life of the bar: a redraw's query then allocates
	// only x/term's Winsize.
	cols := 0
	query := func(fd uintptr) {
		if c, _, err := term.GetSize(int(fd)); err == nil {
			cols = c
		}
	}
	return func() int {
		cols = 0
		rc.Control(query)
		return cols
	}
}
