package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/simclr-ort/simclr-ort/augment/data"
	"github.com/simclr-ort/simclr-ort/internal/npy"
	"github.com/simclr-ort/simclr-ort/runtime/eval"
	"github.com/spf13/pflag"
)

type embedOptions struct {
	encoder, data, split, out string
	limit, batch              int
	runtime                   runtimeFlags
	resize                    bool
}

func embedFlags(fs *pflag.FlagSet) func(context.Context) error {
	var o embedOptions
	fs.StringVar(&o.encoder, "encoder", "", "exported encoder (simclr-ort export)")
	fs.StringVar(&o.data, "data", "", "dataset, e.g. fmnist:/usr/share/datasets/fashion-mnist or folder:DIR")
	fs.StringVar(&o.split, "split", "train", "train or test")
	fs.StringVar(&o.out, "out", "features.npy", "features as a float32 [N,d] .npy file; labels go to the same name with .labels.npy (int64 [N])")
	fs.IntVar(&o.limit, "limit", 0, "only the first N images, so that row i is image i (0: all)")
	fs.IntVar(&o.batch, "batch-size", 256, "images per encoder run")
	addRuntimeFlags(fs, &o.runtime)
	fs.BoolVar(&o.resize, "resize", false, "accept images of another size than the encoder's, rescaled by the test transform")
	return func(ctx context.Context) error { return runEmbed(ctx, o) }
}

func runEmbed(_ context.Context, o embedOptions) error {
	if o.encoder == "" || o.data == "" {
		return usageError{fmt.Errorf("embed: --encoder and --data are required")}
	}
	if o.batch < 1 || o.limit < 0 {
		return usageError{fmt.Errorf("embed: --batch-size %d must be at least 1 and --limit %d not negative", o.batch, o.limit)}
	}
	if err := o.runtime.init(); err != nil {
		return err
	}
	enc, err := eval.OpenEncoder(o.encoder)
	if err != nil {
		return err
	}
	ds, err := data.OpenWith(o.data, o.split, o.runtime.data)
	if err != nil {
		return err
	}
	if o.limit > 0 {
		ds = data.Spread(ds, o.limit, 0, 1)
	}
	if err := eval.CheckDataset(enc, ds, o.resize, false); err != nil {
		return err
	}
	feats, labels, err := eval.Features(enc, ds, o.batch, o.runtime.options())
	if err != nil {
		return err
	}
	n := int64(ds.Len())
	if err := npy.SaveFloat32(o.out, []int64{n, int64(enc.FeatureDim)}, feats); err != nil {
		return err
	}
	labelPath := strings.TrimSuffix(o.out, ".npy") + ".labels.npy"
	l64 := make([]int64, len(labels))
	for i, l := range labels {
		l64[i] = int64(l)
	}
	if err := npy.SaveInt64(labelPath, []int64{n}, l64); err != nil {
		return err
	}
	fmt.Printf("wrote %s [%d,%d] and %s\n", o.out, n, enc.FeatureDim, labelPath)
	return nil
}
