package graph

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"

	onnx "github.com/simclr-ort/simclr-ort/onnxpb"
	"google.golang.org/protobuf/proto"
)

// Opset is the standard domain's ONNX opset every generated graph imports
// (a graph with native ops also imports internal/nativeop's domain). 17 is
// the newest that Debian's python3-onnx 1.12 checker accepts.
const Opset = 17

// IRVersion is the ONNX IR version matching Opset.
const IRVersion = 8

// DType is an ONNX tensor element type.
type DType int32

// The element types the generator uses, numbered as onnx.TensorProto.DataType.
const (
	Float  DType = 1
	Int64  DType = 7
	Bool   DType = 9
	Double DType = 11
)

func (d DType) String() string {
	switch d {
	case Float:
		return "float32"
	case Int64:
		return "int64"
	case Bool:
		return "bool"
	case Double:
		return "float64"
	}
	return fmt.Sprintf("dtype(%d)", int32(d))
}

// Dynamic marks a dimension whose size is only known at run time (the batch
// dimension of an inference graph). It is written as the symbolic dimension
// "N".
const Dynamic = -1

// Shape is a static tensor shape. A Dynamic entry is a run-time size.
type Shape []int64

// Size is the number of elements, or -1 when a dimension is dynamic.
func (s Shape) Size() int64 {
	n := int64(1)
	for _, d := range s {
		if d < 0 {
			return -1
		}
		n *= d
	}
	return n
}

// Equal reports whether two shapes are identical.
func (s Shape) Equal(o Shape) bool {
	if len(s) != len(o) {
		return false
	}
	for i := range s {
		if s[i] != o[i] {
			return false
		}
	}
	return true
}

// Clone returns a copy of s.
func (s Shape) Clone() Shape { return append(Shape(nil), s...) }

