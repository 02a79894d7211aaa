//go:build mpi

package mpi

/*
#cgo pkg-config: ompi
#cgo nocallback simclr_test
#cgo nocallback simclr_testsome
#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>

// The MPI handles are macros over library globals; cgo reaches them through
// these helpers. Every handle, request and flag MPI writes lives in C
// memory (simclr_state, heartbeat arrays), so cgo's pointer checks do not
// apply and nothing escapes to the Go heap per call.

typedef struct {
	MPI_Comm coll; // duplicate of MPI_COMM_WORLD for the collectives
	MPI_Comm hb;   // duplicate for the heartbeats
	int flag;      // MPI_Test's answer
	int outcount;  // MPI_Testsome's answer
} simclr_state;

static int simclr_init(int *provided) {
	return MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, provided);
}

static int simclr_world(int *rank, int *size) {
	int rc = MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
	if (rc != MPI_SUCCESS) return rc;
	rc = MPI_Comm_rank(MPI_COMM_WORLD, rank);
	if (rc != MPI_SUCCESS) return rc;
	return MPI_Comm_size(MPI_COMM_WORLD, size);
}

static int simclr_idup(MPI_Comm *out, MPI_Request *req) {
	return MPI_Comm_idup(MPI_COMM_WORLD, out, req);
}

static int simclr_ibarrier(MPI_Comm c, MPI_Request *req) {
	return MPI_Ibarrier(c, req);
}

static int simclr_ibcast(void *buf, int n, int bytes, int root, MPI_Comm c, MPI_Request *req) {
	return MPI_Ibcast(buf, n, bytes ? MPI_BYTE : MPI_FLOAT, root, c, req);
}

static int simclr_iallreduce_sum(void *buf, int n, MPI_Comm c, MPI_Request *req) {
	return MPI_Iallreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, c, req);
}

static int simclr_iallgather(void *src, int n, void *dst, MPI_Comm c, MPI_Request *req) {
	return MPI_Iallgather(src, n, MPI_FLOAT, dst, n, MPI_FLOAT, c, req);
}

static int simclr_test(MPI_Request *req, int *flag) {
	return MPI_Test(req, flag, MPI_STATUS_IGNORE);
}

static int simclr_testsome(int n, MPI_Request *reqs, int *outcount, int *indices) {
	return MPI_Testsome(n, reqs, outcount, indices, MPI_STATUSES_IGNORE);
}

static int simclr_isend_seq(int64_t *v, int dest, MPI_Comm c, MPI_Request *req) {
	return MPI_Isend(v, 1, MPI_INT64_T, dest, 0, c, req);
}

static int simclr_irecv_seq(int64_t *v, int src, MPI_Comm c, MPI_Request *req) {
	return MPI_Irecv(v, 1, MPI_INT64_T, src, 0, c, req);
}

static int simclr_cancel_wait(MPI_Request *req) {
	if (*req == MPI_REQUEST_NULL) return MPI_SUCCESS;
	int rc = MPI_Cancel(req);
	if (rc != MPI_SUCCESS) return rc;
	return MPI_Wait(req, MPI_STATUS_IGNORE);
}

static int simclr_comm_free(MPI_Comm *c) {
	return MPI_Comm_free(c);
}

static MPI_Comm simclr_comm_null(void) { return MPI_COMM_NULL; }

static MPI_Request simclr_request_null(void) { return MPI_REQUEST_NULL; }

static void simclr_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

static int simclr_finalize(void) { return MPI_Finalize(); }

static void simclr_error_string(int code, char *buf) {
	int len = 0;
	if (MPI_Error_string(code, buf, &len) != MPI_SUCCESS) len = 0;
	buf[len] = 0;
}

static void simclr_library_version(char *buf) {
	int len = 0;
	if (MPI_Get_library_version(buf, &len) != MPI_SUCCESS) len = 0;
	buf[len] = 0;
}

enum {
	simclr_max_error_string = MPI_MAX_ERROR_STRING,
	simclr_max_library_version = MPI_MAX_LIBRARY_VERSION_STRING,
	simclr_thread_funneled = MPI_THREAD_FUNNELED,
};
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

// heartbeats tracks arrival messages. Before each collective, and every
// beat period while it waits inside one, every rank sends the collective's
// sequence number to rank 0, and rank 0 sends it to every rank; so rank 0
// knows the last collective each rank reached and when it last heard from
// it, and the other ranks know the same about rank 0. The messages are
// 8 bytes on a duplicate communicator, so they cost next to nothing.
type heartbeats struct {
	peers []int // ranks this rank exchanges heartbeats with
	// C arrays, one slot per peer: MPI keeps them past the call.
	in, out       *C.int64_t
	inReq, outReq *C.MPI_Request
	lastSeq       []uint64    // last sequence number received from each peer
	lastHeard     []time.Time // when it arrived
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

// beatPeriod is how often a waiting rank sends heartbeats: an eighth of the
// timeout, between 50 ms and 2 s. A rank silent for three periods inside a
// collective is reported as stopped or dead.
func beatPeriod(timeout time.Duration) time.Duration {
	return min(max(timeout/8, 50*time.Millisecond), 2*time.Second)
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

// start posts one heartbeat receive per peer.
func (h *heartbeats) start(e *engine) error {
	if e.size == 1 {
		return nil
	}
	if e.rank == 0 {
		for r := 1; r < e.size; r++ {
			h.peers = append(h.peers, r)
		}
	} else {
		h.peers = []int{0}
	}
	n := len(h.peers)
	h.in = (*C.int64_t)(C.calloc(C.size_t(n), 8))
	h.out = (*C.int64_t)(C.calloc(C.size_t(n), 8))
	h.inReq = (*C.MPI_Request)(C.calloc(C.size_t(n), C.sizeof_MPI_Request))
	h.outReq = (*C.MPI_Request)(C.calloc(C.size_t(n), C.sizeof_MPI_Request))
	h.lastSeq = make([]uint64, n)
	h.lastHeard = make([]time.Time, n)
	now := time.Now()
	for i := range h.peers {
		h.lastHeard[i] = now
		*at(h.outReq, i) = C.simclr_request_null()
		if err := h.post(e, i); err != nil {
			return err
		}
	}
	return nil
}

// at returns &p[i] for a C array p.
func at[T any](p *T, i int) *T {
	return (*T)(unsafe.Add(unsafe.Pointer(p), uintptr(i)*unsafe.Sizeof(*p)))
}

func (h *heartbeats) post(e *engine, i int) error {
	*at(h.inReq, i) = C.simclr_request_null()
	if rc := C.simclr_irecv_seq(at(h.in, i), C.int(h.peers[i]), e.cs.hb, at(h.inReq, i)); rc != C.MPI_SUCCESS {
		return e.mpiError(rc, "MPI_Irecv", "heartbeat")
	}
	return nil
}

// announce sends seq to every peer whose previous heartbeat has left. A
// heartbeat still in flight (the peer is far behind) is not duplicated.
func (h *heartbeats) announce(e *engine, seq uint64) {
	for i, p := range h.peers {
		// MPI_Test of MPI_REQUEST_NULL sets the flag.
		if C.simclr_test(at(h.outReq, i), &e.cs.flag) != C.MPI_SUCCESS || e.cs.flag == 0 {
			continue
		}
		*at(h.out, i) = C.int64_t(seq)
		// An error here only costs the peer some information.
		C.simclr_isend_seq(at(h.out, i), C.int(p), e.cs.hb, at(h.outReq, i))
	}
}

// drain records every heartbeat that has arrived and reposts the receives.
func (h *heartbeats) drain(e *engine) {
	for i := range h.peers {
		for *at(h.inReq, i) != C.simclr_request_null() {
			if C.simclr_test(at(h.inReq, i), &e.cs.flag) != C.MPI_SUCCESS || e.cs.flag == 0 {
				break
			}
			h.lastSeq[i] = max(h.lastSeq[i], uint64(*at(h.in, i)))
			h.lastHeard[i] = time.Now()
			if h.post(e, i) != nil {
				break
			}
		}
	}
}

// verdict builds the TimeoutError of collective cl from the heartbeats.
func (h *heartbeats) verdict(e *engine, cl *call, now time.Time, period time.Duration) error {
	te := &TimeoutError{Op: cl.op.String(), Seq: cl.seq, Rank: e.rank, Timeout: cl.timeout}
	var parts []string
	for i, p := range h.peers {
		silent := now.Sub(h.lastHeard[i])
		switch {
		case h.lastSeq[i] < cl.seq:
			te.Missing = append(te.Missing, p)
			parts = append(parts, fmt.Sprintf("rank %d did not reach it (last collective reached: #%d, heard %v ago)", p, h.lastSeq[i], silent.Round(time.Millisecond)))
		case silent > 3*period:
			te.Missing = append(te.Missing, p)
			parts = append(parts, fmt.Sprintf("rank %d reached it but has been silent for %v (stopped or dead)", p, silent.Round(time.Millisecond)))
		}
	}
	switch {
	case len(parts) > 0:
		te.Detail = strings.Join(parts, "; ")
	case e.rank == 0:
		te.Detail = "every rank reached it and is still responding; the transfer itself stalled"
	default:
		te.Detail = "rank 0 reached it and is responding, so another rank is missing; rank 0's error names it"
	}
	return te
}

// stop cancels the posted receives and completes the sends.
func (h *heartbeats) stop(e *engine) error {
	for i := range h.peers {
		if rc := C.simclr_cancel_wait(at(h.inReq, i)); rc != C.MPI_SUCCESS {
			return e.mpiError(rc, "MPI_Cancel", "finalize")
		}
		e.cs.flag = 0
		for deadline := time.Now().Add(time.Second); e.cs.flag == 0 && time.Now().Before(deadline); {
			if rc := C.simclr_test(at(h.outReq, i), &e.cs.flag); rc != C.MPI_SUCCESS {
				return e.mpiError(rc, "MPI_Test", "finalize")
			}
		}
		if e.cs.flag == 0 {
			return fmt.Errorf("mpi: rank %d: finalize: a heartbeat to rank %d did not leave within 1s", e.rank, h.peers[i])
		}
	}
	for _, p := range []unsafe.Pointer{unsafe.Pointer(h.in), unsafe.Pointer(h.out), unsafe.Pointer(h.inReq), unsafe.Pointer(h.outReq)} {
		C.free(p)
	}
	h.in, h.out, h.inReq, h.outReq = nil, nil, nil, nil
	return nil
}
