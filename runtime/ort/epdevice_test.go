package ort

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/simclr-ort/simclr-ort/gen/graph"
	onnxruntime "github.com/yalue/onnxruntime_go"
)

// TestOrtAPIPositions recounts, in the onnxruntime_c_api.h that
// onnxruntime_go ships, the position in struct OrtApi of every function
// epdevice.go calls by position.
func TestOrtAPIPositions(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/yalue/onnxruntime_go").Output()
	if err != nil {
		t.Skipf("cannot locate onnxruntime_go's source (go list: %v)", err)
	}
	header, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "onnxruntime_c_api.h"))
	if err != nil {
		t.Fatal(err)
	}
	positions := countOrtAPI(t, string(header))
	if len(positions) < 400 {
		t.Fatalf("found only %d OrtApi members; the header's layout changed", len(positions))
	}
	for name, want := range apiPositions() {
		got, ok := positions[name]
		if !ok {
			t.Errorf("%s is not in struct OrtApi", name)
		} else if got != want {
			t.Errorf("%s is at position %d of OrtApi, epdevice.go calls position %d", name, got, want)
		}
	}
	// Anchors known from ONNX Runtime's documentation of the first members.
	for name, want := range map[string]int{"CreateStatus": 0, "GetErrorCode": 1, "GetErrorMessage": 2, "CreateEnv": 3} {
		if positions[name] != want {
			t.Errorf("%s at %d, want %d: the member counting is off", name, positions[name], want)
		}
	}
}

// countOrtAPI numbers the members of struct OrtApi in declaration order.
func countOrtAPI(t *testing.T, header string) map[string]int {
	start := strings.Index(header, "struct OrtApi {")
	if start < 0 {
		t.Fatal("no struct OrtApi in the header")
	}
	body := header[start:]
	body = body[:strings.Index(body, "\n};")]
	body = regexp.MustCompile(`(?s)/\*.*?\*/`).ReplaceAllString(body, "")
	body = regexp.MustCompile(`//[^\n]*`).ReplaceAllString(body, "")
	member := regexp.MustCompile(`ORT_API2_STATUS\(\s*(\w+)|ORT_CLASS_RELEASE2?\(\s*(\w+)\)|ORT_API_T\(\s*[^,]+,\s*(\w+)|\(ORT_API_CALL\s*\*\s*(\w+)\)`)
	positions := map[string]int{}
	for i, m := range member.FindAllStringSubmatch(body, -1) {
		switch {
		case m[1] != "":
			positions[m[1]] = i
		case m[2] != "":
			positions["Release"+m[2]] = i
		case m[3] != "":
			positions[m[3]] = i
		default:
			positions[m[4]] = i
		}
	}
	return positions
}

// TestEpDevicesThroughTheCAPI lists the environment's devices and runs a
// session whose CPU provider was appended through
// SessionOptionsAppendExecutionProvider_V2: the same calls the CUDA plugin
// path makes, on a provider every build has.
func TestEpDevicesThroughTheCAPI(t *testing.T) {
	if err := Init(""); err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("no ONNX Runtime library (run `make setup`): %v", err)
		}
		t.Fatal(err)
	}
	devices, err := epDevices()
	if err != nil {
		t.Fatal(err)
	}
	var cpu *epDevice
	for i, d := range devices {
		t.Logf("device %d: %s on %s (device_id %q)", i, d.Provider, d.Hardware, d.DeviceID)
		if d.Provider == "CPUExecutionProvider" {
			cpu = &devices[i]
		}
	}
	if cpu == nil {
		t.Fatalf("no CPUExecutionProvider among %d devices", len(devices))
	}
	if cpu.Hardware != "cpu" {
		t.Errorf("CPU provider's device is %q", cpu.Hardware)
	}

	g := graph.New("neg")
	x := g.Input("x", graph.Float, graph.Shape{3})
	g.Output("y", g.Neg(x))
	model, err := graph.Marshal(g.Model("test", nil))
	if err != nil {
		t.Fatal(err)
	}
	so, err := onnxruntime.NewSessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	defer so.Destroy()
	if err := appendEpDevice(so, *cpu, nil); err != nil {
		t.Fatal(err)
	}
	in, _ := onnxruntime.NewTensor(onnxruntime.NewShape(3), []float32{1, -2, 3})
	defer in.Destroy()
	out, _ := onnxruntime.NewEmptyTensor[float32](onnxruntime.NewShape(3))
	defer out.Destroy()
	s, err := onnxruntime.NewAdvancedSessionWithONNXData(model, []string{"x"}, []string{"y"},
		[]onnxruntime.Value{in}, []onnxruntime.Value{out}, so)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Destroy()
	if err := s.Run(); err != nil {
		t.Fatal(err)
	}
	if got := out.GetData(); got[0] != -1 || got[1] != 2 || got[2] != -3 {
		t.Errorf("y = %v, want [-1 2 -3]", got)
	}
}

