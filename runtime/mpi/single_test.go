//go:build !mpi

package mpi

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestSingleRefusesLaunchedWorld(t *testing.T) {
	tests := []struct {
		name, key, value string
	}{
		{"mpirun", "OMPI_COMM_WORLD_SIZE", "2"},
		{"hydra", "PMI_SIZE", "4"},
		{"srun", "SLURM_STEP_NUM_TASKS", "8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := DetectLaunch(func(k string) string { return map[string]string{tc.key: tc.value}[k] })
			if err != nil {
				t.Fatal(err)
			}
			_, _, _, err = startEngine(l, DefaultTimeout)
			if err == nil {
				t.Fatalf("startEngine with %s=%s: no error", tc.key, tc.value)
			}
			for _, want := range []string{"-tags mpi", "make build-mpi", tc.key + "=" + tc.value} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

// TestSingleWorld runs every collective in a world of one. Init can be
// called once per process, so one test covers the Comm.
func TestSingleWorld(t *testing.T) {
	c, err := Init(Launch{Size: 1, Var: "OMPI_COMM_WORLD_SIZE"}) // a launcher with one process is fine
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	if c.Rank() != 0 || c.Size() != 1 {
		t.Fatalf("Rank, Size = %d, %d; want 0, 1", c.Rank(), c.Size())
	}
	if _, err := Init(Launch{Size: 1}); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("second Init: error %v, want one saying it was called twice", err)
	}
	if c.Timeout() != DefaultTimeout {
		t.Errorf("Timeout() = %v, want %v", c.Timeout(), DefaultTimeout)
	}

	in := []float32{1, -2, 3.5}
	buf := slices.Clone(in)
	bytes := []byte("abc")
	dst := make([]float32, len(in))
	buckets := [][]float32{buf, nil, dst}
	seen := make([]int, len(buckets))
	countDone := func(i int) { seen[i]++ }
	steps := []struct {
		name string
		f    func() error
	}{
		{"Barrier", c.Barrier},
		{"Broadcast", func() error { return c.Broadcast(buf, 0) }},
		{"BroadcastBytes", func() error { return c.BroadcastBytes(bytes, 0) }},
		{"AllreduceSum", func() error { return c.AllreduceSum(buf) }},
		{"AllreduceMean", func() error { return c.AllreduceMean(buf) }},
		{"Allgather", func() error { return c.Allgather(dst, buf) }},
		{"empty AllreduceSum", func() error { return c.AllreduceSum(nil) }},
		{"empty Allgather", func() error { return c.Allgather(nil, nil) }},
		{"AllreduceSumBuckets", func() error { return c.AllreduceSumBuckets(buckets, countDone) }},
	}
	for _, s := range steps {
		if err := s.f(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if allocs := testing.AllocsPerRun(20, func() { s.f() }); allocs != 0 {
			t.Errorf("%s allocates %.1f times per call, want 0", s.name, allocs)
		}
	}
	if seen[0] == 0 || seen[0] != seen[1] || seen[1] != seen[2] {
		t.Errorf("AllreduceSumBuckets: done calls per bucket %v, want equal and non-zero", seen)
	}
	if !slices.Equal(buf, in) || !slices.Equal(dst, in) || string(bytes) != "abc" {
		t.Errorf("after the collectives: buf %v, dst %v, bytes %q; want %v, %v, \"abc\"", buf, dst, bytes, in, in)
	}

	panics := []struct {
		name, want string
		f          func()
	}{
		{"Allgather short dst", "len(dst) = 2", func() { c.Allgather(make([]float32, 2), buf) }},
		{"Broadcast bad root", "root 1 is not a rank", func() { c.Broadcast(buf, 1) }},
		{"BroadcastBytes negative root", "root -1 is not a rank", func() { c.BroadcastBytes(bytes, -1) }},
		{"too many buckets", "at most MaxBuckets", func() { c.AllreduceSumBuckets(make([][]float32, MaxBuckets+1), nil) }},
	}
	for _, p := range panics {
		t.Run(p.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if msg, _ := r.(string); !strings.HasPrefix(msg, "mpi: ") || !strings.Contains(msg, p.want) {
					t.Errorf("panic %v, want one starting with \"mpi: \" containing %q", r, p.want)
				}
			}()
			p.f()
		})
	}

	if err := c.Finalize(); err != nil {
		t.Fatalf("Finalize: %v", err)
	}
	if err := c.Finalize(); !errors.Is(err, ErrFinalized) {
		t.Errorf("second Finalize: %v, want ErrFinalized", err)
	}
	if err := c.AllreduceSum(buf); !errors.Is(err, ErrFinalized) {
		t.Errorf("AllreduceSum after Finalize: %v, want ErrFinalized", err)
	}
}
