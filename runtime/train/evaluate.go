package train

import (
	"errors"
	"fmt"
	"time"

	"github.com/simclr-ort/simclr-ort/augment/data"
	"github.com/simclr-ort/simclr-ort/runtime/checkpoint"
	"github.com/simclr-ort/simclr-ort/runtime/eval"
	"github.com/simclr-ort/simclr-ort/runtime/export"
	"github.com/simclr-ort/simclr-ort/runtime/metrics"
	"github.com/simclr-ort/simclr-ort/runtime/ort"
)

// Defaults of the evaluation during training (Options.EvalEvery).
const (
	DefaultEvalTrainImages = 10000
	DefaultEvalTestImages  = 2000
	DefaultEvalK           = 200
	DefaultEvalTemperature = 0.1
)

// evaluator measures the encoder as it trains, as solo-learn's and
// lightly's online kNN do: the current weights are exported in memory (the
// inference graph, eval-mode BatchNorm, exactly what `simclr-ort export`
// writes), features of a labelled reference set and of held-out images come
// from ONNX Runtime with the test transform, and the kNN protocol of
// `simclr-ort eval` scores them. Training waits for it: the stall is the
// evaluation's own time (Eval.Seconds).
type evaluator struct {
	reference, test data.Dataset
	k               int
	temperature     float64
	opts            ort.Options
}

// newEvaluator opens the reference set (train images spread over the split)
// and the held-out images: the dataset's test split where it has one, else
// other train images (a fixed sample, not held out from self-supervised
// training, which never sees labels).
func newEvaluator(o *Options, opts ort.Options) (*evaluator, string, error) {
	trainImages := orDefaultInt(o.EvalTrainImages, DefaultEvalTrainImages)
	testImages := orDefaultInt(o.EvalTestImages, DefaultEvalTestImages)
	train, err := data.OpenWith(o.Data, data.Train, o.DataOptions)
	if err != nil {
		return nil, "", fmt.Errorf("train: --eval-every: %w", err)
	}
	e := &evaluator{k: orDefaultInt(o.EvalK, DefaultEvalK), temperature: DefaultEvalTemperature, opts: opts}
	test, err := data.OpenWith(o.Data, data.Test, o.DataOptions)
	var where string
	switch {
	case err == nil:
		e.reference = data.Evenly(train, trainImages)
		e.test = data.Evenly(test, testImages)
		where = "its test split"
	case errors.Is(err, data.ErrNoSplit):
		if train.Len() < 2*e.k {
			return nil, "", fmt.Errorf("train: --eval-every: %s has no test split and only %d images: too few for kNN with k = %d", o.Data, train.Len(), e.k)
		}
		// The even images are the reference, the odd ones the queries.
		even, odd := data.Spread(train, train.Len(), 0, 2), data.Spread(train, train.Len(), 1, 2)
		e.reference = data.Evenly(even, trainImages)
		e.test = data.Evenly(odd, testImages)
		where = "a fixed sample of the train split (the dataset has no test split)"
	default:
		return nil, "", fmt.Errorf("train: --eval-every: %w", err)
	}
	if e.reference.Len() < e.k {
		return nil, "", fmt.Errorf("train: --eval-every: %d reference images, fewer than k = %d; raise --eval-train-images", e.reference.Len(), e.k)
	}
	return e, fmt.Sprintf("kNN (k=%d) every %d steps: %d reference images, %d held-out images from %s",
		e.k, o.EvalEvery, e.reference.Len(), e.test.Len(), where), nil
}

// run evaluates the checkpoint's encoder.
func (e *evaluator) run(ck *checkpoint.Checkpoint) (metrics.Eval, error) {
	began := time.Now()
	model, err := export.Encoder(ck, export.Options{})
	if err != nil {
		return metrics.Eval{}, err
	}
	enc, err := eval.ParseEncoder("the encoder at step "+fmt.Sprint(ck.Step), model)
	if err != nil {
		return metrics.Eval{}, err
	}
	refF, refL, err := eval.Features(enc, e.reference, 256, e.opts)
	if err != nil {
		return metrics.Eval{}, err
	}
	testF, testL, err := eval.Features(enc, e.test, 256, e.opts)
	if err != nil {
		return metrics.Eval{}, err
	}
	acc, err := eval.KNN(refF, refL, testF, testL, enc.FeatureDim, e.k, e.temperature, e.opts)
	if err != nil {
		return metrics.Eval{}, err
	}
	return metrics.Eval{Step: ck.Step, KNNTop1: acc.Top1, KNNStdErr: acc.StdErr, KNNImages: acc.Images,
		Seconds: time.Since(began).Seconds()}, nil
}

func orDefaultInt(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}
