package main

// How a run's configuration is resolved: the defaults, --config's file,
// the flags, and with --resume the checkpoint's recorded settings.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/simclr-ort/simclr-ort/graphs"
	"github.com/simclr-ort/simclr-ort/internal/rundir"
	"github.com/simclr-ort/simclr-ort/runtime/checkpoint"
	"github.com/simclr-ort/simclr-ort/runtime/mpi"
	"github.com/simclr-ort/simclr-ort/runtime/train"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// defaultDeps are the keys whose default depends on others: the learning
// rate on the optimizer and its scaling, the weight decay on the optimizer,
// the graph variant on the execution provider. A dependent key the command
// line does not set is derived again when it sets what it depends on.
var defaultDeps = map[string][]string{
	"lr":           {"optimizer", "lr-scaling"},
	"weight-decay": {"optimizer"},
	"bn-lowering":  {"ep"},
	"conv-grad":    {"ep"},
}

// batchLayout are the keys that say how a resumed run's batch splits into
// processes and BatchNorm shards.
var batchLayout = map[string]bool{"batch-size": true, "shards": true}

// resolveTrainConfig is the run's configuration: from the checkpoint with
// --resume (flags may change only what cannot change the result), else the
// defaults under --config's file under the flags given, with every default
// resolved to the value the run uses. file is what --config said, or nil.
func resolveTrainConfig(fs *pflag.FlagSet, o trainOptions, comm *mpi.Comm) (trainConfig, *loaded, error) {
	flags := o.cfg
	changed := map[string]bool{}
	fs.Visit(func(f *pflag.Flag) { changed[f.Name] = true })
	if o.resume != "" {
		if o.configFile != "" {
			return trainConfig{}, nil, usageError{fmt.Errorf("train: --config with --resume: a resumed run takes its settings from its checkpoint (%s/config.yaml records them); drop --config", o.resume)}
		}
		raw, err := shareBytes(comm, func() ([]byte, error) { return checkpointConfig(o.resume) })
		if err != nil {
			return trainConfig{}, nil, err
		}
		if len(raw) == 0 {
			// A checkpoint from before runs recorded their settings: the
			// flags must say them again, and train checks what it can.
			flags.resolveDefaults(changed)
			return flags, nil, nil
		}
		cfg := defaultTrainConfig()
		if err := yaml.Unmarshal(raw, &cfg); err != nil {
			return trainConfig{}, nil, fmt.Errorf("train: --resume %s: the checkpoint's recorded settings: %w", o.resume, err)
		}
		// How the batch splits into ranks is the engine's to check when
		// either launch is sharded: it knows the checkpoint's global batch
		// and names the launch that continues it (mpirun -np 2 ...
		// --batch-size n equals one process with --batch-size 2n --shards 2).
		sharded := comm.Size() > 1 || cfg.Shards > 1 || flags.Shards > 1
		var refused []string
		fs.Visit(func(f *pflag.Flag) {
			if _, ok := cfg.field(f.Name); !ok || resumeMayChange[f.Name] {
				return
			}
			if sharded && batchLayout[f.Name] {
				return
			}
			if was, now := cfg.value(f.Name), flags.value(f.Name); was != now {
				refused = append(refused, fmt.Sprintf("--%s %s (the run has %s)", f.Name, now, was))
			}
		})
		if len(refused) > 0 {
			return trainConfig{}, nil, usageError{fmt.Errorf("train: --resume %s keeps every setting that decides the run's result, but %s; drop those flags, or start a new run with --config %s --out NEWDIR",
				o.resume, strings.Join(refused, ", "), filepath.Join(o.resume, train.ConfigFile))}
		}
		cfg.override(fs, &flags)
		if w := comm.Size(); w > 1 && cfg.Shards > 1 && !changed["shards"] {
			// A run one process trained or continued with --batch-size W·n
			// --shards W records them; under mpirun -np W the ranks are the
			// shards, of n pairs each. Another world size keeps the global
			// batch, and the engine names the launch that fits.
			if cfg.Shards == w && !changed["batch-size"] && cfg.BatchSize%w == 0 {
				cfg.BatchSize /= w
			}
			cfg.Shards = 1
		}
		if changed["epochs"] && !changed["steps"] {
			cfg.Steps = 0 // --epochs extends a run that counted --steps
		}
		return cfg, nil, nil
	}
	cfg := defaultTrainConfig()
	given := map[string]bool{}
	var file *loaded
	if o.configFile != "" {
		var err error
		if file, err = loadTrainConfig(o.configFile, &cfg); err != nil {
			return trainConfig{}, nil, usageError{fmt.Errorf("train: %w", err)}
		}
		for k := range file.keys {
			given[k] = true
		}
	}
	cfg.override(fs, &flags)
	for k := range changed {
		given[k] = true
	}
	for dependent, deps := range defaultDeps {
		for _, d := range deps {
			if changed[d] && !changed[dependent] {
				delete(given, dependent)
			}
		}
	}
	cfg.resolveDefaults(given)
	return cfg, file, nil
}