func TestCUDAProviderOptions(t *testing.T) {
	for _, tc := range []struct {
		in      CUDAOptions
		want    map[string]string
		wantErr string
	}{
		{CUDAOptions{}, map[string]string{"device_id": "1", "cudnn_conv_algo_search": "EXHAUSTIVE", "use_tf32": "0", "arena_extend_strategy": "kNextPowerOfTwo"}, ""},
		{CUDAOptions{ConvAlgoSearch: "heuristic", TF32: true, MemLimit: 1 << 30, ArenaExtend: "same-as-requested"},
			map[string]string{"cudnn_conv_algo_search": "HEURISTIC", "use_tf32": "1", "gpu_mem_limit": "1073741824", "arena_extend_strategy": "kSameAsRequested"}, ""},
		{CUDAOptions{ConvAlgoSearch: "fastest"}, nil, "exhaustive, heuristic or default"},
		{CUDAOptions{ArenaExtend: "grow"}, nil, "next-power-of-two or same-as-requested"},
	} {
		got, err := tc.in.providerOptions(1)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%+v: error %v, want one saying %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("%+v: %s = %q, want %q", tc.in, k, got[k], v)
			}
		}
	}
}

func TestCUDAHintNamesTheMissingLibrary(t *testing.T) {
	for _, tc := range []struct{ msg, want string }{
		{"libcublasLt.so.13: cannot open shared object file: No such file or directory", "cuBLAS"},
		{"libcudart.so.13: cannot open shared object file", "CUDA runtime"},
		{"libcudnn.so.9: cannot open shared object file", "cuDNN 9"},
		{"libcuda.so.1: cannot open shared object file", "driver"},
		{"libcurand.so.10: cannot open shared object file", "cuRAND"},
		{"CUDNN failure 1: CUDNN_STATUS_NOT_INITIALIZED", "cuDNN 9"},
		{"something else", "--ep cpu"},
	} {
		if got := cudaHint(errors.New(tc.msg)); !strings.Contains(got, tc.want) || !strings.Contains(got, "--ep cpu") {
			t.Errorf("hint for %q = %q, want it to mention %q and --ep cpu", tc.msg, got, tc.want)
		}
	}
}

func TestIsOutOfMemory(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		want bool
	}{
		{"CUDA failure 2: out of memory ; GPU=0", true},
		{"Failed to allocate memory for requested buffer of size 123", true},
		{"CUDNN_STATUS_ALLOC_FAILED", true},
		{"Available memory of 0 is smaller than requested bytes of 1024", true},
		{"invalid input shape", false},
	} {
		if got := IsOutOfMemory(errors.New(tc.msg)); got != tc.want {
			t.Errorf("IsOutOfMemory(%q) = %v, want %v", tc.msg, got, tc.want)
		}
	}
	if IsOutOfMemory(nil) {
		t.Error("nil is not out of memory")
	}
}
