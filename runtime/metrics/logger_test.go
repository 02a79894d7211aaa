package metrics

import (
	"strings"
	"testing"
)

// run makes steps from..to-1 of a run with spe steps per epoch (epoch
// numbers need spe > 0): loss 4, 3, 2, 1, 4, 3, ... and 256 images/s.
func run(from, to int64, spe int64, lr float64) []Step {
	var steps []Step
	for i := from; i < to; i++ {
		steps = append(steps, Step{Step: i, Epoch: int(i / spe), Loss: float64(4 - i%4), LR: lr, StepSeconds: 0.5, ImagesPerSecond: 256})
	}
	return steps
}

func TestLogger(t *testing.T) {
	tests := []struct {
		name  string
		opts  LoggerOptions
		steps []Step
		want  string
	}{
		{
			name:  "two full epochs",
			opts:  LoggerOptions{Every: 2, StepsPerEpoch: 4, Epochs: 2},
			steps: run(0, 8, 4, 0.15),
			want: "Step [0/4]\t Loss: 4\t lr: 0.15\t images/s: 256.0\n" +
				"Step [2/4]\t Loss: 2\t lr: 0.15\t images/s: 256.0\n" +
				"Epoch [0/2]\t Loss: 2.5\t lr: 0.15\t images/s: 256.0\n" +
				"Step [0/4]\t Loss: 4\t lr: 0.15\t images/s: 256.0\n" +
				"Step [2/4]\t Loss: 2\t lr: 0.15\t images/s: 256.0\n" +
				"Epoch [1/2]\t Loss: 2.5\t lr: 0.15\t images/s: 256.0\n",
		},
		{
			name: "reference format",
			opts: LoggerOptions{StepsPerEpoch: 192, Epochs: 500},
			steps: []Step{
				{Step: 0, Loss: 5.547216415405273, LR: 0.15, StepSeconds: 0.25, ImagesPerSecond: 512},
				{Step: 1, Loss: 5.5, LR: 0.149993, StepSeconds: 0.25, ImagesPerSecond: 512},
				{Step: 50, Loss: 5.5168609619140625, LR: 0.149993, StepSeconds: 0.25, ImagesPerSecond: 512},
			},
			want: "Step [0/192]\t Loss: 5.547216415405273\t lr: 0.15\t images/s: 512.0\n" +
				"Step [50/192]\t Loss: 5.5168609619140625\t lr: 0.14999\t images/s: 512.0\n" +
				"Epoch [0/500]\t Loss: 5.521359125773112\t lr: 0.14999\t images/s: 512.0\t (partial: 3/192 steps)\n",
		},
		{
			name:  "resumed in the middle of an epoch",
			opts:  LoggerOptions{Every: 2, StepsPerEpoch: 4, Epochs: 3},
			steps: run(5, 12, 4, 3e-4),
			want: "Step [2/4]\t Loss: 2\t lr: 0.0003\t images/s: 256.0\n" +
				"Epoch [1/3]\t Loss: 2\t lr: 0.0003\t images/s: 256.0\t (partial: 3/4 steps)\n" +
				"Step [0/4]\t Loss: 4\t lr: 0.0003\t images/s: 256.0\n" +
				"Step [2/4]\t Loss: 2\t lr: 0.0003\t images/s: 256.0\n" +
				"Epoch [2/3]\t Loss: 2.5\t lr: 0.0003\t images/s: 256.0\n",
		},
		{
			name:  "stopped in the middle of an epoch",
			opts:  LoggerOptions{Every: 4, StepsPerEpoch: 4, Epochs: 3},
			steps: run(0, 6, 4, 1.2e-6),
			want: "Step [0/4]\t Loss: 4\t lr: 1.2e-06\t images/s: 256.0\n" +
				"Epoch [0/3]\t Loss: 2.5\t lr: 1.2e-06\t images/s: 256.0\n" +
				"Step [0/4]\t Loss: 4\t lr: 1.2e-06\t images/s: 256.0\n" +
				"Epoch [1/3]\t Loss: 3.5\t lr: 1.2e-06\t images/s: 256.0\t (partial: 2/4 steps)\n",
		},
		{
			name:  "epoch lines only",
			opts:  LoggerOptions{Every: -1, StepsPerEpoch: 4},
			steps: run(0, 8, 4, 0.5),
			want: "Epoch [0]\t Loss: 2.5\t lr: 0.5\t images/s: 256.0\n" +
				"Epoch [1]\t Loss: 2.5\t lr: 0.5\t images/s: 256.0\n",
		},
		{
			name:  "steps per epoch unknown",
			opts:  LoggerOptions{Every: 3},
			steps: run(0, 8, 4, 0.5),
			want: "Step [0]\t Loss: 4\t lr: 0.5\t images/s: 256.0\n" +
				"Step [3]\t Loss: 1\t lr: 0.5\t images/s: 256.0\n" +
				"Epoch [0]\t Loss: 2.5\t lr: 0.5\t images/s: 256.0\n" +
				"Step [0]\t Loss: 4\t lr: 0.5\t images/s: 256.0\n" +
				"Step [3]\t Loss: 1\t lr: 0.5\t images/s: 256.0\n" +
				"Epoch [1]\t Loss: 2.5\t lr: 0.5\t images/s: 256.0\n",
		},
		{
			name: "throughput and skipped images",
			opts: LoggerOptions{StepsPerEpoch: 2, Epochs: 1},
			steps: []Step{
				{Step: 0, Loss: 3, LR: 0.1, StepSeconds: 1, ImagesPerSecond: 100},
				{Step: 1, Loss: 2, LR: 0.1, StepSeconds: 3, ImagesPerSecond: 100.0 / 3, SkippedImages: 4},
			},
			// 200 images in 4 seconds.
			want: "Step [0/2]\t Loss: 3\t lr: 0.1\t images/s: 100.0\n" +
				"Epoch [0/1]\t Loss: 2.5\t lr: 0.1\t images/s: 50.0\t skipped images: 4\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			l := NewLogger(&b, tt.opts)
			for _, s := range tt.steps {
				l.Step(s)
			}
			l.Flush()
			l.Flush() // does nothing
			if got := b.String(); got != tt.want {
				t.Errorf("output:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestLoggerDefaultEvery(t *testing.T) {
	var b strings.Builder
	l := NewLogger(&b, LoggerOptions{StepsPerEpoch: 192})
	for _, s := range run(0, 192, 192, 0.1) {
		l.Step(s)
	}
	var steps []string
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(line, "Step [") {
			steps = append(steps, line[:strings.IndexByte(line, ']')+1])
		}
	}
	if got, want := strings.Join(steps, " "), "Step [0/192] Step [50/192] Step [100/192] Step [150/192]"; got != want {
		t.Errorf("step lines %s, want %s", got, want)
	}
}

func TestLoggerNoAlloc(t *testing.T) {
	l := NewLogger(discardNoAlloc{}, LoggerOptions{Every: 1, StepsPerEpoch: 2})
	s := Step{Loss: 5.1234, LR: 0.1, StepSeconds: 0.1, ImagesPerSecond: 1280}
	if n := testing.AllocsPerRun(100, func() { s.Step++; l.Step(s) }); n != 0 {
		t.Errorf("Logger.Step allocates %v times per call, want 0", n)
	}
}

// discardNoAlloc is an io.Writer that keeps nothing.
type discardNoAlloc struct{}

func (discardNoAlloc) Write(b []byte) (int, error) { return len(b), nil }
