package main

import (
	"context"
	"testing"
)

// TestEveryCommandHasHelp parses --help of every subcommand.
func TestEveryCommandHasHelp(t *testing.T) {
	for name := range commands {
		t.Run(name, func(t *testing.T) {
			if code := run(context.Background(), []string{name, "--help"}); code != 0 {
				t.Errorf("%s --help exited %d", name, code)
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
		{"batch too small", []string{"step", "--batch-size", "1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code := run(context.Background(), tc.args); code != 2 {
				t.Errorf("%v exited %d, want 2", tc.args, code)
			}
		})
	}
}
