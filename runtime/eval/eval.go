// Package eval measures an exported encoder: features of a dataset from
// ONNX Runtime (the training run's test transform, in order, every image),
// and the kNN protocol on them.
package eval

import (
	"fmt"
	"os"
	"runtime"
	"sync"

	"github.com/simclr-ort/simclr-ort/augment"
	"github.com/simclr-ort/simclr-ort/augment/data"
	onnx "github.com/simclr-ort/simclr-ort/onnxpb"
	"github.com/simclr-ort/simclr-ort/runtime/export"
	"github.com/simclr-ort/simclr-ort/runtime/ort"
	"google.golang.org/protobuf/proto"
)

// Encoder is an exported encoder file and what its metadata says.
type Encoder struct {
	Path       string
	Model      []byte
	ImageSize  int
	FeatureDim int
	Arch       string
}

// OpenEncoder reads an exported encoder and checks that it is one.
func OpenEncoder(path string) (*Encoder, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	return ParseEncoder(path, b)
}

// ParseEncoder checks that b is an exported encoder (path names it in
// errors, e.g. an in-memory export during training).
func ParseEncoder(path string, b []byte) (*Encoder, error) {
	var m onnx.ModelProto
	if err := proto.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("eval: %s is not an ONNX model: %w", path, err)
	}
	meta := map[string]string{}
	for _, p := range m.MetadataProps {
		meta[p.Key] = p.Value
	}
	cfg, dim, err := export.Config(meta)
	if err != nil {
		return nil, fmt.Errorf("eval: %s: %w", path, err)
	}
	return &Encoder{Path: path, Model: b, ImageSize: cfg.ImageSize, FeatureDim: dim, Arch: cfg.Arch}, nil
}

// Features runs the encoder over every image of ds in order, with the test
// transform, batch images at a time; it returns the features [Len x
// FeatureDim] and the labels on the ONNX Runtime provider opts names.
// Unreadable images are an error: evaluation must see the whole split.
func Features(enc *Encoder, ds data.Dataset, batch int, opts ort.Options) ([]float32, []int, error) {
	n := ds.Len()
	if n == 0 {
		return nil, nil, fmt.Errorf("eval: the dataset is empty")
	}
	size, dim := enc.ImageSize, enc.FeatureDim
	viewLen := 3 * size * size
	feats := make([]float32, n*dim)
	labels := make([]int, n)
	workers := runtime.GOMAXPROCS(0)
	pipes := make([]*augment.Pipeline, workers)
	for i := range pipes {
		p, err := augment.New(augment.Config{Size: size})
		if err != nil {
			return nil, nil, fmt.Errorf("eval: %w", err)
		}
		pipes[i] = p
	}
	sessions := map[int]*ort.Session{}
	images := map[int][]float32{}
	outs := map[int][]float32{}
	defer func() {
		for _, s := range sessions {
			s.Close()
		}
	}()
	for start := 0; start < n; start += batch {
		b := min(batch, n-start)
		if sessions[b] == nil {
			images[b], outs[b] = make([]float32, b*viewLen), make([]float32, b*dim)
			s, err := ort.NewSession(enc.Model, []ort.Binding{{Name: "images", Shape: []int64{int64(b), 3, int64(size), int64(size)}, Data: images[b]}},
				[]ort.Binding{{Name: "features", Shape: []int64{int64(b), int64(dim)}, Data: outs[b]}}, opts)
			if err != nil {
				return nil, nil, fmt.Errorf("eval: %s: %w", enc.Path, err)
			}
			sessions[b] = s
		}
		var wg sync.WaitGroup
		errs := make([]error, workers)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := w; i < b; i += workers {
					img, err := ds.Image(start + i)
					if err != nil {
						errs[w] = fmt.Errorf("eval: image %d: %w", start+i, err)
						return
					}
					pipes[w].Eval(images[b][i*viewLen:(i+1)*viewLen], img)
					labels[start+i] = ds.Label(start + i)
				}
			}(w)
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return nil, nil, err
			}
		}
		if err := sessions[b].Run(); err != nil {
			return nil, nil, fmt.Errorf("eval: %w", err)
		}
		copy(feats[start*dim:], outs[b])
	}
	return feats, labels, nil
}

// KNN is the kNN protocol of InstDisc/SimCLR evaluations (see
// KNNIndex.Predict) and its top-1 accuracy on the test features. ONNX
// Runtime must be initialised; opts configure its session.
func KNN(train []float32, trainLabels []int, test []float32, testLabels []int, dim, k int, temperature float64, opts ort.Options) (Accuracy, error) {
	predicted, err := KNNPredict(train, trainLabels, test, dim, k, temperature, opts)
	if err != nil {
		return Accuracy{}, err
	}
	return Score(predicted, testLabels), nil
}

// KNNPredict is KNN's predicted class of every test feature.
func KNNPredict(train []float32, trainLabels []int, test []float32, dim, k int, temperature float64, opts ort.Options) ([]int, error) {
	x, err := NewKNNIndex(train, trainLabels, dim, k, opts)
	if err != nil {
		return nil, err
	}
	defer x.Close()
	return x.Predict(test, temperature)
}

// CheckDataset says what is wrong with evaluating enc on ds: images of
// another size than the encoder was trained on (unless resizing is allowed:
// the test transform then rescales them), or, when labels are needed, a
// dataset with fewer than two classes.
func CheckDataset(enc *Encoder, ds data.Dataset, allowResize, needLabels bool) error {
	if ds.Len() == 0 {
		return fmt.Errorf("eval: the dataset is empty")
	}
	img, err := ds.Image(0)
	if err != nil {
		return fmt.Errorf("eval: read the first image: %w", err)
	}
	b := img.Bounds()
	if !allowResize && (b.Dx() != enc.ImageSize || b.Dy() != enc.ImageSize) {
		return fmt.Errorf("eval: %s was trained on %dx%d images but this dataset's are %dx%d; use a dataset of that size, or pass --resize to rescale them with the test transform (shorter side to %d, centre crop)",
			enc.Path, enc.ImageSize, enc.ImageSize, b.Dx(), b.Dy(), enc.ImageSize)
	}
	if needLabels && len(ds.ClassNames()) < 2 {
		return fmt.Errorf("eval: the dataset has %d class(es), so there are no labels to evaluate against; use a labelled dataset (class folders, or idx/CIFAR files with labels)", len(ds.ClassNames()))
	}
	return nil
}
