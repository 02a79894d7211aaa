package ort

// Execution providers shipped as separate libraries ("plugin" providers,
// ONNX Runtime 1.22 and newer): the library is registered with the
// environment, which then lists the devices it serves (OrtEpDevice), and a
// session appends the provider for one of them with
// SessionOptionsAppendExecutionProvider_V2. github.com/yalue/onnxruntime_go
// wraps the registration but not the device list or the append, so this file
// calls those three functions of ONNX Runtime's C API itself.
//
// The C API is one struct of function pointers (OrtApi) that only ever grows
// at its end, so a function's position in it never changes. The positions
// below were counted in onnxruntime_c_api.h (API version 24, the one
// onnxruntime_go 1.27 is built with); TestOrtAPIPositions recounts them in
// the header that onnxruntime_go ships, so a wrong position fails a test
// instead of calling the wrong function.

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct OrtStatus OrtStatus;
typedef struct OrtEnv OrtEnv;
typedef struct OrtEpDevice OrtEpDevice;
typedef struct OrtHardwareDevice OrtHardwareDevice;
typedef struct OrtKeyValuePairs OrtKeyValuePairs;
typedef struct OrtSessionOptions OrtSessionOptions;

typedef struct {
	const void* (*GetApi)(uint32_t version);
	const char* (*GetVersionString)(void);
} simclr_api_base;

enum {
	simclr_GetErrorMessage = 2,
	simclr_CreateEnv = 3,
	simclr_ReleaseStatus = 93,
	simclr_GetKeyValue = 297,
	simclr_GetEpDevices = 303,
	simclr_AppendExecutionProvider_V2 = 304,
	simclr_HardwareDevice_Type = 307,
	simclr_EpDevice_EpName = 312,
	simclr_EpDevice_EpOptions = 315,
	simclr_EpDevice_Device = 316,
};

static void* const* simclr_api;

// simclr_load_api finds OrtApi in the already loaded library (dlopen of
// the same path returns the same handle). It returns NULL or an error text.
static const char* simclr_load_api(const char* path, uint32_t version) {
	void* lib = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
	if (!lib) return dlerror();
	const simclr_api_base* (*get_base)(void) = (const simclr_api_base* (*)(void))dlsym(lib, "OrtGetApiBase");
	if (!get_base) return "the library has no OrtGetApiBase";
	const void* api = get_base()->GetApi(version);
	if (!api) return "the library does not offer ONNX Runtime C API version 24";
	simclr_api = (void* const*)api;
	return NULL;
}

static const char* simclr_error_message(OrtStatus* s) {
	return ((const char* (*)(const OrtStatus*))simclr_api[simclr_GetErrorMessage])(s);
}

static void simclr_release_status(OrtStatus* s) {
	((void (*)(OrtStatus*))simclr_api[simclr_ReleaseStatus])(s);
}

// CreateEnv returns the process's one environment (the one onnxruntime_go
// created) with its reference count raised.
static OrtStatus* simclr_env(OrtEnv** env) {
	return ((OrtStatus* (*)(int, const char*, OrtEnv**))simclr_api[simclr_CreateEnv])(3, "simclr-ort", env);
}

static OrtStatus* simclr_ep_devices(const OrtEnv* env, const OrtEpDevice* const** devices, size_t* n) {
	return ((OrtStatus* (*)(const OrtEnv*, const OrtEpDevice* const**, size_t*))simclr_api[simclr_GetEpDevices])(env, devices, n);
}

static const OrtEpDevice* simclr_device_at(const OrtEpDevice* const* devices, size_t i) { return devices[i]; }

static const char* simclr_ep_name(const OrtEpDevice* d) {
	return ((const char* (*)(const OrtEpDevice*))simclr_api[simclr_EpDevice_EpName])(d);
}

static int simclr_hardware_type(const OrtEpDevice* d) {
	const OrtHardwareDevice* hw = ((const OrtHardwareDevice* (*)(const OrtEpDevice*))simclr_api[simclr_EpDevice_Device])(d);
	if (!hw) return -1;
	return ((int (*)(const OrtHardwareDevice*))simclr_api[simclr_HardwareDevice_Type])(hw);
}

// simclr_ep_option returns one of the options the provider itself set on
// the device (the CUDA provider sets device_id), or NULL.
static const char* simclr_ep_option(const OrtEpDevice* d, const char* key) {
	const OrtKeyValuePairs* kv = ((const OrtKeyValuePairs* (*)(const OrtEpDevice*))simclr_api[simclr_EpDevice_EpOptions])(d);
	if (!kv) return NULL;
	return ((const char* (*)(const OrtKeyValuePairs*, const char*))simclr_api[simclr_GetKeyValue])(kv, key);
}

static OrtStatus* simclr_append_v2(OrtSessionOptions* so, OrtEnv* env, const OrtEpDevice* d,
		const char* const* keys, const char* const* values, size_t n) {
	const OrtEpDevice* devices[1] = {d};
	return ((OrtStatus* (*)(OrtSessionOptions*, OrtEnv*, const OrtEpDevice* const*, size_t,
			const char* const*, const char* const*, size_t))simclr_api[simclr_AppendExecutionProvider_V2])(
		so, env, devices, 1, keys, values, n);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"unsafe"

	onnxruntime "github.com/yalue/onnxruntime_go"
)

// apiVersion is the C API version the positions in the C preamble belong to.
const apiVersion = 24

// epDevice is one (execution provider, hardware device) pair the
// environment offers.
type epDevice struct {
	ptr      *C.OrtEpDevice
	Provider string // e.g. CPUExecutionProvider, CUDAExecutionProvider
	Hardware string // cpu, gpu, npu
	DeviceID string // the provider's device_id option, if it sets one
}

