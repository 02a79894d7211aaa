package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"

	"github.com/simclr-ort/simclr-ort/augment/data"
	"github.com/simclr-ort/simclr-ort/internal/npy"
	"github.com/simclr-ort/simclr-ort/runtime/eval"
	"github.com/simclr-ort/simclr-ort/runtime/metrics"
	"github.com/simclr-ort/simclr-ort/runtime/plot"
	"github.com/spf13/pflag"
)

type plotOptions struct {
	embeddings, labels, classes string
	maxPoints                   int

	neighbours         bool
	encoder, data      string
	testData           string
	queries, k         int
	trainLimit, batch  int
	seed               uint64
	resize             bool
	runtime            runtimeFlags
	out                string
	dpi                int
	args               []string
	embeddingsOrLabels bool
}

func plotFlags(fs *pflag.FlagSet) func(context.Context) error {
	var o plotOptions
	fs.StringVar(&o.embeddings, "embeddings", "", "features [N,d] .npy file written by simclr-ort embed: draw their PCA map")
	fs.StringVar(&o.labels, "labels", "", "int64 labels .npy of --embeddings (default: FILE.labels.npy beside it)")
	fs.StringVar(&o.classes, "classes", "", "class names for the legend, comma-separated in label order (default: from --data, else class numbers)")
	fs.IntVar(&o.maxPoints, "max-points", 5000, "draw at most this many points of --embeddings, chosen at random with a fixed seed (0: all)")
	fs.BoolVar(&o.neighbours, "neighbours", false, "draw a nearest-neighbour grid: --queries test images, each followed by its --k most similar training images (cosine similarity of --encoder's features)")
	fs.StringVar(&o.encoder, "encoder", "", "exported encoder (simclr-ort export) for --neighbours")
	fs.StringVar(&o.data, "data", "", "labelled dataset with train and test splits, e.g. fmnist:/usr/share/datasets/fashion-mnist (--neighbours; with --embeddings only for the class names)")
	fs.StringVar(&o.testData, "test-data", "", "a folder of class folders to draw the queries from, for datasets without a test or val split (--neighbours)")
	fs.IntVar(&o.queries, "queries", 10, "query images (rows) of --neighbours: one per class in turn")
	fs.IntVar(&o.k, "k", 8, "neighbours per query (--neighbours)")
	fs.IntVar(&o.trainLimit, "train-limit", 10000, "search N training images spread evenly over the split for neighbours (0: all)")
	fs.IntVar(&o.batch, "batch-size", 256, "images per encoder run")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the choice of query images")
	fs.BoolVar(&o.resize, "resize", false, "accept images of another size than the encoder's, rescaled by the test transform")
	addRuntimeFlags(fs, &o.runtime)
	fs.IntVar(&o.dpi, "dpi", plot.DPI, "resolution of the PNG file in dots per inch (96 makes files about half the size)")
	fs.StringVar(&o.out, "out", "", "output path without extension; .png and .svg are written (default: RUNDIR/training, FILE.pca, or neighbours in the current directory)")
	return func(ctx context.Context) error {
		o.args = fs.Args()
		o.embeddingsOrLabels = fs.Changed("labels") || fs.Changed("max-points")
		return runPlot(ctx, o)
	}
}

func runPlot(_ context.Context, o plotOptions) error {
	modes := 0
	for _, on := range []bool{len(o.args) > 0, o.embeddings != "", o.neighbours} {
		if on {
			modes++
		}
	}
	switch {
	case modes != 1 || len(o.args) > 1:
		return usageError{fmt.Errorf("plot: give one of RUNDIR, --embeddings FILE.npy or --neighbours (see simclr-ort plot --help)")}
	case o.embeddingsOrLabels && o.embeddings == "":
		return usageError{fmt.Errorf("plot: --labels and --max-points go with --embeddings FILE.npy")}
	case len(o.args) == 1:
		return plotRun(o)
	case o.embeddings != "":
		return plotEmbeddings(o)
	}
	return plotNeighbours(o)
}

// plotRun draws the training curves of a run directory.
func plotRun(o plotOptions) error {
	dir := o.args[0]
	m, err := plot.ReadMetrics(filepath.Join(dir, metrics.FileName))
	if err != nil {
		return err
	}
	title := fmt.Sprintf("%s: %d steps", filepath.Base(filepath.Clean(dir)), len(m.Steps))
	if len(m.Steps) > 0 {
		title += fmt.Sprintf(" (%d to %d)", m.Steps[0].Step, m.Steps[len(m.Steps)-1].Step)
	}
	fig, err := plot.Training(m, title)
	if err != nil {
		return fmt.Errorf("%w (%s)", err, filepath.Join(dir, metrics.FileName))
	}
	out := o.out
	if out == "" {
		out = filepath.Join(dir, "training")
	}
	return saved(plot.Save(fig, out, o.dpi))
}

