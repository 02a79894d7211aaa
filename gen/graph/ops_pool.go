package graph

import (
	onnx "github.com/simclr-ort/simclr-ort/onnxpb"
)

type maxPoolOp struct {
	kernel, strides, pads []int64
}

func (o maxPoolOp) OpType() string { return "MaxPool" }
func (o maxPoolOp) Attributes() []*onnx.AttributeProto {
	return []*onnx.AttributeProto{attrInts("kernel_shape", o.kernel), attrInts("pads", o.pads), attrInts("strides", o.strides)}
}

// MaxPool is 2-D max pooling with a square kernel. With indices it also
// returns the flat position of each maximum, from which its gradient is
// scattered; without (or with Graph.MaxPoolGradByMask), its gradient gives
// dy to every window element equal to the window's maximum: the same where
// the maximum is unique, and where it is not (the zeros a ReLU before the
// pooling leaves), the ReLU's gradient zeroes those elements anyway. The
// mask form exists for the CUDA provider, whose ScatterElements with
// reduction fails (ONNX Runtime 1.29).
func (g *Graph) MaxPool(x *Value, kernel, stride, pad int64, withIndices bool) *Value {
	g.check(x)
	op := maxPoolOp{kernel: []int64{kernel, kernel}, strides: []int64{stride, stride}, pads: []int64{pad, pad, pad, pad}}
	out := Shape{x.shape[0], x.shape[1]}
	for i := range 2 {
		out = append(out, (x.shape[2+i]+2*pad-kernel)/stride+1)
	}
	outs := []outSpec{{Float, out}}
	if withIndices {
		outs = append(outs, outSpec{Int64, out})
	}
	return g.addNode(op, []*Value{x}, outs)[0]
}

type scatterAddOp struct{}

func (scatterAddOp) OpType() string { return "ScatterElements" }
func (scatterAddOp) Attributes() []*onnx.AttributeProto {
	return []*onnx.AttributeProto{attrInt("axis", 0), attrString("reduction", "add")}
}

func init() {
	registerVJP("MaxPool", func(g *Graph, n *Node, d []*Value) []*Value {
		if len(n.Outputs) < 2 || g.MaxPoolGradByMask {
			return []*Value{g.maxPoolGradByMask(n, d[0])}
		}
		// ONNX's indices are flat offsets into x (over N, C, H and W), so
		// scattering dy onto zeros with addition is the exact gradient.
		x, idx := n.Inputs[0], n.Outputs[1]
		size := x.shape.Size()
		flat := g.add1(scatterAddOp{}, []*Value{
			g.Fill(Shape{size}, 0),
			g.Reshape(idx, Shape{idx.shape.Size()}),
			g.Reshape(d[0], Shape{d[0].shape.Size()}),
		}, Float, Shape{size})
		return []*Value{g.Reshape(flat, x.shape)}
	})
}

// maxPoolGradByMask places y and dy back on x's grid once per kernel
// position (a ConvTranspose with a one-hot kernel per output channel: k*k
// channels, channel i*k+j holding the windows' values at offset (i, j)),
// keeps dy where x equals the window's maximum and sums the k*k channels.
func (g *Graph) maxPoolGradByMask(n *Node, dy *Value) *Value {
	op := n.Op.(maxPoolOp)
	x, y := n.Inputs[0], n.Outputs[0]
	k, s := op.kernel[0], op.strides[0]
	nc, h, w := x.shape[0]*x.shape[1], x.shape[2], x.shape[3]
	oneHot := make([]float32, k*k*k*k)
	for c := int64(0); c < k*k; c++ {
		oneHot[c*k*k+c] = 1
	}
	kernel := g.ConstFloat(Shape{1, k * k, k, k}, oneHot)
	place := func(v *Value) *Value {
		v = g.Reshape(v, Shape{nc, 1, y.shape[2], y.shape[3]})
		return g.ConvTranspose(v, kernel, []int64{s, s}, op.pads, h, w)
	}
	isMax := g.Equal(place(y), g.Reshape(x, Shape{nc, 1, h, w}))
	dx := g.ReduceSum(g.Where(isMax, place(dy), g.ConstFloat(Shape{1}, []float32{0})), []int64{1}, false)
	return g.Reshape(dx, x.shape)
}

// MaxPoolIndices is the indices output of the MaxPool (or NativeMaxPool) that computed y
// (flat offsets into its input, as ONNX defines them), or nil when y is not
// the output of a MaxPool built with indices.
func MaxPoolIndices(y *Value) *Value {
	n := y.producer
	if n == nil || n.Outputs[0] != y || len(n.Outputs) < 2 {
		return nil
	}
	switch n.Op.(type) {
	case maxPoolOp, nativeMaxPoolOp:
		return n.Outputs[1]
	}
	return nil
}
