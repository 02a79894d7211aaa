// Package ort runs ONNX graphs on ONNX Runtime (through
// github.com/yalue/onnxruntime_go) with every input and output bound to a
// caller-owned Go []float32: parameters stay in Go buffers and are read in
// place, outputs are written in place, nothing is allocated per run.
package ort

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/simclr-ort/simclr-ort/internal/nativeop"
	onnxruntime "github.com/yalue/onnxruntime_go"
)

// LibraryEnv is the environment variable naming the ONNX Runtime shared library.
const LibraryEnv = "ONNXRUNTIME_SHARED_LIBRARY_PATH"

// DefaultLibraryDir is where `make setup` puts the library, relative to the
// repository root.
const DefaultLibraryDir = ".cache/onnxruntime"

// libraryName is the file `make setup` writes into DefaultLibraryDir.
const libraryName = "libonnxruntime.so"

// GetLibraryHelp says how to obtain the library; every load error ends with it.
const GetLibraryHelp = "get it with `make setup` (it runs tools/fetch-ort.sh, which extracts " +
	"libonnxruntime.so 1.24.1 from the npm package onnxruntime-node into .cache/onnxruntime/; " +
	"`make install` then puts it where an installed simclr-ort finds it), " +
	"or point --ort-lib or " + LibraryEnv + " at an ONNX Runtime 1.24 or newer shared library"

var (
	initOnce sync.Once
	initErr  error
	initPath string
)

// InstalledLibraryDir is where `make install` puts the library, relative
// to the directory of the installed executable (PREFIX/bin/simclr-ort
// finds PREFIX/lib/simclr-ort/libonnxruntime.so).
const InstalledLibraryDir = "../lib/simclr-ort"

