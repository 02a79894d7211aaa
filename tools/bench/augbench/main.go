// Command augbench measures the throughput of simclr-ort's data pipeline:
// the augment/data Loader decoding images and making SimCLR view pairs,
// with 1, 2, ... workers, as `simclr-ort train` runs it.
//
// Usage:
//
//	go run ./tools/bench/augbench -data folder:DIR -size 224 -batch 64 \
//	    -workers 1,2 -seconds 10 [-json] [-cpuprofile FILE]
//
// For each worker count it starts a loader (default prefetch, seed 1, the
// default augmentation: RandomResizedCrop 0.08-1, flip, colour jitter
// p=0.8, grayscale p=0.2, no blur), takes -warmup batches untimed, then
// takes and releases batches for at least -seconds and reports views/s
// (two views per image), views/s per worker, and views per CPU second of
// the whole process (user+system time from getrusage, which also counts
// the Go runtime's own threads, e.g. the garbage collector).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/simclr-ort/simclr-ort/augment"
	"github.com/simclr-ort/simclr-ort/augment/data"
)

// Result is one measurement.
type Result struct {
	Program           string  `json:"program"`
	Data              string  `json:"data"`
	Size              int     `json:"size"`
	Batch             int     `json:"batch"`
	Workers           int     `json:"workers"`
	GOMAXPROCS        int     `json:"gomaxprocs"`
	Batches           int     `json:"batches"`
	Views             int     `json:"views"`
	Seconds           float64 `json:"seconds"`
	CPUSeconds        float64 `json:"cpu_seconds"`
	ViewsPerSec       float64 `json:"views_per_s"`
	ViewsPerSecWorker float64 `json:"views_per_s_per_worker"`
	ViewsPerCPUSec    float64 `json:"views_per_cpu_s"`
	DataWaitShare     float64 `json:"consumer_wait_share"`
	PeakRSSMiB        float64 `json:"peak_rss_mib"`
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		log.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func peakRSSMiB() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		log.Fatal(err)
	}
	return float64(ru.Maxrss) / 1024 // kB on Linux
}

func measure(ds data.Dataset, spec string, size, batch, workers, warmup int, seconds float64) (Result, error) {
	l, err := data.NewLoader(ds, data.LoaderConfig{BatchSize: batch, Workers: workers, Seed: 1, Augment: augment.Config{Size: size}})
	if err != nil {
		return Result{}, err
	}
	defer l.Close()
	l.Start(context.Background(), 0)
	for range warmup {
		b, err := l.Next()
		if err != nil {
			return Result{}, err
		}
		b.Release()
	}
	cpu0, t0 := cpuSeconds(), time.Now()
	var n int
	var wait time.Duration
	for time.Since(t0).Seconds() < seconds {
		b, err := l.Next()
		if err != nil {
			return Result{}, err
		}
		wait += b.Wait
		b.Release()
		n++
	}
	elapsed := time.Since(t0).Seconds()
	cpu := cpuSeconds() - cpu0
	views := 2 * batch * n
	return Result{
		Program: "simclr-ort", Data: spec, Size: size, Batch: batch, Workers: workers,
		GOMAXPROCS: runtime.GOMAXPROCS(0), Batches: n, Views: views, Seconds: elapsed, CPUSeconds: cpu,
		ViewsPerSec:       float64(views) / elapsed,
		ViewsPerSecWorker: float64(views) / elapsed / float64(workers),
		ViewsPerCPUSec:    float64(views) / cpu,
		DataWaitShare:     wait.Seconds() / elapsed,
		PeakRSSMiB:        peakRSSMiB(),
	}, nil
}

func main() {
	spec := flag.String("data", "", "dataset: folder:DIR, fmnist:DIR, ... (as simclr-ort train --data)")
	size := flag.Int("size", 32, "side of the square views")
	batch := flag.Int("batch", 128, "images per batch (2x views)")
	workerList := flag.String("workers", "1,2", "comma-separated worker counts, measured in turn")
	seconds := flag.Float64("seconds", 10, "timed seconds per worker count")
	warmup := flag.Int("warmup", 1, "untimed batches first")
	asJSON := flag.Bool("json", false, "print one JSON object per line")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the timed runs to this file")
	flag.Parse()
	if *spec == "" {
		fmt.Fprintln(os.Stderr, "augbench: pass -data, e.g. -data folder:/tmp/jpegs")
		os.Exit(2)
	}
	ds, err := data.Open(*spec, data.Train)
	if err != nil {
		log.Fatal(err)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	for _, w := range strings.Split(*workerList, ",") {
		workers, err := strconv.Atoi(strings.TrimSpace(w))
		if err != nil || workers < 1 {
			log.Fatalf("augbench: bad worker count %q", w)
		}
		r, err := measure(ds, *spec, *size, *batch, workers, *warmup, *seconds)
		if err != nil {
			log.Fatal(err)
		}
		if *asJSON {
			out, _ := json.Marshal(r)
			fmt.Println(string(out))
		} else {
			fmt.Printf("%s %dx%d batch %d, %d workers: %.0f views/s, %.0f views/s per worker, %.0f views per CPU second (%d views in %.1f s, %.1f CPU s), peak RSS %.0f MiB\n",
				r.Data, r.Size, r.Size, r.Batch, r.Workers, r.ViewsPerSec, r.ViewsPerSecWorker, r.ViewsPerCPUSec, r.Views, r.Seconds, r.CPUSeconds, r.PeakRSSMiB)
		}
	}
}