func (s Shape) String() string {
	parts := make([]string, len(s))
	for i, d := range s {
		if d == Dynamic {
			parts[i] = "N"
		} else {
			parts[i] = fmt.Sprint(d)
		}
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// Value is a tensor in a graph: a graph input, a constant or a node output.
type Value struct {
	g        *Graph
	name     string
	shape    Shape
	dtype    DType
	producer *Node
	// constant holds the data of a constant ([]float32 or []int64), nil otherwise.
	constant any
}

// Name is the value's name in the ONNX graph.
func (v *Value) Name() string { return v.name }

// Shape returns a copy of the value's shape.
func (v *Value) Shape() Shape { return v.shape.Clone() }

// Rank is the number of dimensions.
func (v *Value) Rank() int { return len(v.shape) }

// DType is the element type.
func (v *Value) DType() DType { return v.dtype }

// Graph is the graph the value belongs to.
func (v *Value) Graph() *Graph { return v.g }

// IsConstant reports whether the value is a constant (an initializer).
func (v *Value) IsConstant() bool { return v.constant != nil }

// Op is an ONNX operator with typed attributes.
type Op interface {
	// OpType is the ONNX operator name, e.g. "Conv".
	OpType() string
	// Attributes returns the ONNX attributes in a fixed order.
	Attributes() []*onnx.AttributeProto
}

// domainOp is an Op of a domain other than the standard one (ops_native.go):
// Model writes its nodes with the domain and imports the domain's opset.
type domainOp interface {
	Domain() (name string, version int64)
}

// Node is one operator application.
type Node struct {
	Op      Op
	Inputs  []*Value
	Outputs []*Value
	name    string
}

// Name is the node's name in the ONNX graph.
func (n *Node) Name() string { return n.name }

// Graph is an ONNX graph under construction.
type Graph struct {
	name      string
	nodes     []*Node
	inputs    []*Value
	outputs   []*Value
	consts    []*Value
	constKeys map[string]*Value
	names     map[string]bool
	counters  map[string]int
	scope     []string
	// stopGradient marks values through which Gradients never propagates.
	stopGradient map[*Value]bool
	// ConvGradPlanner chooses how each convolution's gradient is built;
	// nil means DefaultConvGradPlan.
	ConvGradPlanner func(ConvShape) ConvGradPlan
	// MaxPoolGradByMask builds MaxPool's gradient from equality masks
	// instead of scattering into the indices (see MaxPool).
	MaxPoolGradByMask bool
	// requires is set while Gradients runs: the values that need a gradient.
	requires map[*Value]bool
	// mutant, when set (Mutate), replaces one op type's gradient rule by a
	// deliberately wrong one.
	mutant *mutant
}

// New returns an empty graph with the given name.
func New(name string) *Graph {
	return &Graph{
		name:         name,
		constKeys:    map[string]*Value{},
		names:        map[string]bool{},
		counters:     map[string]int{},
		stopGradient: map[*Value]bool{},
	}
}

// Name is the graph's name.
func (g *Graph) Name() string { return g.name }

// Nodes returns the nodes in build order (a topological order).
func (g *Graph) Nodes() []*Node { return g.nodes }

// Inputs returns the graph inputs in declaration order.
func (g *Graph) Inputs() []*Value { return g.inputs }

// Outputs returns the graph outputs in declaration order.
func (g *Graph) Outputs() []*Value { return g.outputs }

// PushScope prefixes the names of values and nodes built until PopScope,
// e.g. "layer1.0", so a graph reads like the model it came from.
func (g *Graph) PushScope(s string) { g.scope = append(g.scope, s) }

// PopScope undoes the last PushScope.
func (g *Graph) PopScope() {
	if len(g.scope) == 0 {
		panic("graph: PopScope without PushScope")
	}
	g.scope = g.scope[:len(g.scope)-1]
}

// WithScope runs f inside the scope s.
func (g *Graph) WithScope(s string, f func()) {
	g.PushScope(s)
	defer g.PopScope()
	f()
}

func (g *Graph) scoped(base string) string {
	prefix := strings.Join(g.scope, "/")
	if prefix != "" {
		prefix += "/"
	}
	g.counters[prefix+base]++
	name := fmt.Sprintf("%s%s_%d", prefix, base, g.counters[prefix+base])
	return name
}

func (g *Graph) claim(name string) string {
	if g.names[name] {
		panic(fmt.Sprintf("graph: name %q used twice in graph %q", name, g.name))
	}
	g.names[name] = true
	return name
}

// Input declares a graph input. Inputs are the parameters, running
// statistics and data the caller binds at run time.
func (g *Graph) Input(name string, dtype DType, shape Shape) *Value {
	v := &Value{g: g, name: g.claim(name), shape: shape.Clone(), dtype: dtype}
	g.inputs = append(g.inputs, v)
	return v
}

// Output declares v as a graph output under the given name; v is renamed
// through an Identity node when it already has another name or is a graph
// input or constant.
func (g *Graph) Output(name string, v *Value) *Value {
	g.check(v)
	switch {
	case v.name == name && v.producer != nil && !g.isOutput(v):
	case v.producer != nil && !g.isOutput(v) && !g.names[name]:
		// Rename the node output: no copy at run time.
		delete(g.names, v.name)
		v.name = g.claim(name)
	default:
		v = g.addNode(identityOp{}, []*Value{v}, []outSpec{{v.dtype, v.shape}}, name)[0]
	}
	g.outputs = append(g.outputs, v)
	return v
}

func (g *Graph) isOutput(v *Value) bool {
	for _, o := range g.outputs {
		if o == v {
			return true
		}
	}
	return false
}

// StopGradient marks v so that Gradients treats it as a constant.
func (g *Graph) StopGradient(v *Value) *Value {
	g.stopGradient[v] = true
	return v
}

func (g *Graph) check(vs ...*Value) {
	for _, v := range vs {
		if v == nil {
			panic("graph: nil value")
		}
		if v.g != g {
			panic(fmt.Sprintf("graph: value %s belongs to graph %q, not %q", v.name, v.g.name, g.name))
		}
	}
}

type outSpec struct {
	dtype DType
	shape Shape
}

// addNode appends a node. With explicit names, outputs get them; otherwise
// names are derived from the scope and op type.
func (g *Graph) addNode(op Op, inputs []*Value, outs []outSpec, names ...string) []*Value {
	g.check(inputs...)
	n := &Node{Op: op, Inputs: inputs}
	base := g.scoped(op.OpType())
	n.name = g.claim(base)
	for i, o := range outs {
		var name string
		switch {
		case i < len(names) && names[i] != "":
			name = names[i]
		case len(outs) == 1:
			name = base + ":0"
		default:
			name = fmt.Sprintf("%s:%d", base, i)
		}
		v := &Value{g: g, name: g.claim(name), shape: o.shape.Clone(), dtype: o.dtype, producer: n}
		n.Outputs = append(n.Outputs, v)
	}
	g.nodes = append(g.nodes, n)
	return n.Outputs
}

func (g *Graph) add1(op Op, inputs []*Value, dtype DType, shape Shape) *Value {
	return g.addNode(op, inputs, []outSpec{{dtype, shape}})[0]
}

// ConstFloat returns a float32 constant of the given shape, shared with any
// identical constant already in the graph.
func (g *Graph) ConstFloat(shape Shape, data []float32) *Value {
	if int64(len(data)) != shape.Size() {
		panic(fmt.Sprintf("graph: constant of shape %v needs %d values, got %d", shape, shape.Size(), len(data)))
	}
	raw := make([]byte, 4*len(data))
	for i, f := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(f))
	}
	return g.constant(Float, shape, raw, append([]float32(nil), data...))
}

