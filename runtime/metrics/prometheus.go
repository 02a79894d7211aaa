package metrics

import (
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Prometheus metric names. The README lists them with their help texts;
// [Descriptions] returns both so that a test can keep the README in sync.
const (
	NameLoss            = "simclr_loss"
	NameLearningRate    = "simclr_learning_rate"
	NameStepDuration    = "simclr_step_duration_seconds"
	NameImagesProcessed = "simclr_images_processed_total"
	NameDataWaitTotal   = "simclr_data_wait_seconds_total"
	NameDataWait        = "simclr_data_wait_seconds"
	NameSteps           = "simclr_steps_total"
	NameEpoch           = "simclr_epoch"
	NameSkippedImages   = "simclr_skipped_images_total"
	NameRunInfo         = "simclr_run_info"
	NameKNNAccuracy     = "simclr_knn_accuracy"
)

// Help texts of the Prometheus metrics, in the order of the names above.
const (
	HelpLoss            = "NT-Xent loss of the last training step."
	HelpLearningRate    = "Learning rate applied in the last training step."
	HelpStepDuration    = "Wall time of a training step in seconds, data wait included."
	HelpImagesProcessed = "Images (positive pairs, not views) trained on since the process started."
	HelpDataWaitTotal   = "Seconds the training loop spent waiting for data since the process started."
	HelpDataWait        = "Seconds a training step spent waiting for its batch."
	HelpSteps           = "Training steps completed since the process started."
	HelpEpoch           = "Epoch (0-based) of the last training step."
	HelpSkippedImages   = "Corrupt or unreadable images skipped so far in the run (the cumulative count the loop reports)."
	HelpRunInfo         = "Configuration of the run in its labels (arch, stem, image_size, batch_size, ep); always 1."
	HelpKNNAccuracy     = "kNN top-1 accuracy (fraction) of the encoder on the held-out split at the last evaluation (--eval-every)."
)

// StepDurationBuckets are the upper bounds, in seconds, of the
// simclr_step_duration_seconds histogram: 10 ms to 60 s. Read only.
var StepDurationBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60}

