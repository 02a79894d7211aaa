//go:build !mpi

package mpi

import (
	"fmt"
	"os"
	"time"
	"unsafe"
)

// engine is the single-process fallback: a world of one, in which every
// collective is a copy or nothing.
type engine struct{}

// startEngine refuses to run as one of several launched processes, and
// otherwise returns a world of one.
func startEngine(l Launch, _ time.Duration) (*engine, int, int, error) {
	if l.Size > 1 {
		return nil, 0, 0, fmt.Errorf("mpi: launched as one of %d processes (%s=%d) but this binary was built without MPI; rebuild it with `go build -tags mpi` (make build-mpi), or run a single process without mpirun/srun", l.Size, l.Var, l.Size)
	}
	return &engine{}, 0, 1, nil
}

func (*engine) library() string {
	return "none (single process; build with -tags mpi for Open MPI)"
}

// run performs cl in a world of one: only Allgather has work to do, a
// copy; every bucket of a bucketed all-reduce is complete at once.
func (*engine) run(cl *call, done func(int)) error {
	switch {
	case cl.op == opAllgather && cl.n > 0:
		copy(unsafe.Slice((*float32)(cl.recv), cl.n), unsafe.Slice((*float32)(cl.buf), cl.n))
	case cl.op == opAllreduceBuckets && done != nil:
		for i := range cl.bufs {
			done(i)
		}
	}
	return nil
}

func (*engine) finalize(uint64, time.Duration) error { return nil }

func (*engine) abort(code int) { os.Exit(code) }
