package export

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/simclr-ort/simclr-ort/gen"
	"github.com/simclr-ort/simclr-ort/graphs"
	"github.com/simclr-ort/simclr-ort/internal/atomicfile"
	"github.com/simclr-ort/simclr-ort/runtime/checkpoint"
)

// Tensor is one named tensor of a safetensors file: exactly one of F32 and
// I64 holds its values, row-major; an empty Shape is a scalar.
type Tensor struct {
	Name  string
	Shape []int64
	F32   []float32
	I64   []int64
}

// DType is the tensor's safetensors dtype, "F32" or "I64".
func (t Tensor) DType() string {
	if t.I64 != nil {
		return "I64"
	}
	return "F32"
}

func (t Tensor) len() int {
	if t.I64 != nil {
		return len(t.I64)
	}
	return len(t.F32)
}

// Prefixes of the checkpoint's (the manifest's) tensor names.
const (
	encoderPrefix   = "encoder."
	projectorPrefix = "projector."
)

// NumBatchesTracked is the suffix of the BatchNorm buffer PyTorch counts
// running-statistic updates in; StateDicts writes one per BatchNorm layer.
const NumBatchesTracked = "num_batches_tracked"

// StateDicts returns the checkpoint's weights under PyTorch's state_dict
// names, in torchvision's order.
//
// encoder is what torchvision's ResNet (resnet18() or resnet50())
// load_state_dict accepts with only fc.weight and fc.bias missing: the
// manifest's names without their "encoder." prefix (conv1.weight,
// layer1.0.bn1.running_mean, ...), the BatchNorm running statistics, and
// each BatchNorm layer's num_batches_tracked (int64 scalar), which is the
// number of running-statistic updates PyTorch would have counted: steps x
// BatchNorm groups. A CIFAR-stem encoder has a 3x3 conv1 and no max-pool:
// replace torchvision's conv1 by Conv2d(3, 64, 3, 1, 1, bias=False) and its
// maxpool by Identity before loading.
//
// projector is the MLP head's two Linear weights without their
// "projector." prefix (0.weight [d,d], 2.weight [p,d]), which
// nn.Sequential(Linear(d, d, bias=False), ReLU(), Linear(d, p, bias=False))
// loads strictly.
func StateDicts(ck *checkpoint.Checkpoint) (encoder, projector []Tensor, err error) {
	cfg := ck.Config.Defaults()
	updates := ck.Step * int64(cfg.BNGroups)
	buffers := map[string]checkpoint.Tensor{}
	for _, b := range ck.Buffers {
		buffers[b.Name] = b
	}
	used := 0
	for _, p := range ck.Params {
		switch {
		case strings.HasPrefix(p.Name, encoderPrefix):
			encoder = append(encoder, f32(strings.TrimPrefix(p.Name, encoderPrefix), p))
			layer, ok := strings.CutSuffix(p.Name, ".bias")
			if !ok {
				continue
			}
			mean, okMean := buffers[layer+".running_mean"]
			variance, okVar := buffers[layer+".running_var"]
			if !okMean || !okVar {
				continue // a bias that is not a BatchNorm layer's
			}
			short := strings.TrimPrefix(layer, encoderPrefix)
			encoder = append(encoder,
				f32(short+".running_mean", mean),
				f32(short+".running_var", variance),
				Tensor{Name: short + "." + NumBatchesTracked, Shape: []int64{}, I64: []int64{updates}})
			used += 2
		case strings.HasPrefix(p.Name, projectorPrefix):
			projector = append(projector, f32(strings.TrimPrefix(p.Name, projectorPrefix), p))
		default:
			return nil, nil, fmt.Errorf("export: checkpoint parameter %s is neither the encoder's nor the projector's; it was not written by this simclr-ort", p.Name)
		}
	}
	if used != len(ck.Buffers) {
		return nil, nil, fmt.Errorf("export: %d of the checkpoint's %d running statistics belong to no BatchNorm layer's weight and bias; it was not written by this simclr-ort", len(ck.Buffers)-used, len(ck.Buffers))
	}
	return encoder, projector, nil
}

func f32(name string, t checkpoint.Tensor) Tensor {
	return Tensor{Name: name, Shape: append([]int64{}, t.Shape...), F32: t.Data}
}

// Metadata returns the facts an exported file records about the checkpoint
// (the keys of an ONNX export's metadata, see KeyArch and the others),
// with the safetensors convention "format": "pt".
func Metadata(ck *checkpoint.Checkpoint, withProjector bool) map[string]string {
	meta := facts(ck, withProjector)
	meta["format"] = "pt"
	return meta
}

