package eval_test

import (
	"image"
	"image/color"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/simclr-ort/simclr-ort/runtime/ort"

	"github.com/simclr-ort/simclr-ort/gen"
	"github.com/simclr-ort/simclr-ort/graphs"
	"github.com/simclr-ort/simclr-ort/internal/gradcheck"
	"github.com/simclr-ort/simclr-ort/runtime/checkpoint"
	"github.com/simclr-ort/simclr-ort/runtime/eval"
	"github.com/simclr-ort/simclr-ort/runtime/export"
	"github.com/simclr-ort/simclr-ort/runtime/optim"
	"github.com/simclr-ort/simclr-ort/runtime/step"
)

func TestKNNOnSeparatedClusters(t *testing.T) {
	gradcheck.InitORT(t)
	r := rand.New(rand.NewPCG(1, 2))
	const dim = 4
	centres := [][]float32{{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}}
	sample := func(n int) ([]float32, []int) {
		var f []float32
		var l []int
		for i := 0; i < n; i++ {
			c := i % 3
			for j := 0; j < dim; j++ {
				f = append(f, centres[c][j]+0.2*float32(r.NormFloat64()))
			}
			l = append(l, c)
		}
		return f, l
	}
	train, trainLabels := sample(300)
	test, testLabels := sample(60)
	if acc, err := eval.KNN(train, trainLabels, test, testLabels, dim, 20, 0.1, ort.Options{}); err != nil || acc.Top1 < 0.95 {
		t.Errorf("kNN accuracy %.3f (%v) on well separated clusters, want >= 0.95", acc.Top1, err)
	}
	// Labels shuffled against features: chance level.
	r.Shuffle(len(testLabels), func(i, j int) { testLabels[i], testLabels[j] = testLabels[j], testLabels[i] })
	if acc, err := eval.KNN(train, trainLabels, test, testLabels, dim, 20, 0.1, ort.Options{}); err != nil || acc.Top1 > 0.7 {
		t.Errorf("kNN accuracy %.3f (%v) with shuffled test labels, want near 1/3", acc.Top1, err)
	}
}

// fakeDataset is an in-memory dataset of small solid images.
type fakeDataset struct{ n int }

func (d fakeDataset) Len() int             { return d.n }
func (d fakeDataset) Label(i int) int      { return i % 2 }
func (d fakeDataset) ClassNames() []string { return []string{"a", "b"} }
func (d fakeDataset) Image(i int) (image.Image, error) {
	img := image.NewGray(image.Rect(0, 0, 10, 10))
	for p := range img.Pix {
		img.Pix[p] = uint8(i*13 + p)
	}
	img.Set(0, 0, color.Gray{255})
	return img, nil
}

func TestFeaturesOfAnExportedEncoder(t *testing.T) {
	gradcheck.InitORT(t)
	cfg := graphs.Config{Arch: "resnet18", Stem: "cifar", ImageSize: 12, Pairs: 4}.Defaults()
	b, err := gen.Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 1))
	ck, err := checkpoint.New(b.Manifest, step.NewTensors(b.Manifest.Params, r), step.NewTensors(b.Manifest.Buffers, r), optim.State{})
	if err != nil {
		t.Fatal(err)
	}
	model, err := export.Encoder(ck, export.Options{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "enc.onnx")
	os.WriteFile(path, model, 0o644)
	enc, err := eval.OpenEncoder(path)
	if err != nil {
		t.Fatal(err)
	}
	// 7 images in batches of 3: the last batch is partial.
	feats, labels, err := eval.Features(enc, fakeDataset{7}, 3, ort.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(feats) != 7*512 || len(labels) != 7 || labels[3] != 1 {
		t.Fatalf("got %d features, labels %v", len(feats), labels)
	}
	// The same image gives the same features in any batch position.
	again, _, err := eval.Features(enc, fakeDataset{7}, 7, ort.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i := range feats {
		if d := feats[i] - again[i]; d > 1e-4 || d < -1e-4 {
			t.Fatalf("feature %d differs between batchings: %v vs %v", i, feats[i], again[i])
		}
	}
}

func TestNonEncoderIsRejected(t *testing.T) {
	path := filepath.Join("..", "..", "graphs", "resnet18-cifar-32px-n128-p64-t0.5.train.onnx")
	_, err := eval.OpenEncoder(path)
	if err == nil || !strings.Contains(err.Error(), "simclr-ort export") {
		t.Fatalf("want an error saying to export an encoder, got %v", err)
	}
	_, err = eval.OpenEncoder("eval_test.go")
	if err == nil || !strings.Contains(err.Error(), "not an ONNX model") {
		t.Fatalf("want a not-ONNX error, got %v", err)
	}
}

func TestCheckDataset(t *testing.T) {
	enc := &eval.Encoder{Path: "enc.onnx", ImageSize: 12, FeatureDim: 512}
	for _, tc := range []struct {
		name           string
		ds             fakeDataset
		resize, labels bool
		want           string
	}{
		{"size mismatch", fakeDataset{4}, false, false, "trained on 12x12 images but this dataset's are 10x10"},
		{"size mismatch resized", fakeDataset{4}, true, true, ""},
		{"empty", fakeDataset{0}, true, false, "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := eval.CheckDataset(enc, tc.ds, tc.resize, tc.labels)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error containing %q, got %v", tc.want, err)
			}
		})
	}
	if err := eval.CheckDataset(enc, oneClass{fakeDataset{3}}, true, true); err == nil || !strings.Contains(err.Error(), "no labels") {
		t.Fatalf("want a missing-labels error, got %v", err)
	}
}

type oneClass struct{ fakeDataset }

func (oneClass) ClassNames() []string { return []string{"all"} }
