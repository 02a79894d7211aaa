// Command mpitest exercises package mpi across processes. It is started by
// the package's tests (go test -tags mpi ./runtime/mpi) under mpirun, and can
// be run by hand:
//
//	go build -tags mpi -o /tmp/mpitest ./runtime/mpi/internal/mpitest
//	mpirun --oversubscribe -np 2 /tmp/mpitest -mode exact
//	mpirun --oversubscribe -np 2 /tmp/mpitest -mode bench
//	mpirun --oversubscribe -np 2 /tmp/mpitest -mode fault -fault stop -fault-rank 1 -timeout 3s
//
// Modes: exact checks every collective against hand-computed values and
// prints "rank R: ok"; bench prints latency and bandwidth figures from rank
// 0; fault runs all-reduces in a loop, in which -fault-rank kills (SIGKILL)
// or stops (SIGSTOP) itself at iteration -fault-at, or runs until killed
// from outside with -fault none. A failing collective is reported through
// Comm.Abort, which exits with status 3.
package main

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/simclr-ort/simclr-ort/runtime/mpi"
)

func main() {
	mode := flag.String("mode", "exact", "exact, bench or fault")
	timeout := flag.Duration("timeout", 0, "collective timeout (0: the package default)")
	fault := flag.String("fault", "stop", "fault mode: kill, stop or none")
	faultRank := flag.Int("fault-rank", 1, "fault mode: the rank that faults")
	faultAt := flag.Int("fault-at", 20, "fault mode: the iteration at which it faults")
	iters := flag.Int("iters", 10, "bench mode: timed repetitions per size")
	flag.Parse()

	for k, v := range mpi.Tuning {
		if _, set := os.LookupEnv(k); !set {
			os.Setenv(k, v)
		}
	}
	launch, err := mpi.DetectLaunch(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mpitest:", err)
		os.Exit(2)
	}
	c, err := mpi.Init(launch)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mpitest:", err)
		os.Exit(2)
	}
	c.SetTimeout(*timeout)
	switch *mode {
	case "exact":
		err = exact(c)
	case "bench":
		err = bench(c, *iters)
	case "fault":
		err = faultLoop(c, *fault, *faultRank, *faultAt)
	default:
		err = fmt.Errorf("unknown -mode %q", *mode)
	}
	if err != nil {
		c.Abort(3, err.Error())
	}
	if err := c.Finalize(); err != nil {
		fmt.Fprintln(os.Stderr, "mpitest:", err)
		os.Exit(1)
	}
}

// sizes are the element counts every collective is checked with, from
// empty to a few million (AllreduceSum splits the last into 1M chunks).
var sizes = []int{0, 1, 7, 1000, 65537, 3<<20 + 5}

