package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/simclr-ort/simclr-ort/augment/data"
	"github.com/simclr-ort/simclr-ort/runtime/eval"
	"github.com/spf13/pflag"
)

type evalOptions struct {
	encoder     string
	baseline    string
	data        string
	testData    string
	protocol    string
	k           int
	temperature float64
	trainLimit  int
	testLimit   int
	batch       int
	runtime     runtimeFlags
	asJSON      bool
	resize      bool
}

func evalFlags(fs *pflag.FlagSet) func(context.Context) error {
	var o evalOptions
	fs.StringVar(&o.encoder, "encoder", "", "exported encoder (simclr-ort export)")
	fs.StringVar(&o.baseline, "baseline", "", "a second encoder (e.g. export --random-init) evaluated on the same images: prints the difference with its paired standard error")
	fs.StringVar(&o.data, "data", "", "labelled dataset with train and test splits, e.g. fmnist:/usr/share/datasets/fashion-mnist")
	fs.StringVar(&o.testData, "test-data", "", "image folder DIR/CLASS/IMAGE to test on instead of --data's test split (any layout; its class folders must be classes of the train split)")
	fs.StringVar(&o.protocol, "protocol", "knn", "evaluation protocol: knn (cosine kNN, weighted votes) or linear (logistic regression on standardised frozen features)")
	fs.IntVar(&o.k, "k", 200, "neighbours that vote (knn)")
	fs.Float64Var(&o.temperature, "knn-temperature", 0.1, "kNN vote weight exp(similarity/T) (knn; not the training --temperature)")
	fs.IntVar(&o.trainLimit, "train-limit", 0, "use N training images spread evenly over the split, every (size/N)-th (0: all)")
	fs.IntVar(&o.testLimit, "test-limit", 0, "use N test images spread evenly over the split, every (size/N)-th (0: all)")
	fs.IntVar(&o.batch, "batch-size", 256, "images per encoder run")
	addRuntimeFlags(fs, &o.runtime)
	fs.BoolVar(&o.asJSON, "json", false, "print one JSON object")
	fs.BoolVar(&o.resize, "resize", false, "accept images of another size than the encoder's, rescaled by the test transform")
	return func(ctx context.Context) error { return runEval(ctx, o) }
}

