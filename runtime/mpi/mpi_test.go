//go:build mpi

// These tests start internal/mpitest under mpirun:
//
//	go test -tags mpi ./runtime/mpi
//
// They need Open MPI (Debian: libopenmpi-dev openmpi-bin) and skip, saying
// so, without mpirun. SIMCLR_MPI_BENCH=1 adds TestBench, which prints the
// collective figures (go test -tags mpi -run Bench -v ./runtime/mpi).

package mpi

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var mpitest struct {
	once sync.Once
	path string
	err  error
}

// mpitestBinary builds internal/mpitest with the mpi tag, once per run.
func mpitestBinary(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("mpirun"); err != nil {
		t.Skip("mpirun not found: install Open MPI (apt-get install libopenmpi-dev openmpi-bin), then go test -tags mpi ./runtime/mpi")
	}
	mpitest.once.Do(func() {
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		dir, err := os.MkdirTemp("", "mpitest")
		if err != nil {
			mpitest.err = err
			return
		}
		mpitest.path = filepath.Join(dir, "mpitest")
		out, err := exec.Command(goBin, "build", "-tags", "mpi", "-o", mpitest.path, "./internal/mpitest").CombinedOutput()
		if err != nil {
			mpitest.err = fmt.Errorf("go build -tags mpi ./internal/mpitest: %v\n%s", err, out)
		}
	})
	if mpitest.err != nil {
		t.Fatal(mpitest.err)
	}
	return mpitest.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if mpitest.path != "" {
		os.RemoveAll(filepath.Dir(mpitest.path))
	}
	os.Exit(code)
}

// job is one mpirun of mpitest.
type job struct {
	cmd     *exec.Cmd
	out     syncBuffer
	lines   chan string // stdout lines, for tests that react to them
	started time.Time
}

// syncBuffer is a bytes.Buffer safe for the two copying goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// lineWriter copies mpitest's stdout into out and hands each complete
// line to lines, dropping lines nobody reads.
type lineWriter struct {
	out     *syncBuffer
	lines   chan string
	partial []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.out.Write(p)
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		select {
		case w.lines <- string(w.partial[:i]):
		default:
		}
		w.partial = w.partial[i+1:]
	}
}

// startJob starts mpirun -np np mpitest args in its own process group;
// limit kills the group.
func startJob(t *testing.T, ctx context.Context, np int, args ...string) *job {
	t.Helper()
	bin := mpitestBinary(t)
	mpiArgs := append([]string{"--oversubscribe", "-np", strconv.Itoa(np), bin}, args...)
	j := &job{cmd: exec.CommandContext(ctx, "mpirun", mpiArgs...), lines: make(chan string, 100)}
	j.cmd.Env = append(os.Environ(), "OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
	j.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	j.cmd.Cancel = func() error { return syscall.Kill(-j.cmd.Process.Pid, syscall.SIGKILL) }
	j.cmd.WaitDelay = 5 * time.Second
	j.cmd.Stderr = &j.out
	j.cmd.Stdout = &lineWriter{out: &j.out, lines: j.lines}
	j.started = time.Now()
	if err := j.cmd.Start(); err != nil {
		t.Fatalf("mpirun: %v", err)
	}
	return j
}

// wait returns mpirun's exit code (-1 when killed) and how long it ran.
func (j *job) wait() (int, time.Duration) {
	err := j.cmd.Wait()
	close(j.lines)
	d := time.Since(j.started)
	if err == nil {
		return 0, d
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), d
	}
	return -1, d
}

