//go:build mpi

package mpi

/*
#cgo pkg-config: ompi
#cgo nocallback simclr_test
#cgo nocallback simclr_testsome
#include "simclr_mpi.h"
*/
import "C"

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
	"unsafe"
)

// Polling: a collective's request is tested in a busy loop for spinFor
// (Open MPI's nonblocking collectives only progress inside MPI calls, and a
// large transfer needs one call per fragment), then with sleeps of
// sleepMin doubling to sleepMax, which bounds the CPU a rank burns while it
// waits for a slower one. See the package documentation for the figures.
var (
	spinFor  = 5 * time.Millisecond
	sleepMin = 20 * time.Microsecond
	sleepMax = 500 * time.Microsecond
)

// allreduceChunk is the most elements one MPI_Iallreduce of AllreduceSum
// covers; longer buffers are split. A variable for the benchmarks.
var allreduceChunk = 1 << 20

// engine owns MPI. One goroutine, locked to its OS thread, makes every MPI
// call (MPI_THREAD_FUNNELED); the Comm methods hand it calls over channels,
// by value, so that a steady-state collective allocates nothing.
type engine struct {
	calls   chan call
	replies chan error
	aborts  chan int
	buckets chan int // indexes of completed buckets, MaxBuckets deep

	// The fields below belong to the worker goroutine.
	rank, size int
	cs         *C.simclr_state // C memory
	reqs       *C.MPI_Request  // C array: the requests in flight
	indices    *C.int          // C array: MPI_Testsome's completed indexes
	capReqs    int             // length of reqs and indices
	lib        string
	pin        runtime.Pinner
	hbs        heartbeats
}

// startEngine starts the worker goroutine, which initialises MPI.
func startEngine(_ Launch, timeout time.Duration) (*engine, int, int, error) {
	e := &engine{calls: make(chan call), replies: make(chan error), aborts: make(chan int, 1), buckets: make(chan int, MaxBuckets)}
	ready := make(chan error)
	go e.serve(timeout, ready)
	if err := <-ready; err != nil {
		return nil, 0, 0, err
	}
	return e, e.rank, e.size, nil
}

func (e *engine) library() string { return e.lib }

// run hands cl to the worker and waits for its result, calling done for
// each bucket the worker reports complete meanwhile.
func (e *engine) run(cl *call, done func(int)) error {
	e.calls <- *cl
	for {
		select {
		case i := <-e.buckets:
			if done != nil {
				done(i)
			}
		case err := <-e.replies:
			// The worker reports every bucket before it replies.
			for {
				select {
				case i := <-e.buckets:
					if done != nil {
						done(i)
					}
				default:
					return err
				}
			}
		}
	}
}

// finalize runs a barrier under the timeout, so that MPI_Finalize, which
// cannot be bounded, only starts once every rank is there; then shuts MPI
// down and ends the worker.
func (e *engine) finalize(seq uint64, timeout time.Duration) error {
	return e.run(&call{op: opFinalize, seq: seq, timeout: timeout}, nil)
}

// abort asks the worker to call MPI_Abort, interrupting any collective it
// is waiting for. If the worker cannot get to it within 10 s (it is inside
// a blocking MPI call), the process exits by itself.
func (e *engine) abort(code int) {
	select {
	case e.aborts <- code:
	default:
	}
	time.Sleep(10 * time.Second)
	fmt.Fprintf(os.Stderr, "mpi: rank %d: MPI_Abort did not end the process within 10s; exiting\n", e.rank)
}

// serve is the worker goroutine.
func (e *engine) serve(timeout time.Duration, ready chan<- error) {
	runtime.LockOSThread() // never unlocked: this thread is MPI's "main" thread
	if err := e.init(timeout); err != nil {
		ready <- err
		return
	}
	ready <- nil
	for {
		select {
		case cl := <-e.calls:
			err := e.do(&cl)
			e.replies <- err
			if cl.op == opFinalize && err == nil {
				return
			}
		case code := <-e.aborts:
			C.simclr_abort(C.int(code))
		}
	}
}