// ConstInt64 returns an int64 constant of the given shape, shared with any
// identical constant already in the graph.
func (g *Graph) ConstInt64(shape Shape, data []int64) *Value {
	if int64(len(data)) != shape.Size() {
		panic(fmt.Sprintf("graph: constant of shape %v needs %d values, got %d", shape, shape.Size(), len(data)))
	}
	raw := make([]byte, 8*len(data))
	for i, x := range data {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(x))
	}
	return g.constant(Int64, shape, raw, append([]int64(nil), data...))
}

// Scalar returns a float32 constant of shape [] (broadcasts against anything).
func (g *Graph) Scalar(x float32) *Value { return g.ConstFloat(Shape{}, []float32{x}) }

// Ints returns a 1-D int64 constant, as used for shapes and axes.
func (g *Graph) Ints(xs ...int64) *Value { return g.ConstInt64(Shape{int64(len(xs))}, xs) }

func (g *Graph) constant(dtype DType, shape Shape, raw []byte, data any) *Value {
	key := fmt.Sprintf("%d|%v|%s", dtype, shape, raw)
	if v, ok := g.constKeys[key]; ok {
		return v
	}
	name := g.claim(fmt.Sprintf("const_%d", len(g.consts)+1))
	v := &Value{g: g, name: name, shape: shape.Clone(), dtype: dtype, constant: data}
	g.constKeys[key] = v
	g.consts = append(g.consts, v)
	return v
}

// Model converts the graph to an ONNX model with the pinned IR version and
// opset and the given metadata (written in sorted key order).
func (g *Graph) Model(producerVersion string, metadata map[string]string) *onnx.ModelProto {
	gp := &onnx.GraphProto{Name: g.name}
	imports := []*onnx.OperatorSetIdProto{{Domain: "", Version: Opset}}
	for _, n := range g.nodes {
		np := &onnx.NodeProto{Name: n.name, OpType: n.Op.OpType(), Attribute: n.Op.Attributes()}
		if d, ok := n.Op.(domainOp); ok {
			name, version := d.Domain()
			np.Domain = name
			if !slices.ContainsFunc(imports, func(o *onnx.OperatorSetIdProto) bool { return o.Domain == name }) {
				imports = append(imports, &onnx.OperatorSetIdProto{Domain: name, Version: version})
			}
		}
		for _, in := range n.Inputs {
			np.Input = append(np.Input, in.name)
		}
		for _, out := range n.Outputs {
			np.Output = append(np.Output, out.name)
		}
		gp.Node = append(gp.Node, np)
	}
	for _, c := range g.consts {
		gp.Initializer = append(gp.Initializer, tensorProto(c))
	}
	for _, in := range g.inputs {
		gp.Input = append(gp.Input, valueInfo(in))
	}
	for _, out := range g.outputs {
		gp.Output = append(gp.Output, valueInfo(out))
	}
	m := &onnx.ModelProto{
		IrVersion:       IRVersion,
		OpsetImport:     imports,
		ProducerName:    "simclr-ort",
		ProducerVersion: producerVersion,
		Graph:           gp,
	}
	for _, k := range sortedKeys(metadata) {
		m.MetadataProps = append(m.MetadataProps, &onnx.StringStringEntryProto{Key: k, Value: metadata[k]})
	}
	return m
}

// Marshal serialises a model deterministically: the same model always gives
// the same bytes.
func Marshal(m *onnx.ModelProto) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("graph: marshal model %q: %w", m.GetGraph().GetName(), err)
	}
	return b, nil
}

func tensorProto(c *Value) *onnx.TensorProto {
	t := &onnx.TensorProto{Name: c.name, Dims: c.shape.Clone(), DataType: int32(c.dtype)}
	switch d := c.constant.(type) {
	case []float32:
		t.FloatData = d
	case []int64:
		t.Int64Data = d
	}
	return t
}

func valueInfo(v *Value) *onnx.ValueInfoProto {
	shape := &onnx.TensorShapeProto{}
	for _, d := range v.shape {
		dim := &onnx.TensorShapeProto_Dimension{}
		if d == Dynamic {
			dim.Value = &onnx.TensorShapeProto_Dimension_DimParam{DimParam: "N"}
		} else {
			dim.Value = &onnx.TensorShapeProto_Dimension_DimValue{DimValue: d}
		}
		shape.Dim = append(shape.Dim, dim)
	}
	return &onnx.ValueInfoProto{
		Name: v.name,
		Type: &onnx.TypeProto{Value: &onnx.TypeProto_TensorType{TensorType: &onnx.TypeProto_Tensor{
			ElemType: int32(v.dtype),
			Shape:    shape,
		}}},
	}
}
