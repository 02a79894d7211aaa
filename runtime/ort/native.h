// native.h: the parts of ONNX Runtime's custom-op C API and of oneDNN's C
// API that the native kernels (native.c) use, declared by hand.
//
// Why by hand and not the vendors' headers: epdevice.go already reaches
// ONNX Runtime's function table by position, and the custom-op API adds only
// nineteen positions and one struct (OrtCustomOp) to that; vendoring
// onnxruntime_c_api.h would mean two headers of about 10,000 lines
// (it includes onnxruntime_ep_c_api.h) to keep in step with onnxruntime_go.
// oneDNN is opened with dlopen so that simclr-ort builds and runs without it
// (as libjpeg-turbo is), so its header (libdnnl-dev) must not be needed to
// build; its descriptors are treated as opaque blocks of the size oneDNN
// 2.6 gives them. Every position, member order, constant and size declared
// here is recounted in the real headers by native_test.go
// (TestNativeDeclarations*): onnxruntime_c_api.h from onnxruntime_go's module,
// and oneDNN's dnnl.h when libdnnl-dev is installed.

#ifndef SIMCLR_NATIVE_H
#define SIMCLR_NATIVE_H

#include <stddef.h>
#include <stdint.h>

// ---- ONNX Runtime (C API version 24, as onnxruntime_c_api.h of onnxruntime_go 1.27)

typedef struct OrtStatus OrtStatus;
typedef struct OrtKernelInfo OrtKernelInfo;
typedef struct OrtKernelContext OrtKernelContext;
typedef struct OrtValue OrtValue;
typedef struct OrtTensorTypeAndShapeInfo OrtTensorTypeAndShapeInfo;
typedef struct OrtAllocator OrtAllocator;
typedef struct OrtMemoryInfo OrtMemoryInfo;
typedef struct OrtCustomOpDomain OrtCustomOpDomain;
typedef struct OrtSessionOptions OrtSessionOptions;

// The C API version whose OrtCustomOp members are filled in.
#define SIMCLR_ORT_API_VERSION 24

// Positions in struct OrtApi.
enum {
	simclr_ort_CreateStatus = 0,
	simclr_ort_GetErrorMessage = 2,
	simclr_ort_CreateCustomOpDomain = 26,
	simclr_ort_CustomOpDomain_Add = 27,
	simclr_ort_AddCustomOpDomain = 28,
	simclr_ort_GetTensorMutableData = 51,
	simclr_ort_GetDimensionsCount = 61,
	simclr_ort_GetDimensions = 62,
	simclr_ort_GetTensorTypeAndShape = 65,
	simclr_ort_CreateCpuMemoryInfo = 69,
	simclr_ort_AllocatorAlloc = 75,
	simclr_ort_AllocatorFree = 76,
	simclr_ort_KernelInfoGetAttribute_float = 85,
	simclr_ort_KernelInfoGetAttribute_int64 = 86,
	simclr_ort_KernelContext_GetInputCount = 88,
	simclr_ort_KernelContext_GetOutputCount = 89,
	simclr_ort_KernelContext_GetInput = 90,
	simclr_ort_KernelContext_GetOutput = 91,
	simclr_ort_ReleaseStatus = 93,
	simclr_ort_ReleaseMemoryInfo = 94,
	simclr_ort_ReleaseTensorTypeAndShapeInfo = 99,
	simclr_ort_ReleaseCustomOpDomain = 101,
	simclr_ort_ReleaseAllocator = 132,
	simclr_ort_KernelContext_GetAllocator = 253,
	simclr_ort_KernelContext_ParallelFor = 274,
};

// Enumerators of onnxruntime_c_api.h.
enum {
	simclr_ORT_FAIL = 1,                            // OrtErrorCode
	simclr_ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT = 1, // ONNXTensorElementDataType
	simclr_ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64 = 7,
	simclr_OrtArenaAllocator = 1,                   // OrtAllocatorType
	simclr_OrtMemTypeDefault = 0,                   // OrtMemType
	simclr_INPUT_OUTPUT_REQUIRED = 0,               // OrtCustomOpInputOutputCharacteristic
};

