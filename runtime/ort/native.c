// native.c: simclr-ort's custom-op domain (internal/nativeop) on ONNX
// Runtime's CPU provider, computed by oneDNN. See native.go for the Go side
// and native.h for the declarations.
//
// ONNX Runtime calls the kernels on its own threads, in plain C. Each kernel
// instance (one graph node) builds its oneDNN primitives once for the shape it
// sees and reuses them on every run; creating a primitive costs far more than
// running one on our small maps. The primitives choose their own (blocked)
// layouts; the kernels reorder their NCHW inputs into those layouts and their
// outputs back, with temporaries from the session's allocator (its arena).

#include "native.h"

#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- ONNX Runtime's function table, by position (see native.h).

static void* const* ort_api;
static OrtMemoryInfo* cpu_memory;

#define ORT_CALL(pos, type) ((type)ort_api[pos])

static OrtStatus* ort_error(const char* fmt, ...) {
	char msg[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return ORT_CALL(simclr_ort_CreateStatus, OrtStatus* (*)(int, const char*))(simclr_ORT_FAIL, msg);
}

static OrtStatus* ort_input(const OrtKernelContext* ctx, size_t i, const OrtValue** out) {
	return ORT_CALL(simclr_ort_KernelContext_GetInput, OrtStatus* (*)(const OrtKernelContext*, size_t, const OrtValue**))(ctx, i, out);
}

static OrtStatus* ort_output(OrtKernelContext* ctx, size_t i, const int64_t* dims, size_t n, OrtValue** out) {
	return ORT_CALL(simclr_ort_KernelContext_GetOutput, OrtStatus* (*)(OrtKernelContext*, size_t, const int64_t*, size_t, OrtValue**))(ctx, i, dims, n, out);
}

static OrtStatus* ort_data(const OrtValue* v, void** out) {
	// GetTensorMutableData on an input: the kernels only read inputs.
	return ORT_CALL(simclr_ort_GetTensorMutableData, OrtStatus* (*)(OrtValue*, void**))((OrtValue*)v, out);
}

// ort_shape reads a tensor's dimensions (at most max of them) into dims.
static OrtStatus* ort_shape(const OrtValue* v, int64_t* dims, size_t max, size_t* n) {
	OrtTensorTypeAndShapeInfo* info;
	OrtStatus* st = ORT_CALL(simclr_ort_GetTensorTypeAndShape, OrtStatus* (*)(const OrtValue*, OrtTensorTypeAndShapeInfo**))(v, &info);
	if (st) return st;
	st = ORT_CALL(simclr_ort_GetDimensionsCount, OrtStatus* (*)(const OrtTensorTypeAndShapeInfo*, size_t*))(info, n);
	if (!st && *n > max) st = ort_error("tensor of rank %zu, at most %zu expected", *n, max);
	if (!st) st = ORT_CALL(simclr_ort_GetDimensions, OrtStatus* (*)(const OrtTensorTypeAndShapeInfo*, int64_t*, size_t))(info, dims, *n);
	ORT_CALL(simclr_ort_ReleaseTensorTypeAndShapeInfo, void (*)(OrtTensorTypeAndShapeInfo*))(info);
	return st;
}

void simclr_native_status_message(OrtStatus* st, char* buf, size_t size) {
	const char* msg = ORT_CALL(simclr_ort_GetErrorMessage, const char* (*)(const OrtStatus*))(st);
	snprintf(buf, size, "%s", msg ? msg : "(no message)");
	ORT_CALL(simclr_ort_ReleaseStatus, void (*)(OrtStatus*))(st);
}

OrtStatus* simclr_native_create_domain(const char* name, OrtCustomOpDomain** out) {
	return ORT_CALL(simclr_ort_CreateCustomOpDomain, OrtStatus* (*)(const char*, OrtCustomOpDomain**))(name, out);
}

OrtStatus* simclr_native_domain_add(OrtCustomOpDomain* domain, simclr_op* op) {
	return ORT_CALL(simclr_ort_CustomOpDomain_Add, OrtStatus* (*)(OrtCustomOpDomain*, const void*))(domain, op);
}

OrtStatus* simclr_native_add_domain(OrtSessionOptions* options, OrtCustomOpDomain* domain) {
	return ORT_CALL(simclr_ort_AddCustomOpDomain, OrtStatus* (*)(OrtSessionOptions*, OrtCustomOpDomain*))(options, domain);
}

void simclr_native_release_domain(OrtCustomOpDomain* domain) {
	ORT_CALL(simclr_ort_ReleaseCustomOpDomain, void (*)(OrtCustomOpDomain*))(domain);
}

// scratch is one block from the session's CPU allocator (its arena).
typedef struct {
	OrtAllocator* allocator;
	void* ptr;
} scratch;

static OrtStatus* scratch_get(OrtKernelContext* ctx, size_t bytes, scratch* s) {
	s->allocator = NULL;
	s->ptr = NULL;
	if (bytes == 0) return NULL;
	OrtStatus* st = ORT_CALL(simclr_ort_KernelContext_GetAllocator, OrtStatus* (*)(const OrtKernelContext*, const OrtMemoryInfo*, OrtAllocator**))(ctx, cpu_memory, &s->allocator);
	if (st) return st;
	st = ORT_CALL(simclr_ort_AllocatorAlloc, OrtStatus* (*)(OrtAllocator*, size_t, void**))(s->allocator, bytes, &s->ptr);
	if (!st && !s->ptr) st = ort_error("the session's allocator returned no memory for %zu bytes", bytes);
	return st;
}

static void scratch_put(scratch* s) {
	if (s->ptr) ORT_CALL(simclr_ort_AllocatorFree, OrtStatus* (*)(OrtAllocator*, void*))(s->allocator, s->ptr);
	if (s->allocator) ORT_CALL(simclr_ort_ReleaseAllocator, void (*)(OrtAllocator*))(s->allocator);
	s->allocator = NULL;
	s->ptr = NULL;
}

// ---- oneDNN, opened with dlopen.

static struct {
	const sdnnl_version_t* (*version)(void);
	int (*engine_create)(sdnnl_engine*, int, size_t);
	int (*stream_create)(sdnnl_stream*, sdnnl_engine, unsigned);
	int (*stream_wait)(sdnnl_stream);
	int (*stream_destroy)(sdnnl_stream);
	int (*md_init_by_strides)(sdnnl_memory_desc*, int, const int64_t*, int, const int64_t*);
	int (*md_init_by_tag)(sdnnl_memory_desc*, int, const int64_t*, int, int);
	int (*md_equal)(const sdnnl_memory_desc*, const sdnnl_memory_desc*);
	size_t (*md_size)(const sdnnl_memory_desc*);
	int (*conv_forward)(sdnnl_convolution_desc*, int, int, const sdnnl_memory_desc*, const sdnnl_memory_desc*,
		const sdnnl_memory_desc*, const sdnnl_memory_desc*, const int64_t*, const int64_t*, const int64_t*);
	int (*conv_backward_data)(sdnnl_convolution_desc*, int, const sdnnl_memory_desc*, const sdnnl_memory_desc*,
		const sdnnl_memory_desc*, const int64_t*, const int64_t*, const int64_t*);
	int (*conv_backward_weights)(sdnnl_convolution_desc*, int, const sdnnl_memory_desc*, const sdnnl_memory_desc*,
		const sdnnl_memory_desc*, const sdnnl_memory_desc*, const int64_t*, const int64_t*, const int64_t*);
	int (*attr_create)(sdnnl_primitive_attr*);
	int (*attr_destroy)(sdnnl_primitive_attr);
	int (*attr_set_scratchpad_mode)(sdnnl_primitive_attr, int);
	int (*pd_create)(sdnnl_primitive_desc*, const void*, const sdnnl_primitive_attr, sdnnl_engine, const sdnnl_primitive_desc);
	int (*pd_destroy)(sdnnl_primitive_desc);
	const sdnnl_memory_desc* (*pd_query_md)(const sdnnl_primitive_desc, int, int);
	int (*pd_query)(const sdnnl_primitive_desc, int, int, void*);
	int (*reorder_pd_create)(sdnnl_primitive_desc*, const sdnnl_memory_desc*, sdnnl_engine, const sdnnl_memory_desc*,
		sdnnl_engine, const sdnnl_primitive_attr);
	int (*primitive_create)(sdnnl_primitive*, const sdnnl_primitive_desc);
	int (*primitive_destroy)(sdnnl_primitive);
	int (*primitive_execute)(const sdnnl_primitive, sdnnl_stream, int, const sdnnl_exec_arg*);
	int (*memory_create)(sdnnl_memory*, const sdnnl_memory_desc*, sdnnl_engine, void*);
	int (*memory_destroy)(sdnnl_memory);
	int (*memory_set_data_handle)(sdnnl_memory, void*);
	int (*effective_cpu_isa)(void);
	const char* (*cpu_isa2str)(int);
	int (*sgemm)(char, char, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t, float, float*, int64_t);
	void (*omp_set_num_threads)(int);
	int (*omp_get_max_threads)(void);
} dnnl;

static sdnnl_engine engine;
static char version_text[256];

const char* simclr_native_version(void) { return version_text; }

#define DLSYM(lib, field, name)                                           \
	do {                                                              \
		*(void**)(&dnnl.field) = dlsym(lib, name);                \
		if (!dnnl.field) return "the library has no " name;       \
	} while (0)

static const char* load_dnnl(const char* name) {
	void* lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
	if (!lib) return dlerror();
	DLSYM(lib, version, "dnnl_version");
	const sdnnl_version_t* v = dnnl.version();
	if (v->major != 2) {
		static char msg[128];
		snprintf(msg, sizeof msg, "it is oneDNN %d.%d.%d; the kernels are written for oneDNN 2.x", v->major, v->minor, v->patch);
		return msg;
	}
	DLSYM(lib, engine_create, "dnnl_engine_create");
	DLSYM(lib, stream_create, "dnnl_stream_create");
	DLSYM(lib, stream_wait, "dnnl_stream_wait");
	DLSYM(lib, stream_destroy, "dnnl_stream_destroy");
	DLSYM(lib, md_init_by_strides, "dnnl_memory_desc_init_by_strides");
	DLSYM(lib, md_init_by_tag, "dnnl_memory_desc_init_by_tag");
	DLSYM(lib, md_equal, "dnnl_memory_desc_equal");
	DLSYM(lib, md_size, "dnnl_memory_desc_get_size");
	DLSYM(lib, conv_forward, "dnnl_convolution_forward_desc_init");
	DLSYM(lib, conv_backward_data, "dnnl_convolution_backward_data_desc_init");
	DLSYM(lib, conv_backward_weights, "dnnl_convolution_backward_weights_desc_init");
	DLSYM(lib, attr_create, "dnnl_primitive_attr_create");
	DLSYM(lib, attr_destroy, "dnnl_primitive_attr_destroy");
	DLSYM(lib, attr_set_scratchpad_mode, "dnnl_primitive_attr_set_scratchpad_mode");
	DLSYM(lib, pd_create, "dnnl_primitive_desc_create");
	DLSYM(lib, pd_destroy, "dnnl_primitive_desc_destroy");
	DLSYM(lib, pd_query_md, "dnnl_primitive_desc_query_md");
	DLSYM(lib, pd_query, "dnnl_primitive_desc_query");
	DLSYM(lib, reorder_pd_create, "dnnl_reorder_primitive_desc_create");
	DLSYM(lib, primitive_create, "dnnl_primitive_create");
	DLSYM(lib, primitive_destroy, "dnnl_primitive_destroy");
	DLSYM(lib, primitive_execute, "dnnl_primitive_execute");
	DLSYM(lib, memory_create, "dnnl_memory_create");
	DLSYM(lib, memory_destroy, "dnnl_memory_destroy");
	DLSYM(lib, memory_set_data_handle, "dnnl_memory_set_data_handle");
	DLSYM(lib, effective_cpu_isa, "dnnl_get_effective_cpu_isa");
	DLSYM(lib, sgemm, "dnnl_sgemm");
	// Optional: the ISA's name (dnnl_debug.h) and OpenMP's thread count
	// (libgomp, loaded with a oneDNN built for OpenMP).
	*(void**)(&dnnl.cpu_isa2str) = dlsym(lib, "dnnl_cpu_isa2str");
	*(void**)(&dnnl.omp_set_num_threads) = dlsym(lib, "omp_set_num_threads");
	*(void**)(&dnnl.omp_get_max_threads) = dlsym(lib, "omp_get_max_threads");
	if (dnnl.engine_create(&engine, sdnnl_cpu, 0) != sdnnl_success) return "dnnl_engine_create failed for the CPU";
	const char* runtime = v->cpu_runtime == SDNNL_RUNTIME_OMP ? "OpenMP" : "not OpenMP";
	int isa = dnnl.effective_cpu_isa();
	const char* isa_name = dnnl.cpu_isa2str ? dnnl.cpu_isa2str(isa) : NULL;
	if (isa_name)
		snprintf(version_text, sizeof version_text, "oneDNN %d.%d.%d (%s, CPU runtime %s, ISA %s)", v->major, v->minor, v->patch, name, runtime, isa_name);
	else
		snprintf(version_text, sizeof version_text, "oneDNN %d.%d.%d (%s, CPU runtime %s, ISA %d)", v->major, v->minor, v->patch, name, runtime, isa);
	return NULL;
}

typedef struct {
	const void* (*GetApi)(uint32_t version);
	const char* (*GetVersionString)(void);
} ort_api_base;

const char* simclr_native_load(const char* ort_path, const char* dnnl_name) {
	void* lib = dlopen(ort_path, RTLD_NOW | RTLD_NOLOAD);
	if (!lib) lib = dlopen(ort_path, RTLD_NOW);
	if (!lib) return dlerror();
	const ort_api_base* (*get_base)(void) = (const ort_api_base* (*)(void))dlsym(lib, "OrtGetApiBase");
	if (!get_base) return "ONNX Runtime's library has no OrtGetApiBase";
	ort_api = (void* const*)get_base()->GetApi(SIMCLR_ORT_API_VERSION);
	if (!ort_api) return "ONNX Runtime's library does not offer C API version 24";
	OrtStatus* st = ORT_CALL(simclr_ort_CreateCpuMemoryInfo, OrtStatus* (*)(int, int, OrtMemoryInfo**))(simclr_OrtArenaAllocator, simclr_OrtMemTypeDefault, &cpu_memory);
	if (st) {
		static char msg[512];
		simclr_native_status_message(st, msg, sizeof msg);
		return msg;
	}
	const char* err = load_dnnl(dnnl_name);
	if (err) {
		static char msg[512];
		snprintf(msg, sizeof msg, "oneDNN (%s): %s", dnnl_name, err);
		return msg;
	}
	return NULL;
}

// The oneDNN implementations the kernels chose, for the log.
static pthread_mutex_t impls_mu = PTHREAD_MUTEX_INITIALIZER;
static char impls[16][64];
static int n_impls;

static void note_impl(const char* impl) {
	pthread_mutex_lock(&impls_mu);
	int seen = 0;
	for (int i = 0; i < n_impls; i++) seen |= strcmp(impls[i], impl) == 0;
	if (!seen && n_impls < 16) snprintf(impls[n_impls++], sizeof impls[0], "%s", impl);
	pthread_mutex_unlock(&impls_mu);
}

void simclr_native_implementations(char* buf, size_t size) {
	pthread_mutex_lock(&impls_mu);
	buf[0] = 0;
	for (int i = 0; i < n_impls; i++) {
		size_t used = strlen(buf);
		snprintf(buf + used, size - used, "%s%s", i ? ", " : "", impls[i]);
	}
	pthread_mutex_unlock(&impls_mu);
}

static OrtStatus* dnnl_error(const char* what, int status) {
	return ort_error("oneDNN %s failed (dnnl_status_t %d)", what, status);
}

#define DNNL_TRY(what, call)                                  \
	do {                                                  \
		int status_ = (call);                         \
		if (status_ != sdnnl_success) return dnnl_error(what, status_); \
	} while (0)

// ---- Convolutions.

enum { CONV_FORWARD, CONV_BACKWARD_DATA, CONV_BACKWARD_WEIGHTS };

// conv_arg is one tensor argument of a convolution primitive: its NCHW/OIHW
// layout as ONNX Runtime holds it, the primitive's layout, and the reorder
// between them (NULL where they are the same).
typedef struct {
	int arg;
	int output;
	sdnnl_memory_desc user, prim;
	sdnnl_primitive reorder;
	sdnnl_memory user_mem, prim_mem;
	size_t prim_bytes;
} conv_arg;

// conv_plan is what a kernel builds once per shape.
typedef struct {
	int valid;
	int64_t n, c, h, w, o, k, oh, ow;
	sdnnl_primitive prim;
	conv_arg args[3];
	sdnnl_memory scratch_mem;
	size_t scratch_bytes;
} conv_plan;

typedef struct kernel_state kernel_state;

typedef struct simclr_kernel {
	const char* name;
	int kind;
	int inputs, outputs;
	int input_types[5], output_types[3];
	int n_attrs;
	const char* attrs[6];
	int n_float_attrs;
	const char* float_attrs[2];
	OrtStatus* (*compute)(kernel_state* s, OrtKernelContext* ctx);
} simclr_kernel;

struct simclr_op {
	simclr_OrtCustomOp base; // first: ONNX Runtime holds a pointer to it
	const simclr_kernel* kernel;
	int threads;
};

struct kernel_state {
	const simclr_kernel* def;
	int64_t attr[6];
	float fattr[2];
	int threads;
	pthread_mutex_t mu;
	sdnnl_stream stream;
	conv_plan plan;
};

static void conv_plan_free(conv_plan* p) {
	if (p->prim) dnnl.primitive_destroy(p->prim);
	for (int i = 0; i < 3; i++) {
		conv_arg* a = &p->args[i];
		if (a->reorder) dnnl.primitive_destroy(a->reorder);
		if (a->user_mem) dnnl.memory_destroy(a->user_mem);
		if (a->prim_mem) dnnl.memory_destroy(a->prim_mem);
	}
	if (p->scratch_mem) dnnl.memory_destroy(p->scratch_mem);
	memset(p, 0, sizeof *p);
}

static OrtStatus* plain_md(sdnnl_memory_desc* md, int64_t a, int64_t b, int64_t c, int64_t d) {
	sdnnl_dims dims = {a, b, c, d}, strides = {b * c * d, c * d, d, 1};
	DNNL_TRY("dnnl_memory_desc_init_by_strides", dnnl.md_init_by_strides(md, 4, dims, sdnnl_f32, strides));
	return NULL;
}

static OrtStatus* any_md(sdnnl_memory_desc* md, int64_t a, int64_t b, int64_t c, int64_t d) {
	sdnnl_dims dims = {a, b, c, d};
	DNNL_TRY("dnnl_memory_desc_init_by_tag", dnnl.md_init_by_tag(md, 4, dims, sdnnl_f32, sdnnl_format_tag_any));
	return NULL;
}

// conv_arg_init fills one argument from the primitive's choice of layout.
static OrtStatus* conv_arg_init(conv_arg* a, int arg, int output, const sdnnl_primitive_desc pd, int query,
		int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
	a->arg = arg;
	a->output = output;
	OrtStatus* st = plain_md(&a->user, d0, d1, d2, d3);
	if (st) return st;
	a->prim = *dnnl.pd_query_md(pd, query, 0);
	DNNL_TRY("dnnl_memory_create", dnnl.memory_create(&a->user_mem, &a->user, engine, NULL));
	if (dnnl.md_equal(&a->user, &a->prim)) return NULL;
	a->prim_bytes = dnnl.md_size(&a->prim);
	DNNL_TRY("dnnl_memory_create", dnnl.memory_create(&a->prim_mem, &a->prim, engine, NULL));
	sdnnl_primitive_desc rpd;
	if (output)
		DNNL_TRY("reorder", dnnl.reorder_pd_create(&rpd, &a->prim, engine, &a->user, engine, NULL));
	else
		DNNL_TRY("reorder", dnnl.reorder_pd_create(&rpd, &a->user, engine, &a->prim, engine, NULL));
	int status = dnnl.primitive_create(&a->reorder, rpd);
	dnnl.pd_destroy(rpd);
	if (status != sdnnl_success) return dnnl_error("reorder primitive", status);
	return NULL;
}

static OrtStatus* conv_plan_build_alg(kernel_state* s, conv_plan* p, int alg) {
	int64_t stride = s->attr[0], pad = s->attr[1];
	sdnnl_memory_desc src, wei, dst;
	OrtStatus* st;
	if ((st = any_md(&src, p->n, p->c, p->h, p->w)) || (st = any_md(&wei, p->o, p->c, p->k, p->k)) ||
			(st = any_md(&dst, p->n, p->o, p->oh, p->ow)))
		return st;
	sdnnl_dims strides = {stride, stride}, pads = {pad, pad};
	sdnnl_convolution_desc fd, bd;
	DNNL_TRY("convolution forward descriptor",
		dnnl.conv_forward(&fd, sdnnl_forward_training, alg, &src, &wei, NULL, &dst, strides, pads, pads));
	sdnnl_primitive_attr attr;
	DNNL_TRY("dnnl_primitive_attr_create", dnnl.attr_create(&attr));
	int status = dnnl.attr_set_scratchpad_mode(attr, sdnnl_scratchpad_mode_user);
	sdnnl_primitive_desc fpd = NULL, pd = NULL;
	if (status == sdnnl_success) status = dnnl.pd_create(&fpd, &fd, attr, engine, NULL);
	const char* what = "convolution forward";
	if (status == sdnnl_success) {
		switch (s->def->kind) {
		case CONV_FORWARD:
			pd = fpd;
			fpd = NULL;
			break;
		case CONV_BACKWARD_DATA:
			what = "convolution backward data";
			status = dnnl.conv_backward_data(&bd, alg, &src, &wei, &dst, strides, pads, pads);
			if (status == sdnnl_success) status = dnnl.pd_create(&pd, &bd, attr, engine, fpd);
			break;
		default:
			what = "convolution backward weights";
			status = dnnl.conv_backward_weights(&bd, alg, &src, &wei, NULL, &dst, strides, pads, pads);
			if (status == sdnnl_success) status = dnnl.pd_create(&pd, &bd, attr, engine, fpd);
		}
	}
	dnnl.attr_destroy(attr);
	if (fpd) dnnl.pd_destroy(fpd);
	if (status != sdnnl_success) {
		if (pd) dnnl.pd_destroy(pd);
		return ort_error("oneDNN has no %s for input [%lld,%lld,%lld,%lld], %lldx%lld kernel to %lld channels, stride %lld, pad %lld (dnnl_status_t %d)",
			what, (long long)p->n, (long long)p->c, (long long)p->h, (long long)p->w, (long long)p->k, (long long)p->k,
			(long long)p->o, (long long)stride, (long long)pad, status);
	}
	status = dnnl.primitive_create(&p->prim, pd);
	const char* impl = NULL;
	if (dnnl.pd_query(pd, sdnnl_query_impl_info_str, 0, &impl) == sdnnl_success && impl) note_impl(impl);
	switch (s->def->kind) {
	case CONV_FORWARD:
		if (!(st = conv_arg_init(&p->args[0], SDNNL_ARG_SRC, 0, pd, sdnnl_query_src_md, p->n, p->c, p->h, p->w)) &&
				!(st = conv_arg_init(&p->args[1], SDNNL_ARG_WEIGHTS, 0, pd, sdnnl_query_weights_md, p->o, p->c, p->k, p->k)))
			st = conv_arg_init(&p->args[2], SDNNL_ARG_DST, 1, pd, sdnnl_query_dst_md, p->n, p->o, p->oh, p->ow);
		break;
	case CONV_BACKWARD_DATA:
		if (!(st = conv_arg_init(&p->args[0], SDNNL_ARG_DIFF_DST, 0, pd, sdnnl_query_diff_dst_md, p->n, p->o, p->oh, p->ow)) &&
				!(st = conv_arg_init(&p->args[1], SDNNL_ARG_WEIGHTS, 0, pd, sdnnl_query_weights_md, p->o, p->c, p->k, p->k)))
			st = conv_arg_init(&p->args[2], SDNNL_ARG_DIFF_SRC, 1, pd, sdnnl_query_diff_src_md, p->n, p->c, p->h, p->w);
		break;
	default:
		if (!(st = conv_arg_init(&p->args[0], SDNNL_ARG_DIFF_DST, 0, pd, sdnnl_query_diff_dst_md, p->n, p->o, p->oh, p->ow)) &&
				!(st = conv_arg_init(&p->args[1], SDNNL_ARG_SRC, 0, pd, sdnnl_query_src_md, p->n, p->c, p->h, p->w)))
			st = conv_arg_init(&p->args[2], SDNNL_ARG_DIFF_WEIGHTS, 1, pd, sdnnl_query_diff_weights_md, p->o, p->c, p->k, p->k);
	}
	if (!st) {
		const sdnnl_memory_desc* smd = dnnl.pd_query_md(pd, sdnnl_query_scratchpad_md, 0);
		p->scratch_bytes = smd ? dnnl.md_size(smd) : 0;
		if (p->scratch_bytes) {
			int s2 = dnnl.memory_create(&p->scratch_mem, smd, engine, NULL);
			if (s2 != sdnnl_success) st = dnnl_error("dnnl_memory_create", s2);
		}
	}
	dnnl.pd_destroy(pd);
	if (!st && status != sdnnl_success) st = dnnl_error(what, status);
	if (st) {
		conv_plan_free(p);
		return st;
	}
	p->valid = 1;
	return NULL;
}

// conv_winograd says whether a convolution runs oneDNN's Winograd F(4x4,3x3)
// kernels (jit_wino_4x3) instead of its direct ones: 3x3 stride-1
// convolutions of at least 16 channels on maps of at least 4x4 (smaller
// maps are dense products, see conv_dense). Measured with one thread
// (ms forward/backward-data/backward-weights, direct against Winograd):
// 64 channels on 32x32 maps, batch 128: 130/114/131 against 48/48/72; 128
// on 16x16: 78/79/107 against 33/34/34; 512 on 4x4: 83/84/152 against
// 44/45/46; 64 on 7x7, batch 256: 11/17/14 against 6/4/9. On 2x2 and 1x1
// maps Winograd was 2-45 times slower, on the 3-channel CIFAR stem 5 times
// slower forward.
static int conv_winograd(const conv_plan* p, int64_t stride) {
	return p->k == 3 && stride == 1 && p->c >= 16 && p->o >= 16 && p->h >= 4 && p->w >= 4;
}

static OrtStatus* conv_plan_build(kernel_state* s, conv_plan* p) {
	if (!conv_winograd(p, s->attr[0])) return conv_plan_build_alg(s, p, sdnnl_convolution_direct);
	conv_plan shape = *p;
	OrtStatus* st = conv_plan_build_alg(s, p, sdnnl_convolution_winograd);
	if (!st) return NULL;
	// No Winograd kernel for this shape or CPU: the direct one.
	char msg[512];
	simclr_native_status_message(st, msg, sizeof msg);
	conv_plan_free(p);
	*p = shape;
	return conv_plan_build_alg(s, p, sdnnl_convolution_direct);
}

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

// conv_run executes a built plan on the tensors' data (in the order of
// the plan's arguments).
static OrtStatus* conv_run(kernel_state* s, OrtKernelContext* ctx, void* data[3]) {
	conv_plan* p = &s->plan;
	size_t total = align64(p->scratch_bytes);
	for (int i = 0; i < 3; i++) total += align64(p->args[i].prim_bytes);
	scratch tmp;
	OrtStatus* st = scratch_get(ctx, total, &tmp);
	if (st) return st;
	char* next = tmp.ptr;
	sdnnl_exec_arg args[4];
	int n = 0;
	for (int i = 0; i < 3; i++) {
		conv_arg* a = &p->args[i];
		dnnl.memory_set_data_handle(a->user_mem, data[i]);
		if (a->reorder) {
			dnnl.memory_set_data_handle(a->prim_mem, next);
			next += align64(a->prim_bytes);
		}
		args[n++] = (sdnnl_exec_arg){a->arg, a->reorder ? a->prim_mem : a->user_mem};
	}
	if (p->scratch_mem) {
		dnnl.memory_set_data_handle(p->scratch_mem, next);
		args[n++] = (sdnnl_exec_arg){SDNNL_ARG_SCRATCHPAD, p->scratch_mem};
	}
	if (dnnl.omp_set_num_threads && s->threads > 0) dnnl.omp_set_num_threads(s->threads);
	int status = sdnnl_success;
	const char* what = "reorder";
	for (int i = 0; i < 3 && status == sdnnl_success; i++) {
		conv_arg* a = &p->args[i];
		if (a->reorder && !a->output) {
			sdnnl_exec_arg r[2] = {{SDNNL_ARG_FROM, a->user_mem}, {SDNNL_ARG_TO, a->prim_mem}};
			status = dnnl.primitive_execute(a->reorder, s->stream, 2, r);
		}
	}
	if (status == sdnnl_success) {
		what = s->def->name;
		status = dnnl.primitive_execute(p->prim, s->stream, n, args);
	}
	for (int i = 0; i < 3 && status == sdnnl_success; i++) {
		conv_arg* a = &p->args[i];
		if (a->reorder && a->output) {
			what = "reorder";
			sdnnl_exec_arg r[2] = {{SDNNL_ARG_FROM, a->prim_mem}, {SDNNL_ARG_TO, a->user_mem}};
			status = dnnl.primitive_execute(a->reorder, s->stream, 2, r);
		}
	}
	if (status == sdnnl_success) status = dnnl.stream_wait(s->stream);
	scratch_put(&tmp);
	if (status != sdnnl_success) return dnnl_error(what, status);
	return NULL;
}

// ---- Convolutions of small maps as one dense matrix product.
//
// When the input map has at most half as many pixels as the kernel has
// taps (Q = H*W <= k*k/2: 1x1 and 2x2 maps under a 3x3 kernel), the
// convolution is computed as a dense layer from every input pixel to every
// output pixel: Y[N, O*P] = X[N, C*Q] . Wd[O*P, C*Q]^T, where Wd[o,p,c,q] is
// the tap of W that joins output pixel p to input pixel q (zero where none
// does). That is N*O*C*P*Q multiply-adds against the N*O*C*P*k*k of the
// direct convolution, which oneDNN spends in full on such maps (most taps
// fall in the padding): on 1x1 maps 9 times fewer, on 2x2 maps 2.25 times.
// The layouts are plain NCHW, so nothing is reordered either. The input
// gradient is dX = dY . Wd, the weight gradient dWd = dY^T . X folded back
// onto the taps.

static int conv_dense(const conv_plan* p) { return p->k > 1 && 2 * p->h * p->w <= p->k * p->k; }

// dense_tap is the kernel tap joining output pixel p to input pixel q, or -1.
static int64_t dense_tap(const conv_plan* cp, int64_t stride, int64_t pad, int64_t p, int64_t q) {
	int64_t ti = q / cp->w - (p / cp->ow) * stride + pad, tj = q % cp->w - (p % cp->ow) * stride + pad;
	if (ti < 0 || ti >= cp->k || tj < 0 || tj >= cp->k) return -1;
	return ti * cp->k + tj;
}

static OrtStatus* conv_dense_run(kernel_state* s, OrtKernelContext* ctx, conv_plan* cp, void* data[3]) {
	int64_t stride = s->attr[0], pad = s->attr[1];
	int64_t P = cp->oh * cp->ow, Q = cp->h * cp->w, kk = cp->k * cp->k;
	int64_t rows = cp->o * P, cols = cp->c * Q;
	scratch tmp;
	OrtStatus* st = scratch_get(ctx, (size_t)(rows * cols + P * Q) * sizeof(float), &tmp);
	if (st) return st;
	float* wd = tmp.ptr;
	int32_t* tap = (int32_t*)(wd + rows * cols); // tap[p*Q+q]
	for (int64_t p = 0; p < P; p++)
		for (int64_t q = 0; q < Q; q++) tap[p * Q + q] = (int32_t)dense_tap(cp, stride, pad, p, q);
	if (dnnl.omp_set_num_threads && s->threads > 0) dnnl.omp_set_num_threads(s->threads);
	int status;
	if (s->def->kind != CONV_BACKWARD_WEIGHTS) {
		const float* w = data[1];
		for (int64_t o = 0; o < cp->o; o++)
			for (int64_t c = 0; c < cp->c; c++) {
				const float* taps = w + (o * cp->c + c) * kk;
				float* out = wd + (o * P * cp->c + c) * Q;
				for (int64_t p = 0; p < P; p++, out += cp->c * Q)
					for (int64_t q = 0; q < Q; q++) {
						int32_t t = tap[p * Q + q];
						out[q] = t < 0 ? 0.0f : taps[t];
					}
			}
		if (s->def->kind == CONV_FORWARD) // Y = X . Wd^T
			status = dnnl.sgemm('N', 'T', cp->n, rows, cols, 1.0f, data[0], cols, wd, cols, 0.0f, data[2], rows);
		else // dX = dY . Wd
			status = dnnl.sgemm('N', 'N', cp->n, cols, rows, 1.0f, data[0], rows, wd, cols, 0.0f, data[2], cols);
	} else { // dWd = dY^T . X, then each tap sums its (p, q) pairs
		status = dnnl.sgemm('T', 'N', rows, cols, cp->n, 1.0f, data[0], rows, data[1], cols, 0.0f, wd, cols);
		float* dw = data[2];
		for (int64_t o = 0; o < cp->o; o++)
			for (int64_t c = 0; c < cp->c; c++) {
				float* taps = dw + (o * cp->c + c) * kk;
				for (int64_t t = 0; t < kk; t++) taps[t] = 0.0f;
				const float* in = wd + (o * P * cp->c + c) * Q;
				for (int64_t p = 0; p < P; p++, in += cp->c * Q)
					for (int64_t q = 0; q < Q; q++) {
						int32_t t = tap[p * Q + q];
						if (t >= 0) taps[t] += in[q];
					}
			}
	}
	scratch_put(&tmp);
	if (status != sdnnl_success) return dnnl_error("dnnl_sgemm", status);
	return NULL;
}

// ---- 1x1 stride-1 convolutions of NCHW tensors as one matrix product per
// image: Y[n] = W . X[n], dX[n] = W^T . dY[n], dW = sum over n of
// dY[n] . X[n]^T. In NCHW each image's [C, H*W] block is already a matrix, so
// nothing is reordered, where oneDNN's 1x1 kernels want blocked layouts and
// the reorders to and from them cost as much as the product on these maps.
// Measured on ResNet50 at 64 px, batch 16 (one thread, ms per step of a
// layer's 1x1 convolutions with their gradients): 16x16 maps 24.4 -> 19.7 and
// 32.7 -> 27.3; on 8x8 maps no difference (45.9 -> 43.5 and 35.6 -> 34.2), so
// smaller maps keep oneDNN's kernels, where a product per image has few
// columns.
#define POINTWISE_MIN_PIXELS 256

static int conv_pointwise(const conv_plan* p, int64_t stride, int64_t pad) {
	return p->k == 1 && stride == 1 && pad == 0 && p->h * p->w >= POINTWISE_MIN_PIXELS;
}

static OrtStatus* conv_pointwise_run(kernel_state* s, const conv_plan* p, void* data[3]) {
	int64_t hw = p->h * p->w;
	if (dnnl.omp_set_num_threads && s->threads > 0) dnnl.omp_set_num_threads(s->threads);
	int status = sdnnl_success;
	const float* a = data[0];
	const float* b = data[1];
	float* out = data[2];
	for (int64_t n = 0; n < p->n && status == sdnnl_success; n++) {
		switch (s->def->kind) {
		case CONV_FORWARD: // X, W -> Y
			status = dnnl.sgemm('N', 'N', p->o, hw, p->c, 1.0f, b, p->c, a + n * p->c * hw, hw, 0.0f, out + n * p->o * hw, hw);
			break;
		case CONV_BACKWARD_DATA: // dY, W -> dX
			status = dnnl.sgemm('T', 'N', p->c, hw, p->o, 1.0f, b, p->c, a + n * p->o * hw, hw, 0.0f, out + n * p->c * hw, hw);
			break;
		default: // dY, X -> dW
			status = dnnl.sgemm('N', 'T', p->o, p->c, hw, 1.0f, a + n * p->o * hw, hw, b + n * p->c * hw, hw, n ? 1.0f : 0.0f, out, p->c);
		}
	}
	if (status != sdnnl_success) return dnnl_error("dnnl_sgemm", status);
	return NULL;
}

static OrtStatus* conv_compute(kernel_state* s, OrtKernelContext* ctx) {
	const OrtValue *a, *b;
	OrtStatus* st;
	if ((st = ort_input(ctx, 0, &a)) || (st = ort_input(ctx, 1, &b))) return st;
	int64_t ad[8], bd[8];
	size_t an, bn;
	if ((st = ort_shape(a, ad, 8, &an)) || (st = ort_shape(b, bd, 8, &bn))) return st;
	if (an != 4 || bn != 4) return ort_error("%s: inputs of rank %zu and %zu, want 4 and 4", s->def->name, an, bn);
	int64_t stride = s->attr[0], pad = s->attr[1];
	conv_plan want = {0};
	int64_t out[4];
	switch (s->def->kind) {
	case CONV_FORWARD: // X, W -> Y
		want.n = ad[0], want.c = ad[1], want.h = ad[2], want.w = ad[3], want.o = bd[0], want.k = bd[2];
		if (bd[1] != want.c || bd[3] != want.k)
			return ort_error("ConvForward: weights [%lld,%lld,%lld,%lld] for input channels %lld; want [O,%lld,k,k]",
				(long long)bd[0], (long long)bd[1], (long long)bd[2], (long long)bd[3], (long long)want.c, (long long)want.c);
		break;
	case CONV_BACKWARD_DATA: // dY, W -> dX
		want.n = ad[0], want.o = ad[1], want.c = bd[1], want.k = bd[2], want.h = s->attr[2], want.w = s->attr[3];
		if (bd[0] != want.o || bd[3] != want.k)
			return ort_error("ConvBackwardData: weights [%lld,%lld,%lld,%lld] for dY of %lld channels",
				(long long)bd[0], (long long)bd[1], (long long)bd[2], (long long)bd[3], (long long)want.o);
		break;
	default: // dY, X -> dW
		want.n = ad[0], want.o = ad[1], want.c = bd[1], want.h = bd[2], want.w = bd[3], want.k = s->attr[2];
		if (bd[0] != want.n)
			return ort_error("ConvBackwardWeights: dY of batch %lld and X of batch %lld", (long long)want.n, (long long)bd[0]);
	}
	if (stride < 1 || pad < 0 || want.k < 1) return ort_error("%s: stride %lld, pad %lld, kernel %lld", s->def->name, (long long)stride, (long long)pad, (long long)want.k);
	want.oh = (want.h + 2 * pad - want.k) / stride + 1;
	want.ow = (want.w + 2 * pad - want.k) / stride + 1;
	if (want.oh < 1 || want.ow < 1) return ort_error("%s: a %lldx%lld kernel leaves no output of a %lldx%lld input", s->def->name, (long long)want.k, (long long)want.k, (long long)want.h, (long long)want.w);
	if (s->def->kind != CONV_FORWARD && (ad[2] != want.oh || ad[3] != want.ow))
		return ort_error("%s: dY is %lldx%lld, the convolution of a %lldx%lld input gives %lldx%lld", s->def->name,
			(long long)ad[2], (long long)ad[3], (long long)want.h, (long long)want.w, (long long)want.oh, (long long)want.ow);
	switch (s->def->kind) {
	case CONV_FORWARD:
		out[0] = want.n, out[1] = want.o, out[2] = want.oh, out[3] = want.ow;
		break;
	case CONV_BACKWARD_DATA:
		out[0] = want.n, out[1] = want.c, out[2] = want.h, out[3] = want.w;
		break;
	default:
		out[0] = want.o, out[1] = want.c, out[2] = want.k, out[3] = want.k;
	}
	OrtValue* y;
	if ((st = ort_output(ctx, 0, out, 4, &y))) return st;
	void* data[3];
	if ((st = ort_data(a, &data[0])) || (st = ort_data(b, &data[1])) || (st = ort_data(y, &data[2]))) return st;

	if (conv_pointwise(&want, stride, pad)) {
		note_impl("pointwise:dnnl_sgemm");
		return conv_pointwise_run(s, &want, data);
	}
	if (conv_dense(&want)) {
		note_impl("dense:dnnl_sgemm");
		return conv_dense_run(s, ctx, &want, data);
	}
	pthread_mutex_lock(&s->mu);
	conv_plan* p = &s->plan;
	if (!p->valid || p->n != want.n || p->c != want.c || p->h != want.h || p->w != want.w || p->o != want.o || p->k != want.k) {
		conv_plan_free(p);
		*p = want;
		st = conv_plan_build(s, p);
	}
	if (!st) st = conv_run(s, ctx, data);
	pthread_mutex_unlock(&s->mu);
	return st;
}

// ---- Max pooling, on ONNX Runtime's intra-op threads.

static OrtStatus* ort_parallel_for(OrtKernelContext* ctx, void (*fn)(void*, size_t), size_t total, void* user) {
	return ORT_CALL(simclr_ort_KernelContext_ParallelFor, OrtStatus* (*)(const OrtKernelContext*, void (*)(void*, size_t), size_t, size_t, void*))(ctx, fn, total, 0, user);
}

typedef struct {
	const float* x;
	float* y;
	const float* dy;
	float* dx;
	int64_t* idx;
	const int64_t* cidx;
	int64_t h, w, oh, ow, k, stride, pad;
	int bad; // set by a plane whose index leaves it
} pool_job;

// pool_forward_plane pools plane i (one image's channel), keeping each
// window's first maximum in row-major order as ONNX Runtime's MaxPool does.
static void pool_forward_plane(void* user, size_t i) {
	pool_job* j = user;
	int64_t hw = j->h * j->w, base = (int64_t)i * hw, P = j->oh * j->ow;
	const float* x = j->x + base;
	float* y = j->y + (int64_t)i * P;
	int64_t* idx = j->idx + (int64_t)i * P;
	for (int64_t oy = 0; oy < j->oh; oy++) {
		int64_t y0 = oy * j->stride - j->pad, ylo = y0 < 0 ? 0 : y0, yhi = y0 + j->k < j->h ? y0 + j->k : j->h;
		for (int64_t ox = 0; ox < j->ow; ox++) {
			int64_t x0 = ox * j->stride - j->pad, xlo = x0 < 0 ? 0 : x0, xhi = x0 + j->k < j->w ? x0 + j->k : j->w;
			// Branch-free: on random data a branch on v > best mispredicts
			// about half the time.
			int64_t at = ylo * j->w + xlo;
			float best = x[at];
			for (int64_t r = ylo; r < yhi; r++) {
				const float* row = x + r * j->w;
				for (int64_t c = xlo; c < xhi; c++) {
					float v = row[c];
					int gt = v > best;
					best = gt ? v : best;
					at = gt ? r * j->w + c : at;
				}
			}
			y[oy * j->ow + ox] = best;
			idx[oy * j->ow + ox] = base + at;
		}
	}
}

static void pool_backward_plane(void* user, size_t i) {
	pool_job* j = user;
	int64_t hw = j->h * j->w, base = (int64_t)i * hw, P = j->oh * j->ow;
	const float* dy = j->dy + (int64_t)i * P;
	const int64_t* idx = j->cidx + (int64_t)i * P;
	float* dx = j->dx + base;
	memset(dx, 0, (size_t)hw * sizeof(float));
	for (int64_t q = 0; q < P; q++) {
		int64_t at = idx[q] - base;
		if (at < 0 || at >= hw) {
			j->bad = 1;
			continue;
		}
		dx[at] += dy[q];
	}
}

enum { POOL_FORWARD = 10, POOL_BACKWARD };

static OrtStatus* pool_compute(kernel_state* s, OrtKernelContext* ctx) {
	const OrtValue* a;
	OrtStatus* st;
	if ((st = ort_input(ctx, 0, &a))) return st;
	int64_t d[8];
	size_t n;
	if ((st = ort_shape(a, d, 8, &n))) return st;
	if (n != 4) return ort_error("%s: input of rank %zu, want 4", s->def->name, n);
	pool_job j = {0};
	void* data;
	if ((st = ort_data(a, &data))) return st;
	size_t planes = (size_t)(d[0] * d[1]);
	if (s->def->kind == POOL_FORWARD) {
		j.k = s->attr[0], j.stride = s->attr[1], j.pad = s->attr[2];
		j.h = d[2], j.w = d[3];
		if (j.k < 1 || j.stride < 1 || j.pad < 0 || j.pad >= j.k)
			return ort_error("MaxPoolForward: kernel %lld, stride %lld, pad %lld", (long long)j.k, (long long)j.stride, (long long)j.pad);
		j.oh = (j.h + 2 * j.pad - j.k) / j.stride + 1;
		j.ow = (j.w + 2 * j.pad - j.k) / j.stride + 1;
		if (j.oh < 1 || j.ow < 1) return ort_error("MaxPoolForward: a %lld kernel leaves no output of %lldx%lld", (long long)j.k, (long long)j.h, (long long)j.w);
		int64_t out[4] = {d[0], d[1], j.oh, j.ow};
		OrtValue *y, *idx;
		void *yd, *id;
		if ((st = ort_output(ctx, 0, out, 4, &y)) || (st = ort_output(ctx, 1, out, 4, &idx)) || (st = ort_data(y, &yd)) ||
				(st = ort_data(idx, &id)))
			return st;
		j.x = data, j.y = yd, j.idx = id;
		return ort_parallel_for(ctx, pool_forward_plane, planes, &j);
	}
	const OrtValue* b;
	int64_t e[8];
	size_t m;
	if ((st = ort_input(ctx, 1, &b)) || (st = ort_shape(b, e, 8, &m))) return st;
	if (m != 4 || e[0] != d[0] || e[1] != d[1] || e[2] != d[2] || e[3] != d[3])
		return ort_error("MaxPoolBackward: dY [%lld,%lld,%lld,%lld] and Indices of another shape", (long long)d[0], (long long)d[1], (long long)d[2], (long long)d[3]);
	j.h = s->attr[0], j.w = s->attr[1], j.oh = d[2], j.ow = d[3];
	int64_t out[4] = {d[0], d[1], j.h, j.w};
	OrtValue* dx;
	void *dxd, *id;
	if ((st = ort_output(ctx, 0, out, 4, &dx)) || (st = ort_data(dx, &dxd)) || (st = ort_data(b, &id))) return st;
	j.dy = data, j.dx = dxd, j.cidx = id;
	if ((st = ort_parallel_for(ctx, pool_backward_plane, planes, &j))) return st;
	if (j.bad) return ort_error("MaxPoolBackward: an index points outside its image's channel of the %lldx%lld input", (long long)j.h, (long long)j.w);
	return NULL;
}

// ---- ReLU and training-mode BatchNorm, on ONNX Runtime's intra-op threads.

enum { RELU_FORWARD = 20, RELU_BACKWARD, BN_FORWARD, BN_BACKWARD };

// RELU_CHUNK elements per parallel task.
#define RELU_CHUNK 16384

typedef struct {
	const float *a, *b;
	float* out;
	size_t n;
} relu_job;

// The loops below copy what they use out of the job into restrict-qualified
// locals: through the job pointer, every store could alias it and the
// compiler would reload the pointers element by element (that made these
// loops 5-10 times slower than ONNX Runtime's).

static void relu_forward_chunk(void* user, size_t i) {
	const relu_job* j = user;
	size_t lo = i * RELU_CHUNK, hi = lo + RELU_CHUNK < j->n ? lo + RELU_CHUNK : j->n;
	const float* restrict a = j->a;
	float* restrict out = j->out;
	for (size_t k = lo; k < hi; k++) out[k] = a[k] > 0.0f ? a[k] : 0.0f;
}

static void relu_backward_chunk(void* user, size_t i) {
	const relu_job* j = user; // a = dY, b = Y
	size_t lo = i * RELU_CHUNK, hi = lo + RELU_CHUNK < j->n ? lo + RELU_CHUNK : j->n;
	const float* restrict dy = j->a;
	const float* restrict y = j->b;
	float* restrict out = j->out;
	for (size_t k = lo; k < hi; k++) {
		float d = dy[k]; // loaded unconditionally, so that the loop vectorises
		out[k] = y[k] > 0.0f ? d : 0.0f;
	}
}

static OrtStatus* relu_compute(kernel_state* s, OrtKernelContext* ctx) {
	const OrtValue *a, *b = NULL;
	OrtStatus* st;
	if ((st = ort_input(ctx, 0, &a))) return st;
	int64_t d[8], e[8];
	size_t n, m;
	if ((st = ort_shape(a, d, 8, &n))) return st;
	size_t count = 1;
	for (size_t i = 0; i < n; i++) count *= (size_t)d[i];
	relu_job j = {.n = count};
	void* p;
	if ((st = ort_data(a, &p))) return st;
	j.a = p;
	if (s->def->kind == RELU_BACKWARD) {
		if ((st = ort_input(ctx, 1, &b)) || (st = ort_shape(b, e, 8, &m))) return st;
		if (m != n || memcmp(d, e, n * sizeof d[0]) != 0) return ort_error("ReluBackward: dY and Y of different shapes");
		if ((st = ort_data(b, &p))) return st;
		j.b = p;
	}
	OrtValue* y;
	if ((st = ort_output(ctx, 0, d, n, &y)) || (st = ort_data(y, &p))) return st;
	j.out = p;
	return ort_parallel_for(ctx, s->def->kind == RELU_FORWARD ? relu_forward_chunk : relu_backward_chunk,
		(count + RELU_CHUNK - 1) / RELU_CHUNK, &j);
}

typedef struct {
	const float *x, *dy, *scale, *bias, *mean, *var;
	float *y, *dx, *out_mean, *out_var, *dscale, *dbias;
	int64_t n, c, hw;
	float eps;
} bn_job;

// bn_forward_channel normalises channel c with its batch statistics, summed
// in double over N, H and W (two passes: mean, then squared deviations).
static void bn_forward_channel(void* user, size_t c) {
	const bn_job* j = user;
	const int64_t N = j->n, C = j->c, HW = j->hw;
	double sum = 0, sq = 0;
	for (int64_t n = 0; n < N; n++) {
		const float* restrict x = j->x + (n * C + (int64_t)c) * HW;
		float s = 0; // per image in float (at most a few thousand terms), then double
		for (int64_t i = 0; i < HW; i++) s += x[i];
		sum += s;
	}
	double count = (double)(N * HW), mean = sum / count;
	float fmean = (float)mean;
	for (int64_t n = 0; n < N; n++) {
		const float* restrict x = j->x + (n * C + (int64_t)c) * HW;
		float s = 0;
		for (int64_t i = 0; i < HW; i++) {
			float d = x[i] - fmean;
			s += d * d;
		}
		sq += s;
	}
	double var = sq / count, inv = 1.0 / sqrt(var + j->eps);
	float a = (float)(j->scale[c] * inv), b = (float)(j->bias[c] - mean * j->scale[c] * inv);
	for (int64_t n = 0; n < N; n++) {
		const float* restrict x = j->x + (n * C + (int64_t)c) * HW;
		float* restrict y = j->y + (n * C + (int64_t)c) * HW;
		for (int64_t i = 0; i < HW; i++) y[i] = a * x[i] + b;
	}
	j->out_mean[c] = fmean;
	j->out_var[c] = (float)var;
}

// bn_backward_channel: one pass for dbias = Σ dY and dscale = Σ dY x̂, one
// for dX.
static void bn_backward_channel(void* user, size_t c) {
	const bn_job* j = user;
	const int64_t N = j->n, C = j->c, HW = j->hw;
	const float mean = j->mean[c];
	double inv = 1.0 / sqrt((double)j->var[c] + j->eps);
	double sdy = 0, sdyx = 0;
	for (int64_t n = 0; n < N; n++) {
		const float* restrict x = j->x + (n * C + (int64_t)c) * HW;
		const float* restrict dy = j->dy + (n * C + (int64_t)c) * HW;
		float s1 = 0, s2 = 0;
		for (int64_t i = 0; i < HW; i++) {
			s1 += dy[i];
			s2 += dy[i] * (x[i] - mean);
		}
		sdy += s1;
		sdyx += s2;
	}
	double dbias = sdy, dscale = sdyx * inv, count = (double)(N * HW);
	// dX = a dY + (-a dscale inv / M) (X - mean) + (-a dbias / M)
	double a = j->scale[c] * inv;
	const float fa = (float)a, fk = (float)(-a * dscale * inv / count), fb = (float)(-a * dbias / count);
	for (int64_t n = 0; n < N; n++) {
		const float* restrict x = j->x + (n * C + (int64_t)c) * HW;
		const float* restrict dy = j->dy + (n * C + (int64_t)c) * HW;
		float* restrict dx = j->dx + (n * C + (int64_t)c) * HW;
		for (int64_t i = 0; i < HW; i++) dx[i] = fa * dy[i] + fk * (x[i] - mean) + fb;
	}
	j->dscale[c] = (float)dscale;
	j->dbias[c] = (float)dbias;
}

static OrtStatus* bn_compute(kernel_state* s, OrtKernelContext* ctx) {
	int backward = s->def->kind == BN_BACKWARD;
	int inputs = backward ? 5 : 3;
	const OrtValue* in[5];
	void* data[5];
	int64_t d[8], e[8];
	size_t n, m;
	OrtStatus* st;
	for (int i = 0; i < inputs; i++)
		if ((st = ort_input(ctx, (size_t)i, &in[i])) || (st = ort_data(in[i], &data[i]))) return st;
	// X is input 0 of the forward, 1 of the backward (after dY).
	if ((st = ort_shape(in[backward], d, 8, &n))) return st;
	if (n < 2) return ort_error("%s: X of rank %zu, want [N,C,...]", s->def->name, n);
	bn_job j = {.n = d[0], .c = d[1], .hw = 1, .eps = s->fattr[0]};
	for (size_t i = 2; i < n; i++) j.hw *= d[i];
	for (int i = 0; i < inputs; i++) {
		if ((st = ort_shape(in[i], e, 8, &m))) return st;
		int whole = i == 0 || (backward && i == 1);
		if (whole ? (m != n || memcmp(d, e, n * sizeof d[0]) != 0) : (m != 1 || e[0] != j.c))
			return ort_error("%s: input %d has the wrong shape for X of %lld channels", s->def->name, i, (long long)j.c);
	}
	int64_t cshape[1] = {j.c};
	OrtValue* out[3];
	void* od[3];
	for (int i = 0; i < 3; i++)
		if ((st = ort_output(ctx, (size_t)i, i == 0 ? d : cshape, i == 0 ? n : 1, &out[i])) || (st = ort_data(out[i], &od[i]))) return st;
	if (!backward) {
		j.x = data[0], j.scale = data[1], j.bias = data[2];
		j.y = od[0], j.out_mean = od[1], j.out_var = od[2];
		return ort_parallel_for(ctx, bn_forward_channel, (size_t)j.c, &j);
	}
	j.dy = data[0], j.x = data[1], j.scale = data[2], j.mean = data[3], j.var = data[4];
	j.dx = od[0], j.dscale = od[1], j.dbias = od[2];
	return ort_parallel_for(ctx, bn_backward_channel, (size_t)j.c, &j);
}

// The kernels, by op name; native.go checks them against the domain's
// definition (internal/nativeop) before registering them.
#define F simclr_ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT
#define I64 simclr_ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64
static const simclr_kernel kernels[] = {
	{"ConvForward", CONV_FORWARD, 2, 1, {F, F}, {F}, 2, {"stride", "pad"}, 0, {0}, conv_compute},
	{"ConvBackwardData", CONV_BACKWARD_DATA, 2, 1, {F, F}, {F}, 4, {"stride", "pad", "input_height", "input_width"}, 0, {0}, conv_compute},
	{"ConvBackwardWeights", CONV_BACKWARD_WEIGHTS, 2, 1, {F, F}, {F}, 3, {"stride", "pad", "kernel"}, 0, {0}, conv_compute},
	{"MaxPoolForward", POOL_FORWARD, 1, 2, {F}, {F, I64}, 3, {"kernel", "stride", "pad"}, 0, {0}, pool_compute},
	{"MaxPoolBackward", POOL_BACKWARD, 2, 1, {F, I64}, {F}, 2, {"input_height", "input_width"}, 0, {0}, pool_compute},
	{"ReluForward", RELU_FORWARD, 1, 1, {F}, {F}, 0, {0}, 0, {0}, relu_compute},
	{"ReluBackward", RELU_BACKWARD, 2, 1, {F, F}, {F}, 0, {0}, 0, {0}, relu_compute},
	{"BatchNormForward", BN_FORWARD, 3, 3, {F, F, F}, {F, F, F}, 0, {0}, 1, {"epsilon"}, bn_compute},
	{"BatchNormBackward", BN_BACKWARD, 5, 3, {F, F, F, F, F}, {F, F, F}, 0, {0}, 1, {"epsilon"}, bn_compute},
};
#undef F
#undef I64

// ---- The OrtCustomOp callbacks.

static const simclr_op* as_op(const simclr_OrtCustomOp* op) { return (const simclr_op*)op; }

static const char* op_name(const simclr_OrtCustomOp* op) { return as_op(op)->kernel->name; }
static const char* op_provider(const simclr_OrtCustomOp* op) { (void)op; return "CPUExecutionProvider"; }
static int op_input_type(const simclr_OrtCustomOp* op, size_t i) { return as_op(op)->kernel->input_types[i]; }
static int op_output_type(const simclr_OrtCustomOp* op, size_t i) { return as_op(op)->kernel->output_types[i]; }
static size_t op_inputs(const simclr_OrtCustomOp* op) { return (size_t)as_op(op)->kernel->inputs; }
static size_t op_outputs(const simclr_OrtCustomOp* op) { return (size_t)as_op(op)->kernel->outputs; }
static int op_required(const simclr_OrtCustomOp* op, size_t i) { (void)op, (void)i; return simclr_INPUT_OUTPUT_REQUIRED; }
static int op_memory_type(const simclr_OrtCustomOp* op, size_t i) { (void)op, (void)i; return simclr_OrtMemTypeDefault; }
static int op_one(const simclr_OrtCustomOp* op) { (void)op; return 1; }
static int op_end_version(const simclr_OrtCustomOp* op) { (void)op; return 0x7fffffff; }
static size_t op_no_pairs(int** a, int** b) { *a = NULL, *b = NULL; return 0; }
static void op_release_pairs(int* a, int* b) { (void)a, (void)b; }

static void kernel_destroy(void* k) {
	kernel_state* s = k;
	if (!s) return;
	conv_plan_free(&s->plan);
	if (s->stream) dnnl.stream_destroy(s->stream);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

static OrtStatus* kernel_create(const simclr_OrtCustomOp* op, const void* api, const OrtKernelInfo* info, void** out) {
	(void)api;
	const simclr_op* o = as_op(op);
	kernel_state* s = calloc(1, sizeof *s);
	if (!s) return ort_error("%s: out of memory", o->kernel->name);
	s->def = o->kernel;
	s->threads = o->threads;
	pthread_mutex_init(&s->mu, NULL);
	for (int i = 0; i < o->kernel->n_float_attrs; i++) {
		OrtStatus* st = ORT_CALL(simclr_ort_KernelInfoGetAttribute_float, OrtStatus* (*)(const OrtKernelInfo*, const char*, float*))(info, o->kernel->float_attrs[i], &s->fattr[i]);
		if (st) {
			char msg[256];
			simclr_native_status_message(st, msg, sizeof msg);
			kernel_destroy(s);
			return ort_error("%s needs the float attribute %s: %s", o->kernel->name, o->kernel->float_attrs[i], msg);
		}
	}
	for (int i = 0; i < o->kernel->n_attrs; i++) {
		OrtStatus* st = ORT_CALL(simclr_ort_KernelInfoGetAttribute_int64, OrtStatus* (*)(const OrtKernelInfo*, const char*, int64_t*))(info, o->kernel->attrs[i], &s->attr[i]);
		if (st) {
			char msg[256];
			simclr_native_status_message(st, msg, sizeof msg);
			kernel_destroy(s);
			return ort_error("%s needs the int attribute %s: %s", o->kernel->name, o->kernel->attrs[i], msg);
		}
	}
	int status = dnnl.stream_create(&s->stream, engine, sdnnl_stream_default_flags);
	if (status != sdnnl_success) {
		kernel_destroy(s);
		return dnnl_error("dnnl_stream_create", status);
	}
	*out = s;
	return NULL;
}

static OrtStatus* kernel_compute(void* k, OrtKernelContext* ctx) {
	kernel_state* s = k;
	return s->def->compute(s, ctx);
}

simclr_op* simclr_native_op(const char* name, int threads) {
	const simclr_kernel* kernel = NULL;
	for (size_t i = 0; i < sizeof kernels / sizeof kernels[0]; i++)
		if (strcmp(kernels[i].name, name) == 0) kernel = &kernels[i];
	if (!kernel) return NULL;
	simclr_op* op = calloc(1, sizeof *op);
	if (!op) return NULL;
	op->kernel = kernel;
	op->threads = threads;
	simclr_OrtCustomOp* b = &op->base;
	b->version = SIMCLR_ORT_API_VERSION;
	b->GetName = op_name;
	b->GetExecutionProviderType = op_provider;
	b->GetInputType = op_input_type;
	b->GetInputTypeCount = op_inputs;
	b->GetOutputType = op_output_type;
	b->GetOutputTypeCount = op_outputs;
	b->KernelDestroy = kernel_destroy;
	b->GetInputCharacteristic = op_required;
	b->GetOutputCharacteristic = op_required;
	b->GetInputMemoryType = op_memory_type;
	b->GetVariadicInputMinArity = op_one;
	b->GetVariadicInputHomogeneity = op_one;
	b->GetVariadicOutputMinArity = op_one;
	b->GetVariadicOutputHomogeneity = op_one;
	b->CreateKernelV2 = kernel_create;
	b->KernelComputeV2 = kernel_compute;
	b->GetStartVersion = op_one;
	b->GetEndVersion = op_end_version;
	b->GetMayInplace = op_no_pairs;
	b->ReleaseMayInplace = op_release_pairs;
	b->GetAliasMap = op_no_pairs;
	b->ReleaseAliasMap = op_release_pairs;
	return op;
}

void simclr_native_op_free(simclr_op* op) { free(op); }
int simclr_native_op_inputs(const simclr_op* op) { return op->kernel->inputs; }
int simclr_native_op_outputs(const simclr_op* op) { return op->kernel->outputs; }
int simclr_native_op_attrs(const simclr_op* op) { return op->kernel->n_attrs; }
int simclr_native_op_float_attrs(const simclr_op* op) { return op->kernel->n_float_attrs; }
const char* simclr_native_op_float_attr(const simclr_op* op, int i) { return op->kernel->float_attrs[i]; }
int simclr_native_op_input_type(const simclr_op* op, int i) { return op->kernel->input_types[i]; }
int simclr_native_op_output_type(const simclr_op* op, int i) { return op->kernel->output_types[i]; }
const char* simclr_native_op_attr(const simclr_op* op, int i) { return op->kernel->attrs[i]; }
