package graph

import (
	"fmt"
	"slices"
)

// CPUConvAsGemm says which convolutions ConvsAsGemm rewrites for ONNX
// Runtime's CPU provider: those with a kernel larger than 1x1 whose output
// maps have at most 64 pixels (8x8 and smaller). Measured with 2 threads
// (ONNX Runtime 1.24.1), one 3x3 convolution as patches and one Gemm
// against the Conv node: 512 channels on 2x2 maps 31 vs 65 ms (batch 128),
// 256 on 2x2 16 vs 40-48 ms, 128 on 8x8 30 vs 48-50 ms, 64 on 7x7 16.5 vs
// 20.5 ms; but 64 channels on 16x16 maps 39 vs 22-25 ms, and 32x32 143 vs
// 86 ms, where the Conv node wins.
func CPUConvAsGemm(s ConvShape) bool {
	if s.Kernel <= 1 {
		return false
	}
	outH := (s.Height+2*s.Pad-s.Kernel)/s.Stride + 1
	outW := (s.Width+2*s.Pad-s.Kernel)/s.Stride + 1
	return outH*outW <= 64
}

// ConvsAsGemm rewrites every 2-D convolution of the graph that asGemm
// selects (forward and gradient alike, so call it once the gradients are
// built) as the patches of its input (im2col, by a 3-D convolution with a
// constant one-hot kernel, as WeightGradUnfold builds them) times its
// weights in one Gemm: y[n,o,h,w] = Σ W[o, c·k·k] U[c·k·k, n·h·w]. The
// convolution's output keeps its value, name and consumers; the rewrite
// changes how it is computed, not what (TestConvsAsGemm). ONNX Runtime's CPU
// convolution is slow on small maps with many channels, where one large
// Gemm is not. It returns the number of convolutions rewritten.
func (g *Graph) ConvsAsGemm(asGemm func(ConvShape) bool) int {
	nodes := g.nodes
	g.nodes = nil
	rewritten := 0
	for _, n := range nodes {
		op, ok := n.Op.(convOp)
		if !ok || n.Inputs[0].Rank() != 4 || op.kernel[0] != op.kernel[1] || op.strides[0] != op.strides[1] ||
			op.pads[0] != op.pads[1] || op.pads[0] != op.pads[2] || op.pads[0] != op.pads[3] {
			g.nodes = append(g.nodes, n)
			continue
		}
		x, w, y := n.Inputs[0], n.Inputs[1], n.Outputs[0]
		s := ConvShape{Batch: x.shape[0], InChannels: x.shape[1], OutChannels: w.shape[0], Height: x.shape[2], Width: x.shape[3],
			Kernel: op.kernel[0], Stride: op.strides[0], Pad: op.pads[0]}
		if slices.Contains(x.shape, Dynamic) || slices.Contains(w.shape, Dynamic) || !asGemm(s) {
			g.nodes = append(g.nodes, n)
			continue
		}
		g.PushScope(n.name + "/as_gemm")
		// The weight gradient unfolds the same x the same way; were the two
		// patch nodes identical, ONNX Runtime's common-subexpression
		// elimination would merge them and keep every rewritten
		// convolution's k·k-times-larger patches alive from the forward
		// pass to the backward one (measured: ResNet18 at 28 px, batch 128,
		// peak RSS 966 instead of 671 MB, for no speed). Recomputing them is
		// cheap, so the forward's patches node is made distinct.
		cols := g.patches(x, s, true)
		ym := g.Gemm(g.Reshape(w, Shape{s.OutChannels, s.InChannels * s.Kernel * s.Kernel}), cols, 1, false, false)
		g.Transpose(g.Reshape(ym, Shape{s.OutChannels, s.Batch, y.shape[2], y.shape[3]}), 1, 0, 2, 3)
		g.PopScope()
		// The last node built computes y: give it y itself, so that y's
		// name and consumers stay.
		last := g.nodes[len(g.nodes)-1]
		if !last.Outputs[0].shape.Equal(y.shape) {
			panic(fmt.Sprintf("graph: ConvsAsGemm of %s built %v, want %v", n.name, last.Outputs[0].shape, y.shape))
		}
		last.Outputs[0] = y
		y.producer = last
		rewritten++
	}
	return rewritten
}

// patches returns the im2col matrix U [Cin·k·k, N·H'·W'] of a 2-D
// convolution's input x: U[ci·k·k + i·k + j, n·H'·W' + h·W' + w] =
// xpad[n, ci, h·s+i, w·s+j], by a 3-D convolution of x (as [Cin,1,N,H,W])
// with a one-hot kernel. distinct writes that convolution with explicit
// unit dilations (see convOp.unitDilations).
func (g *Graph) patches(x *Value, s ConvShape, distinct bool) *Value {
	k := s.Kernel
	x5 := g.Reshape(g.Transpose(x, 1, 0, 2, 3), Shape{s.InChannels, 1, s.Batch, s.Height, s.Width})
	eye := make([]float32, k*k*k*k)
	for i := int64(0); i < k; i++ {
		for j := int64(0); j < k; j++ {
			eye[(i*k+j)*k*k+i*k+j] = 1
		}
	}
	kernel := g.ConstFloat(Shape{k * k, 1, 1, k, k}, eye)
	p := s.Pad
	u := g.Conv(x5, kernel, ConvAttrs{Strides: []int64{1, s.Stride, s.Stride}, Pads: []int64{0, p, p, 0, p, p}})
	if distinct {
		op := u.producer.Op.(convOp)
		op.unitDilations = true
		u.producer.Op = op
	}
	return g.Reshape(u, Shape{s.InChannels * k * k, u.shape[2] * u.shape[3] * u.shape[4]})
}
