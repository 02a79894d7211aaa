package metrics

import (
	"math"
	"strconv"
)

// Step is what one training step reports. The JSON field names are those of
// metrics.jsonl; see the package documentation for the units.
type Step struct {
	// Step is the 0-based index of the step in the whole run; a resumed run
	// continues the numbering.
	Step int64 `json:"step"`
	// Epoch is the 0-based epoch the step belongs to.
	Epoch int `json:"epoch"`
	// Loss is the NT-Xent loss of the step's batch.
	Loss float64 `json:"loss"`
	// LR is the learning rate the optimizer applied in this step.
	LR float64 `json:"lr"`
	// StepSeconds is the wall time of the whole step, data wait included.
	StepSeconds float64 `json:"step_seconds"`
	// DataWaitSeconds is the part of StepSeconds spent waiting for the batch.
	DataWaitSeconds float64 `json:"data_wait_seconds"`
	// ImagesPerSecond is the step's throughput in images (positive pairs,
	// not views) per second: batch size / StepSeconds. A Reporter fills it
	// in when it is zero.
	ImagesPerSecond float64 `json:"images_per_second"`
	// SkippedImages is the number of corrupt or unreadable images skipped
	// since the start of the run (cumulative); omitted from JSON when zero.
	SkippedImages int64 `json:"skipped_images,omitempty"`
}

// AppendJSON appends s to dst as one JSON object with the field names of
// the struct tags, in their order, with no trailing newline, and returns the
// extended buffer. It does not allocate when dst has room. Floats are written
// in their shortest exact form; NaN and infinities, which JSON cannot
// represent, are written as null.
func (s Step) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"step":`...)
	dst = strconv.AppendInt(dst, s.Step, 10)
	dst = append(dst, `,"epoch":`...)
	dst = strconv.AppendInt(dst, int64(s.Epoch), 10)
	dst = append(dst, `,"loss":`...)
	dst = appendJSONFloat(dst, s.Loss)
	dst = append(dst, `,"lr":`...)
	dst = appendJSONFloat(dst, s.LR)
	dst = append(dst, `,"step_seconds":`...)
	dst = appendJSONFloat(dst, s.StepSeconds)
	dst = append(dst, `,"data_wait_seconds":`...)
	dst = appendJSONFloat(dst, s.DataWaitSeconds)
	dst = append(dst, `,"images_per_second":`...)
	dst = appendJSONFloat(dst, s.ImagesPerSecond)
	if s.SkippedImages != 0 {
		dst = append(dst, `,"skipped_images":`...)
		dst = strconv.AppendInt(dst, s.SkippedImages, 10)
	}
	return append(dst, '}')
}

// appendJSONFloat appends f as a JSON number, or null when f is not finite.
func appendJSONFloat(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	return strconv.AppendFloat(dst, f, 'g', -1, 64)
}

// Eval is what one evaluation during training reports: a record of its own
// in metrics.jsonl, beside the step records.
type Eval struct {
	// Step is the number of steps trained when the encoder was evaluated.
	Step int64 `json:"step"`
	// KNNTop1 is the kNN top-1 accuracy (fraction) on the held-out split,
	// KNNStdErr its binomial standard error and KNNImages the number of
	// test images.
	KNNTop1   float64 `json:"knn_top1"`
	KNNStdErr float64 `json:"knn_std_err"`
	KNNImages int     `json:"knn_images"`
	// Seconds is how long training stood still for the evaluation.
	Seconds float64 `json:"eval_seconds"`
}

// AppendJSON appends e as one JSON object.
func (e Eval) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"step":`...)
	dst = strconv.AppendInt(dst, e.Step, 10)
	dst = append(dst, `,"knn_top1":`...)
	dst = appendJSONFloat(dst, e.KNNTop1)
	dst = append(dst, `,"knn_std_err":`...)
	dst = appendJSONFloat(dst, e.KNNStdErr)
	dst = append(dst, `,"knn_images":`...)
	dst = strconv.AppendInt(dst, int64(e.KNNImages), 10)
	dst = append(dst, `,"eval_seconds":`...)
	dst = appendJSONFloat(dst, e.Seconds)
	return append(dst, '}')
}