// struct OrtCustomOp, member for member. Enumerated return types are int
// (the same registers in the x86-64 and AArch64 calling conventions).
typedef struct simclr_OrtCustomOp {
	uint32_t version;
	void* (*CreateKernel)(const struct simclr_OrtCustomOp* op, const void* api, const OrtKernelInfo* info);
	const char* (*GetName)(const struct simclr_OrtCustomOp* op);
	const char* (*GetExecutionProviderType)(const struct simclr_OrtCustomOp* op);
	int (*GetInputType)(const struct simclr_OrtCustomOp* op, size_t index);
	size_t (*GetInputTypeCount)(const struct simclr_OrtCustomOp* op);
	int (*GetOutputType)(const struct simclr_OrtCustomOp* op, size_t index);
	size_t (*GetOutputTypeCount)(const struct simclr_OrtCustomOp* op);
	void (*KernelCompute)(void* op_kernel, OrtKernelContext* context);
	void (*KernelDestroy)(void* op_kernel);
	int (*GetInputCharacteristic)(const struct simclr_OrtCustomOp* op, size_t index);
	int (*GetOutputCharacteristic)(const struct simclr_OrtCustomOp* op, size_t index);
	int (*GetInputMemoryType)(const struct simclr_OrtCustomOp* op, size_t index);
	int (*GetVariadicInputMinArity)(const struct simclr_OrtCustomOp* op);
	int (*GetVariadicInputHomogeneity)(const struct simclr_OrtCustomOp* op);
	int (*GetVariadicOutputMinArity)(const struct simclr_OrtCustomOp* op);
	int (*GetVariadicOutputHomogeneity)(const struct simclr_OrtCustomOp* op);
	OrtStatus* (*CreateKernelV2)(const struct simclr_OrtCustomOp* op, const void* api, const OrtKernelInfo* info, void** kernel);
	OrtStatus* (*KernelComputeV2)(void* op_kernel, OrtKernelContext* context);
	OrtStatus* (*InferOutputShapeFn)(const struct simclr_OrtCustomOp* op, void* shape_infer_context);
	int (*GetStartVersion)(const struct simclr_OrtCustomOp* op);
	int (*GetEndVersion)(const struct simclr_OrtCustomOp* op);
	size_t (*GetMayInplace)(int** input_index, int** output_index);
	void (*ReleaseMayInplace)(int* input_index, int* output_index);
	size_t (*GetAliasMap)(int** input_index, int** output_index);
	void (*ReleaseAliasMap)(int* input_index, int* output_index);
} simclr_OrtCustomOp;

// ---- oneDNN 2.x (libdnnl.so.2)

typedef int64_t sdnnl_dims[12]; // dnnl_dims_t (DNNL_MAX_NDIMS 12)
typedef struct sdnnl_engine* sdnnl_engine;
typedef struct sdnnl_stream* sdnnl_stream;
typedef struct sdnnl_memory* sdnnl_memory;
typedef struct sdnnl_primitive* sdnnl_primitive;
typedef struct sdnnl_primitive_desc* sdnnl_primitive_desc;
typedef struct sdnnl_primitive_attr* sdnnl_primitive_attr;

// Descriptors as opaque blocks of oneDNN 2.6's sizes.
#define SDNNL_MEMORY_DESC_SIZE 696
#define SDNNL_CONVOLUTION_DESC_SIZE 5976
typedef struct { _Alignas(8) unsigned char bytes[SDNNL_MEMORY_DESC_SIZE]; } sdnnl_memory_desc;
typedef struct { _Alignas(8) unsigned char bytes[SDNNL_CONVOLUTION_DESC_SIZE]; } sdnnl_convolution_desc;

typedef struct {
	int arg;
	sdnnl_memory memory;
} sdnnl_exec_arg; // dnnl_exec_arg_t

