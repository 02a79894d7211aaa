// Package nativeop defines simclr-ort's custom-op domain: its name, its
// opset version and every op's inputs, outputs and attributes. It is the one
// contract between the generator, which emits these ops (gen/graph), and the
// kernels that compute them (runtime/ort: oneDNN on ONNX Runtime's CPU
// provider; cuDNN kernels on the CUDA provider are to follow under the same
// names). A graph does not change between providers; only which kernels
// exist does.
//
// Tensors are NCHW, float32 unless an op lists them in Int64; convolutions
// and poolings are 2-D with square kernels, equal strides in both
// dimensions and symmetric padding; convolutions have no bias, group 1 and
// dilation 1. Every attribute is required: an int64 (Attrs) or a float32
// (FloatAttrs).
//
// Op names never reuse a standard ONNX op's name: the generator's gradient
// rules are found by op type in one table.
package nativeop

// Domain is the ONNX operator-set domain of the ops.
const Domain = "ai.simclr_ort"

// Version is the domain's opset version the ops belong to.
const Version = 1

// Op is one operator of the domain.
type Op struct {
	// Name is the ONNX op_type.
	Name string
	// Inputs and Outputs name the tensors in order (all required).
	Inputs, Outputs []string
	// Attrs are the op's int64 attributes (all required).
	Attrs []string
	// FloatAttrs are the op's float32 attributes (all required).
	FloatAttrs []string
	// Int64 names the inputs and outputs that are int64 tensors; the
	// others are float32.
	Int64 []string
	// Doc says what the op computes.
	Doc string
}

// The ops of the domain.
var (
	// ConvForward is ONNX Conv without bias.
	ConvForward = Op{
		Name:    "ConvForward",
		Inputs:  []string{"X", "W"},
		Outputs: []string{"Y"},
		Attrs:   []string{"stride", "pad"},
		Doc: "Y[N,O,H',W'] = conv2d(X[N,C,H,W], W[O,C,k,k]), " +
			"H' = (H + 2 pad - k)/stride + 1 (as ONNX Conv with kernel_shape [k,k], strides [stride,stride], pads [pad,pad,pad,pad])",
	}
	// ConvBackwardData is the gradient of ConvForward with respect to X.
	ConvBackwardData = Op{
		Name:    "ConvBackwardData",
		Inputs:  []string{"dY", "W"},
		Outputs: []string{"dX"},
		Attrs:   []string{"stride", "pad", "input_height", "input_width"},
		Doc:     "dX[N,C,input_height,input_width] = ∂⟨dY, ConvForward(X, W)⟩/∂X for dY[N,O,H',W'], W[O,C,k,k]",
	}
	// ConvBackwardWeights is the gradient of ConvForward with respect to W.
	ConvBackwardWeights = Op{
		Name:    "ConvBackwardWeights",
		Inputs:  []string{"dY", "X"},
		Outputs: []string{"dW"},
		Attrs:   []string{"stride", "pad", "kernel"},
		Doc:     "dW[O,C,kernel,kernel] = ∂⟨dY, ConvForward(X, W)⟩/∂W for dY[N,O,H',W'], X[N,C,H,W]",
	}
)

// The max pooling pair: ONNX's MaxPool with its Indices output, and the
// gradient that scatters dY back through them.
var (
	// MaxPoolForward is ONNX MaxPool (kernel_shape [kernel,kernel],
	// strides [stride,stride], pads [pad,pad,pad,pad]) with the Indices
	// output: the flat offset into X (over N, C, H and W) of each window's
	// maximum, its first in row-major order where several are equal.
	MaxPoolForward = Op{
		Name:    "MaxPoolForward",
		Inputs:  []string{"X"},
		Outputs: []string{"Y", "Indices"},
		Attrs:   []string{"kernel", "stride", "pad"},
		Int64:   []string{"Indices"},
		Doc:     "Y[N,C,H',W'], Indices[N,C,H',W'] = MaxPool(X[N,C,H,W]), H' = (H + 2 pad - kernel)/stride + 1",
	}
	// MaxPoolBackward is the gradient of MaxPoolForward with respect to X.
	MaxPoolBackward = Op{
		Name:    "MaxPoolBackward",
		Inputs:  []string{"dY", "Indices"},
		Outputs: []string{"dX"},
		Attrs:   []string{"input_height", "input_width"},
		Int64:   []string{"Indices"},
		Doc:     "dX[N,C,input_height,input_width] = 0, then dX.flat[Indices] += dY",
	}
)

// ReLU and training-mode BatchNorm with their gradients, each gradient one
// pass (or two) over the data where the standard formulations take several.
var (
	// ReluForward is ONNX Relu.
	ReluForward = Op{
		Name:    "ReluForward",
		Inputs:  []string{"X"},
		Outputs: []string{"Y"},
		Doc:     "Y = max(X, 0)",
	}
	// ReluBackward is the gradient of ReluForward, from its output.
	ReluBackward = Op{
		Name:    "ReluBackward",
		Inputs:  []string{"dY", "Y"},
		Outputs: []string{"dX"},
		Doc:     "dX = dY where Y > 0, else 0",
	}
	// BatchNormForward is training-mode BatchNorm over N, H and W.
	BatchNormForward = Op{
		Name:       "BatchNormForward",
		Inputs:     []string{"X", "scale", "bias"},
		Outputs:    []string{"Y", "mean", "variance"},
		FloatAttrs: []string{"epsilon"},
		Doc: "mean[C], variance[C] = the batch mean and biased variance of X[N,C,H,W] per channel; " +
			"Y = scale (X - mean)/sqrt(variance + epsilon) + bias (ONNX BatchNormalization, training_mode 1, momentum 0)",
	}
	// BatchNormBackward is the gradient of BatchNormForward's Y with
	// respect to X, scale and bias.
	BatchNormBackward = Op{
		Name:       "BatchNormBackward",
		Inputs:     []string{"dY", "X", "scale", "mean", "variance"},
		Outputs:    []string{"dX", "dscale", "dbias"},
		FloatAttrs: []string{"epsilon"},
		Doc: "with x̂ = (X - mean)/sqrt(variance + epsilon), a = scale/sqrt(variance + epsilon) and M = N H W: " +
			"dbias = Σ dY, dscale = Σ dY x̂, dX = a (dY - dbias/M - x̂ dscale/M)",
	}
)

// Ops lists every op of the domain.
func Ops() []Op {
	return []Op{ConvForward, ConvBackwardData, ConvBackwardWeights, MaxPoolForward, MaxPoolBackward,
		ReluForward, ReluBackward, BatchNormForward, BatchNormBackward}
}

// IsInt64 reports whether the op's tensor name is int64.
func (o Op) IsInt64(name string) bool {
	for _, n := range o.Int64 {
		if n == name {
			return true
		}
	}
	return false
}
