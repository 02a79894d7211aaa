package metrics

import (
	"io"
	"math"
	"strconv"
)

// DefaultLogEvery is how often, in steps, a Logger writes a step line when
// LoggerOptions.Every is zero; the PyTorch reference logs every 50 steps.
const DefaultLogEvery = 50

// LoggerOptions configure a Logger. Zero values mean defaults.
type LoggerOptions struct {
	// Every is the step-line interval: a line is written for the steps whose
	// index within the epoch is a multiple of Every. 0 means DefaultLogEvery;
	// a negative value writes no step lines, only epoch lines.
	Every int
	// StepsPerEpoch is the number of steps in an epoch, shown as the total in
	// "Step [50/192]" and used to find a step's index within its epoch and
	// the last step of an epoch. 0 means unknown: steps are then counted from
	// the first one seen in the epoch, and an epoch line is written when the
	// next epoch starts or at Flush.
	StepsPerEpoch int
	// Epochs is the number of epochs in the run, shown as the total in
	// "Epoch [0/500]"; 0 means unknown and leaves the total out.
	Epochs int
}

// Logger writes log lines in the format of the PyTorch reference, with the
// learning rate and throughput added:
//
//	Step [50/192]	 Loss: 5.5168609619140625	 lr: 0.15	 images/s: 1234.5
//	Epoch [0/500]	 Loss: 5.47970977673928	 lr: 0.15	 images/s: 1230.2
//
// A step line is written every Every steps of an epoch (from its step 0),
// and an epoch line after the epoch's last step, with the mean loss of the
// epoch's steps, the learning rate of its last step and its images per
// second (images trained on / seconds taken). An epoch only partly seen (a
// run resumed or stopped in its middle) is marked with the number of steps
// the mean covers, e.g. "(partial: 120/192 steps)". When the run reports
// skipped images, the lines end with their cumulative count.
//
// Losses are printed in full precision, as the reference prints them;
// learning rates with five significant digits. Errors writing to the
// io.Writer are ignored: log output must not stop training. A Logger does
// not allocate and is not safe for concurrent use.
type Logger struct {
	w     io.Writer
	every int
	spe   int64
	total int
	buf   []byte

	// The epoch being accumulated.
	open    bool
	epoch   int
	count   int64   // steps seen in the epoch
	lossSum float64 // sum of their losses
	images  float64 // images trained on in them
	seconds float64 // seconds they took
	lastLR  float64
	skipped int64
}

// NewLogger returns a Logger writing to w.
func NewLogger(w io.Writer, opts LoggerOptions) *Logger {
	every := opts.Every
	if every == 0 {
		every = DefaultLogEvery
	}
	return &Logger{
		w:     w,
		every: every,
		spe:   int64(max(opts.StepsPerEpoch, 0)),
		total: max(opts.Epochs, 0),
		buf:   make([]byte, 0, 256),
	}
}

// Step records s, writing a step line when s is due one and an epoch line
// when s ends an epoch (or starts a new one before the previous was ended).
func (l *Logger) Step(s Step) {
	if l.open && s.Epoch != l.epoch {
		l.endEpoch()
	}
	if !l.open {
		l.open, l.epoch = true, s.Epoch
		l.count, l.lossSum, l.images, l.seconds = 0, 0, 0, 0
	}
	inEpoch := l.count
	if l.spe > 0 {
		inEpoch = s.Step % l.spe
	}
	l.count++
	l.lossSum += s.Loss
	l.images += s.ImagesPerSecond * s.StepSeconds
	l.seconds += s.StepSeconds
	l.lastLR = s.LR
	l.skipped = s.SkippedImages

	if l.every > 0 && inEpoch%int64(l.every) == 0 {
		b := append(l.buf[:0], "Step ["...)
		b = strconv.AppendInt(b, inEpoch, 10)
		if l.spe > 0 {
			b = append(b, '/')
			b = strconv.AppendInt(b, l.spe, 10)
		}
		b = append(b, "]\t Loss: "...)
		b = strconv.AppendFloat(b, s.Loss, 'g', -1, 64)
		b = l.appendTail(b, s.LR, s.ImagesPerSecond, s.SkippedImages)
		l.write(b)
	}
	if l.spe > 0 && inEpoch == l.spe-1 {
		l.endEpoch()
	}
}

// Flush writes the epoch line of an epoch whose last step has not been
// seen, if any. Call it when the run stops.
func (l *Logger) Flush() {
	if l.open {
		l.endEpoch()
	}
}

// endEpoch writes the line of the open epoch and closes it.
func (l *Logger) endEpoch() {
	l.open = false
	b := append(l.buf[:0], "Epoch ["...)
	b = strconv.AppendInt(b, int64(l.epoch), 10)
	if l.total > 0 {
		b = append(b, '/')
		b = strconv.AppendInt(b, int64(l.total), 10)
	}
	b = append(b, "]\t Loss: "...)
	b = strconv.AppendFloat(b, l.lossSum/float64(l.count), 'g', -1, 64)
	ips := 0.0
	if l.seconds > 0 {
		ips = l.images / l.seconds
	}
	b = l.appendTail(b, l.lastLR, ips, l.skipped)
	if l.spe > 0 && l.count < l.spe {
		b = b[:len(b)-1] // before the newline
		b = append(b, "\t (partial: "...)
		b = strconv.AppendInt(b, l.count, 10)
		b = append(b, '/')
		b = strconv.AppendInt(b, l.spe, 10)
		b = append(b, " steps)\n"...)
	}
	l.write(b)
}

// appendTail appends the learning rate, throughput, skipped images and the
// newline.
func (l *Logger) appendTail(b []byte, lr, ips float64, skipped int64) []byte {
	b = append(b, "\t lr: "...)
	b = strconv.AppendFloat(b, lr, 'g', 5, 64)
	b = append(b, "\t images/s: "...)
	b = appendRate(b, ips)
	if skipped > 0 {
		b = append(b, "\t skipped images: "...)
		b = strconv.AppendInt(b, skipped, 10)
	}
	return append(b, '\n')
}

// write writes b and keeps it as the reused buffer.
func (l *Logger) write(b []byte) {
	l.buf = b
	l.w.Write(b) // the error is ignored: log output must not stop training
}

// appendRate appends a rate with one decimal.
func appendRate(b []byte, r float64) []byte {
	if math.IsNaN(r) || math.IsInf(r, 0) {
		return strconv.AppendFloat(b, r, 'f', -1, 64)
	}
	return strconv.AppendFloat(b, r, 'f', 1, 64)
}