typedef struct {
	int major, minor, patch;
	const char* hash;
	unsigned cpu_runtime, gpu_runtime;
} sdnnl_version_t; // dnnl_version_t

// Enumerators and argument indices of dnnl_types.h.
enum {
	sdnnl_success = 0,
	sdnnl_f32 = 3,
	sdnnl_format_tag_any = 1,
	sdnnl_cpu = 1,
	sdnnl_stream_default_flags = 1,
	sdnnl_scratchpad_mode_user = 1,
	sdnnl_forward_training = 64,
	sdnnl_backward_data = 160,
	sdnnl_backward_weights = 192,
	sdnnl_convolution_direct = 1,
	sdnnl_convolution_winograd = 2,
	sdnnl_query_impl_info_str = 8,
	sdnnl_query_src_md = 129,
	sdnnl_query_diff_src_md = 130,
	sdnnl_query_weights_md = 131,
	sdnnl_query_diff_weights_md = 132,
	sdnnl_query_dst_md = 133,
	sdnnl_query_diff_dst_md = 134,
	sdnnl_query_scratchpad_md = 136,
	SDNNL_ARG_SRC = 1,
	SDNNL_ARG_DST = 17,
	SDNNL_ARG_WEIGHTS = 33,
	SDNNL_ARG_SCRATCHPAD = 80,
	SDNNL_ARG_DIFF_SRC = 129,
	SDNNL_ARG_DIFF_DST = 145,
	SDNNL_ARG_DIFF_WEIGHTS = 161,
	SDNNL_ARG_FROM = 1,
	SDNNL_ARG_TO = 17,
	SDNNL_RUNTIME_OMP = 2,
};

// ---- What native.c offers native.go.

// simclr_native_load opens ONNX Runtime's API (from the already loaded
// library at ort_path) and oneDNN (dnnl_name). It returns NULL or an error
// text (static storage).
const char* simclr_native_load(const char* ort_path, const char* dnnl_name);

// simclr_native_version describes the loaded oneDNN: version, CPU runtime and
// instruction set.
const char* simclr_native_version(void);

// simclr_native_implementations writes the distinct oneDNN implementations the
// kernels have run so far ("jit:avx512_core", ...), comma-separated, into buf.
void simclr_native_implementations(char* buf, size_t size);

typedef struct simclr_op simclr_op;

// simclr_native_op returns a new custom op for the named kernel on the CPU
// provider, its OpenMP threads set to threads (0: OpenMP's default), or NULL
// when there is no such kernel.
simclr_op* simclr_native_op(const char* name, int threads);
void simclr_native_op_free(simclr_op* op);

// What the kernel of an op implements, for the check against the domain's
// definition: input and output counts and the attribute names.
int simclr_native_op_inputs(const simclr_op* op);
int simclr_native_op_outputs(const simclr_op* op);
// The ONNX element type of input or output i (1 float, 7 int64).
int simclr_native_op_input_type(const simclr_op* op, int i);
int simclr_native_op_output_type(const simclr_op* op, int i);
int simclr_native_op_attrs(const simclr_op* op);
const char* simclr_native_op_attr(const simclr_op* op, int i);
int simclr_native_op_float_attrs(const simclr_op* op);
const char* simclr_native_op_float_attr(const simclr_op* op, int i);

// The domain calls, by position: each returns NULL or a status, whose
// message simclr_native_status_message copies into buf before releasing it.
OrtStatus* simclr_native_create_domain(const char* name, OrtCustomOpDomain** out);
OrtStatus* simclr_native_domain_add(OrtCustomOpDomain* domain, simclr_op* op);
OrtStatus* simclr_native_add_domain(OrtSessionOptions* options, OrtCustomOpDomain* domain);
void simclr_native_release_domain(OrtCustomOpDomain* domain);
void simclr_native_status_message(OrtStatus* status, char* buf, size_t size);

#endif