// shareBytes is what read returns on rank 0, on every rank (read runs on
// rank 0 alone); an error of rank 0's is every rank's.
func shareBytes(comm *mpi.Comm, read func() ([]byte, error)) ([]byte, error) {
	if comm.Size() == 1 {
		return read()
	}
	var data []byte
	var err error
	head := make([]byte, 8)
	size := int64(-1)
	if comm.Rank() == 0 {
		if data, err = read(); err == nil {
			size = int64(len(data))
		}
	}
	binary.LittleEndian.PutUint64(head, uint64(size))
	if berr := comm.BroadcastBytes(head, 0); berr != nil {
		return nil, fmt.Errorf("train: share the run's settings: %w", berr)
	}
	size = int64(binary.LittleEndian.Uint64(head))
	if size < 0 {
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("train: rank 0 could not read the run's settings (see its error)")
	}
	if comm.Rank() != 0 {
		data = make([]byte, size)
	}
	if size > 0 {
		if berr := comm.BroadcastBytes(data, 0); berr != nil {
			return nil, fmt.Errorf("train: share the run's settings: %w", berr)
		}
	}
	return data, nil
}

// checkpointConfig is the recorded configuration (YAML) of the checkpoint
// of a run directory; empty for a checkpoint written before runs recorded
// one.
func checkpointConfig(dir string) ([]byte, error) {
	path := filepath.Join(dir, train.CheckpointFile)
	if fi, err := os.Stat(dir); err != nil {
		return nil, usageError{fmt.Errorf("train: --resume %s: %w; start a run with --out %s", dir, err, dir)}
	} else if !fi.IsDir() {
		return nil, usageError{fmt.Errorf("train: --resume %s is a file, not a run directory; pass the directory that holds %s", dir, train.CheckpointFile)}
	}
	if err := rundir.Check(dir); err != nil {
		return nil, fmt.Errorf("train: --resume: %w", err)
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, usageError{fmt.Errorf("train: --resume %s: it holds no checkpoint (%s) yet; start a run there with --out %s (without --resume)", dir, train.CheckpointFile, dir)}
	}
	ck, err := checkpoint.Load(path)
	if err != nil {
		return nil, fmt.Errorf("train: --resume %s: %w", dir, err)
	}
	return train.RunConfigFromCheckpoint(ck), nil
}

// resolveDefaults writes into c the values the run will use for the keys
// given leaves out and whose default depends on other keys (the learning
// rate, the weight decay, the graph variant), so that config.yaml records
// what ran.
func (c *trainConfig) resolveDefaults(given map[string]bool) {
	if !given["lr"] {
		switch {
		case c.Optimizer == "adam":
			c.LR = 3e-4
		case c.LRScaling == "sqrt":
			c.LR = 0.075
		default:
			c.LR = 0.3
		}
	}
	if !given["weight-decay"] {
		c.WeightDecay = 0
		if c.Optimizer != "adam" {
			c.WeightDecay = 1e-6 // the reference's LARS; its Adam has none
		}
	}
	if !given["bn-lowering"] {
		c.BNLowering = ""
	}
	if !given["conv-grad"] {
		c.ConvGrad = ""
	}
	g := graphs.Config{BNLowering: c.BNLowering, ConvGrad: c.ConvGrad}.For(c.EP)
	c.BNLowering = g.BNLowering
	if c.ConvGrad = g.ConvGrad; c.ConvGrad == "" {
		c.ConvGrad = "cpu"
	}
}
