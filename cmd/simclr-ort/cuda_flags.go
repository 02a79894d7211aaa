package main

import (
	"fmt"
	"strconv"

	"github.com/simclr-ort/simclr-ort/runtime/ort"
	"github.com/spf13/pflag"
)

// addCUDAFlags registers the flags that tune the CUDA execution provider.
func addCUDAFlags(fs *pflag.FlagSet, c *ort.CUDAOptions) {
	fs.StringVar(&c.ConvAlgoSearch, "cudnn-algo", "exhaustive", "cuDNN convolution algorithm search for --ep cuda: exhaustive (time them all once), heuristic or default")
	fs.BoolVar(&c.TF32, "tf32", false, "let --ep cuda use TensorFloat-32 in float32 matrix products and convolutions (faster, 10-bit mantissa)")
	fs.Var((*mebibytes)(&c.MemLimit), "gpu-mem-limit", "cap of the CUDA memory arena in MiB (0: none)")
	fs.StringVar(&c.ArenaExtend, "gpu-arena-extend", "next-power-of-two", "how the CUDA memory arena grows: next-power-of-two or same-as-requested")
	fs.StringVar(&c.ProviderLibrary, "cuda-provider-lib", "", "libonnxruntime_providers_cuda.so (default: beside the ONNX Runtime library)")
}

// mebibytes is a byte count given on the command line in MiB.
type mebibytes int64

func (m *mebibytes) String() string { return strconv.FormatInt(int64(*m)>>20, 10) }
func (m *mebibytes) Type() string   { return "MiB" }
func (m *mebibytes) Set(s string) error {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return fmt.Errorf("want a whole number of MiB, got %q", s)
	}
	*m = mebibytes(v << 20)
	return nil
}
