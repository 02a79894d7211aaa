// Package export bakes a training checkpoint into a standalone encoder ONNX
// file: the inference graph (eval-mode BatchNorm from the running
// statistics, dynamic batch) with every weight as an initializer and
// metadata that says what the model is and how to feed it.
package export

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"

	"github.com/simclr-ort/simclr-ort/gen"
	"github.com/simclr-ort/simclr-ort/graphs"
	onnx "github.com/simclr-ort/simclr-ort/onnxpb"
	"github.com/simclr-ort/simclr-ort/runtime/checkpoint"
	"google.golang.org/protobuf/proto"
)

// Preprocessing is the input contract, the training run's test transform,
// recorded in every exported file and in the README.
const Preprocessing = "float32 NCHW RGB in [0,1] (grayscale repeated to 3 channels): resize the shorter side to " +
	"image_size pixels (bilinear), centre-crop image_size x image_size, divide 8-bit values by 255; no mean/std normalisation"

// Metadata keys of an exported encoder.
const (
	KeyArch          = "simclr.arch"
	KeyStem          = "simclr.stem"
	KeyImageSize     = "simclr.image_size"
	KeyFeatureDim    = "simclr.feature_dim"
	KeyProjectionDim = "simclr.projection_dim"
	KeySteps         = "simclr.training_steps"
	KeyProducer      = "simclr.producer_version"
	KeyPreprocessing = "simclr.preprocessing"
	KeyInput         = "simclr.input"
	KeyOutputs       = "simclr.outputs"
	KeyConfig        = "simclr.config"
)

// Options choose what is exported.
type Options struct {
	// WithProjector adds the projection z as a second output.
	WithProjector bool
}

// Encoder returns the serialised standalone model of the checkpoint's
// encoder (and projector, if asked).
func Encoder(ck *checkpoint.Checkpoint, opts Options) ([]byte, error) {
	cfg := ck.Config.Defaults()
	raw, err := gen.Inference(cfg, opts.WithProjector)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	var m onnx.ModelProto
	if err := proto.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("export: read generated graph: %w", err)
	}
	tensors := map[string]checkpoint.Tensor{}
	for _, t := range append(append([]checkpoint.Tensor(nil), ck.Params...), ck.Buffers...) {
		tensors[t.Name] = t
	}
	g := m.Graph
	var inputs []*onnx.ValueInfoProto
	for _, in := range g.Input {
		t, ok := tensors[in.Name]
		if !ok {
			if in.Name == graphs.InferenceInput {
				inputs = append(inputs, in)
				continue
			}
			return nil, fmt.Errorf("export: the checkpoint has no tensor %s that the %s encoder needs; it was written for another configuration", in.Name, cfg.Name())
		}
		want := in.GetType().GetTensorType().GetShape().GetDim()
		if len(want) != len(t.Shape) {
			return nil, fmt.Errorf("export: checkpoint tensor %s has shape %v, the %s graph expects rank %d; the checkpoint was written for another configuration", t.Name, t.Shape, cfg.Name(), len(want))
		}
		for i, d := range want {
			if d.GetDimValue() != t.Shape[i] {
				return nil, fmt.Errorf("export: checkpoint tensor %s has shape %v, the %s graph expects dimension %d = %d; the checkpoint was written for another configuration", t.Name, t.Shape, cfg.Name(), i, d.GetDimValue())
			}
		}
		g.Initializer = append(g.Initializer, initializer(t))
	}
	g.Input = inputs
	outputs := graphs.InferenceOutput
	meta := facts(ck, opts.WithProjector)
	meta[KeyInput] = graphs.InferenceInput
	if opts.WithProjector {
		outputs += "," + graphs.ProjectionOutput
	}
	meta[KeyOutputs] = outputs
	m.MetadataProps = nil
	for _, k := range sortedKeys(meta) {
		m.MetadataProps = append(m.MetadataProps, &onnx.StringStringEntryProto{Key: k, Value: meta[k]})
	}
	m.DocString = "SimCLR " + cfg.Arch + " encoder exported by simclr-ort from a checkpoint at step " + strconv.FormatInt(ck.Step, 10)
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(&m)
	if err != nil {
		return nil, fmt.Errorf("export: encode model: %w", err)
	}
	return b, nil
}

func initializer(t checkpoint.Tensor) *onnx.TensorProto {
	raw := make([]byte, 4*len(t.Data))
	for i, f := range t.Data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(f))
	}
	return &onnx.TensorProto{Name: t.Name, Dims: append([]int64(nil), t.Shape...), DataType: int32(onnx.TensorProto_FLOAT), RawData: raw}
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

// Config is the configuration recorded in an exported file's metadata; it is
// what evaluation checks data against.
func Config(meta map[string]string) (graphs.Config, int, error) {
	size, err := strconv.Atoi(meta[KeyImageSize])
	if err != nil || meta[KeyArch] == "" {
		return graphs.Config{}, 0, fmt.Errorf("export: not a simclr-ort encoder (metadata %s/%s missing); export one with `simclr-ort export`", KeyArch, KeyImageSize)
	}
	dim, err := strconv.Atoi(meta[KeyFeatureDim])
	if err != nil {
		return graphs.Config{}, 0, fmt.Errorf("export: encoder metadata %s is %q, not a number", KeyFeatureDim, meta[KeyFeatureDim])
	}
	return graphs.Config{Arch: meta[KeyArch], Stem: meta[KeyStem], ImageSize: size}, dim, nil
}