// exact checks every collective against values computed by hand: all
// operands are small integers, so float32 sums are exact whatever the
// reduction order.
func exact(c *mpi.Comm) error {
	r, n := c.Rank(), c.Size()
	if n < 2 {
		return fmt.Errorf("exact: world of %d, want at least 2 (run under mpirun -np 2)", n)
	}
	if got := os.Getenv("OMPI_COMM_WORLD_RANK"); got != "" && got != fmt.Sprint(r) {
		return fmt.Errorf("exact: Rank() = %d, OMPI_COMM_WORLD_RANK = %s", r, got)
	}
	if err := checkSignals(); err != nil {
		return err
	}
	if err := c.Barrier(); err != nil {
		return err
	}
	for _, size := range sizes {
		for _, root := range []int{0, n - 1} {
			buf := make([]float32, size)
			for i := range buf {
				buf[i] = float32(-1) // overwritten on non-roots
				if r == root {
					buf[i] = float32(i%4096 + root)
				}
			}
			if err := c.Broadcast(buf, root); err != nil {
				return err
			}
			if err := check(fmt.Sprintf("Broadcast(len %d, root %d)", size, root), buf, func(i int) float32 { return float32(i%4096 + root) }); err != nil {
				return err
			}
			bytes := make([]byte, size)
			if r == root {
				for i := range bytes {
					bytes[i] = byte(i*7 + root)
				}
			}
			if err := c.BroadcastBytes(bytes, root); err != nil {
				return err
			}
			for i, b := range bytes {
				if b != byte(i*7+root) {
					return fmt.Errorf("rank %d: BroadcastBytes(len %d, root %d): [%d] = %d, want %d", r, size, root, i, b, byte(i*7+root))
				}
			}
		}

		// Rank q contributes i%1000 + 1000q: the sum is n(i%1000) + 500n(n-1).
		buf := make([]float32, size)
		for i := range buf {
			buf[i] = float32(i%1000 + 1000*r)
		}
		if err := c.AllreduceSum(buf); err != nil {
			return err
		}
		if err := check(fmt.Sprintf("AllreduceSum(len %d)", size), buf, func(i int) float32 { return float32(n*(i%1000) + 500*n*(n-1)) }); err != nil {
			return err
		}
		// Rank q contributes 2n(i%100) + 2q: the mean is 2n(i%100) + n-1.
		for i := range buf {
			buf[i] = float32(2*n*(i%100) + 2*r)
		}
		if err := c.AllreduceMean(buf); err != nil {
			return err
		}
		if err := check(fmt.Sprintf("AllreduceMean(len %d)", size), buf, func(i int) float32 { return float32(2*n*(i%100) + n - 1) }); err != nil {
			return err
		}

		// Rank q sends i%10000 + 10000q; dst is rank-major.
		src := make([]float32, size)
		for i := range src {
			src[i] = float32(i%10000 + 10000*r)
		}
		dst := make([]float32, n*size)
		if err := c.Allgather(dst, src); err != nil {
			return err
		}
		if err := check(fmt.Sprintf("Allgather(len %d)", size), dst, func(j int) float32 {
			q, i := j/size, j%size
			return float32(i%10000 + 10000*q)
		}); err != nil {
			return err
		}
	}

	// Buckets of assorted lengths, empty ones included: each done once.
	lens := []int{5, 0, 1 << 20, 3, 0, 70000}
	bufs := make([][]float32, len(lens))
	for k, l := range lens {
		bufs[k] = make([]float32, l)
		for i := range bufs[k] {
			bufs[k][i] = float32(i%1000 + 1000*r + k)
		}
	}
	seen := make([]int, len(lens))
	if err := c.AllreduceSumBuckets(bufs, func(k int) { seen[k]++ }); err != nil {
		return err
	}
	for k := range lens {
		if seen[k] != 1 {
			return fmt.Errorf("rank %d: AllreduceSumBuckets: done(%d) called %d times, want 1", r, k, seen[k])
		}
		if err := check(fmt.Sprintf("AllreduceSumBuckets bucket %d (len %d)", k, lens[k]), bufs[k], func(i int) float32 {
			return float32(n*(i%1000+k) + 500*n*(n-1))
		}); err != nil {
			return err
		}
	}

	// Steady state: no allocation per collective.
	countDone := func(k int) { seen[k]++ }
	buf := make([]float32, 1024)
	dst := make([]float32, n*len(buf))
	for _, tc := range []struct {
		name string
		f    func() error
	}{
		{"AllreduceSum", func() error { return c.AllreduceSum(buf) }},
		{"Broadcast", func() error { return c.Broadcast(buf, 0) }},
		{"Allgather", func() error { return c.Allgather(dst, buf) }},
		{"Barrier", c.Barrier},
		{"AllreduceSumBuckets", func() error { return c.AllreduceSumBuckets(bufs, countDone) }},
	} {
		var err error
		allocs := testing.AllocsPerRun(50, func() {
			if e := tc.f(); e != nil {
				err = e
			}
		})
		if err != nil {
			return err
		}
		if allocs != 0 {
			return fmt.Errorf("rank %d: %s allocates %.1f times per call, want 0", r, tc.name, allocs)
		}
	}
	fmt.Printf("rank %d: ok (size %d, %s)\n", r, n, c.Library())
	return nil
}

// check compares got with want(i) exactly and names the first mismatch.
func check(what string, got []float32, want func(int) float32) error {
	for i, g := range got {
		if w := want(i); g != w {
			return fmt.Errorf("%s: [%d] = %v, want %v", what, i, g, w)
		}
	}
	return nil
}

