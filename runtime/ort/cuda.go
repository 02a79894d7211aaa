package ort

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	onnxruntime "github.com/yalue/onnxruntime_go"
)

// CUDAOptions tune the CUDA execution provider. The zero value is ONNX
// Runtime's defaults except TF32, which stays off unless asked for.
type CUDAOptions struct {
	// ConvAlgoSearch picks cuDNN's convolution algorithms: "exhaustive"
	// (time every algorithm once per shape; ONNX Runtime's default and the
	// fastest steps after a slower first one), "heuristic" (cuDNN's guess)
	// or "default" (the first algorithm). Empty means exhaustive.
	ConvAlgoSearch string
	// TF32 lets cuBLAS and cuDNN use TensorFloat-32 (10-bit mantissa)
	// for float32 products: faster on Ampere and newer, less exact.
	TF32 bool
	// MemLimit caps the provider's memory arena in bytes; 0 means no cap.
	MemLimit int64
	// ArenaExtend is how the arena grows: "next-power-of-two" (ONNX
	// Runtime's default) or "same-as-requested" (less slack).
	ArenaExtend string
	// ProviderLibrary is libonnxruntime_providers_cuda.so for ONNX Runtime
	// builds that ship the provider as a separate library; empty means the
	// one beside the loaded libonnxruntime.so.
	ProviderLibrary string
	// Extra are further CUDA provider options (ONNX Runtime's keys, e.g.
	// "cudnn_conv1d_pad_to_nc1d": "1"), merged over the ones the fields
	// above set.
	Extra map[string]string
}

// providerOptions are the CUDA provider's option keys and values.
func (c CUDAOptions) providerOptions(device int) (map[string]string, error) {
	algo := map[string]string{"": "EXHAUSTIVE", "exhaustive": "EXHAUSTIVE", "heuristic": "HEURISTIC", "default": "DEFAULT"}[c.ConvAlgoSearch]
	if algo == "" {
		return nil, fmt.Errorf("ort: cuDNN algorithm search %q: use exhaustive, heuristic or default", c.ConvAlgoSearch)
	}
	arena := map[string]string{"": "kNextPowerOfTwo", "next-power-of-two": "kNextPowerOfTwo", "same-as-requested": "kSameAsRequested"}[c.ArenaExtend]
	if arena == "" {
		return nil, fmt.Errorf("ort: arena growth %q: use next-power-of-two or same-as-requested", c.ArenaExtend)
	}
	tf32 := "0"
	if c.TF32 {
		tf32 = "1"
	}
	o := map[string]string{
		"device_id":              fmt.Sprint(device),
		"cudnn_conv_algo_search": algo,
		"use_tf32":               tf32,
		"arena_extend_strategy":  arena,
		// Convolutions may use as much workspace as the fastest algorithm
		// wants (ONNX Runtime's default since 1.14, said explicitly).
		"cudnn_conv_use_max_workspace": "1",
	}
	if c.MemLimit > 0 {
		o["gpu_mem_limit"] = fmt.Sprint(c.MemLimit)
	}
	for k, v := range c.Extra {
		if k == "" {
			return nil, fmt.Errorf("ort: a CUDA provider option with an empty key (=%q)", v)
		}
		o[k] = v
	}
	return o, nil
}

// ProviderLibraryName is the CUDA provider's library in ONNX Runtime GPU builds.
const ProviderLibraryName = "libonnxruntime_providers_cuda.so"

var (
	pluginOnce sync.Once
	pluginErr  error
)

// appendCUDA adds the CUDA provider for one GPU: the provider built into
// the core library where it has one (official GPU releases), else the
// provider library registered as a plugin (ONNX Runtime 1.22+, e.g. the
// builds `make setup-gpu` fetches).
func appendCUDA(so *onnxruntime.SessionOptions, device int, c CUDAOptions) error {
	options, err := c.providerOptions(device)
	if err != nil {
		return err
	}
	builtinErr := appendBuiltinCUDA(so, options)
	if builtinErr == nil {
		return nil
	}
	d, err := cudaPluginDevice(device, c.ProviderLibrary)
	if err == nil {
		err = appendEpDevice(so, d, options)
		if err != nil {
			// The device already names the GPU; a provider that refuses
			// device_id beside it gets the options without it.
			without := maps.Clone(options)
			delete(without, "device_id")
			if logVerbose {
				fmt.Fprintf(os.Stderr, "ort: appending the CUDA provider with %v failed (%v); trying without device_id\n", options, err)
			}
			if err2 := appendEpDevice(so, d, without); err2 == nil {
				err = nil
			} else {
				err = errors.Join(err, err2)
			}
		}
	}
	if err != nil {
		err = fmt.Errorf("ort: no CUDA execution provider on device %d (built into the core library: %v; as a provider library: %w)", device, builtinErr, err)
		return fmt.Errorf("%w; %s", err, cudaHint(err))
	}
	return nil
}

