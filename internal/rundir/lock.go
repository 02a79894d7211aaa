// Package rundir guards a run directory: one process at a time trains in
// it. The lock is an exclusive flock(2) on RUNDIR/lock, which the kernel
// releases when the process ends however it ends (Ctrl-C, SIGKILL, a
// crash), so a stale lock never needs cleaning up. The file names the
// holder (process ID, host, start time, command) for the error another
// process gets.
package rundir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// LockFile is the lock's name inside the run directory.
const LockFile = "lock"

// Lock is a held run-directory lock.
type Lock struct {
	f    *os.File
	path string
}

// ErrLocked is what the error of a directory in use wraps.
var ErrLocked = errors.New("run directory in use")

// Acquire takes dir's lock without waiting; holder describes this process
// in the lock file (e.g. the command line). It fails with an error wrapping
// ErrLocked that names the process holding it.
func Acquire(dir, holder string) (*Lock, error) {
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w; check that the run directory is writable", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is locked by %s; wait for that run to end (or stop it), or choose another directory",
				ErrLocked, dir, describe(path))
		}
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	host, _ := os.Hostname()
	note := fmt.Sprintf("pid %d on %s since %s: %s\n", os.Getpid(), host, time.Now().Format(time.RFC3339), holder)
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(note), 0)
	}
	return &Lock{f: f, path: path}, nil
}

// Check returns an error wrapping ErrLocked, naming the holder, when
// another process holds dir's lock, and nil otherwise (no lock file
// included). It writes nothing, but holds the lock for the instant of the
// probe, so an Acquire at that very instant is refused as if a run held it.
func Check(dir string) error {
	path := filepath.Join(dir, LockFile)
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("%w: %s is locked by %s; wait for that run to end (or stop it), or choose another directory",
				ErrLocked, dir, describe(path))
		}
		return nil
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_UN); err != nil {
		return fmt.Errorf("unlock %s after probing it: %w", dir, err)
	}
	return nil
}

// describe is the holder the lock file names, or a generic phrase.
func describe(path string) string {
	b, err := os.ReadFile(path)
	if s := strings.TrimSpace(string(b)); err == nil && s != "" {
		return "process " + s
	}
	return "another process (its lock file names none)"
}

// Release gives the lock up. The file stays: removing it would let a
// process that opened it before the removal and one that creates it anew
// both hold "the" lock.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	l.f.Truncate(0)
	err := syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}