func TestExact(t *testing.T) {
	for _, np := range []int{2, 3} {
		t.Run(fmt.Sprintf("np%d", np), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			j := startJob(t, ctx, np, "-mode", "exact", "-timeout", "60s")
			code, _ := j.wait()
			out := j.out.String()
			if code != 0 {
				t.Fatalf("mpirun -np %d mpitest -mode exact: exit %d\n%s", np, code, out)
			}
			for r := range np {
				if want := fmt.Sprintf("rank %d: ok (size %d", r, np); !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

// TestFaults kills or stops one rank of a loop of all-reduces and checks
// that the job ends within the bound with a message naming that rank.
func TestFaults(t *testing.T) {
	const timeout = 3 * time.Second
	tests := []struct {
		name   string
		args   []string
		signal syscall.Signal // sent from outside to rank 1 once it loops; 0 for none
		within time.Duration
		want   string // regexp the output must match
	}{
		{
			name:   "rank 1 kills itself",
			args:   []string{"-fault", "kill", "-fault-rank", "1"},
			within: 60 * time.Second,
			want:   `process rank 1 .*exited on signal 9`,
		},
		{
			name:   "rank 1 killed from outside",
			args:   []string{"-fault", "none"},
			signal: syscall.SIGKILL,
			within: 60 * time.Second,
			want:   `process rank 1 .*exited on signal 9`,
		},
		{
			name:   "rank 1 stops itself between collectives",
			args:   []string{"-fault", "stop", "-fault-rank", "1"},
			within: timeout + 5*time.Second,
			want:   `rank 0: allreduce #21 did not complete within 3s: rank 1 did not reach it`,
		},
		{
			name:   "rank 0 stops itself between collectives",
			args:   []string{"-fault", "stop", "-fault-rank", "0"},
			within: timeout + 5*time.Second,
			want:   `rank 1: allreduce #21 did not complete within 3s: rank 0 did not reach it`,
		},
		{
			name:   "rank 1 stopped from outside",
			args:   []string{"-fault", "none"},
			signal: syscall.SIGSTOP,
			within: timeout + 5*time.Second,
			want:   `rank 0: allreduce #\d+ did not complete within 3s: rank 1 (did not reach it|reached it but has been silent)`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			j := startJob(t, ctx, 2, append([]string{"-mode", "fault", "-timeout", timeout.String()}, tc.args...)...)
			pid := 0
			if tc.signal != 0 {
				pid = signalWhenLooping(t, j, 1, tc.signal)
				j.started = time.Now()
			}
			code, took := j.wait()
			if pid != 0 {
				syscall.Kill(pid, syscall.SIGKILL) // a stopped rank mpirun left behind, if any
			}
			out := j.out.String()
			if code == 0 {
				t.Errorf("mpirun exited 0, want a failure\n%s", out)
			}
			if took > tc.within {
				t.Errorf("mpirun took %v after the fault, want at most %v\n%s", took.Round(time.Millisecond), tc.within, out)
			}
			if !regexp.MustCompile(tc.want).MatchString(out) {
				t.Errorf("output does not match %q:\n%s", tc.want, out)
			}
			t.Logf("exit %d after %v", code, took.Round(time.Millisecond))
		})
	}
}

// signalWhenLooping waits until rank has printed its pid and started
// looping, lets it loop a moment, signals it and returns its pid.
func signalWhenLooping(t *testing.T, j *job, rank int, sig syscall.Signal) int {
	t.Helper()
	pidLine := regexp.MustCompile(fmt.Sprintf(`^rank %d pid (\d+)$`, rank))
	pid := 0
	for line := range j.lines {
		if m := pidLine.FindStringSubmatch(line); m != nil {
			pid, _ = strconv.Atoi(m[1])
		}
		if pid != 0 && line == fmt.Sprintf("rank %d: looping", rank) {
			time.Sleep(500 * time.Millisecond)
			if err := syscall.Kill(pid, sig); err != nil {
				t.Fatalf("signal %v to rank %d (pid %d): %v", sig, rank, pid, err)
			}
			return pid
		}
	}
	t.Fatalf("rank %d never started looping:\n%s", rank, j.out.String())
	return 0
}

// TestBench prints latency and bandwidth of the collectives between the
// local processes; it runs only with SIMCLR_MPI_BENCH=1.
func TestBench(t *testing.T) {
	if os.Getenv("SIMCLR_MPI_BENCH") != "1" {
		t.Skip("set SIMCLR_MPI_BENCH=1 to print the collective figures (about 10 s)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	j := startJob(t, ctx, 2, "-mode", "bench", "-iters", "10")
	if code, _ := j.wait(); code != 0 {
		t.Fatalf("bench: exit %d\n%s", code, j.out.String())
	}
	t.Logf("mpirun --oversubscribe -np 2 mpitest -mode bench:\n%s", j.out.String())
}