// appendBuiltinCUDA appends the CUDA provider of a core library built with
// it (ONNX Runtime's own GPU releases).
func appendBuiltinCUDA(so *onnxruntime.SessionOptions, options map[string]string) error {
	builtin, err := onnxruntime.NewCUDAProviderOptions()
	if err != nil {
		return err
	}
	defer builtin.Destroy()
	if err := builtin.Update(options); err != nil {
		return err
	}
	return so.AppendExecutionProviderCUDA(builtin)
}

// cudaPluginDevice registers the CUDA provider library once and returns
// its device for the GPU with the given index.
func cudaPluginDevice(device int, library string) (epDevice, error) {
	if library == "" {
		library = filepath.Join(filepath.Dir(initPath), ProviderLibraryName)
	}
	pluginOnce.Do(func() {
		if _, err := os.Stat(library); err != nil {
			pluginErr = fmt.Errorf("provider library: %w", err)
			return
		}
		if err := onnxruntime.RegisterExecutionProviderLibrary("CUDA", library); err != nil {
			pluginErr = fmt.Errorf("register %s: %w", library, err)
		}
	})
	if pluginErr != nil {
		return epDevice{}, pluginErr
	}
	all, err := epDevices()
	if err != nil {
		return epDevice{}, err
	}
	var gpus []epDevice
	for _, d := range all {
		if d.Provider == "CUDAExecutionProvider" {
			gpus = append(gpus, d)
		}
	}
	for _, d := range gpus {
		if d.DeviceID == fmt.Sprint(device) {
			return d, nil
		}
	}
	if device >= 0 && device < len(gpus) && gpus[device].DeviceID == "" {
		return gpus[device], nil
	}
	return epDevice{}, fmt.Errorf("%s offers %d CUDA devices, none with device id %d (is the NVIDIA driver loaded? nvidia-smi lists the GPUs)", library, len(gpus), device)
}

// missingLibrary finds "libX.so.N: cannot open shared object file" in a
// loader error.
var missingLibrary = regexp.MustCompile(`(lib[A-Za-z0-9_+-]+\.so[.0-9]*): cannot open shared object file`)

// cudaHint says what to install for an error of the CUDA provider.
func cudaHint(err error) string {
	m := missingLibrary.FindStringSubmatch(err.Error())
	if m == nil {
		if strings.Contains(err.Error(), "cudnn") || strings.Contains(err.Error(), "CUDNN") {
			return "cuDNN 9 for CUDA 13 must be on LD_LIBRARY_PATH; " + GetCUDAHelp
		}
		return GetCUDAHelp
	}
	lib := m[1]
	what := "a library the CUDA provider needs"
	switch {
	case strings.HasPrefix(lib, "libcuda.so"):
		what = "the NVIDIA driver's library (install the driver; a machine without a GPU cannot use --ep cuda)"
	case strings.HasPrefix(lib, "libcudart"):
		what = "the CUDA runtime (CUDA toolkit, or the nvidia-cuda-runtime pip wheel's lib folder)"
	case strings.HasPrefix(lib, "libcublas"):
		what = "cuBLAS (CUDA toolkit, or the nvidia-cublas pip wheel's lib folder)"
	case strings.HasPrefix(lib, "libcurand"):
		what = "cuRAND (CUDA toolkit, or the nvidia-curand pip wheel's lib folder)"
	case strings.HasPrefix(lib, "libcufft"):
		what = "cuFFT (CUDA toolkit, or the nvidia-cufft pip wheel's lib folder)"
	case strings.HasPrefix(lib, "libcudnn"):
		what = "cuDNN 9 (the nvidia-cudnn pip wheel's lib folder, or NVIDIA's cuDNN packages)"
	case strings.HasPrefix(lib, "libonnxruntime_providers_shared"):
		what = "ONNX Runtime's provider bridge, which ships beside libonnxruntime.so"
	}
	return fmt.Sprintf("%s is missing: %s; add its folder to LD_LIBRARY_PATH (the README's CUDA section shows how); %s", lib, what, GetCUDAHelp)
}

// IsOutOfMemory reports whether an error from a run or a session is the
// device (or host) running out of memory.
func IsOutOfMemory(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	for _, m := range []string{"out of memory", "Failed to allocate memory", "CUDNN_STATUS_ALLOC_FAILED",
		"cudaErrorMemoryAllocation", "CUBLAS_STATUS_ALLOC_FAILED", "bad_alloc", "Available memory of"} {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}
