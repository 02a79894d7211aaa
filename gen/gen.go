// Package gen generates the SimCLR ONNX graphs. `go generate ./gen` writes
// the default set (graphs.Default) into graphs/; the trainer calls Build for
// any other configuration.
package gen

//go:generate go run ./cmd/gengraphs -out ../graphs

import (
	"fmt"
	"path/filepath"

	"github.com/simclr-ort/simclr-ort/gen/graph"
	"github.com/simclr-ort/simclr-ort/gen/simclr"
	"github.com/simclr-ort/simclr-ort/graphs"
	"github.com/simclr-ort/simclr-ort/internal/atomicfile"
)

// ProducerVersion is recorded in every generated file. Bump it when the
// generator's output changes meaning.
const ProducerVersion = "0.1.0"

// Build generates the graphs and manifest of one configuration in memory,
// in the default formulation (the one graphs/ holds).
func Build(cfg graphs.Config) (*simclr.Built, error) {
	return simclr.Build(cfg, ProducerVersion)
}

// BuildDistributed generates the forward, loss and backward graphs of a
// data-parallel step over world ranks; cfg is one rank's configuration
// (Pairs per rank). The manifest (graphs.Distributed) says how to run and
// reduce them.
func BuildDistributed(cfg graphs.Config, world int, opts simclr.Options) (*simclr.DistributedBuilt, error) {
	return simclr.BuildDistributed(cfg, world, ProducerVersion, opts)
}

// Inference generates the inference graph of a configuration, with the
// projector's output too when asked: the one function export needs.
func Inference(cfg graphs.Config, withProjector bool) ([]byte, error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	meta := map[string]string{"simclr.config": cfg.Name()}
	return graph.Marshal(simclr.InferenceGraph(cfg, withProjector).Model(ProducerVersion, meta))
}

// Files returns the default set as file name → bytes.
func Files() (map[string][]byte, error) {
	files := map[string][]byte{}
	for _, cfg := range graphs.Default() {
		b, err := simclr.Build(cfg, ProducerVersion)
		if err != nil {
			return nil, fmt.Errorf("gen: %s: %w", cfg.Name(), err)
		}
		manifest, err := b.Manifest.Encode()
		if err != nil {
			return nil, err
		}
		files[cfg.Name()+".json"] = manifest
		files[b.Manifest.TrainGraph] = b.Train
		files[b.Manifest.InferenceGraph] = b.Inference
	}
	return files, nil
}

// WriteDefault writes the default set into dir, replacing files atomically.
func WriteDefault(dir string) error {
	files, err := Files()
	if err != nil {
		return err
	}
	for name, data := range files {
		if err := atomicfile.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("gen: %w", err)
		}
	}
	return nil
}

// BuildWith generates one configuration with explicit generator options
// (simclr.Options); the environment is not read.
func BuildWith(cfg graphs.Config, opts simclr.Options) (*simclr.Built, error) {
	return simclr.BuildWith(cfg, ProducerVersion, opts)
}

// Options, Built and DistributedBuilt are the generator's types
// (simclr.Options, ...), so that callers need only this package.
type (
	Options          = simclr.Options
	Built            = simclr.Built
	DistributedBuilt = simclr.DistributedBuilt
)

// The values of Options.Kernels (simclr.KernelsONNX, simclr.KernelsNative).
const (
	KernelsONNX   = simclr.KernelsONNX
	KernelsNative = simclr.KernelsNative
)