// checkSignals makes sure that MPI left Go's signal handling alone: a nil
// dereference must still be a recoverable panic.
func checkSignals() (err error) {
	defer func() {
		if recover() == nil {
			err = fmt.Errorf("a nil dereference did not panic")
		}
	}()
	var p *int
	_ = *p
	return nil
}

// lateBy is how late the other ranks come to rank 0's all-reduce in the
// bench's late case.
const lateBy = 200 * time.Millisecond

// bench times the collectives the trainer uses and prints, on rank 0, the
// median and best of iters repetitions.
func bench(c *mpi.Comm, iters int) error {
	report := func(name string, bytes int, skip time.Duration, f func() error) error {
		if err := f(); err != nil { // warm-up
			return err
		}
		var ts []time.Duration
		for range iters {
			if err := c.Barrier(); err != nil {
				return err
			}
			t0 := time.Now()
			if err := f(); err != nil {
				return err
			}
			ts = append(ts, time.Since(t0)-skip)
		}
		sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
		med := ts[len(ts)/2]
		if c.Rank() == 0 {
			fmt.Printf("%-34s %9.1f MB  median %9.3f ms  best %9.3f ms  algbw %6.2f GB/s\n",
				name, float64(bytes)/1e6, float64(med.Microseconds())/1e3, float64(ts[0].Microseconds())/1e3,
				float64(bytes)/med.Seconds()/1e9)
		}
		return nil
	}
	for _, n := range []int{1, 1 << 10, 11_500_000, 23_500_000} {
		buf := make([]float32, n)
		for i := range buf {
			buf[i] = 1
		}
		if err := report(fmt.Sprintf("AllreduceSum %d float32", n), 4*n, 0, func() error { return c.AllreduceSum(buf) }); err != nil {
			return err
		}
	}
	// The same 11.5M in 1M-element buckets.
	buckets := make([][]float32, 0, 12)
	whole := make([]float32, 11_500_000)
	for i := 0; i < len(whole); i += 1 << 20 {
		buckets = append(buckets, whole[i:min(i+1<<20, len(whole))])
	}
	if err := report(fmt.Sprintf("AllreduceSumBuckets 11500000 (%d)", len(buckets)), 4*len(whole), 0, func() error {
		return c.AllreduceSumBuckets(buckets, nil)
	}); err != nil {
		return err
	}

	// Late ranks: rank 0 has been polling, sleeping between polls, for
	// 200 ms when the others arrive; the 200 ms are not counted.
	late := make([]float32, 11_500_000)
	if err := report("AllreduceSum 11500000, others late", 4*len(late), lateBy, func() error {
		if c.Rank() != 0 {
			time.Sleep(lateBy)
		}
		return c.AllreduceSum(late)
	}); err != nil {
		return err
	}
	src := make([]float32, 256*64)
	dst := make([]float32, c.Size()*len(src))
	if err := report("Allgather 256x64 float32 per rank", 4*len(dst), 0, func() error { return c.Allgather(dst, src) }); err != nil {
		return err
	}
	return report("Barrier", 0, 0, c.Barrier)
}

// faultLoop all-reduces a 1M buffer in a loop; rank faultRank kills or
// stops itself at iteration at. It prints its pid first, for tests that
// signal it from outside.
func faultLoop(c *mpi.Comm, fault string, faultRank, at int) error {
	fmt.Printf("rank %d pid %d\n", c.Rank(), os.Getpid())
	buf := make([]float32, 1<<20)
	deadline := time.Now().Add(2 * time.Minute)
	for i := 0; time.Now().Before(deadline); i++ {
		if i == at && c.Rank() == faultRank {
			sig := map[string]syscall.Signal{"kill": syscall.SIGKILL, "stop": syscall.SIGSTOP}[fault]
			if sig != 0 {
				fmt.Printf("rank %d: sending myself %v at iteration %d\n", c.Rank(), sig, i)
				os.Stdout.Sync()
				syscall.Kill(os.Getpid(), sig)
			}
		}
		if err := c.AllreduceSum(buf); err != nil {
			return err
		}
		if i == 1 {
			fmt.Printf("rank %d: looping\n", c.Rank())
		}
	}
	return fmt.Errorf("fault: rank %d saw no fault within 2 minutes", c.Rank())
}
