package plot

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
)

var nan = math.NaN()

// Record is one step's training record of metrics.jsonl (see
// runtime/metrics.Step for the units). A value the file holds as null (a
// non-finite loss) or leaves out is NaN.
type Record struct {
	Step            int64
	Epoch           int
	Loss            float64
	LR              float64
	StepSeconds     float64
	DataWaitSeconds float64
	ImagesPerSecond float64
	SkippedImages   int64
}

// KNN is a kNN evaluation of metrics.jsonl: Top1 is a fraction in [0,1].
type KNN struct {
	Step int64
	Top1 float64
}

// Metrics is a run's metrics.jsonl: the training records and the kNN
// evaluations, each sorted by step with one entry per step.
type Metrics struct {
	Steps []Record
	KNN   []KNN
}

// line is one line of metrics.jsonl; pointers tell a missing (or null)
// field from a zero.
type line struct {
	Step            *int64   `json:"step"`
	Epoch           *int     `json:"epoch"`
	Loss            *float64 `json:"loss"`
	LR              *float64 `json:"lr"`
	StepSeconds     *float64 `json:"step_seconds"`
	DataWaitSeconds *float64 `json:"data_wait_seconds"`
	ImagesPerSecond *float64 `json:"images_per_second"`
	SkippedImages   *int64   `json:"skipped_images"`
	KNNTop1         *float64 `json:"knn_top1"`
}

// ReadMetrics reads a metrics.jsonl file; see ParseMetrics.
func ReadMetrics(path string) (*Metrics, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("plot: %w; pass a run directory that holds metrics.jsonl (simclr-ort train --out)", err)
	}
	defer f.Close()
	m, err := ParseMetrics(f)
	if err != nil {
		return nil, fmt.Errorf("plot: %s: %w", path, err)
	}
	return m, nil
}

// ParseMetrics reads metrics.jsonl lines: a line with a loss, a learning
// rate or a step time is a training record, a line with knn_top1 a kNN
// evaluation (one line may be both). A resumed run appends to the file, so
// a step can appear more than once: the last record of each step is kept.
// A last line cut short (a run killed while writing it) is ignored; any
// other line that is not a JSON object with a step is an error.
func ParseMetrics(r io.Reader) (*Metrics, error) {
	steps := map[int64]Record{}
	knn := map[int64]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	var bad error
	n := 0
	for sc.Scan() {
		n++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if bad != nil { // the bad line was not the last one
			return nil, bad
		}
		var l line
		if err := json.Unmarshal(b, &l); err != nil || l.Step == nil {
			bad = fmt.Errorf("line %d is not a step record (%.60q)", n, b)
			continue
		}
		s := *l.Step
		if l.Loss != nil || l.LR != nil || l.StepSeconds != nil {
			steps[s] = Record{
				Step: s, Epoch: deref(l.Epoch, 0), Loss: deref(l.Loss, nan), LR: deref(l.LR, nan),
				StepSeconds: deref(l.StepSeconds, nan), DataWaitSeconds: deref(l.DataWaitSeconds, nan),
				ImagesPerSecond: deref(l.ImagesPerSecond, nan), SkippedImages: deref(l.SkippedImages, 0),
			}
		}
		if l.KNNTop1 != nil {
			knn[s] = *l.KNNTop1
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	m := &Metrics{}
	for _, s := range slices.Sorted(maps.Keys(steps)) {
		m.Steps = append(m.Steps, steps[s])
	}
	for _, s := range slices.Sorted(maps.Keys(knn)) {
		m.KNN = append(m.KNN, KNN{Step: s, Top1: knn[s]})
	}
	return m, nil
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
