package metrics_test

import (
	"fmt"
	"log"
	"os"

	"github.com/simclr-ort/simclr-ort/runtime/metrics"
)

// A training loop reports every step; Close writes the line of the
// unfinished epoch. With RunDir set, the steps also go to
// RunDir/metrics.jsonl, and with MetricsAddr to a Prometheus endpoint.
func Example() {
	r, err := metrics.New(metrics.Options{
		Run:           metrics.RunInfo{Arch: "resnet18", Stem: "cifar", ImageSize: 32, BatchSize: 256, EP: "cpu"},
		Out:           os.Stdout, // not a terminal here, so no progress bar
		LogEvery:      2,
		StepsPerEpoch: 3,
		Epochs:        2,
	})
	if err != nil {
		log.Fatal(err)
	}
	for step := range int64(5) {
		err := r.Report(metrics.Step{
			Step:        step,
			Epoch:       int(step / 3),
			Loss:        5.5 - 0.125*float64(step),
			LR:          0.3,
			StepSeconds: 0.5, // images_per_second becomes 256/0.5
		})
		if err != nil {
			log.Fatal(err)
		}
	}
	if err := r.Close(); err != nil {
		log.Fatal(err)
	}
	fmt.Println(metrics.NameLoss + ": " + metrics.HelpLoss)
	// Output:
	// Step [0/3]	 Loss: 5.5	 lr: 0.3	 images/s: 512.0
	// Step [2/3]	 Loss: 5.25	 lr: 0.3	 images/s: 512.0
	// Epoch [0/2]	 Loss: 5.375	 lr: 0.3	 images/s: 512.0
	// Step [0/3]	 Loss: 5.125	 lr: 0.3	 images/s: 512.0
	// Epoch [1/2]	 Loss: 5.0625	 lr: 0.3	 images/s: 512.0	 (partial: 2/3 steps)
	// simclr_loss: NT-Xent loss of the last training step.
}
