package metrics

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

var testRun = RunInfo{Arch: "resnet18", Stem: "cifar", ImageSize: 32, BatchSize: 128, EP: "cpu"}

// gather returns the registry's metric families by name.
func gather(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		byName[mf.GetName()] = mf
	}
	return byName
}

func TestDescriptionsMatchRegistry(t *testing.T) {
	m, err := NewMetrics(testRun)
	if err != nil {
		t.Fatal(err)
	}
	m.Observe(Step{Loss: 1, SkippedImages: 1}) // so that every metric has a sample
	got := gather(t, m)
	descs := Descriptions()
	var names []string
	for _, d := range descs {
		names = append(names, d.Name)
		mf, ok := got[d.Name]
		if !ok {
			t.Errorf("%s is described but not registered", d.Name)
			continue
		}
		if mf.GetHelp() != d.Help {
			t.Errorf("%s: help %q, described as %q", d.Name, mf.GetHelp(), d.Help)
		}
		if typ := strings.ToLower(mf.GetType().String()); typ != d.Type {
			t.Errorf("%s: type %s, described as %s", d.Name, typ, d.Type)
		}
		if !strings.HasPrefix(d.Name, "simclr_") || !strings.HasSuffix(d.Help, ".") {
			t.Errorf("%s: names start with simclr_ and help texts end with a full stop", d.Name)
		}
	}
	for name := range got {
		if strings.HasPrefix(name, "simclr_") && !slices.Contains(names, name) {
			t.Errorf("%s is registered but not described", name)
		}
	}
}

func TestNewMetricsBatchSize(t *testing.T) {
	for _, b := range []int{0, -1} {
		_, err := NewMetrics(RunInfo{BatchSize: b})
		if err == nil || !strings.Contains(err.Error(), "batch size") {
			t.Errorf("batch size %d: %v, want an error about the batch size", b, err)
		}
	}
}

func TestObserveSkippedIsCumulative(t *testing.T) {
	m, err := NewMetrics(testRun)
	if err != nil {
		t.Fatal(err)
	}
	for _, skipped := range []int64{0, 2, 2, 5, 5, 5, 9} {
		m.Observe(Step{SkippedImages: skipped})
	}
	if got := gather(t, m)[NameSkippedImages].GetMetric()[0].GetCounter().GetValue(); got != 9 {
		t.Errorf("%s = %v, want 9", NameSkippedImages, got)
	}
}

func TestObserveNoAlloc(t *testing.T) {
	m, err := NewMetrics(testRun)
	if err != nil {
		t.Fatal(err)
	}
	s := Step{Loss: 5, LR: 0.1, StepSeconds: 0.2, DataWaitSeconds: 0.001, ImagesPerSecond: 640}
	if n := testing.AllocsPerRun(100, func() { s.Step++; m.Observe(s) }); n != 0 {
		t.Errorf("Observe allocates %v times per call, want 0", n)
	}
}

// scrape GETs url and parses the text exposition format.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape %s: %s\n%s", url, resp.Status, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse scrape of %s: %v", url, err)
	}
	return mfs
}

