package rundir

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestSecondHolderIsRefusedWithTheFirstNamed(t *testing.T) {
	dir := t.TempDir()
	first, err := Acquire(dir, "simclr-ort train --out "+dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(dir, "another")
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Acquire: %v, want ErrLocked", err)
	}
	for _, want := range []string{dir, "pid", "simclr-ort train --out", "choose another directory"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if err := first.Release(); err != nil {
		t.Fatal(err)
	}
	again, err := Acquire(dir, "third")
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	again.Release()
}

// TestKilledHolderReleases: the kernel drops the lock of a process that
// dies; no stale lock survives it.
func TestKilledHolderReleases(t *testing.T) {
	if os.Getenv("RUNDIR_HOLD") != "" {
		if _, err := Acquire(os.Getenv("RUNDIR_HOLD"), "child"); err != nil {
			os.Exit(3)
		}
		os.Stdout.WriteString("held\n")
		time.Sleep(time.Minute)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledHolderReleases$")
	cmd.Env = append(os.Environ(), "RUNDIR_HOLD="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := out.Read(buf); err != nil || string(buf) != "held\n" {
		t.Fatalf("child did not take the lock: %q %v", buf, err)
	}
	if _, err := Acquire(dir, "parent"); !errors.Is(err, ErrLocked) {
		t.Fatalf("Acquire while the child holds it: %v, want ErrLocked", err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	l, err := Acquire(dir, "parent")
	if err != nil {
		t.Fatalf("Acquire after the holder was killed: %v", err)
	}
	l.Release()
}

// TestCheckSaysWhoHoldsTheLock: Check reports a held lock with its holder
// and leaves a free one free and its note untouched.
func TestCheckSaysWhoHoldsTheLock(t *testing.T) {
	dir := t.TempDir()
	if err := Check(dir); err != nil {
		t.Fatalf("Check without a lock file: %v", err)
	}
	held, err := Acquire(dir, "simclr-ort train --out "+dir)
	if err != nil {
		t.Fatal(err)
	}
	err = Check(dir)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "simclr-ort train --out") {
		t.Fatalf("Check of a held lock: %v, want ErrLocked naming the holder", err)
	}
	if err := held.Release(); err != nil {
		t.Fatal(err)
	}
	if err := Check(dir); err != nil {
		t.Fatalf("Check after Release: %v", err)
	}
	again, err := Acquire(dir, "next")
	if err != nil {
		t.Fatalf("Acquire after Check: %v", err)
	}
	again.Release()
}
