package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ServerShutdownTimeout is how long Reporter.Close lets scrapes in progress
// finish before it closes the metrics server's connections.
const ServerShutdownTimeout = 5 * time.Second

// Options configure a Reporter. Zero values mean defaults.
type Options struct {
	// Run is the run's configuration: the labels of simclr_run_info, and
	// the batch size, which must be positive.
	Run RunInfo
	// RunDir is the run directory; the steps are appended to
	// RunDir/metrics.jsonl. Empty means no file.
	RunDir string
	// MetricsAddr is the address to serve Prometheus metrics on, e.g.
	// ":9090" or "127.0.0.1:0". Empty means no server (the metrics are still
	// kept, in Reporter.Registry).
	MetricsAddr string
	// Out receives the log lines and, when it is a terminal, the progress
	// bar. Nil means os.Stdout; io.Discard silences them.
	Out io.Writer
	// LogEvery, StepsPerEpoch and Epochs configure the log lines; see
	// LoggerOptions.
	LogEvery      int
	StepsPerEpoch int
	Epochs        int
	// TotalSteps is the number of steps in the whole run, for the progress
	// bar's bar and ETA; 0 means unknown.
	TotalSteps int64
	// NoProgress turns the progress bar off even on a terminal.
	NoProgress bool
	// IsTerminal reports whether Out is a terminal and gets a progress bar.
	// Nil means the package's IsTerminal.
	IsTerminal func(io.Writer) bool
	// Now gives the time for the progress bar's redraw rate. Nil means
	// time.Now.
	Now func() time.Time
}

// Reporter fans each step out to metrics.jsonl, Prometheus, the log lines
// and, on a terminal, the progress bar. Report must not be called
// concurrently; the metrics server runs in goroutines of its own.
type Reporter struct {
	jsonl    *JSONLWriter // nil without a run directory
	metrics  *Metrics
	server   *Server // nil without a metrics address
	logger   *Logger
	progress *Progress // nil when Out is not a terminal
	batch    float64
	closed   bool
}

// New creates a Reporter: it opens RunDir/metrics.jsonl for appending and
// starts the metrics server, as the options ask. If it fails, it releases
// what it had set up.
func New(opts Options) (*Reporter, error) {
	m, err := NewMetrics(opts.Run)
	if err != nil {
		return nil, err
	}
	r := &Reporter{metrics: m, batch: float64(opts.Run.BatchSize)}
	out := opts.Out
	if out == nil {
		out = os.Stdout
	}
	isTerminal := opts.IsTerminal
	if isTerminal == nil {
		isTerminal = IsTerminal
	}
	logOut := out
	if !opts.NoProgress && isTerminal(out) {
		r.progress = NewProgress(out, opts.TotalSteps, opts.Now)
		logOut = r.progress.Writer()
	}
	r.logger = NewLogger(logOut, LoggerOptions{
		Every:         opts.LogEvery,
		StepsPerEpoch: opts.StepsPerEpoch,
		Epochs:        opts.Epochs,
	})
	if opts.RunDir != "" {
		if r.jsonl, err = OpenJSONL(opts.RunDir); err != nil {
			return nil, err
		}
		if r.jsonl.Dropped > 0 {
			fmt.Fprintf(logOut, "%s ended in a torn line (%d bytes of a record a previous run did not finish writing); removed it\n", r.jsonl.Path(), r.jsonl.Dropped)
		}
	}
	if opts.MetricsAddr != "" {
		if r.server, err = Serve(opts.MetricsAddr, m.Registry()); err != nil {
			if r.jsonl != nil {
				r.jsonl.Close()
			}
			return nil, err
		}
	}
	return r, nil
}

// Report records one step everywhere. When s.ImagesPerSecond is zero and
// s.StepSeconds positive, it is set to batch size / s.StepSeconds first. An
// error means metrics.jsonl could not be written; the other outputs have
// recorded the step all the same. Report does not allocate.
func (r *Reporter) Report(s Step) error {
	if r.closed {
		return fmt.Errorf("metrics: report step %d: reporter is closed", s.Step)
	}
	if s.ImagesPerSecond == 0 && s.StepSeconds > 0 {
		s.ImagesPerSecond = r.batch / s.StepSeconds
	}
	var err error
	if r.jsonl != nil {
		err = r.jsonl.Write(s)
	}
	r.metrics.Observe(s)
	r.logger.Step(s)
	if r.progress != nil {
		r.progress.Update(s)
	}
	return err
}

// ReportEval records an evaluation during training: a metrics.jsonl
// record, the simclr_knn_accuracy gauge and a log line.
func (r *Reporter) ReportEval(e Eval) error {
	if r.closed {
		return fmt.Errorf("metrics: report the evaluation of step %d: reporter is closed", e.Step)
	}
	var err error
	if r.jsonl != nil {
		err = r.jsonl.WriteEval(e)
	}
	r.metrics.ObserveEval(e)
	w := r.logger.w
	fmt.Fprintf(w, "kNN top-1 after %d steps: %.2f%% ± %.2f on %d held-out images (evaluated in %.1f s)\n",
		e.Step, 100*e.KNNTop1, 100*e.KNNStdErr, e.KNNImages, e.Seconds)
	return err
}

// Registry returns the Prometheus registry of the run's metrics.
func (r *Reporter) Registry() *prometheus.Registry { return r.metrics.Registry() }

// MetricsAddr returns the address the metrics server listens on, or "" when
// there is none.
func (r *Reporter) MetricsAddr() string {
	if r.server == nil {
		return ""
	}
	return r.server.Addr()
}

// MetricsURL returns the URL of the metrics page, or "" when there is no
// metrics server.
func (r *Reporter) MetricsURL() string {
	if r.server == nil {
		return ""
	}
	return r.server.URL()
}

// JSONLPath returns the path of metrics.jsonl, or "" when there is none.
func (r *Reporter) JSONLPath() string {
	if r.jsonl == nil {
		return ""
	}
	return r.jsonl.Path()
}

// Close writes the line of an unfinished epoch, finishes the progress bar,
// closes metrics.jsonl and stops the metrics server, waiting at most
// ServerShutdownTimeout for scrapes in progress. Calling Close again does
// nothing and returns nil.
func (r *Reporter) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	r.logger.Flush()
	if r.progress != nil {
		r.progress.Finish()
	}
	var errs []error
	if r.jsonl != nil {
		errs = append(errs, r.jsonl.Close())
	}
	if r.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), ServerShutdownTimeout)
		errs = append(errs, r.server.Close(ctx))
		cancel()
	}
	return errors.Join(errs...)
}