// DataWaitBuckets are the upper bounds, in seconds, of the
// simclr_data_wait_seconds histogram: 100 µs to 10 s, since a data pipeline
// that keeps up makes a step wait for well under a millisecond. Read only.
var DataWaitBuckets = []float64{0.0001, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Description names one Prometheus metric.
type Description struct {
	Name string // metric name, e.g. "simclr_loss"
	Type string // "gauge", "counter" or "histogram"
	Help string // help text, as served on /metrics
}

// Descriptions returns the name, type and help text of every simclr_*
// metric, in a fixed order.
func Descriptions() []Description {
	return []Description{
		{NameLoss, "gauge", HelpLoss},
		{NameLearningRate, "gauge", HelpLearningRate},
		{NameStepDuration, "histogram", HelpStepDuration},
		{NameImagesProcessed, "counter", HelpImagesProcessed},
		{NameDataWaitTotal, "counter", HelpDataWaitTotal},
		{NameDataWait, "histogram", HelpDataWait},
		{NameSteps, "counter", HelpSteps},
		{NameEpoch, "gauge", HelpEpoch},
		{NameSkippedImages, "counter", HelpSkippedImages},
		{NameRunInfo, "gauge", HelpRunInfo},
		{NameKNNAccuracy, "gauge", HelpKNNAccuracy},
	}
}

// RunInfo is the configuration of a run, served as the labels of
// simclr_run_info.
type RunInfo struct {
	Arch      string // "resnet18" or "resnet50"
	Stem      string // "imagenet" or "cifar"
	ImageSize int    // side of the square input images, in pixels
	BatchSize int    // images (pairs) per step; must be positive
	EP        string // execution provider: "cpu" or "cuda"
}

// Metrics holds a run's Prometheus metrics in a registry of its own (not
// prometheus.DefaultRegisterer), along with the Go runtime and process
// collectors. Observe is safe to call while the registry is scraped.
type Metrics struct {
	reg *prometheus.Registry

	loss, lr, epoch, knn         prometheus.Gauge
	stepDuration, dataWait       prometheus.Histogram
	images, dataWaitTotal, steps prometheus.Counter
	skipped                      prometheus.Counter
	batch                        float64
	lastSkipped                  int64
}

// NewMetrics creates the metrics of a run and registers them. It fails when
// info.BatchSize is not positive.
func NewMetrics(info RunInfo) (*Metrics, error) {
	if info.BatchSize <= 0 {
		return nil, fmt.Errorf("metrics: batch size %d: give the run's batch size, a positive number of images per step", info.BatchSize)
	}
	m := &Metrics{
		reg:   prometheus.NewRegistry(),
		batch: float64(info.BatchSize),
		loss:  prometheus.NewGauge(prometheus.GaugeOpts{Name: NameLoss, Help: HelpLoss}),
		lr:    prometheus.NewGauge(prometheus.GaugeOpts{Name: NameLearningRate, Help: HelpLearningRate}),
		stepDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: NameStepDuration, Help: HelpStepDuration, Buckets: StepDurationBuckets,
		}),
		images:        prometheus.NewCounter(prometheus.CounterOpts{Name: NameImagesProcessed, Help: HelpImagesProcessed}),
		dataWaitTotal: prometheus.NewCounter(prometheus.CounterOpts{Name: NameDataWaitTotal, Help: HelpDataWaitTotal}),
		dataWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: NameDataWait, Help: HelpDataWait, Buckets: DataWaitBuckets,
		}),
		steps:   prometheus.NewCounter(prometheus.CounterOpts{Name: NameSteps, Help: HelpSteps}),
		epoch:   prometheus.NewGauge(prometheus.GaugeOpts{Name: NameEpoch, Help: HelpEpoch}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{Name: NameSkippedImages, Help: HelpSkippedImages}),
		knn:     prometheus.NewGauge(prometheus.GaugeOpts{Name: NameKNNAccuracy, Help: HelpKNNAccuracy}),
	}
	runInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: NameRunInfo,
		Help: HelpRunInfo,
		ConstLabels: prometheus.Labels{
			"arch":       info.Arch,
			"stem":       info.Stem,
			"image_size": strconv.Itoa(info.ImageSize),
			"batch_size": strconv.Itoa(info.BatchSize),
			"ep":         info.EP,
		},
	})
	runInfo.Set(1)
	for _, c := range []prometheus.Collector{
		m.loss, m.lr, m.stepDuration, m.images, m.dataWaitTotal, m.dataWait,
		m.steps, m.epoch, m.skipped, m.knn, runInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := m.reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: register prometheus collector: %w", err)
		}
	}
	return m, nil
}

// Registry returns the registry holding the metrics, for a [Server] or for
// the caller to add metrics of its own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Observe records one step: it sets the gauges, adds the batch size to
// simclr_images_processed_total, one to simclr_steps_total, observes the
// histograms, and adds the growth of the cumulative s.SkippedImages since
// the last step to simclr_skipped_images_total. It does not allocate.
// Observe is not safe for concurrent use with itself.
// ObserveEval records an evaluation's kNN accuracy.
func (m *Metrics) ObserveEval(e Eval) { m.knn.Set(e.KNNTop1) }

func (m *Metrics) Observe(s Step) {
	m.loss.Set(s.Loss)
	m.lr.Set(s.LR)
	m.epoch.Set(float64(s.Epoch))
	m.stepDuration.Observe(s.StepSeconds)
	m.dataWait.Observe(s.DataWaitSeconds)
	if s.DataWaitSeconds > 0 {
		m.dataWaitTotal.Add(s.DataWaitSeconds)
	}
	m.images.Add(m.batch)
	m.steps.Inc()
	if d := s.SkippedImages - m.lastSkipped; d > 0 {
		m.skipped.Add(float64(d))
		m.lastSkipped = s.SkippedImages
	}
}