func TestServerScrape(t *testing.T) {
	r, err := New(Options{Run: testRun, MetricsAddr: "127.0.0.1:0", RunDir: t.TempDir(), Out: io.Discard, StepsPerEpoch: 4, Epochs: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.MetricsAddr() == "" || strings.HasSuffix(r.MetricsAddr(), ":0") {
		t.Fatalf("MetricsAddr() = %q, want the bound address", r.MetricsAddr())
	}
	url := r.MetricsURL()
	if want := "http://" + r.MetricsAddr() + MetricsPath; url != want {
		t.Errorf("MetricsURL() = %q, want %q", url, want)
	}

	const steps = 7
	var waitSum float64
	for i := range int64(steps) {
		wait := 0.001 * float64(i)
		waitSum += wait
		s := Step{Step: i, Epoch: int(i / 4), Loss: 5.5 - 0.1*float64(i), LR: 0.15 - 0.01*float64(i), StepSeconds: 0.2 + 0.01*float64(i), DataWaitSeconds: wait, SkippedImages: i / 3}
		if err := r.Report(s); err != nil {
			t.Fatal(err)
		}
	}
	last := Step{Step: steps - 1, Epoch: 1, Loss: 5.5 - 0.1*(steps-1), LR: 0.15 - 0.01*(steps-1)}

	mfs := scrape(t, url)
	value := func(name string) float64 {
		t.Helper()
		mf, ok := mfs[name]
		if !ok || len(mf.GetMetric()) != 1 {
			t.Fatalf("scrape has no single %s", name)
		}
		m := mf.GetMetric()[0]
		switch mf.GetType() {
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue()
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue()
		case dto.MetricType_HISTOGRAM:
			return float64(m.GetHistogram().GetSampleCount())
		}
		t.Fatalf("%s has type %s", name, mf.GetType())
		return 0
	}
	tests := []struct {
		name string
		want float64
	}{
		{NameLoss, last.Loss},
		{NameLearningRate, last.LR},
		{NameEpoch, 1},
		{NameSteps, steps},
		{NameImagesProcessed, steps * float64(testRun.BatchSize)},
		{NameStepDuration, steps}, // sample count
		{NameDataWait, steps},     // sample count
		{NameDataWaitTotal, waitSum},
		{NameSkippedImages, (steps - 1) / 3},
		{NameRunInfo, 1},
	}
	for _, tt := range tests {
		if got := value(tt.name); math.Abs(got-tt.want) > 1e-12*math.Max(1, math.Abs(tt.want)) {
			t.Errorf("%s = %v, want %v", tt.name, got, tt.want)
		}
	}
	if got := mfs[NameStepDuration].GetMetric()[0].GetHistogram().GetSampleSum(); math.Abs(got-(0.2*steps+0.01*21)) > 1e-9 {
		t.Errorf("%s sum = %v, want %v", NameStepDuration, got, 0.2*steps+0.01*21)
	}
	var buckets []float64
	for _, b := range mfs[NameStepDuration].GetMetric()[0].GetHistogram().GetBucket() {
		if !math.IsInf(b.GetUpperBound(), 1) { // the text format lists +Inf too
			buckets = append(buckets, b.GetUpperBound())
		}
	}
	if !slices.Equal(buckets, StepDurationBuckets) {
		t.Errorf("%s buckets %v, want %v", NameStepDuration, buckets, StepDurationBuckets)
	}
	labels := map[string]string{}
	for _, l := range mfs[NameRunInfo].GetMetric()[0].GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	wantLabels := map[string]string{"arch": "resnet18", "stem": "cifar", "image_size": "32", "batch_size": "128", "ep": "cpu"}
	if fmt.Sprint(labels) != fmt.Sprint(wantLabels) {
		t.Errorf("%s labels %v, want %v", NameRunInfo, labels, wantLabels)
	}
	if _, ok := mfs["process_resident_memory_bytes"]; !ok {
		t.Errorf("scrape has no process_resident_memory_bytes")
	}

	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	client := http.Client{Timeout: 2 * time.Second}
	if resp, err := client.Get(url); err == nil {
		resp.Body.Close()
		t.Errorf("GET %s after Close succeeded, want the server gone", url)
	}
}

func TestServerClose(t *testing.T) {
	m, err := NewMetrics(testRun)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Serve("127.0.0.1:0", m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	scrape(t, s.URL())

	// The address is taken while the server runs.
	if s2, err := Serve(s.Addr(), m.Registry()); err == nil {
		s2.Close(context.Background())
		t.Errorf("a second server on %s started, want an error", s.Addr())
	} else if !strings.HasPrefix(err.Error(), "metrics: listen on") {
		t.Errorf("second server: %v, want a metrics: listen error", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := range 3 {
		if err := s.Close(ctx); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
}

func TestServerURL(t *testing.T) {
	tests := []struct{ addr, want string }{
		{"127.0.0.1:9090", "http://127.0.0.1:9090/metrics"},
		{"[::]:9090", "http://localhost:9090/metrics"},
		{"0.0.0.0:80", "http://localhost:80/metrics"},
		{"[::1]:9090", "http://[::1]:9090/metrics"},
	}
	for _, tt := range tests {
		if got := (&Server{addr: tt.addr}).URL(); got != tt.want {
			t.Errorf("URL for %s = %q, want %q", tt.addr, got, tt.want)
		}
	}
}
