package main

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
)

// The PyTorch reference's config/config.yaml (Spijkervet/SimCLR) is
// accepted as it is: its keys map onto train flags as below, and keys with
// no meaning here are reported, never dropped silently.
//
//	reference key          simclr-ort
//	workers                --workers
//	seed                   --seed
//	batch_size             --batch-size
//	image_size             --image-size
//	epochs                 --epochs
//	resnet                 --arch (resnet18, resnet50)
//	projection_dim         --projection-dim
//	optimizer              --optimizer (Adam -> adam, LARS -> lars)
//	weight_decay           --weight-decay
//	temperature            --temperature
//	dataset, dataset_dir   --data (CIFAR10 -> cifar10:DATASET_DIR, the binary batches)
//	model_path             --out, unless --out is given
//	start_epoch            reported: a resumed run continues at its checkpoint's own step
//	reload, epoch_num      reported: continue a run with --resume RUNDIR
//	pretrain               reported: simclr-ort always trains the encoder from scratch
//	nodes, gpus, nr,       reported: data-parallel runs are launched with mpirun -np N
//	dataparallel
//	logistic_batch_size,   reported: simclr-ort eval --protocol linear fits by L-BFGS
//	logistic_epochs        to convergence, without batches or epochs

// referenceKeys are the keys of the reference's config.yaml.
var referenceKeys = []string{"nodes", "gpus", "nr", "dataparallel", "workers", "dataset_dir", "seed", "batch_size",
	"image_size", "start_epoch", "epochs", "dataset", "pretrain", "resnet", "projection_dim", "optimizer",
	"weight_decay", "temperature", "model_path", "epoch_num", "reload", "logistic_batch_size", "logistic_epochs"}

// referenceOnly are keys only the reference's file has (simclr-ort's use
// hyphens).
var referenceOnly = map[string]bool{"dataset_dir": true, "batch_size": true, "image_size": true, "resnet": true,
	"projection_dim": true, "weight_decay": true, "model_path": true, "epoch_num": true, "start_epoch": true,
	"logistic_batch_size": true, "logistic_epochs": true, "dataparallel": true}

// isReferenceConfig says whether a file's keys are the reference's.
func isReferenceConfig(raw map[string]any) bool {
	for k := range raw {
		if referenceOnly[k] {
			return true
		}
	}
	return false
}

// referenceOut is the run directory a reference file's model_path named,
// for --out when the command line gives none.
var referenceOut string

// mapReferenceConfig fills c from the reference's keys and writes the
// mapping on w.
func mapReferenceConfig(path string, raw map[string]any, c *trainConfig, w *strings.Builder) error {
	known := map[string]bool{}
	for _, k := range referenceKeys {
		known[k] = true
	}
	var keys []string
	for k := range raw {
		if !known[k] {
			return fmt.Errorf("--config %s (the PyTorch reference's format): unknown key %q (did you mean %q?)", path, k, closest(k, referenceKeys))
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(w, "%s is the PyTorch reference's config.yaml; its keys map onto simclr-ort's flags:\n", path)
	mapped := func(k, flag string, v any) { fmt.Fprintf(w, "  %-20s %-12v -> --%s %v\n", k, raw[k], flag, v) }
	reported := func(k, why string) { fmt.Fprintf(w, "  %-20s %-12v -> not used: %s\n", k, raw[k], why) }
	asInt := func(k string) (int, error) {
		switch v := raw[k].(type) {
		case int:
			return v, nil
		case float64:
			if v == float64(int(v)) {
				return int(v), nil
			}
		}
		return 0, fmt.Errorf("--config %s: %s is %v, want a whole number", path, k, raw[k])
	}
	asFloat := func(k string) (float64, error) {
		switch v := raw[k].(type) {
		case int:
			return float64(v), nil
		case float64:
			return v, nil
		}
		return 0, fmt.Errorf("--config %s: %s is %v, want a number", path, k, raw[k])
	}
	asString := func(k string) (string, error) {
		if s, ok := raw[k].(string); ok {
			return s, nil
		}
		return "", fmt.Errorf("--config %s: %s is %v, want a string", path, k, raw[k])
	}
	for _, k := range keys {
		var err error
		switch k {
		case "workers", "batch_size", "image_size", "epochs", "projection_dim", "seed":
			var n int
			if n, err = asInt(k); err == nil {
				flag := map[string]string{"workers": "workers", "batch_size": "batch-size", "image_size": "image-size",
					"epochs": "epochs", "projection_dim": "projection-dim", "seed": "seed"}[k]
				f, _ := c.field(flag)
				if k == "seed" {
					if n < 0 {
						return fmt.Errorf("--config %s: seed %d must not be negative", path, n)
					}
					f.SetUint(uint64(n))
				} else {
					f.SetInt(int64(n))
				}
				mapped(k, flag, n)
			}
		case "weight_decay", "temperature":
			var x float64
			if x, err = asFloat(k); err == nil {
				flag := strings.ReplaceAll(k, "_", "-")
				f, _ := c.field(flag)
				f.SetFloat(x)
				mapped(k, flag, x)
			}
		case "resnet":
			var s string
			if s, err = asString(k); err == nil {
				if s != "resnet18" && s != "resnet50" {
					return fmt.Errorf("--config %s: resnet %q: simclr-ort builds resnet18 and resnet50", path, s)
				}
				c.Arch = s
				mapped(k, "arch", s)
			}
		case "optimizer":
			var s string
			if s, err = asString(k); err == nil {
				switch strings.ToLower(s) {
				case "adam", "lars":
					c.Optimizer = strings.ToLower(s)
					mapped(k, "optimizer", c.Optimizer)
				default:
					return fmt.Errorf("--config %s: optimizer %q: use Adam or LARS", path, s)
				}
			}
		case "dataset":
			var s, dir string
			if s, err = asString(k); err == nil {
				dir = "./datasets"
				if _, ok := raw["dataset_dir"]; ok {
					if dir, err = asString("dataset_dir"); err != nil {
						return err
					}
				}
				switch strings.ToUpper(s) {
				case "CIFAR10":
					c.Data = "cifar10:" + dir
					mapped(k, "data", c.Data)
				default:
					return fmt.Errorf("--config %s: dataset %q: simclr-ort reads CIFAR10 (the binary batches), Fashion-MNIST/MNIST idx files and image folders; give --data for others", path, s)
				}
			}
		case "dataset_dir":
			if _, ok := raw["dataset"]; !ok {
				var dir string
				if dir, err = asString(k); err == nil {
					reported(k, "no dataset key says what is in "+filepath.Clean(dir)+"; give --data")
				}
			} else {
				fmt.Fprintf(w, "  %-20s %-12v -> part of --data (see dataset)\n", k, raw[k])
			}
		case "model_path":
			var s string
			if s, err = asString(k); err == nil {
				referenceOut = s
				fmt.Fprintf(w, "  %-20s %-12v -> --out %s, unless --out is given\n", k, raw[k], s)
			}
		case "start_epoch":
			reported(k, "a resumed run continues at its checkpoint's own step")
		case "reload", "epoch_num":
			reported(k, "continue a run with --resume RUNDIR")
		case "pretrain":
			reported(k, "simclr-ort always trains the encoder from scratch")
		case "nodes", "gpus", "nr", "dataparallel":
			reported(k, "data-parallel runs are launched with mpirun -np N (see the README)")
		case "logistic_batch_size", "logistic_epochs":
			reported(k, "simclr-ort eval --protocol linear fits by L-BFGS to convergence")
		}
		if err != nil {
			return err
		}
	}
	return nil
}