var (
	apiOnce sync.Once
	apiErr  error
	env     *C.OrtEnv
)

// loadAPI gives this file ONNX Runtime's function table and environment.
// Init must have succeeded.
func loadAPI() error {
	apiOnce.Do(func() {
		if !onnxruntime.IsInitialized() {
			apiErr = errors.New("ort: ONNX Runtime is not initialised; call ort.Init first")
			return
		}
		path := C.CString(initPath)
		defer C.free(unsafe.Pointer(path))
		if msg := C.simclr_load_api(path, apiVersion); msg != nil {
			apiErr = fmt.Errorf("ort: C API of %s: %s", initPath, C.GoString(msg))
			return
		}
		apiErr = statusError(C.simclr_env(&env))
	})
	return apiErr
}

func statusError(s *C.OrtStatus) error {
	if s == nil {
		return nil
	}
	defer C.simclr_release_status(s)
	return errors.New(C.GoString(C.simclr_error_message(s)))
}

// epDevices lists the devices of every registered execution provider
// (the CPU provider's always; plugin providers' once registered).
func epDevices() ([]epDevice, error) {
	if err := loadAPI(); err != nil {
		return nil, err
	}
	var list **C.OrtEpDevice
	var n C.size_t
	if err := statusError(C.simclr_ep_devices(env, &list, &n)); err != nil {
		return nil, fmt.Errorf("ort: list execution provider devices: %w", err)
	}
	key := C.CString("device_id")
	defer C.free(unsafe.Pointer(key))
	out := make([]epDevice, int(n))
	for i := range out {
		d := C.simclr_device_at(list, C.size_t(i))
		out[i] = epDevice{ptr: d, Provider: C.GoString(C.simclr_ep_name(d))}
		switch C.simclr_hardware_type(d) {
		case 0:
			out[i].Hardware = "cpu"
		case 1:
			out[i].Hardware = "gpu"
		case 2:
			out[i].Hardware = "npu"
		default:
			out[i].Hardware = "unknown"
		}
		if v := C.simclr_ep_option(d, key); v != nil {
			out[i].DeviceID = C.GoString(v)
		}
	}
	return out, nil
}

// appendEpDevice appends the execution provider for one device to the
// session options, with the provider's options.
func appendEpDevice(so *onnxruntime.SessionOptions, d epDevice, options map[string]string) error {
	if err := loadAPI(); err != nil {
		return err
	}
	cso, err := sessionOptionsPointer(so)
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(options))
	for k := range options {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	// The key and value arrays live in C memory: cgo forbids passing Go
	// memory that holds Go pointers.
	n := len(keys)
	ck := (*[1 << 20]*C.char)(C.malloc(C.size_t(max(n, 1)) * C.size_t(unsafe.Sizeof((*C.char)(nil)))))[:n:n]
	cv := (*[1 << 20]*C.char)(C.malloc(C.size_t(max(n, 1)) * C.size_t(unsafe.Sizeof((*C.char)(nil)))))[:n:n]
	defer func() {
		for i := range keys {
			C.free(unsafe.Pointer(ck[i]))
			C.free(unsafe.Pointer(cv[i]))
		}
		C.free(unsafe.Pointer(unsafe.SliceData(ck)))
		C.free(unsafe.Pointer(unsafe.SliceData(cv)))
	}()
	for i, k := range keys {
		ck[i], cv[i] = C.CString(k), C.CString(options[k])
	}
	err = statusError(C.simclr_append_v2(cso, env, d.ptr, unsafe.SliceData(ck), unsafe.SliceData(cv), C.size_t(n)))
	if err != nil {
		return fmt.Errorf("ort: append %s for device %s: %w", d.Provider, d.DeviceID, err)
	}
	return nil
}

// sessionOptionsPointer reads the OrtSessionOptions* that onnxruntime_go's
// SessionOptions wraps in its one unexported field. The layout is checked
// first, so a change in onnxruntime_go is an error, never a wild pointer.
func sessionOptionsPointer(so *onnxruntime.SessionOptions) (*C.OrtSessionOptions, error) {
	t := reflect.TypeOf(*so)
	if t.NumField() != 1 || t.Field(0).Type.Kind() != reflect.Pointer || t.Field(0).Offset != 0 {
		return nil, fmt.Errorf("ort: onnxruntime_go's SessionOptions no longer holds just the C pointer (%v); update runtime/ort/epdevice.go", t)
	}
	p := *(*unsafe.Pointer)(unsafe.Pointer(so))
	if p == nil {
		return nil, errors.New("ort: session options already destroyed")
	}
	return (*C.OrtSessionOptions)(p), nil
}

// apiPositions are the OrtApi positions the C preamble uses, by name (for
// TestOrtAPIPositions).
func apiPositions() map[string]int {
	return map[string]int{
		"GetErrorMessage": C.simclr_GetErrorMessage,
		"CreateEnv":       C.simclr_CreateEnv,
		"ReleaseStatus":   C.simclr_ReleaseStatus,
		"GetKeyValue":     C.simclr_GetKeyValue,
		"GetEpDevices":    C.simclr_GetEpDevices,
		"SessionOptionsAppendExecutionProvider_V2": C.simclr_AppendExecutionProvider_V2,
		"HardwareDevice_Type":                      C.simclr_HardwareDevice_Type,
		"EpDevice_EpName":                          C.simclr_EpDevice_EpName,
		"EpDevice_EpOptions":                       C.simclr_EpDevice_EpOptions,
		"EpDevice_Device":                          C.simclr_EpDevice_Device,
	}
}
