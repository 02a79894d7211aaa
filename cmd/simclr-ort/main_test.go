package main

import (
	"context"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestEveryCommandHasHelp parses --help of every subcommand; each help
// names the exit statuses.
func TestEveryCommandHasHelp(t *testing.T) {
	for name, cmd := range commands {
		t.Run(name, func(t *testing.T) {
			if code := run(context.Background(), []string{name, "--help"}); code != 0 {
				t.Errorf("%s --help exited %d", name, code)
			}
			fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
			cmd.flags(fs)
			if help := helpText(name, cmd, fs); !strings.Contains(help, exitCodes) || !strings.Contains(help, "--") {
				t.Errorf("%s --help does not list its flags and exit statuses:\n%s", name, help)
			}
		})
	}
}

func TestBadUsageExitsTwo(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"unknown command", []string{"fly"}},
		{"unknown flag", []string{"step", "--no-such-flag"}},
		{"unknown architecture", []string{"generate", "--arch", "resnet7", "--out", t.TempDir()}},
		{"unknown kernels", []string{"generate", "--kernels", "fast", "--out", t.TempDir()}},
		{"batch too small", []string{"step", "--batch-size", "1"}},
		{"export of a checkpoint with configuration flags", []string{"export", "--checkpoint", "run/checkpoint.ckpt", "--arch", "resnet50"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code := run(context.Background(), tc.args); code != 2 {
				t.Errorf("%v exited %d, want 2", tc.args, code)
			}
		})
	}
}