// facts are the metadata every export records about its checkpoint: the
// configuration, the training step, the producer and the preprocessing
// its input expects.
func facts(ck *checkpoint.Checkpoint, withProjector bool) map[string]string {
	cfg := ck.Config.Defaults()
	meta := map[string]string{
		KeyArch:          cfg.Arch,
		KeyStem:          cfg.Stem,
		KeyImageSize:     strconv.Itoa(cfg.ImageSize),
		KeyFeatureDim:    strconv.Itoa(graphs.FeatureDim(cfg.Arch)),
		KeySteps:         strconv.FormatInt(ck.Step, 10),
		KeyProducer:      gen.ProducerVersion,
		KeyPreprocessing: Preprocessing,
		KeyConfig:        cfg.Name(),
	}
	if withProjector {
		meta[KeyProjectionDim] = strconv.Itoa(cfg.ProjectionDim)
	}
	return meta
}

// ProjectorPath is where WriteSafetensors puts the projector of an encoder
// written to path: "enc.safetensors" gives "enc.projector.safetensors".
func ProjectorPath(path string) string {
	return strings.TrimSuffix(path, ".safetensors") + ".projector.safetensors"
}

// WriteSafetensors writes the checkpoint's encoder to path as a
// safetensors file with torchvision's state_dict names (see StateDicts) and
// the checkpoint's facts as metadata (see Metadata), and, with
// opts.WithProjector, the projector to ProjectorPath(path). It returns the
// files written. Each file is written atomically.
func WriteSafetensors(path string, ck *checkpoint.Checkpoint, opts Options) ([]string, error) {
	enc, proj, err := StateDicts(ck)
	if err != nil {
		return nil, err
	}
	meta := Metadata(ck, opts.WithProjector)
	meta["simclr.part"] = "encoder"
	if err := SaveSafetensors(path, enc, meta); err != nil {
		return nil, err
	}
	if !opts.WithProjector {
		return []string{path}, nil
	}
	pp := ProjectorPath(path)
	meta["simclr.part"] = "projector"
	if err := SaveSafetensors(pp, proj, meta); err != nil {
		return nil, err
	}
	return []string{path, pp}, nil
}

