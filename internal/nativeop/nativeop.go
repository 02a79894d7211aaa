// Package nativeop defines simclr-ort's custom-op domain: its name, its
// opset version and every op's inputs, outputs and attributes. It is the one
// contract between the generator, which emits these ops (gen/graph), and the
// kernels that compute them (runtime/ort: oneDNN on ONNX Runtime's CPU
// provider; cuDNN kernels on the CUDA provider are to follow under the same
// names). A graph does not change between providers; only which kernels
// exist does.
//
// Tensors are float32 and NCHW in and out; convolutions are 2-D with square
// kernels, equal strides in both dimensions, symmetric padding, no bias,
// group 1 and dilation 1. Every attribute is a required int64.
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

// Ops lists every op of the domain.
func Ops() []Op { return []Op{ConvForward, ConvBackwardData, ConvBackwardWeights} }