func (e *engine) init(timeout time.Duration) error {
	// Open MPI installs backtrace handlers (MCA opal_signal) only for
	// signals without a handler; Go has installed its own by now, so a nil
	// dereference stays a Go panic (checked by internal/mpitest -mode exact).
	var provided C.int
	if rc := C.simclr_init(&provided); rc != C.MPI_SUCCESS {
		return e.mpiError(rc, "MPI_Init_thread", "init")
	}
	if provided < C.simclr_thread_funneled {
		C.simclr_abort(1)
		return fmt.Errorf("mpi: init: the MPI library provides thread level %d, below MPI_THREAD_FUNNELED; use an MPI built with thread support", int(provided))
	}
	var rank, size C.int
	if rc := C.simclr_world(&rank, &size); rc != C.MPI_SUCCESS {
		return e.mpiError(rc, "MPI_Comm_rank", "init")
	}
	e.rank, e.size = int(rank), int(size)
	buf := (*C.char)(C.malloc(C.simclr_max_library_version + 1))
	C.simclr_library_version(buf)
	e.lib = strings.TrimSpace(C.GoString(buf))
	C.free(unsafe.Pointer(buf))

	// Duplicates of the world: collectives and heartbeats never match
	// messages of anyone else. MPI_Comm_idup, so that init is bounded too.
	e.cs = (*C.simclr_state)(C.calloc(1, C.sizeof_simclr_state))
	e.growReqs(16)
	e.cs.coll, e.cs.hb = C.simclr_comm_null(), C.simclr_comm_null()
	for _, c := range []*C.MPI_Comm{&e.cs.coll, &e.cs.hb} {
		if rc := C.simclr_idup(c, e.reqs); rc != C.MPI_SUCCESS {
			return e.mpiError(rc, "MPI_Comm_idup", "init")
		}
		if err := e.wait(&call{op: opBarrier, timeout: timeout}, 1, "MPI_Comm_idup", false); err != nil {
			return fmt.Errorf("mpi: init: duplicating the world communicator: %w", err)
		}
	}
	return e.hbs.start(e)
}

// do performs one call on the worker goroutine.
func (e *engine) do(cl *call) error {
	e.hbs.drain(e)
	e.hbs.announce(e, cl.seq)
	req := e.reqs
	nreq := 1
	var rc C.int
	fn := ""
	switch cl.op {
	case opBarrier, opFinalize:
		fn = "MPI_Ibarrier"
		rc = C.simclr_ibarrier(e.cs.coll, req)
	case opBroadcast:
		fn = "MPI_Ibcast"
		e.pin.Pin(cl.buf)
		bytes := C.int(0)
		if cl.dtype == byteType {
			bytes = 1
		}
		rc = C.simclr_ibcast(cl.buf, C.int(cl.n), bytes, C.int(cl.root), e.cs.coll, req)
	case opAllreduceSum:
		// In chunks, all in flight at once: Open MPI's ring needs
		// scratch space the size of the buffer, which a chunk keeps in
		// cache (see the package documentation for the figures).
		fn = "MPI_Iallreduce"
		e.pin.Pin(cl.buf)
		nreq = max(1, (cl.n+allreduceChunk-1)/allreduceChunk)
		e.growReqs(nreq)
		for i := range nreq {
			off := i * allreduceChunk
			*at(e.reqs, i) = C.simclr_request_null()
			if rc = C.simclr_iallreduce_sum(unsafe.Add(cl.buf, 4*off), C.int(min(allreduceChunk, cl.n-off)), e.cs.coll, at(e.reqs, i)); rc != C.MPI_SUCCESS {
				break
			}
		}
	case opAllgather:
		fn = "MPI_Iallgather"
		e.pin.Pin(cl.buf)
		e.pin.Pin(cl.recv)
		rc = C.simclr_iallgather(cl.buf, C.int(cl.n), cl.recv, e.cs.coll, req)
	case opAllreduceBuckets:
		fn = "MPI_Iallreduce"
		e.growReqs(len(cl.bufs))
		for i, b := range cl.bufs {
			*at(e.reqs, i) = C.simclr_request_null()
			if len(b) == 0 {
				continue // MPI_Testsome skips null requests; reported below
			}
			e.pin.Pin(&b[0])
			if rc = C.simclr_iallreduce_sum(unsafe.Pointer(&b[0]), C.int(len(b)), e.cs.coll, at(e.reqs, i)); rc != C.MPI_SUCCESS {
				break // the started buckets are left in flight: the Comm is broken
			}
		}
		nreq = len(cl.bufs)
	default:
		panic(fmt.Sprintf("mpi: unknown collective %v", cl.op))
	}
	if rc != C.MPI_SUCCESS {
		if cl.op != opAllreduceBuckets && cl.op != opAllreduceSum { // else earlier chunks are in flight
			e.pin.Unpin()
		}
		return e.mpiError(rc, fn, fmt.Sprintf("%v #%d", cl.op, cl.seq))
	}
	if err := e.wait(cl, nreq, fn, true); err != nil {
		// The request may still be writing into the buffers: keep them
		// pinned for good. The Comm is broken from now on.
		return err
	}
	e.pin.Unpin()
	if cl.op == opFinalize {
		return e.shutdown()
	}
	return nil
}

