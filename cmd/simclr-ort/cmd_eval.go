package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/simclr-ort/simclr-ort/augment/data"
	"github.com/simclr-ort/simclr-ort/runtime/eval"
	"github.com/spf13/pflag"
)

type evalOptions struct {
	encoder     string
	data        string
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
	fs.StringVar(&o.data, "data", "", "labelled dataset with train and test splits, e.g. fmnist:/usr/share/datasets/fashion-mnist")
	fs.StringVar(&o.protocol, "protocol", "knn", "evaluation protocol: knn (cosine kNN, weighted votes) or linear (logistic regression on standardised frozen features)")
	fs.IntVar(&o.k, "k", 200, "neighbours that vote (knn)")
	fs.Float64Var(&o.temperature, "temperature", 0.1, "vote weight exp(similarity/temperature) (knn)")
	fs.IntVar(&o.trainLimit, "train-limit", 0, "use only the first N training images (0: all)")
	fs.IntVar(&o.testLimit, "test-limit", 0, "use only the first N test images (0: all)")
	fs.IntVar(&o.batch, "batch-size", 256, "images per encoder run")
	addRuntimeFlags(fs, &o.runtime)
	fs.BoolVar(&o.asJSON, "json", false, "print one JSON object")
	fs.BoolVar(&o.resize, "resize", false, "accept images of another size than the encoder's, rescaled by the test transform")
	return func(ctx context.Context) error { return runEval(ctx, o) }
}

// firstN is the first n images of a dataset.
type firstN struct {
	data.Dataset
	n int
}

func (f firstN) Len() int { return f.n }

func limit(ds data.Dataset, n int) data.Dataset {
	if n <= 0 || n >= ds.Len() {
		return ds
	}
	return firstN{ds, n}
}

func runEval(_ context.Context, o evalOptions) error {
	if o.encoder == "" || o.data == "" {
		return usageError{fmt.Errorf("eval: --encoder and --data are required")}
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
	train, err := data.Open(o.data, data.Train)
	if err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	test, err := data.Open(o.data, data.Test)
	if err != nil {
		return fmt.Errorf("eval: %w; evaluation needs a labelled test split", err)
	}
	train, test = limit(train, o.trainLimit), limit(test, o.testLimit)
	for _, ds := range []data.Dataset{train, test} {
		if err := eval.CheckDataset(enc, ds, o.resize, true); err != nil {
			return err
		}
	}
	start := time.Now()
	trainF, trainL, err := eval.Features(enc, train, o.batch, o.runtime.options())
	if err != nil {
		return err
	}
	testF, testL, err := eval.Features(enc, test, o.batch, o.runtime.options())
	if err != nil {
		return err
	}
	result := map[string]any{"encoder": o.encoder, "arch": enc.Arch, "protocol": o.protocol,
		"train_images": train.Len(), "test_images": test.Len()}
	var acc float64
	var what string
	if o.protocol == "knn" {
		acc = eval.KNN(trainF, trainL, testF, testL, enc.FeatureDim, o.k, o.temperature)
		result["k"], result["temperature"] = o.k, o.temperature
		what = fmt.Sprintf("kNN (k=%d, temperature %g)", o.k, o.temperature)
	} else {
		if acc, err = eval.Linear(trainF, trainL, testF, testL, enc.FeatureDim, eval.LinearOptions{}); err != nil {
			return err
		}
		what = "linear probe"
	}
	result["top1"], result["seconds"] = acc, time.Since(start).Seconds()
	if o.asJSON {
		return json.NewEncoder(os.Stdout).Encode(result)
	}
	fmt.Printf("%s (%s): %s top-1 %.2f%% on %d test images, trained on %d (%.1f s)\n",
		o.encoder, enc.Arch, what, 100*acc, test.Len(), train.Len(), time.Since(start).Seconds())
	return nil
}