// FindLibrary returns the library to load: explicit if not empty (a
// command's --ort-lib, or $ONNXRUNTIME_SHARED_LIBRARY_PATH, which commands
// read), else .cache/onnxruntime/libonnxruntime.so
// in the current directory or one of its parents, else, relative to the
// executable, beside it, in InstalledLibraryDir (an installed command) or
// in ../.cache/onnxruntime (bin/ of a checkout).
func FindLibrary(explicit string) (string, error) {
	if explicit != "" {
		return checkFile(explicit, "--ort-lib or "+LibraryEnv)
	}
	p, tried := searchUp(filepath.Join(DefaultLibraryDir, libraryName))
	if p != "" {
		return p, nil
	}
	if exe, err := os.Executable(); err == nil {
		for _, p := range []string{
			filepath.Join(filepath.Dir(exe), libraryName),
			filepath.Join(filepath.Dir(exe), InstalledLibraryDir, libraryName),
			filepath.Join(filepath.Dir(exe), "..", DefaultLibraryDir, libraryName),
		} {
			tried = append(tried, p)
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("ort: no ONNX Runtime library found (no --ort-lib or %s given, and none in %d default places, e.g. %s); %s",
		LibraryEnv, len(tried), tried[0], GetLibraryHelp)
}

// findGPULibrary is DefaultGPULibraryDir's libonnxruntime.so in the current
// directory or a parent, or "".
func findGPULibrary() string {
	p, _ := searchUp(filepath.Join(DefaultGPULibraryDir, libraryName))
	return p
}

// searchUp looks for rel in the current directory and its parents; it
// returns the first that exists ("" if none) and every path it tried.
func searchUp(rel string) (found string, tried []string) {
	wd, err := os.Getwd()
	if err != nil {
		return "", nil
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		p := filepath.Join(dir, rel)
		tried = append(tried, p)
		if _, err := os.Stat(p); err == nil {
			return p, tried
		}
		if filepath.Dir(dir) == dir {
			return "", tried
		}
	}
}

func checkFile(path, source string) (string, error) {
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("ort: ONNX Runtime library %s from %s: %w; %s", path, source, err, GetLibraryHelp)
	}
	return path, nil
}

// DefaultGPULibraryDir is where `make setup-gpu` puts an ONNX Runtime GPU
// build, relative to the repository root.
const DefaultGPULibraryDir = ".cache/onnxruntime-gpu"

// Init loads the ONNX Runtime library (see FindLibrary) and creates the
// process-wide environment. Later calls return the first call's result;
// asking for a different library afterwards is an error.
func Init(libraryPath string) error { return InitWith(InitOptions{Library: libraryPath}) }

// InitFor is Init for a provider: for "cuda", with no libraryPath, the GPU
// build that `make setup-gpu` fetched (.cache/onnxruntime-gpu in the
// current directory or a parent) comes before the CPU library.
func InitFor(libraryPath, provider string) error {
	return InitWith(InitOptions{Library: libraryPath, Provider: provider})
}

// InitOptions say which ONNX Runtime library to load and how it logs.
type InitOptions struct {
	// Library is the shared library; empty means FindLibrary's search.
	Library string
	// Provider is the execution provider the process will use ("cpu" or
	// "cuda"): for "cuda" with no Library, the GPU build that
	// `make setup-gpu` fetched comes first.
	Provider string
	// LogLevel is ONNX Runtime's log level: "error" (the default when
	// empty), "warning", "info" or "verbose". Warnings say, for example,
	// which nodes an execution provider left to the CPU.
	LogLevel string
}

// InitWith loads ONNX Runtime as o says and creates the process-wide
// environment; see Init.
func InitWith(o InitOptions) error {
	level, err := logLevel(o.LogLevel)
	if err != nil {
		return err
	}
	libraryPath := o.Library
	if libraryPath == "" && o.Provider == "cuda" {
		libraryPath = findGPULibrary()
	}
	path, err := FindLibrary(libraryPath)
	if err != nil {
		return err
	}
	initOnce.Do(func() {
		initPath = path
		onnxruntime.SetSharedLibraryPath(path)
		if err := onnxruntime.InitializeEnvironment(level); err != nil {
			initErr = fmt.Errorf("ort: load ONNX Runtime from %s: %w; %s", path, err, GetLibraryHelp)
		}
		logVerbose = o.LogLevel == "info" || o.LogLevel == "verbose" || o.LogLevel == "warning"
	})
	if initErr == nil && path != initPath {
		return fmt.Errorf("ort: ONNX Runtime already loaded from %s, cannot switch to %s in one process", initPath, path)
	}
	return initErr
}

// LogLevels are the values InitOptions.LogLevel takes.
var LogLevels = []string{"error", "warning", "info", "verbose"}

// logVerbose is set when the log level asks for more than errors: the
// package then also says what it retries.
var logVerbose bool

func logLevel(level string) (onnxruntime.EnvironmentOption, error) {
	switch level {
	case "", "error":
		return onnxruntime.WithLogLevelError(), nil
	case "warning":
		return onnxruntime.WithLogLevelWarning(), nil
	case "info":
		return onnxruntime.WithLogLevelInfo(), nil
	case "verbose":
		return onnxruntime.WithLogLevelVerbose(), nil
	}
	return nil, fmt.Errorf("ort: log level %q: use one of %s", level, strings.Join(LogLevels, ", "))
}

// Version is the loaded ONNX Runtime's version string.
func Version() string { return onnxruntime.GetVersion() }

// Binding ties a graph input or output to a caller-owned buffer. The buffer
// must hold exactly the shape's element count and stay untouched by the
// garbage collector's view for the session's life (the session keeps it
// referenced).
type Binding struct {
	Name  string
	Shape []int64
	Data  []float32
}

// Options configure a session.
type Options struct {
	// IntraOpThreads is the number of threads inside one op; 0 means ONNX
	// Runtime's default (one per core).
	IntraOpThreads int
	// ProfilePrefix, when set, makes ONNX Runtime write a JSON profile named
	// PREFIX_<date>.json when the session closes.
	ProfilePrefix string
	// DisableOptimizations turns graph optimizations off (for debugging).
	DisableOptimizations bool
	// NoArena turns ONNX Runtime's CPU memory arena off: intermediate
	// tensors are then freed back to the system allocator instead of being
	// pooled for the session's life.
	NoArena bool
	// MemPattern keeps ONNX Runtime's memory-pattern planning on for the
	// CPU provider, where it is off by default: the planned block of a
	// training step was 1.6-1.7x the memory that allocating from the arena
	// as tensors come and go takes, for no speed (ResNet18 64 px, batch 64:
	// peak RSS 1.22 GB with the pattern, 0.73 GB without; 28 px, batch 128:
	// 0.67 vs 0.43 GB; ResNet50 64 px, batch 32: 1.71 vs 1.01 GB; step
	// times equal within the noise). The CUDA provider keeps ONNX
	// Runtime's default.
	MemPattern bool
	// Provider is the execution provider: "" or "cpu", or "cuda". A CUDA
	// provider that cannot be created is an error; there is no silent
	// fallback to the CPU.
	Provider string
	// DeviceID is the GPU for the CUDA provider.
	DeviceID int
	// CUDA tunes the CUDA provider.
	CUDA CUDAOptions
	// NativeKernels registers simclr-ort's custom-op domain
	// (internal/nativeop: convolutions computed by oneDNN) on the session,
	// for graphs built with simclr.Options{Kernels: "native"}. oneDNN runs
	// IntraOpThreads OpenMP threads, and ONNX Runtime's own threads stop
	// spinning when idle so that the two pools do not fight over the cores
	// (see native.go). A graph that uses the domain without this option is
	// refused with an error that says so.
	NativeKernels bool
	// NativeThreads is oneDNN's OpenMP thread count for the native
	// kernels; 0 means IntraOpThreads (to measure other splits).
	NativeThreads int
}

// GetCUDAHelp says what the CUDA provider needs; CUDA errors end with it.
const GetCUDAHelp = "the CUDA execution provider needs an ONNX Runtime GPU build (libonnxruntime.so with " +
	"libonnxruntime_providers_shared.so and libonnxruntime_providers_cuda.so beside it; the CPU library that " +
	"`make setup` fetches has none), the CUDA runtime, cuBLAS and cuDNN libraries of the CUDA major version " +
	"that build was made for on the loader's path (LD_LIBRARY_PATH), and a GPU with its driver; " +
	"see the README's CUDA section, or use --ep cpu"

// Session is a model bound to fixed input and output buffers.
type Session struct {
	session *onnxruntime.AdvancedSession
	tensors []*onnxruntime.Tensor[float32]
	buffers [][]float32
	// native is the custom-op domain of Options.NativeKernels; it must
	// outlive session.
	native *nativeDomain
}

// NewSession creates a session for the serialised model with every input
// and output bound to the given buffers. Init must have succeeded.
func NewSession(model []byte, inputs, outputs []Binding, opts Options) (_ *Session, err error) {
	if !onnxruntime.IsInitialized() {
		return nil, errors.New("ort: NewSession before Init; call ort.Init first")
	}
	s := &Session{}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	so, err := onnxruntime.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("ort: session options: %w", err)
	}
	defer so.Destroy()
	if opts.IntraOpThreads > 0 {
		if err := so.SetIntraOpNumThreads(opts.IntraOpThreads); err != nil {
			return nil, fmt.Errorf("ort: set %d intra-op threads: %w", opts.IntraOpThreads, err)
		}
	}
	if err := so.SetInterOpNumThreads(1); err != nil {
		return nil, fmt.Errorf("ort: set inter-op threads: %w", err)
	}
	if opts.DisableOptimizations {
		if err := so.SetGraphOptimizationLevel(onnxruntime.GraphOptimizationLevelDisableAll); err != nil {
			return nil, fmt.Errorf("ort: disable optimizations: %w", err)
		}
	}
	if (opts.Provider == "" || opts.Provider == "cpu") && !opts.MemPattern {
		if err := so.SetMemPattern(false); err != nil {
			return nil, fmt.Errorf("ort: turn memory-pattern planning off: %w", err)
		}
	}
	if opts.NoArena {
		if err := so.SetCpuMemArena(false); err != nil {
			return nil, fmt.Errorf("ort: disable the CPU memory arena: %w", err)
		}
	}
	switch opts.Provider {
	case "", "cpu":
	case "cuda":
		if err := appendCUDA(so, opts.DeviceID, opts.CUDA); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("ort: unknown execution provider %q (use cpu or cuda)", opts.Provider)
	}
	if opts.NativeKernels {
		if err := addNativeKernels(s, so, opts); err != nil {
			return nil, err
		}
	} else if modelImports(model, nativeop.Domain) {
		return nil, fmt.Errorf("ort: the graph uses simclr-ort's native kernels (ops of domain %s); create the session with ort.Options{NativeKernels: true}, or build the graph with the standard ONNX kernels (simclr.Options{Kernels: \"onnx\"})", nativeop.Domain)
	}
	if opts.ProfilePrefix != "" {
		if err := so.EnableProfiling(opts.ProfilePrefix); err != nil {
			return nil, fmt.Errorf("ort: enable profiling to %s: %w", opts.ProfilePrefix, err)
		}
	}
	bind := func(bs []Binding) ([]string, []onnxruntime.Value, error) {
		names := make([]string, len(bs))
		values := make([]onnxruntime.Value, len(bs))
		for i, b := range bs {
			shape := onnxruntime.NewShape(b.Shape...)
			if int64(len(b.Data)) != shape.FlattenedSize() {
				return nil, nil, fmt.Errorf("ort: buffer for %s has %d values, shape %v needs %d", b.Name, len(b.Data), b.Shape, shape.FlattenedSize())
			}
			t, err := onnxruntime.NewTensor(shape, b.Data)
			if err != nil {
				return nil, nil, fmt.Errorf("ort: tensor for %s %v: %w", b.Name, b.Shape, err)
			}
			s.tensors = append(s.tensors, t)
			s.buffers = append(s.buffers, b.Data)
			names[i], values[i] = b.Name, t
		}
		return names, values, nil
	}
	inNames, inValues, err := bind(inputs)
	if err != nil {
		return nil, err
	}
	outNames, outValues, err := bind(outputs)
	if err != nil {
		return nil, err
	}
	s.session, err = onnxruntime.NewAdvancedSessionWithONNXData(model, inNames, outNames, inValues, outValues, so)
	if err != nil {
		if opts.Provider == "cuda" {
			return nil, fmt.Errorf("ort: create session on CUDA device %d: %w; %s", opts.DeviceID, err, cudaHint(err))
		}
		return nil, fmt.Errorf("ort: create session: %w", err)
	}
	return s, nil
}

// Run executes the graph once, reading the input buffers and writing the
// output buffers in place.
func (s *Session) Run() error {
	if err := s.session.Run(); err != nil {
		return fmt.Errorf("ort: run: %w", err)
	}
	runtime.KeepAlive(s.buffers)
	return nil
}

// Close releases the session and its tensors (and writes the profile, if
// profiling was on). The buffers stay the caller's.
func (s *Session) Close() error {
	var errs []error
	if s.session != nil {
		errs = append(errs, s.session.Destroy())
		s.session = nil
	}
	for _, t := range s.tensors {
		errs = append(errs, t.Destroy())
	}
	s.tensors = nil
	s.native.release()
	s.native = nil
	runtime.KeepAlive(s.buffers)
	s.buffers = nil
	return errors.Join(errs...)
}
