// Command simclr-ort trains SimCLR image encoders on ONNX Runtime.
//
// Subcommands:
//
//	simclr-ort embed      features of a dataset as .npy
//	simclr-ort eval       kNN or linear-probe accuracy of an exported encoder
//	simclr-ort export     write a checkpoint's encoder as a standalone ONNX file
//	simclr-ort generate   write the training and inference graphs of a configuration
//	simclr-ort plot       training curves, an embedding map, nearest neighbours
//	simclr-ort step       run training steps on random views and report loss and speed
//	simclr-ort train      train on a dataset: checkpoints, resume, metrics
//
// Exit codes (also in every --help): 0 success, 1 runtime failure, 2 bad
// usage, 130 interrupted.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/simclr-ort/simclr-ort/graphs"
	"github.com/simclr-ort/simclr-ort/runtime/train"
	"github.com/spf13/pflag"
)

// command is one subcommand: its flags and what it runs.
type command struct {
	summary string
	flags   func(*pflag.FlagSet) func(ctx context.Context) error
}

var commands = map[string]command{
	"embed":    {"write an exported encoder's features of a dataset as .npy files", embedFlags},
	"eval":     {"kNN or linear-probe accuracy of an exported encoder on a labelled dataset", evalFlags},
	"export":   {"write a checkpoint's encoder as a standalone ONNX file", exportFlags},
	"generate": {"write the ONNX graphs and manifest of one configuration", generateFlags},
	"plot":     {"PNG and SVG of a run's curves (plot RUNDIR), a PCA map of features (--embeddings FILE.npy) or nearest neighbours (--neighbours)", plotFlags},
	"step":     {"run training steps on random views: loss at initialisation and step time", stepFlags},
	"train":    {"train a SimCLR encoder on an image dataset, with checkpoints and metrics", trainFlags},
}

// stdout receives what commands print besides errors (a variable for the
// tests).
var stdout io.Writer = os.Stdout

// usageError marks errors caused by the command line (exit code 2).
type usageError struct{ error }

// exitCodes documents the exit statuses, in every --help.
const exitCodes = "Exit status: 0 success, 1 failure, 2 bad usage (an unknown flag or an impossible value), " +
	"130 interrupted (Ctrl-C or SIGTERM; train writes a checkpoint first).\n"

func main() {
	ctx, stop := interruptContext()
	defer stop()
	os.Exit(run(ctx, os.Args[1:]))
}

// interruptContext is cancelled by Ctrl-C (SIGINT) or SIGTERM, which
// mpirun, Slurm and service managers send when a job is cancelled: both end
// training with a checkpoint and exit status 130.
func interruptContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func run(ctx context.Context, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage()
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "simclr-ort: unknown command %q\n\n", args[0])
		usage()
		return 2
	}
	fs := pflag.NewFlagSet("simclr-ort "+args[0], pflag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(os.Stderr, helpText(args[0], cmd, fs)) }
	runCmd := cmd.flags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "simclr-ort:", err)
		return 2
	}
	if args[0] != "train" {
		// Only train stops cleanly on an interruption (with a
		// checkpoint); the other commands end at once, with the
		// documented status.
		go func() {
			<-ctx.Done()
			if ctx.Err() == context.Canceled {
				fmt.Fprintln(os.Stderr, "simclr-ort: interrupted")
				os.Exit(130)
			}
		}()
	}
	if err := runCmd(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "simclr-ort:", err)
		var ue usageError
		switch {
		case errors.As(err, &ue), errors.Is(err, graphs.ErrInvalid), errors.Is(err, train.ErrInvalidOptions):
			return 2
		case errors.Is(err, context.Canceled):
			return 130
		}
		return 1
	}
	return 0
}

// helpText is a subcommand's --help: what it does, its flags, the exit
// statuses.
func helpText(name string, cmd command, fs *pflag.FlagSet) string {
	return fmt.Sprintf("simclr-ort %s: %s\n\nUsage: simclr-ort %s [flags]\n\nFlags:\n%s\n%s", name, cmd.summary, name, fs.FlagUsages(), exitCodes)
}

func usage() {
	var names []string
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("simclr-ort trains SimCLR image encoders on ONNX Runtime.\n\nUsage: simclr-ort COMMAND [flags]\n\nCommands:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  %-10s %s\n", n, commands[n].summary)
	}
	b.WriteString("\nRun 'simclr-ort COMMAND --help' for a command's flags.\n\n" + exitCodes)
	fmt.Fprint(os.Stderr, b.String())
}
