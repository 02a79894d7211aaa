package main

import (
	"github.com/simclr-ort/simclr-ort/augment/data"
	"github.com/simclr-ort/simclr-ort/runtime/ort"
	"github.com/spf13/pflag"
)

// addCUDAFlags registers the flags that tune the CUDA execution provider.
func addCUDAFlags(fs *pflag.FlagSet, c *ort.CUDAOptions, memLimitMiB *int64) {
	addCUDAFlagsTo(fs, &c.ConvAlgoSearch, &c.TF32, memLimitMiB, &c.ArenaExtend, &c.ProviderLibrary, &c.Extra)
}

// addCUDAFlagsTo registers the CUDA flags bound to the given variables.
func addCUDAFlagsTo(fs *pflag.FlagSet, algo *string, tf32 *bool, memLimitMiB *int64, arena, lib *string, extra *map[string]string) {
	fs.StringVar(algo, "cudnn-algo", "exhaustive", "cuDNN convolution algorithm search for --ep cuda: exhaustive (time them all once), heuristic or default")
	fs.BoolVar(tf32, "tf32", false, "let --ep cuda use TensorFloat-32 in float32 matrix products and convolutions (faster, 10-bit mantissa)")
	fs.Int64Var(memLimitMiB, "gpu-mem-limit", 0, "cap of the CUDA memory arena in MiB (0: none)")
	fs.StringVar(arena, "gpu-arena-extend", "next-power-of-two", "how the CUDA memory arena grows: next-power-of-two or same-as-requested")
	fs.StringVar(lib, "cuda-provider-lib", "", "libonnxruntime_providers_cuda.so (default: beside the ONNX Runtime library)")
	fs.StringToStringVar(extra, "cuda-provider-option", nil, "a further CUDA provider option as ONNX Runtime names it, key=value (repeatable); merged over the ones the other flags set")
}

// runtimeFlags are the ONNX Runtime flags of the commands that run an
// exported encoder (embed, eval).
type runtimeFlags struct {
	lib, ep, logLvl string
	device, threads int
	cuda            ort.CUDAOptions
	memLimitMiB     int64
	data            data.Options
}

// addRuntimeFlags registers --threads, --ep, --device-id, the CUDA flags
// and --ort-lib.
func addRuntimeFlags(fs *pflag.FlagSet, r *runtimeFlags) {
	fs.IntVar(&r.threads, "threads", 0, "ONNX Runtime intra-op threads (0: one per core)")
	fs.StringVar(&r.ep, "ep", "cpu", "ONNX Runtime execution provider: cpu or cuda")
	fs.IntVar(&r.device, "device-id", 0, "GPU for --ep cuda")
	addCUDAFlags(fs, &r.cuda, &r.memLimitMiB)
	fs.StringVar(&r.lib, "ort-lib", "", "ONNX Runtime shared library")
	addORTLogFlag(fs, &r.logLvl)
	addDataFlags(fs, &r.data)
}

// addDataFlags registers --jpeg-decoder and --max-image-pixels.
func addDataFlags(fs *pflag.FlagSet, o *data.Options) {
	fs.StringVar(&o.JPEGDecoder, "jpeg-decoder", data.JPEGAuto, "JPEG decoder of image folders: auto (libjpeg-turbo if libturbojpeg.so.0 loads, else Go's image/jpeg), turbo or go")
	fs.IntVar(&o.MaxImagePixels, "max-image-pixels", data.DefaultMaxImagePixels, "refuse image files whose header declares more pixels (width x height) than this, before decoding them")
}

// init loads ONNX Runtime for the chosen provider.
func (r runtimeFlags) init() error {
	return ort.InitWith(ort.InitOptions{Library: ortLibrary(r.lib), Provider: r.ep, LogLevel: r.logLvl})
}

// options are the session options the flags ask for.
func (r runtimeFlags) options() ort.Options {
	c := r.cuda
	c.MemLimit = r.memLimitMiB << 20
	return ort.Options{IntraOpThreads: r.threads, Provider: r.ep, DeviceID: r.device, CUDA: c}
}
