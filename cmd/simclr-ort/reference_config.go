package main

import (
	"fmt"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
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

// referenceMapped are the reference keys that are one simclr-ort key.
var referenceMapped = map[string]string{"workers": "workers", "batch_size": "batch-size", "image_size": "image-size",
	"epochs": "epochs", "projection_dim": "projection-dim", "seed": "seed", "weight_decay": "weight-decay",
	"temperature": "temperature", "resnet": "arch", "optimizer": "optimizer"}

// referenceUnused says why a reference key has no meaning here.
var referenceUnused = map[string]string{
	"start_epoch": "a resumed run continues at its checkpoint's own step",
	"reload":      "continue a run with --resume RUNDIR", "epoch_num": "continue a run with --resume RUNDIR",
	"pretrain":            "simclr-ort always trains the encoder from scratch",
	"nodes":               "data-parallel runs are launched with mpirun -np N (see the README)",
	"gpus":                "data-parallel runs are launched with mpirun -np N (see the README)",
	"nr":                  "data-parallel runs are launched with mpirun -np N (see the README)",
	"dataparallel":        "data-parallel runs are launched with mpirun -np N (see the README)",
	"logistic_batch_size": "simclr-ort eval --protocol linear fits by L-BFGS to convergence",
	"logistic_epochs":     "simclr-ort eval --protocol linear fits by L-BFGS to convergence",
}

// mapReferenceConfig fills c from the reference's keys and writes the
// mapping on w.
func mapReferenceConfig(path string, raw map[string]any, c *trainConfig, l *loaded) error {
	w := &l.notes
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
	for _, k := range keys {
		v := raw[k]
		if flag, ok := referenceMapped[k]; ok {
			if s, isString := v.(string); isString && (k == "optimizer" || k == "resnet") {
				v = strings.ToLower(s)
			}
			if err := setKey(c, flag, v); err != nil {
				return fmt.Errorf("--config %s: %s: %w", path, k, err)
			}
			l.keys[flag] = true
			fmt.Fprintf(w, "  %-20s %-12v -> --%s %s\n", k, raw[k], flag, c.value(flag))
			continue
		}
		if why, ok := referenceUnused[k]; ok {
			fmt.Fprintf(w, "  %-20s %-12v -> not used: %s\n", k, raw[k], why)
			continue
		}
		switch k {
		case "dataset":
			dir := "./datasets"
			if d, ok := raw["dataset_dir"].(string); ok {
				dir = d
			}
			if s, _ := v.(string); strings.ToUpper(s) != "CIFAR10" {
				return fmt.Errorf("--config %s: dataset %v: simclr-ort reads CIFAR10 (the binary batches), Fashion-MNIST/MNIST idx files and image folders; give --data for others", path, v)
			}
			c.Data = "cifar10:" + dir
			l.keys["data"] = true
			fmt.Fprintf(w, "  %-20s %-12v -> --data %s\n", k, v, c.Data)
		case "dataset_dir":
			if _, ok := raw["dataset"]; ok {
				fmt.Fprintf(w, "  %-20s %-12v -> part of --data (see dataset)\n", k, v)
			} else {
				fmt.Fprintf(w, "  %-20s %-12v -> not used: no dataset key says what is in it; give --data\n", k, v)
			}
		case "model_path":
			s, ok := v.(string)
			if !ok {
				return fmt.Errorf("--config %s: model_path %v: want a directory", path, v)
			}
			l.out = s
			fmt.Fprintf(w, "  %-20s %-12v -> --out %s, unless --out is given\n", k, v, s)
		}
	}
	return nil
}

// setKey sets one configuration key from a YAML value, checked against the
// key's type and, for the architecture and optimizer, its values.
func setKey(c *trainConfig, key string, v any) error {
	f, _ := c.field(key)
	b, err := yaml.Marshal(v)
	if err == nil {
		err = yaml.Unmarshal(b, f.Addr().Interface())
	}
	if err != nil {
		return fmt.Errorf("%v is not a value of --%s", v, key)
	}
	switch {
	case key == "arch" && c.Arch != "resnet18" && c.Arch != "resnet50":
		return fmt.Errorf("%q: simclr-ort builds resnet18 and resnet50", c.Arch)
	case key == "optimizer" && c.Optimizer != "lars" && c.Optimizer != "adam":
		return fmt.Errorf("%q: use Adam or LARS", c.Optimizer)
	}
	return nil
}