// headerEntry is one tensor's entry of a safetensors header.
type headerEntry struct {
	DType       string   `json:"dtype"`
	Shape       []int64  `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// maxHeader bounds the header ReadSafetensors accepts, as the reference
// implementation does (100 MB).
const maxHeader = 100 << 20

// EncodeSafetensors writes tensors to w in the safetensors format: an
// 8-byte little-endian header length, a JSON header {name: {dtype, shape,
// data_offsets}, "__metadata__": meta} padded with spaces to a multiple of 8
// bytes, then every tensor's little-endian values, in the order given.
func EncodeSafetensors(w io.Writer, tensors []Tensor, meta map[string]string) error {
	var h strings.Builder
	h.WriteByte('{')
	if len(meta) > 0 {
		m, err := json.Marshal(meta)
		if err != nil {
			return fmt.Errorf("export: safetensors metadata: %w", err)
		}
		h.WriteString(`"__metadata__":`)
		h.Write(m)
	}
	var offset int64
	seen := map[string]bool{}
	for i, t := range tensors {
		n := int64(1)
		for _, d := range t.Shape {
			n *= d
		}
		if t.F32 != nil && t.I64 != nil {
			return fmt.Errorf("export: safetensors tensor %s has both float32 and int64 values; give one", t.Name)
		}
		if n != int64(t.len()) {
			return fmt.Errorf("export: safetensors tensor %s has %d values, its shape %v needs %d", t.Name, t.len(), t.Shape, n)
		}
		if t.Name == "" || t.Name == "__metadata__" || seen[t.Name] {
			return fmt.Errorf("export: safetensors tensor %d has an empty, reserved or repeated name %q", i, t.Name)
		}
		seen[t.Name] = true
		size := 4 * n
		if t.I64 != nil {
			size = 8 * n
		}
		e, err := json.Marshal(headerEntry{DType: t.DType(), Shape: nonNil(t.Shape), DataOffsets: [2]int64{offset, offset + size}})
		if err != nil {
			return fmt.Errorf("export: safetensors header of %s: %w", t.Name, err)
		}
		name, _ := json.Marshal(t.Name)
		if h.Len() > 1 {
			h.WriteByte(',')
		}
		h.Write(name)
		h.WriteByte(':')
		h.Write(e)
		offset += size
	}
	h.WriteByte('}')
	for (8+h.Len())%8 != 0 {
		h.WriteByte(' ')
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(h.Len()))
	bw.Write(b[:])
	bw.WriteString(h.String())
	for _, t := range tensors {
		for _, v := range t.F32 {
			binary.LittleEndian.PutUint32(b[:4], math.Float32bits(v))
			bw.Write(b[:4])
		}
		for _, v := range t.I64 {
			binary.LittleEndian.PutUint64(b[:], uint64(v))
			bw.Write(b[:])
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("export: write safetensors: %w", err)
	}
	return nil
}

func nonNil(s []int64) []int64 {
	if s == nil {
		return []int64{}
	}
	return s
}

// SaveSafetensors writes tensors and meta to path (see EncodeSafetensors)
// atomically, through internal/atomicfile: a temporary file beside it,
// synced, renamed over path, so a crash leaves either the old file or the
// new one.
func SaveSafetensors(path string, tensors []Tensor, meta map[string]string) error {
	if err := atomicfile.WriteFunc(path, 0o644, func(w io.Writer) error { return EncodeSafetensors(w, tensors, meta) }); err != nil {
		return fmt.Errorf("export: safetensors: %w", err)
	}
	return nil
}

// ReadSafetensors reads a safetensors file of F32 and I64 tensors. It
// checks what the format requires: a header within the file, offsets that
// cover the data without holes or overlaps, sizes that match the shapes.
// The tensors come back in the order of their data.
func ReadSafetensors(path string) ([]Tensor, map[string]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("export: %w", err)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("export: %s is not a valid safetensors file: %s", path, fmt.Sprintf(format, args...))
	}
	if len(raw) < 8 {
		return nil, nil, bad("%d bytes, shorter than the 8-byte header length", len(raw))
	}
	n := binary.LittleEndian.Uint64(raw)
	if n > maxHeader || n > uint64(len(raw)-8) {
		return nil, nil, bad("header length %d does not fit in its %d bytes", n, len(raw))
	}
	var header map[string]json.RawMessage
	if err := json.Unmarshal(raw[8:8+n], &header); err != nil {
		return nil, nil, bad("header: %v", err)
	}
	var meta map[string]string
	if m, ok := header["__metadata__"]; ok {
		if err := json.Unmarshal(m, &meta); err != nil {
			return nil, nil, bad("__metadata__ is not a map of strings: %v", err)
		}
		delete(header, "__metadata__")
	}
	data := raw[8+n:]
	type entry struct {
		name string
		headerEntry
	}
	entries := make([]entry, 0, len(header))
	for name, m := range header {
		var e headerEntry
		if err := json.Unmarshal(m, &e); err != nil {
			return nil, nil, bad("tensor %s: %v", name, err)
		}
		entries = append(entries, entry{name, e})
	}
	slices.SortFunc(entries, func(a, b entry) int { return cmp.Compare(a.DataOffsets[0], b.DataOffsets[0]) })
	tensors := make([]Tensor, 0, len(entries))
	var end int64
	for _, e := range entries {
		begin, stop := e.DataOffsets[0], e.DataOffsets[1]
		if begin != end || stop < begin || stop > int64(len(data)) {
			return nil, nil, bad("tensor %s at bytes [%d,%d) leaves a hole, overlaps or runs past the %d data bytes", e.name, begin, stop, len(data))
		}
		end = stop
		count := int64(1)
		for _, d := range e.Shape {
			count *= d
		}
		b := data[begin:stop]
		t := Tensor{Name: e.name, Shape: e.Shape}
		switch e.DType {
		case "F32":
			if int64(len(b)) != 4*count {
				return nil, nil, bad("tensor %s holds %d bytes, its F32 shape %v needs %d", e.name, len(b), e.Shape, 4*count)
			}
			t.F32 = make([]float32, count)
			for i := range t.F32 {
				t.F32[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
			}
		case "I64":
			if int64(len(b)) != 8*count {
				return nil, nil, bad("tensor %s holds %d bytes, its I64 shape %v needs %d", e.name, len(b), e.Shape, 8*count)
			}
			t.I64 = make([]int64, count)
			for i := range t.I64 {
				t.I64[i] = int64(binary.LittleEndian.Uint64(b[8*i:]))
			}
		default:
			return nil, nil, bad("tensor %s has dtype %q; only F32 and I64 are read", e.name, e.DType)
		}
		tensors = append(tensors, t)
	}
	if end != int64(len(data)) {
		return nil, nil, bad("%d data bytes after the last tensor", int64(len(data))-end)
	}
	return tensors, meta, nil
}