func runEval(_ context.Context, o evalOptions) error {
	if o.encoder == "" || o.data == "" {
		return usageError{fmt.Errorf("eval: --encoder and --data are required")}
	}
	switch {
	case o.batch < 1:
		return usageError{fmt.Errorf("eval: --batch-size %d must be at least 1", o.batch)}
	case o.k < 1:
		return usageError{fmt.Errorf("eval: --k %d must be at least 1", o.k)}
	case !(o.temperature > 0) || math.IsInf(o.temperature, 0):
		return usageError{fmt.Errorf("eval: --knn-temperature %v must be a positive number", o.temperature)}
	case o.trainLimit < 0 || o.testLimit < 0:
		return usageError{fmt.Errorf("eval: --train-limit %d and --test-limit %d must not be negative (0: all)", o.trainLimit, o.testLimit)}
	}
	if o.protocol != "knn" && o.protocol != "linear" {
		return usageError{fmt.Errorf("eval: unknown protocol %q; use knn or linear", o.protocol)}
	}
	if err := o.runtime.init(); err != nil {
		return err
	}
	enc, err := eval.OpenEncoder(o.encoder)
	if err != nil {
		return err
	}
	encoders := []*eval.Encoder{enc}
	if o.baseline != "" {
		base, err := eval.OpenEncoder(o.baseline)
		if err != nil {
			return err
		}
		if base.ImageSize != enc.ImageSize {
			return usageError{fmt.Errorf("eval: --baseline %s takes %d px images, --encoder %s %d px; compare encoders of one image size",
				o.baseline, base.ImageSize, o.encoder, enc.ImageSize)}
		}
		encoders = append(encoders, base)
	}
	train, err := data.OpenWith(o.data, data.Train, o.runtime.data)
	if err != nil {
		return err
	}
	var test data.Dataset
	if o.testData != "" {
		f, err := data.OpenFolderDir(o.testData, train.ClassNames(), o.runtime.data)
		if err != nil {
			return fmt.Errorf("eval: --test-data: %w", err)
		}
		test = f
	} else if test, err = data.OpenWith(o.data, data.Test, o.runtime.data); err != nil {
		return fmt.Errorf("eval: %w; evaluation needs a labelled test split (or pass one with --test-data DIR)", err)
	}
	train, test = data.Evenly(train, o.trainLimit), data.Evenly(test, o.testLimit)
	for _, ds := range []data.Dataset{train, test} {
		if err := eval.CheckDataset(enc, ds, o.resize, true); err != nil {
			return err
		}
	}
	what := "linear probe"
	if o.protocol == "knn" {
		what = fmt.Sprintf("kNN (k=%d, temperature %g)", o.k, o.temperature)
	}
	start := time.Now()
	var predictions [][]int
	var labels []int
	var results []map[string]any
	for _, e := range encoders {
		began := time.Now()
		predicted, testL, err := predict(e, train, test, o)
		if err != nil {
			return err
		}
		acc := eval.Score(predicted, testL)
		predictions, labels = append(predictions, predicted), testL
		r := map[string]any{"encoder": e.Path, "arch": e.Arch, "protocol": o.protocol,
			"train_images": train.Len(), "test_images": test.Len(), "top1": acc.Top1, "std_err": acc.StdErr,
			"seconds": time.Since(began).Seconds()}
		if o.protocol == "knn" {
			r["k"], r["temperature"] = o.k, o.temperature
		}
		results = append(results, r)
	}
	if o.asJSON {
		out := results[0]
		if len(results) > 1 {
			d := eval.Compare(predictions[0], predictions[1], labels)
			out["baseline"] = results[1]
			out["difference"] = map[string]any{"points": d.Points, "std_err": d.StdErr, "only_encoder": d.OnlyA, "only_baseline": d.OnlyB}
		}
		return json.NewEncoder(os.Stdout).Encode(out)
	}
	fmt.Printf("%s on %d test images, trained on %d (%.1f s); ± is one standard error:\n", what, test.Len(), train.Len(), time.Since(start).Seconds())
	for i, e := range encoders {
		acc := eval.Score(predictions[i], labels)
		role := ""
		if i == 1 {
			role = ", baseline"
		}
		fmt.Printf("  %s (%s%s): top-1 %.2f%% ± %.2f\n", e.Path, e.Arch, role, 100*acc.Top1, 100*acc.StdErr)
	}
	if len(encoders) > 1 {
		d := eval.Compare(predictions[0], predictions[1], labels)
		fmt.Printf("  difference: %+.2f ± %.2f points (paired: %d test images only the encoder gets right, %d only the baseline)\n",
			d.Points, d.StdErr, d.OnlyA, d.OnlyB)
	}
	return nil
}

// predict is one encoder's predicted class of every test image under the
// protocol, and the test labels.
func predict(enc *eval.Encoder, train, test data.Dataset, o evalOptions) ([]int, []int, error) {
	trainF, trainL, err := eval.Features(enc, train, o.batch, o.runtime.options())
	if err != nil {
		return nil, nil, err
	}
	testF, testL, err := eval.Features(enc, test, o.batch, o.runtime.options())
	if err != nil {
		return nil, nil, err
	}
	if o.protocol == "knn" {
		predicted, err := eval.KNNPredict(trainF, trainL, testF, enc.FeatureDim, o.k, o.temperature, o.runtime.options())
		return predicted, testL, err
	}
	predicted, err := eval.LinearPredict(trainF, trainL, testF, enc.FeatureDim, eval.LinearOptions{})
	return predicted, testL, err
}
