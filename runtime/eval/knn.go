package eval

import (
	"fmt"
	"math"

	onnx "github.com/simclr-ort/simclr-ort/onnxpb"
	"github.com/simclr-ort/simclr-ort/runtime/ort"
	"google.golang.org/protobuf/proto"
)

// knnBlock is the number of test features one similarity run takes.
const knnBlock = 256

// KNNIndex is a labelled set of training features prepared for the kNN
// protocol: normalised once, and searched on ONNX Runtime (one Gemm of a
// block of queries against every training feature, then TopK), which is
// 50-100x faster than a loop in Go on the CPU. It holds an ONNX Runtime
// session: Close it.
type KNNIndex struct {
	dim, k  int
	labels  []int
	classes int
	train   []float32
	query   []float32
	sims    []float32
	indices []float32
	session *ort.Session
}

// NewKNNIndex prepares train (rows of dim features) for queries of the k
// most similar rows. ONNX Runtime must be initialised.
func NewKNNIndex(train []float32, labels []int, dim, k int, opts ort.Options) (*KNNIndex, error) {
	n := len(labels)
	if dim < 1 || len(train) != n*dim || n == 0 {
		return nil, fmt.Errorf("eval: kNN index of %d features of %d values for %d labels", len(train), dim, n)
	}
	if k < 1 || k > n {
		return nil, fmt.Errorf("eval: kNN with k = %d needs between 1 and %d (the training images)", k, n)
	}
	if n >= 1<<24 {
		return nil, fmt.Errorf("eval: kNN over %d training images: at most %d", n, 1<<24-1)
	}
	x := &KNNIndex{dim: dim, k: k, labels: labels, train: normalised(train, dim),
		query: make([]float32, knnBlock*dim), sims: make([]float32, knnBlock*k), indices: make([]float32, knnBlock*k)}
	for _, l := range labels {
		x.classes = max(x.classes, l+1)
	}
	model, err := knnModel(knnBlock, n, dim, k)
	if err != nil {
		return nil, err
	}
	x.session, err = ort.NewSession(model,
		[]ort.Binding{{Name: "query", Shape: []int64{knnBlock, int64(dim)}, Data: x.query}, {Name: "train", Shape: []int64{int64(n), int64(dim)}, Data: x.train}},
		[]ort.Binding{{Name: "similarity", Shape: []int64{knnBlock, int64(k)}, Data: x.sims}, {Name: "index", Shape: []int64{knnBlock, int64(k)}, Data: x.indices}},
		opts)
	if err != nil {
		return nil, fmt.Errorf("eval: kNN session: %w", err)
	}
	return x, nil
}

// Predict is the kNN protocol's class of every row of test: cosine
// similarity to every training feature, the k most similar vote for their
// class with weight exp(similarity/temperature), the largest vote wins.
func (x *KNNIndex) Predict(test []float32, temperature float64) ([]int, error) {
	te := normalised(test, x.dim)
	n := len(te) / x.dim
	predicted := make([]int, n)
	votes := make([]float64, x.classes)
	for start := 0; start < n; start += knnBlock {
		rows := min(knnBlock, n-start)
		copy(x.query, te[start*x.dim:(start+rows)*x.dim])
		clear(x.query[rows*x.dim:])
		if err := x.session.Run(); err != nil {
			return nil, fmt.Errorf("eval: kNN: %w", err)
		}
		for q := 0; q < rows; q++ {
			clear(votes)
			for j := 0; j < x.k; j++ {
				nb := int(x.indices[q*x.k+j])
				votes[x.labels[nb]] += math.Exp(float64(x.sims[q*x.k+j]) / temperature)
			}
			best := 0
			for c := range votes {
				if votes[c] > votes[best] {
					best = c
				}
			}
			predicted[start+q] = best
		}
	}
	return predicted, nil
}

// Close releases the session.
func (x *KNNIndex) Close() error {
	if x.session == nil {
		return nil
	}
	err := x.session.Close()
	x.session = nil
	return err
}

func normalised(f []float32, dim int) []float32 {
	out := make([]float32, len(f))
	for i := 0; i < len(f); i += dim {
		var s float64
		for _, v := range f[i : i+dim] {
			s += float64(v) * float64(v)
		}
		inv := float32(1 / math.Max(math.Sqrt(s), 1e-12))
		for j, v := range f[i : i+dim] {
			out[i+j] = v * inv
		}
	}
	return out
}

// knnModel is similarity = TopK(query · trainᵀ, k) with the indices as
// float32 (exact below 2^24).
func knnModel(block, n, dim, k int) ([]byte, error) {
	info := func(name string, elem onnx.TensorProto_DataType, dims ...int64) *onnx.ValueInfoProto {
		shape := &onnx.TensorShapeProto{}
		for _, d := range dims {
			shape.Dim = append(shape.Dim, &onnx.TensorShapeProto_Dimension{Value: &onnx.TensorShapeProto_Dimension_DimValue{DimValue: d}})
		}
		return &onnx.ValueInfoProto{Name: name, Type: &onnx.TypeProto{Value: &onnx.TypeProto_TensorType{
			TensorType: &onnx.TypeProto_Tensor{ElemType: int32(elem), Shape: shape}}}}
	}
	g := &onnx.GraphProto{
		Name: "knn",
		Node: []*onnx.NodeProto{
			{OpType: "Gemm", Input: []string{"query", "train"}, Output: []string{"dots"},
				Attribute: []*onnx.AttributeProto{{Name: "transB", Type: onnx.AttributeProto_INT, I: 1}}},
			{OpType: "TopK", Input: []string{"dots", "k"}, Output: []string{"similarity", "index64"}},
			{OpType: "Cast", Input: []string{"index64"}, Output: []string{"index"},
				Attribute: []*onnx.AttributeProto{{Name: "to", Type: onnx.AttributeProto_INT, I: int64(onnx.TensorProto_FLOAT)}}},
		},
		Initializer: []*onnx.TensorProto{{Name: "k", Dims: []int64{1}, DataType: int32(onnx.TensorProto_INT64), Int64Data: []int64{int64(k)}}},
		Input:       []*onnx.ValueInfoProto{info("query", onnx.TensorProto_FLOAT, int64(block), int64(dim)), info("train", onnx.TensorProto_FLOAT, int64(n), int64(dim))},
		Output:      []*onnx.ValueInfoProto{info("similarity", onnx.TensorProto_FLOAT, int64(block), int64(k)), info("index", onnx.TensorProto_FLOAT, int64(block), int64(k))},
	}
	m := &onnx.ModelProto{IrVersion: 8, OpsetImport: []*onnx.OperatorSetIdProto{{Version: 17}}, ProducerName: "simclr-ort", Graph: g}
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("eval: kNN model: %w", err)
	}
	return b, nil
}
