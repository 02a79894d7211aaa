// Package metrics reports what a simclr-ort training run does, step by step,
// to people and to machines.
//
// A training loop fills one [Step] record per optimizer step and hands it to
// a [Reporter], which fans it out to:
//
//   - RUNDIR/metrics.jsonl ([JSONLWriter]): one JSON object per step, opened
//     in append mode so that a resumed run continues the file;
//   - Prometheus ([Metrics], [Server]): gauges, counters and histograms in a
//     registry of their own, served on /metrics;
//   - log lines ([Logger]) in the format of the PyTorch reference
//     ("Step [50/192]\t Loss: 5.51...", "Epoch [0/500]\t Loss: 5.47...\t lr: 0.15"),
//     with the learning rate and images per second added;
//   - a progress bar ([Progress]) redrawn in place at most ten times a
//     second, only when the output is a terminal.
//
// # Units
//
// An "image" is one training example, that is one positive pair of
// augmented views: a batch of size B holds B images and 2B views.
// images_per_second and simclr_images_processed_total count images (pairs),
// not views.
//
// Step is the 0-based index of the step in the whole run: the first step of
// a run is step 0, and a resumed run continues the numbering. Epoch is
// 0-based too, as in the reference's log lines. StepSeconds is the wall time
// of the whole step, from the end of the previous step to the end of this
// one, so it includes DataWaitSeconds, the part of it spent waiting for the
// next batch; DataWaitSeconds/StepSeconds is the fraction of time the data
// pipeline held training up.
//
// # Prometheus metrics
//
// The metric names and help texts are listed in the const block of
// prometheus.go and returned by [Descriptions]; the registry also holds the
// standard go_* and process_* collectors (process_resident_memory_bytes
// gives the memory in use).
//
// # Cost
//
// Reporting a step does not allocate. It costs about 0.1 µs without
// metrics.jsonl and about 2 µs with it, nearly all of which is the one
// write(2) of the JSON line (BenchmarkReport, BenchmarkJSONL); a training
// step takes milliseconds at least. Log lines and progress-bar redraws are
// built in reused buffers.
package metrics
