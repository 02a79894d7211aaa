package main

import (
	"bytes"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// trainConfig is everything that defines a training run, keyed as the train
// flags are: the flags fill it, a --config file fills it (flags on the
// command line win), every run writes it resolved to RUNDIR/config.yaml and
// into its checkpoints, and --resume reads it back from the checkpoint.
type trainConfig struct {
	Data           string  `yaml:"data"`
	Arch           string  `yaml:"arch"`
	Stem           string  `yaml:"stem"`
	ImageSize      int     `yaml:"image-size"`
	BatchSize      int     `yaml:"batch-size"`
	Shards         int     `yaml:"shards"`
	ProjectionDim  int     `yaml:"projection-dim"`
	Temperature    float64 `yaml:"temperature"`
	BNGroups       int     `yaml:"bn-groups"`
	BNLowering     string  `yaml:"bn-lowering"`
	ConvGrad       string  `yaml:"conv-grad"`
	Epochs         int     `yaml:"epochs"`
	Steps          int     `yaml:"steps"`
	Optimizer      string  `yaml:"optimizer"`
	LR             float64 `yaml:"lr"`
	LRScaling      string  `yaml:"lr-scaling"`
	WarmupEpochs   float64 `yaml:"warmup-epochs"`
	WeightDecay    float64 `yaml:"weight-decay"`
	JitterStrength float64 `yaml:"jitter-strength"`
	CropScaleMin   float64 `yaml:"crop-scale-min"`
	Blur           bool    `yaml:"blur"`
	Seed           uint64  `yaml:"seed"`

	// What follows is the runtime's, checkpointing's and logging's; a
	// resumed run may change the keys resumeMayChange lists (ep and tf32
	// change the result and are refused, as are jpeg-decoder and
	// max-image-pixels, which change the pixels or which images are used).
	Workers                int               `yaml:"workers"`
	Threads                int               `yaml:"threads"`
	EP                     string            `yaml:"ep"`
	DeviceID               int               `yaml:"device-id"`
	CudnnAlgo              string            `yaml:"cudnn-algo"`
	TF32                   bool              `yaml:"tf32"`
	GPUMemLimitMiB         int64             `yaml:"gpu-mem-limit"`
	GPUArenaExtend         string            `yaml:"gpu-arena-extend"`
	CUDAProviderLib        string            `yaml:"cuda-provider-lib"`
	CUDAProviderOptions    map[string]string `yaml:"cuda-provider-option"`
	ORTLib                 string            `yaml:"ort-lib"`
	ORTLogLevel            string            `yaml:"ort-log-level"`
	ConvAsGemm             bool              `yaml:"conv-as-gemm"`
	Kernels                string            `yaml:"kernels"`
	JPEGDecoder            string            `yaml:"jpeg-decoder"`
	MaxImagePixels         int               `yaml:"max-image-pixels"`
	CheckpointEvery        int               `yaml:"checkpoint-every"`
	CheckpointEverySteps   int               `yaml:"checkpoint-every-steps"`
	CheckpointEveryMinutes float64           `yaml:"checkpoint-every-minutes"`
	KeepCheckpoints        int               `yaml:"keep-checkpoints"`
	MetricsAddr            string            `yaml:"metrics-addr"`
	LogEvery               int               `yaml:"log-every"`
	MPITimeout             time.Duration     `yaml:"mpi-timeout"`
	EvalEvery              int               `yaml:"eval-every"`
	EvalK                  int               `yaml:"eval-k"`
	EvalTrainImages        int               `yaml:"eval-train-images"`
	EvalTestImages         int               `yaml:"eval-test-images"`
}

// resumeMayChange are the keys a resumed run may set differently from the
// run it continues: where the data lies, how many threads and workers, the
// runtime's knobs that change at most float32 rounding (threads, the
// convolutions' formulation and kernels, cuDNN's algorithm), checkpointing,
// logging, and --steps/--epochs to extend a finished run.
var resumeMayChange = map[string]bool{
	"data": true, "workers": true, "threads": true, "device-id": true, "cudnn-algo": true,
	"gpu-mem-limit": true, "gpu-arena-extend": true, "cuda-provider-lib": true, "cuda-provider-option": true,
	"ort-lib": true, "ort-log-level": true, "conv-as-gemm": true, "kernels": true,
	"checkpoint-every": true, "checkpoint-every-steps": true, "checkpoint-every-minutes": true, "keep-checkpoints": true,
	"metrics-addr": true, "log-every": true, "mpi-timeout": true, "steps": true, "epochs": true,
	"eval-every": true, "eval-k": true, "eval-train-images": true, "eval-test-images": true,
}

// configKeys lists trainConfig's keys in field order.
func configKeys() []string {
	t := reflect.TypeOf(trainConfig{})
	keys := make([]string, t.NumField())
	for i := range keys {
		keys[i] = t.Field(i).Tag.Get("yaml")
	}
	return keys
}

// field is the trainConfig field of a key.
func (c *trainConfig) field(key string) (reflect.Value, bool) {
	v := reflect.ValueOf(c).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		if t.Field(i).Tag.Get("yaml") == key {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// value is a key's value as the flag would print it.
func (c *trainConfig) value(key string) string {
	f, ok := c.field(key)
	if !ok {
		return ""
	}
	switch x := f.Interface().(type) {
	case map[string]string:
		parts := make([]string, 0, len(x))
		for k, v := range x {
			parts = append(parts, k+"="+v)
		}
		sort.Strings(parts)
		return strings.Join(parts, ",")
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	default:
		return fmt.Sprint(x)
	}
}

// override copies into c the value of every flag set on the command line
// that is a configuration key (flags holds the values the flags parsed
// into), and returns the keys it copied.
func (c *trainConfig) override(fs *pflag.FlagSet, flags *trainConfig) []string {
	var set []string
	fs.Visit(func(f *pflag.Flag) {
		dst, ok := c.field(f.Name)
		if !ok {
			return
		}
		src, _ := flags.field(f.Name)
		dst.Set(src)
		set = append(set, f.Name)
	})
	return set
}

// marshal is the configuration as YAML, every key in field order.
func (c *trainConfig) marshal() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString("# simclr-ort train configuration: every key is a train flag; `simclr-ort train --config FILE --out NEWDIR` repeats the run\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("encode the run configuration: %w", err)
	}
	return buf.Bytes(), nil
}

// loaded is what a configuration file said besides the values it set.
type loaded struct {
	// keys are the configuration keys the file set.
	keys map[string]bool
	// out is the run directory a reference file names (its model_path),
	// for --out when the command line gives none.
	out string
	// notes are lines to print (the reference file's mapping).
	notes strings.Builder
}

// loadTrainConfig reads a configuration file over c (keys it does not set
// keep c's values). It takes simclr-ort's keys or the PyTorch reference's
// config.yaml (Spijkervet/SimCLR), which it maps and reports in the notes.
// An unknown key is an error naming it and the closest valid one.
func loadTrainConfig(path string, c *trainConfig) (*loaded, error) {
	l := &loaded{keys: map[string]bool{}}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("--config %s: not a YAML mapping of keys to values: %w", path, err)
	}
	if isReferenceConfig(raw) {
		return l, mapReferenceConfig(path, raw, c, l)
	}
	known := configKeys()
	var unknown []string
	for k := range raw {
		if _, ok := c.field(k); !ok {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		var msgs []string
		for _, k := range unknown {
			msgs = append(msgs, fmt.Sprintf("%q (did you mean %q?)", k, closest(k, known)))
		}
		return nil, fmt.Errorf("--config %s: unknown key %s; the keys are the train flags' names", path, strings.Join(msgs, ", "))
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		// One key at a time, so that an error names the key.
		v, err := yaml.Marshal(raw[k])
		if err == nil {
			f, _ := c.field(k)
			err = yaml.Unmarshal(v, f.Addr().Interface())
		}
		if err != nil {
			return nil, fmt.Errorf("--config %s: %s: %v is not a value of this key (%w)", path, k, raw[k], err)
		}
		l.keys[k] = true
	}
	return l, nil
}

// closest is the candidate with the smallest edit distance to s.
func closest(s string, candidates []string) string {
	best, bestD := "", -1
	for _, c := range candidates {
		if d := editDistance(s, c); bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