// plotEmbeddings draws the PCA map of an embed .npy file.
func plotEmbeddings(o plotOptions) error {
	shape, feats, err := npy.LoadFloat32(o.embeddings)
	if err != nil {
		return fmt.Errorf("plot: --embeddings: %w", err)
	}
	if len(shape) != 2 {
		return fmt.Errorf("plot: --embeddings %s has shape %v; want features [N,d] as simclr-ort embed writes them", o.embeddings, shape)
	}
	labelsPath := o.labels
	if labelsPath == "" {
		labelsPath = strings.TrimSuffix(o.embeddings, ".npy") + ".labels.npy"
	}
	lshape, l64, err := npy.LoadInt64(labelsPath)
	if err != nil {
		return fmt.Errorf("plot: labels of %s: %w; pass --labels FILE or write both with simclr-ort embed", o.embeddings, err)
	}
	if len(lshape) != 1 || lshape[0] != shape[0] {
		return fmt.Errorf("plot: %s holds %v labels for %d features in %s; pass the labels file embed wrote with them", labelsPath, lshape, shape[0], o.embeddings)
	}
	classes, err := classNames(o)
	if err != nil {
		return err
	}
	n, d := int(shape[0]), int(shape[1])
	xy, explained, err := plot.PCA(feats, n, d)
	if err != nil {
		return fmt.Errorf("%w (%s)", err, o.embeddings)
	}
	labels := make([]int, n)
	for i, l := range l64 {
		labels[i] = int(l)
	}
	fig, err := plot.Embedding(xy, labels, classes, explained, "PCA of "+filepath.Base(o.embeddings), o.maxPoints)
	if err != nil {
		return err
	}
	out := o.out
	if out == "" {
		out = strings.TrimSuffix(o.embeddings, ".npy") + ".pca"
	}
	return saved(plot.Save(fig, out, o.dpi))
}

// classNames are the legend's names: --classes, else --data's.
func classNames(o plotOptions) ([]string, error) {
	if o.classes != "" {
		return strings.Split(o.classes, ","), nil
	}
	if o.data == "" {
		return nil, nil
	}
	ds, err := data.OpenWith(o.data, data.Train, o.runtime.data)
	if err != nil {
		return nil, fmt.Errorf("plot: --data (for the class names): %w", err)
	}
	return ds.ClassNames(), nil
}

// plotNeighbours draws the nearest-neighbour grid of an encoder.
func plotNeighbours(o plotOptions) error {
	if o.encoder == "" || o.data == "" {
		return usageError{fmt.Errorf("plot: --neighbours needs --encoder ENC.onnx and --data SPEC")}
	}
	if o.queries < 1 || o.k < 1 {
		return usageError{fmt.Errorf("plot: --queries %d and --k %d must be at least 1", o.queries, o.k)}
	}
	if err := o.runtime.init(); err != nil {
		return err
	}
	enc, err := eval.OpenEncoder(o.encoder)
	if err != nil {
		return err
	}
	train, err := data.OpenWith(o.data, data.Train, o.runtime.data)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	var test data.Dataset
	if o.testData != "" {
		if test, err = data.OpenFolderDir(o.testData, train.ClassNames(), o.runtime.data); err != nil {
			return fmt.Errorf("plot: --test-data: %w", err)
		}
	} else if test, err = data.OpenWith(o.data, data.Test, o.runtime.data); err != nil {
		return fmt.Errorf("plot: %w; the queries come from a labelled test split (or pass one with --test-data DIR)", err)
	}
	train = data.Evenly(train, o.trainLimit)
	for _, ds := range []data.Dataset{train, test} {
		if err := eval.CheckDataset(enc, ds, o.resize, false); err != nil {
			return err
		}
	}
	queries := pickQueries(test, o.queries, o.seed)
	qds := data.Pick(test, queries)
	trainFeats, trainLabels, err := eval.Features(enc, train, o.batch, o.runtime.options())
	if err != nil {
		return err
	}
	queryFeats, queryLabels, err := eval.Features(enc, qds, o.batch, o.runtime.options())
	if err != nil {
		return err
	}
	idx, sims := plot.Nearest(trainFeats, queryFeats, enc.FeatureDim, o.k)
	rows := make([]plot.NeighbourRow, len(queries))
	for q := range queries {
		img, err := qds.Image(q)
		if err != nil {
			return fmt.Errorf("plot: query image %d: %w", queries[q], err)
		}
		row := plot.NeighbourRow{Query: img, QueryLabel: queryLabels[q], Similarity: sims[q]}
		for _, i := range idx[q] {
			img, err := train.Image(i)
			if err != nil {
				return fmt.Errorf("plot: training image %d: %w", i, err)
			}
			row.Images = append(row.Images, img)
			row.Labels = append(row.Labels, trainLabels[i])
		}
		rows[q] = row
	}
	title := fmt.Sprintf("%s: nearest of %d training images", filepath.Base(o.encoder), train.Len())
	fig, err := plot.NeighbourGrid(rows, train.ClassNames(), title)
	if err != nil {
		return err
	}
	out := o.out
	if out == "" {
		out = "neighbours"
	}
	return saved(plot.Save(fig, out, o.dpi))
}

// pickQueries takes n test images in a seeded random order, one of each
// class in turn (classes in label order), so that every class shows.
func pickQueries(ds data.Dataset, n int, seed uint64) []int {
	byClass := map[int][]int{}
	maxLabel := 0
	for _, i := range rand.New(rand.NewPCG(seed, 0x9e16)).Perm(ds.Len()) {
		l := ds.Label(i)
		byClass[l] = append(byClass[l], i)
		maxLabel = max(maxLabel, l)
	}
	var out []int
	for round := 0; len(out) < n; round++ {
		added := false
		for l := 0; l <= maxLabel && len(out) < n; l++ {
			if round < len(byClass[l]) {
				out = append(out, byClass[l][round])
				added = true
			}
		}
		if !added {
			break
		}
	}
	return out
}

// saved prints the files a figure went to.
func saved(files []string, err error) error {
	if err != nil {
		return err
	}
	fmt.Printf("wrote %s\n", strings.Join(files, " and "))
	return nil
}
