package graph

import (
	"fmt"

	onnx "github.com/simclr-ort/simclr-ort/onnxpb"
)

type batchNormOp struct {
	epsilon  float32
	training bool
}

func (o batchNormOp) OpType() string { return "BatchNormalization" }
func (o batchNormOp) Attributes() []*onnx.AttributeProto {
	attrs := []*onnx.AttributeProto{attrFloat("epsilon", o.epsilon)}
	if o.training {
		// Momentum 0 makes the running-statistics outputs the batch mean and
		// the biased batch variance, which the gradient needs; the model
		// updates the real running statistics itself.
		attrs = append(attrs, attrFloat("momentum", 0), attrInt("training_mode", 1))
	}
	return attrs
}

func checkChannels(op string, x *Value, perChannel ...*Value) int64 {
	if x.Rank() < 2 {
		panic(fmt.Sprintf("graph: %s of %v needs [N,C,...]", op, x.shape))
	}
	c := x.shape[1]
	for _, v := range perChannel {
		if !v.shape.Equal(Shape{c}) {
			panic(fmt.Sprintf("graph: %s of %v needs per-channel tensors of shape [%d], got %s %v", op, x.shape, c, v.name, v.shape))
		}
	}
	return c
}

// BatchNormTrain normalises x [N,C,...] with its own batch statistics (ONNX
// BatchNormalization in training mode) and returns y = scale·x̂ + bias, the
// batch mean and the biased batch variance (both [C]).
func (g *Graph) BatchNormTrain(x, scale, bias *Value, epsilon float32) (y, mean, variance *Value) {
	g.check(x, scale, bias)
	c := checkChannels("BatchNormTrain", x, scale, bias)
	// The running-statistic inputs are ignored (momentum 0) but ONNX Runtime
	// may reuse their buffers for the outputs, so they are made at run time
	// rather than shared constants that other nodes also read.
	zeros := g.Fill(Shape{c}, 0)
	onesC := g.Fill(Shape{c}, 1)
	outs := g.addNode(batchNormOp{epsilon: epsilon, training: true}, []*Value{x, scale, bias, zeros, onesC},
		[]outSpec{{Float, x.shape}, {Float, Shape{c}}, {Float, Shape{c}}})
	return outs[0], outs[1], outs[2]
}

// BatchNormEval normalises x with given statistics: scale·(x-mean)/√(var+ε) + bias.
func (g *Graph) BatchNormEval(x, scale, bias, mean, variance *Value, epsilon float32) *Value {
	g.check(x, scale, bias, mean, variance)
	checkChannels("BatchNormEval", x, scale, bias, mean, variance)
	return g.add1(batchNormOp{epsilon: epsilon}, []*Value{x, scale, bias, mean, variance}, Float, x.shape)
}

func fill32(n int, v float32) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = v
	}
	return s
}

func batchNormVJP(g *Graph, n *Node, d []*Value) []*Value {
	op := n.Op.(batchNormOp)
	if !op.training {
		// Eval mode: y = a·x + b per channel, with mean and variance fixed.
		x, scale, mean, variance := n.Inputs[0], n.Inputs[1], n.Inputs[3], n.Inputs[4]
		if g.needsGrad(n.Inputs[1]) || g.needsGrad(n.Inputs[2]) || g.needsGrad(mean) || g.needsGrad(variance) {
			panic("graph: eval-mode BatchNormalization is differentiable only in its input x")
		}
		c := x.shape[1]
		invStd := g.Reciprocal(g.Sqrt(g.Add(variance, g.Scalar(op.epsilon))))
		a := g.Reshape(g.Mul(scale, invStd), channelShape(x.Rank(), c))
		return []*Value{g.Mul(d[0], a), nil, nil, nil, nil}
	}
	if d[1] != nil || d[2] != nil {
		panic("graph: gradients through BatchNormalization's batch statistics are not supported; update running statistics outside the loss")
	}
	x, scale := n.Inputs[0], n.Inputs[1]
	mean, variance := n.Outputs[1], n.Outputs[2]
	dy := d[0]
	c := x.shape[1]
	count := x.shape.Size() / c
	axes := []int64{0}
	for i := 2; i < x.Rank(); i++ {
		axes = append(axes, int64(i))
	}
	// x̂ by an eval-mode BatchNormalization with unit scale: one fused pass.
	onesC := g.ConstFloat(Shape{c}, fill32(int(c), 1))
	zeros := g.ConstFloat(Shape{c}, make([]float32, c))
	xhat := g.BatchNormEval(x, onesC, zeros, mean, variance, op.epsilon)
	dBias := g.ReduceSum(dy, axes, false)
	dScale := g.ReduceSum(g.Mul(dy, xhat), axes, false)
	var dx *Value
	if g.needsGrad(x) {
		// dx = a·(dy - mean(dy) - x̂·mean(dy·x̂)), a = scale/√(var+ε),
		//    = a·dy + (-a·dScale/M)·x̂ + (-a·dBias/M), the last two terms again
		// one eval-mode BatchNormalization of x.
		invStd := g.Reciprocal(g.Sqrt(g.Add(variance, g.Scalar(op.epsilon))))
		a := g.Mul(scale, invStd)
		negAOverM := g.Mul(a, g.Scalar(-1/float32(count)))
		coefXhat := g.Mul(negAOverM, dScale)
		coefConst := g.Mul(negAOverM, dBias)
		dx = g.Add(g.Mul(dy, g.Reshape(a, channelShape(x.Rank(), c))),
			g.BatchNormEval(x, coefXhat, coefConst, mean, variance, op.epsilon))
	}
	return []*Value{dx, dScale, dBias, nil, nil}
}

func channelShape(rank int, c int64) Shape {
	s := make(Shape, rank)
	for i := range s {
		s[i] = 1
	}
	s[1] = c
	return s
}

func init() { registerVJP("BatchNormalization", batchNormVJP) }
