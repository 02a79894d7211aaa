package ort

// Native kernels: simclr-ort's custom-op domain (internal/nativeop),
// registered on a session through ONNX Runtime's custom-op C API
// (CreateCustomOpDomain, CustomOpDomain_Add, AddCustomOpDomain) and computed
// in C by oneDNN (native.c). oneDNN is opened at run time (dlopen of
// libdnnl.so.2, Debian's libdnnl2, which python3-torch installs), so
// simclr-ort builds and runs without it; without it, NewSession with
// Options.NativeKernels fails saying what to install, and the standard-op
// graphs still run.

/*
#cgo CFLAGS: -O3
#cgo LDFLAGS: -ldl -lpthread -lm
#include <stdlib.h>
#include "native.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"github.com/simclr-ort/simclr-ort/internal/nativeop"
	onnxruntime "github.com/yalue/onnxruntime_go"
	"google.golang.org/protobuf/encoding/protowire"
)

// DNNLLibrary is the oneDNN library the native kernels open.
const DNNLLibrary = "libdnnl.so.2"

// DNNLInstallHint says how to get oneDNN; every error about loading it ends
// with it.
const DNNLInstallHint = "the native kernels need oneDNN 2.x (Debian/Ubuntu: sudo apt-get install libdnnl2, " +
	"which python3-torch also installs); without it, build the graphs with the standard ONNX kernels " +
	"(simclr.Options{Kernels: \"onnx\"}, the default)"

var (
	nativeOnce sync.Once
	nativeErr  error
)

// LoadNativeKernels opens oneDNN for the native kernels and reports whether
// they can run; later calls return the first call's result. Init must have
// succeeded.
func LoadNativeKernels() error {
	if !onnxruntime.IsInitialized() {
		return errors.New("ort: LoadNativeKernels before Init; call ort.Init first")
	}
	nativeOnce.Do(func() {
		ortPath := C.CString(initPath)
		defer C.free(unsafe.Pointer(ortPath))
		dnnl := C.CString(DNNLLibrary)
		defer C.free(unsafe.Pointer(dnnl))
		if msg := C.simclr_native_load(ortPath, dnnl); msg != nil {
			nativeErr = fmt.Errorf("ort: native kernels unavailable: %s; %s", C.GoString(msg), DNNLInstallHint)
		}
	})
	return nativeErr
}

// NativeKernelsInfo says which native kernels run, for the training log:
// the oneDNN library, its CPU runtime and instruction set, the ops of the
// domain, and the oneDNN implementations the kernels have chosen so far
// (known once a session has run). It returns the load error when oneDNN is
// not available.
func NativeKernelsInfo() (string, error) {
	if err := LoadNativeKernels(); err != nil {
		return "", err
	}
	names := make([]string, 0, len(nativeop.Ops()))
	for _, op := range nativeop.Ops() {
		names = append(names, op.Name)
	}
	info := fmt.Sprintf("%s domain %s v%d on CPUExecutionProvider: %s", C.GoString(C.simclr_native_version()),
		nativeop.Domain, nativeop.Version, strings.Join(names, ", "))
	var buf [1024]C.char
	C.simclr_native_implementations(&buf[0], C.size_t(len(buf)))
	if impls := C.GoString(&buf[0]); impls != "" {
		info += "; oneDNN implementations: " + impls
	}
	return info, nil
}

// nativeDomain is the custom-op domain registered on one session's options:
// it must outlive the session, which Session.Close sees to.
type nativeDomain struct {
	domain *C.OrtCustomOpDomain
	ops    []*C.simclr_op
}

// registerNative adds the domain, with a CPU kernel for every op of
// internal/nativeop, to the session options. threads is oneDNN's OpenMP
// thread count (0: OpenMP's default).
func registerNative(so *onnxruntime.SessionOptions, threads int) (_ *nativeDomain, err error) {
	if err := LoadNativeKernels(); err != nil {
		return nil, err
	}
	cso, err := sessionOptionsPointer(so)
	if err != nil {
		return nil, err
	}
	d := &nativeDomain{}
	defer func() {
		if err != nil {
			d.release()
		}
	}()
	name := C.CString(nativeop.Domain)
	defer C.free(unsafe.Pointer(name))
	if err := nativeStatus(C.simclr_native_create_domain(name, &d.domain)); err != nil {
		return nil, fmt.Errorf("ort: create custom-op domain %s: %w", nativeop.Domain, err)
	}
	for _, def := range nativeop.Ops() {
		op, err := nativeOp(def, threads)
		if err != nil {
			return nil, err
		}
		d.ops = append(d.ops, op)
		if err := nativeStatus(C.simclr_native_domain_add(d.domain, op)); err != nil {
			return nil, fmt.Errorf("ort: add %s to custom-op domain %s: %w", def.Name, nativeop.Domain, err)
		}
	}
	if err := nativeStatus(C.simclr_native_add_domain(cso, d.domain)); err != nil {
		return nil, fmt.Errorf("ort: add custom-op domain %s to the session options: %w", nativeop.Domain, err)
	}
	return d, nil
}

// nativeOp makes the CPU kernel of one op and checks that it implements the
// op as internal/nativeop defines it.
func nativeOp(def nativeop.Op, threads int) (*C.simclr_op, error) {
	name := C.CString(def.Name)
	defer C.free(unsafe.Pointer(name))
	op := C.simclr_native_op(name, C.int(threads))
	if op == nil {
		return nil, fmt.Errorf("ort: no CPU kernel for %s.%s in native.c", nativeop.Domain, def.Name)
	}
	attrs := make([]string, int(C.simclr_native_op_attrs(op)))
	for i := range attrs {
		attrs[i] = C.GoString(C.simclr_native_op_attr(op, C.int(i)))
	}
	floatAttrs := make([]string, int(C.simclr_native_op_float_attrs(op)))
	for i := range floatAttrs {
		floatAttrs[i] = C.GoString(C.simclr_native_op_float_attr(op, C.int(i)))
	}
	types := func(n int, typ func(int) C.int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = map[C.int]string{C.simclr_ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: "float32", C.simclr_ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: "int64"}[typ(i)]
		}
		return out
	}
	want := func(names []string) []string {
		out := make([]string, len(names))
		for i, n := range names {
			out[i] = "float32"
			if def.IsInt64(n) {
				out[i] = "int64"
			}
		}
		return out
	}
	ins := types(int(C.simclr_native_op_inputs(op)), func(i int) C.int { return C.simclr_native_op_input_type(op, C.int(i)) })
	outs := types(int(C.simclr_native_op_outputs(op)), func(i int) C.int { return C.simclr_native_op_output_type(op, C.int(i)) })
	if !slices.Equal(ins, want(def.Inputs)) || !slices.Equal(outs, want(def.Outputs)) || !slices.Equal(attrs, def.Attrs) ||
		!slices.Equal(floatAttrs, def.FloatAttrs) {
		C.simclr_native_op_free(op)
		return nil, fmt.Errorf("ort: the CPU kernel of %s takes inputs %v, outputs %v and attributes %v and %v; internal/nativeop defines %v, %v, %v and %v",
			def.Name, ins, outs, attrs, floatAttrs, want(def.Inputs), want(def.Outputs), def.Attrs, def.FloatAttrs)
	}
	return op, nil
}

// release frees the domain and its ops; the sessions that used them must
// be gone.
func (d *nativeDomain) release() {
	if d == nil {
		return
	}
	if d.domain != nil {
		C.simclr_native_release_domain(d.domain)
		d.domain = nil
	}
	for _, op := range d.ops {
		C.simclr_native_op_free(op)
	}
	d.ops = nil
}

func nativeStatus(s *C.OrtStatus) error {
	if s == nil {
		return nil
	}
	var buf [1024]C.char
	C.simclr_native_status_message(s, &buf[0], C.size_t(len(buf)))
	return errors.New(C.GoString(&buf[0]))
}

// modelImports reports whether a serialised ONNX model imports the opset of
// domain. It reads only the model's top-level opset_import fields
// (ModelProto field 8, OperatorSetIdProto.domain field 1) and skips the
// graph, so it costs nothing next to creating the session.
func modelImports(model []byte, domain string) bool {
	for b := model; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		if num == 8 && typ == protowire.BytesType {
			set, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return false
			}
			for s := set; len(s) > 0; {
				fnum, ftyp, k := protowire.ConsumeTag(s)
				if k < 0 {
					break
				}
				s = s[k:]
				if fnum == 1 && ftyp == protowire.BytesType {
					v, j := protowire.ConsumeBytes(s)
					if j >= 0 && string(v) == domain {
						return true
					}
				}
				k = protowire.ConsumeFieldValue(fnum, ftyp, s)
				if k < 0 {
					break
				}
				s = s[k:]
			}
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return false
		}
		b = b[m:]
	}
	return false
}

// addNativeKernels registers the domain for NewSession (Options.NativeKernels)
// and makes ONNX Runtime's intra-op threads sleep instead of spinning when
// they run out of work: while a oneDNN kernel runs, its OpenMP threads need
// the cores that ONNX Runtime's idle threads would otherwise spin on. The
// kernels of our own (pooling, ReLU, BatchNorm) run on ONNX Runtime's pool
// (KernelContext_ParallelFor), the convolutions on oneDNN's OpenMP pool with
// IntraOpThreads threads (omp_set_num_threads on the calling thread before
// each oneDNN call), so one pool works at a time. Measured with 2 threads on
// the 2-core machine (shared, load average 9-10; medians of 5 steps, 3
// alternating rounds), ResNet18 28 px batch 128: spinning off 0.53-0.59 s
// per step (CPU 0.42-0.44 s), spinning on 0.91-3.5 s (CPU 0.65-2.5 s: the
// idle pool spun against oneDNN's); CIFAR stem 32 px batch 64: 3.3-5.1 s
// against 5.6-7.9 s. One OpenMP thread instead of two was within the noise
// of that machine (0.45-0.65 s), so oneDNN gets the same thread count as
// ONNX Runtime.
func addNativeKernels(s *Session, so *onnxruntime.SessionOptions, opts Options) error {
	if opts.Provider != "" && opts.Provider != "cpu" {
		return fmt.Errorf("ort: native kernels exist for the CPU provider only, not %s; build the graph with the standard ONNX kernels (simclr.Options{Kernels: \"onnx\"})", opts.Provider)
	}
	if err := so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0"); err != nil {
		return fmt.Errorf("ort: turn intra-op spinning off: %w", err)
	}
	threads := opts.NativeThreads
	if threads == 0 {
		threads = opts.IntraOpThreads
	}
	d, err := registerNative(so, threads)
	if err != nil {
		return err
	}
	s.native = d
	return nil
}

// nativeAPIPositions are the OrtApi positions native.h declares, by name
// (for TestNativeDeclarationsORT).
func nativeAPIPositions() map[string]int {
	return map[string]int{
		"CreateStatus":                  C.simclr_ort_CreateStatus,
		"GetErrorMessage":               C.simclr_ort_GetErrorMessage,
		"CreateCustomOpDomain":          C.simclr_ort_CreateCustomOpDomain,
		"CustomOpDomain_Add":            C.simclr_ort_CustomOpDomain_Add,
		"AddCustomOpDomain":             C.simclr_ort_AddCustomOpDomain,
		"GetTensorMutableData":          C.simclr_ort_GetTensorMutableData,
		"GetDimensionsCount":            C.simclr_ort_GetDimensionsCount,
		"GetDimensions":                 C.simclr_ort_GetDimensions,
		"GetTensorTypeAndShape":         C.simclr_ort_GetTensorTypeAndShape,
		"CreateCpuMemoryInfo":           C.simclr_ort_CreateCpuMemoryInfo,
		"AllocatorAlloc":                C.simclr_ort_AllocatorAlloc,
		"AllocatorFree":                 C.simclr_ort_AllocatorFree,
		"KernelInfoGetAttribute_int64":  C.simclr_ort_KernelInfoGetAttribute_int64,
		"KernelInfoGetAttribute_float":  C.simclr_ort_KernelInfoGetAttribute_float,
		"KernelContext_GetInputCount":   C.simclr_ort_KernelContext_GetInputCount,
		"KernelContext_GetOutputCount":  C.simclr_ort_KernelContext_GetOutputCount,
		"KernelContext_GetInput":        C.simclr_ort_KernelContext_GetInput,
		"KernelContext_GetOutput":       C.simclr_ort_KernelContext_GetOutput,
		"ReleaseStatus":                 C.simclr_ort_ReleaseStatus,
		"ReleaseMemoryInfo":             C.simclr_ort_ReleaseMemoryInfo,
		"ReleaseTensorTypeAndShapeInfo": C.simclr_ort_ReleaseTensorTypeAndShapeInfo,
		"ReleaseCustomOpDomain":         C.simclr_ort_ReleaseCustomOpDomain,
		"ReleaseAllocator":              C.simclr_ort_ReleaseAllocator,
		"KernelContext_GetAllocator":    C.simclr_ort_KernelContext_GetAllocator,
		"KernelContext_ParallelFor":     C.simclr_ort_KernelContext_ParallelFor,
	}
}

// customOpMembers names the members of native.h's OrtCustomOp in order
// (for TestNativeDeclarationsORT).
func customOpMembers() []string {
	t := reflect.TypeOf(C.simclr_OrtCustomOp{})
	names := make([]string, t.NumField())
	for i := range names {
		names[i] = t.Field(i).Name
	}
	return names
}

// nativeEnums are native.h's copies of ONNX Runtime's enumerators, under
// their names in onnxruntime_c_api.h.
func nativeEnums() map[string]int {
	return map[string]int{
		"ORT_FAIL":                            C.simclr_ORT_FAIL,
		"ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT": C.simclr_ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT,
		"ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64": C.simclr_ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64,
		"OrtArenaAllocator":                   C.simclr_OrtArenaAllocator,
		"OrtMemTypeDefault":                   C.simclr_OrtMemTypeDefault,
		"INPUT_OUTPUT_REQUIRED":               C.simclr_INPUT_OUTPUT_REQUIRED,
		"ORT_API_VERSION":                     C.SIMCLR_ORT_API_VERSION,
	}
}

// dnnlDeclarations are native.h's copies of oneDNN's constants and sizes,
// as C expressions in dnnl.h's names (for TestNativeDeclarationsDNNL).
func dnnlDeclarations() map[string]int {
	return map[string]int{
		"sizeof(dnnl_memory_desc_t)":            C.SDNNL_MEMORY_DESC_SIZE,
		"sizeof(dnnl_convolution_desc_t)":       C.SDNNL_CONVOLUTION_DESC_SIZE,
		"sizeof(dnnl_exec_arg_t)":               int(unsafe.Sizeof(C.sdnnl_exec_arg{})),
		"sizeof(dnnl_dims_t)":                   int(unsafe.Sizeof(C.sdnnl_dims{})),
		"offsetof(dnnl_version_t, cpu_runtime)": int(unsafe.Offsetof(C.sdnnl_version_t{}.cpu_runtime)),
		"dnnl_success":                          C.sdnnl_success,
		"dnnl_f32":                              C.sdnnl_f32,
		"dnnl_format_tag_any":                   C.sdnnl_format_tag_any,
		"dnnl_cpu":                              C.sdnnl_cpu,
		"dnnl_stream_default_flags":             C.sdnnl_stream_default_flags,
		"dnnl_scratchpad_mode_user":             C.sdnnl_scratchpad_mode_user,
		"dnnl_forward_training":                 C.sdnnl_forward_training,
		"dnnl_backward_data":                    C.sdnnl_backward_data,
		"dnnl_backward_weights":                 C.sdnnl_backward_weights,
		"dnnl_convolution_direct":               C.sdnnl_convolution_direct,
		"dnnl_convolution_winograd":             C.sdnnl_convolution_winograd,
		"dnnl_query_impl_info_str":              C.sdnnl_query_impl_info_str,
		"dnnl_query_src_md":                     C.sdnnl_query_src_md,
		"dnnl_query_diff_src_md":                C.sdnnl_query_diff_src_md,
		"dnnl_query_weights_md":                 C.sdnnl_query_weights_md,
		"dnnl_query_diff_weights_md":            C.sdnnl_query_diff_weights_md,
		"dnnl_query_dst_md":                     C.sdnnl_query_dst_md,
		"dnnl_query_diff_dst_md":                C.sdnnl_query_diff_dst_md,
		"dnnl_query_scratchpad_md":              C.sdnnl_query_scratchpad_md,
		"DNNL_ARG_SRC":                          C.SDNNL_ARG_SRC,
		"DNNL_ARG_DST":                          C.SDNNL_ARG_DST,
		"DNNL_ARG_WEIGHTS":                      C.SDNNL_ARG_WEIGHTS,
		"DNNL_ARG_SCRATCHPAD":                   C.SDNNL_ARG_SCRATCHPAD,
		"DNNL_ARG_DIFF_SRC":                     C.SDNNL_ARG_DIFF_SRC,
		"DNNL_ARG_DIFF_DST":                     C.SDNNL_ARG_DIFF_DST,
		"DNNL_ARG_DIFF_WEIGHTS":                 C.SDNNL_ARG_DIFF_WEIGHTS,
		"DNNL_ARG_FROM":                         C.SDNNL_ARG_FROM,
		"DNNL_ARG_TO":                           C.SDNNL_ARG_TO,
		"DNNL_RUNTIME_OMP":                      C.SDNNL_RUNTIME_OMP,
	}
}

func freeNativeOp(op *C.simclr_op) { C.simclr_native_op_free(op) }