// growReqs makes the request arrays n long at least.
func (e *engine) growReqs(n int) {
	if n <= e.capReqs {
		return
	}
	C.free(unsafe.Pointer(e.reqs))
	C.free(unsafe.Pointer(e.indices))
	e.reqs = (*C.MPI_Request)(C.calloc(C.size_t(n), C.sizeof_MPI_Request))
	e.indices = (*C.int)(C.calloc(C.size_t(n), C.sizeof_int))
	e.capReqs = n
}

// wait polls the first n requests until they complete, the deadline passes
// or Abort is called, reporting completed buckets of a bucketed
// all-reduce. With beats, it keeps sending heartbeats and, on timeout,
// names the ranks it waited for.
func (e *engine) wait(cl *call, n int, fn string, beats bool) error {
	left := n
	if cl.op == opAllreduceBuckets {
		for i, b := range cl.bufs {
			if len(b) == 0 { // nothing to sum: complete already
				e.buckets <- i
				left--
			}
		}
	}
	if left == 0 {
		return nil
	}
	start := time.Now()
	deadline := start.Add(cl.timeout)
	period := beatPeriod(cl.timeout)
	nextBeat := start.Add(period)
	sleep := sleepMin
	for i := 0; ; i++ {
		if rc := C.simclr_testsome(C.int(n), e.reqs, &e.cs.outcount, e.indices); rc != C.MPI_SUCCESS {
			return e.mpiError(rc, fn, fmt.Sprintf("%v #%d", cl.op, cl.seq))
		}
		if k := int(e.cs.outcount); k > 0 && k != C.MPI_UNDEFINED {
			if cl.op == opAllreduceBuckets {
				for j := range k {
					e.buckets <- int(*at(e.indices, j))
				}
			}
			if left -= k; left == 0 {
				return nil
			}
		}
		select {
		case code := <-e.aborts:
			C.simclr_abort(C.int(code))
		default:
		}
		now := time.Now()
		if now.After(deadline) {
			if !beats {
				return &TimeoutError{Op: cl.op.String(), Seq: cl.seq, Rank: e.rank, Timeout: cl.timeout, Detail: "some rank did not take part (no heartbeats yet to say which)"}
			}
			e.hbs.drain(e)
			return e.hbs.verdict(e, cl, now, period)
		}
		if beats && now.After(nextBeat) {
			e.hbs.drain(e)
			e.hbs.announce(e, cl.seq)
			nextBeat = now.Add(period)
		}
		if now.Sub(start) < spinFor {
			continue
		}
		time.Sleep(sleep)
		if sleep < sleepMax {
			sleep *= 2
		}
	}
}

// shutdown cancels the heartbeat receives and finalises MPI.
func (e *engine) shutdown() error {
	if err := e.hbs.stop(e); err != nil {
		return err
	}
	for _, c := range []*C.MPI_Comm{&e.cs.hb, &e.cs.coll} {
		if rc := C.simclr_comm_free(c); rc != C.MPI_SUCCESS {
			return e.mpiError(rc, "MPI_Comm_free", "finalize")
		}
	}
	if rc := C.simclr_finalize(); rc != C.MPI_SUCCESS {
		return e.mpiError(rc, "MPI_Finalize", "finalize")
	}
	return nil
}

// mpiError turns an MPI error code into an *Error.
func (e *engine) mpiError(rc C.int, fn, context string) error {
	buf := (*C.char)(C.malloc(C.simclr_max_error_string + 1))
	defer C.free(unsafe.Pointer(buf))
	C.simclr_error_string(rc, buf)
	return &Error{Func: fn, Context: fmt.Sprintf("rank %d: %s", e.rank, context), Code: int(rc), Text: C.GoString(buf)}
}
