package mpi

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// DefaultTimeout is how long a collective waits for the other ranks before
// it fails with a *TimeoutError, unless Comm.SetTimeout says otherwise.
const DefaultTimeout = 60 * time.Second

// ErrFinalized is returned by calls on a Comm after Finalize or Abort.
var ErrFinalized = errors.New("mpi: communicator already finalized")

// Comm is the world communicator of this process: every process the
// launcher started, ranks 0 to Size()-1. Its methods are safe for concurrent
// use, but collectives are matched across ranks by the order in which they
// are called, so every rank must call the same collectives in the same order;
// calls from several goroutines are serialised in an unspecified order.
//
// After a collective fails (a timeout, an MPI error), the Comm is broken:
// later calls return the same error, and Finalize aborts the job instead of
// waiting for ranks that may never come. The caller should report the error
// and call Abort.
type Comm struct {
	rank, size int
	eng        *engine

	mu      sync.Mutex // serialises collectives; guards the fields below
	timeout time.Duration
	local   int
	seq     uint64 // number of collectives started, for error messages
	err     error  // sticky: the first failure, or ErrFinalized
}

var (
	initMu   sync.Mutex
	initDone bool
)

// Init initialises MPI (or the single-process fallback without the mpi build
// tag) and returns the world communicator. It may be called once per
// process: MPI cannot be initialised again, even after Finalize.
//
// launch is what the launcher's environment says (DetectLaunch(os.Getenv)
// in a command). Without the mpi build tag, Init fails when it says that a
// launcher (mpirun, srun) started more than one process, so that N copies
// of a binary built without MPI never train N separate models by mistake.
// With the tag, MPI itself reads the launcher's environment; a command
// should first apply Tuning to its own environment.
func Init(launch Launch) (*Comm, error) {
	initMu.Lock()
	defer initMu.Unlock()
	if initDone {
		return nil, errors.New("mpi: Init called twice; MPI can be initialised once per process, share the *Comm")
	}
	eng, rank, size, err := startEngine(launch, DefaultTimeout)
	if err != nil {
		return nil, err
	}
	initDone = true
	return &Comm{rank: rank, size: size, local: launch.Local, eng: eng, timeout: DefaultTimeout}, nil
}

// LocalSize is the number of processes on this machine as the launcher said
// (Launch.Local), or 0 when it did not.
func (c *Comm) LocalSize() int { return c.local }

// Rank returns this process's rank in [0, Size()).
func (c *Comm) Rank() int { return c.rank }

// Size returns the number of processes in the world.
func (c *Comm) Size() int { return c.size }

// Library describes the MPI library in use (its version string), or says
// that this is the single-process build.
func (c *Comm) Library() string { return c.eng.library() }

// SetTimeout sets how long each later collective, and Finalize, may wait
// for the other ranks; d <= 0 means DefaultTimeout. All ranks should use
// the same value: the rank that times out first names the missing ranks.
func (c *Comm) SetTimeout(d time.Duration) {
	if d <= 0 {
		d = DefaultTimeout
	}
	c.mu.Lock()
	c.timeout = d
	c.mu.Unlock()
}

// Timeout returns the current collective timeout.
func (c *Comm) Timeout() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.timeout
}

// Barrier returns once every rank has called Barrier.
func (c *Comm) Barrier() error {
	return c.collective(call{op: opBarrier})
}

// Broadcast copies root's buf into buf on every other rank. Every rank must
// pass the same length. It panics if root is not a rank.
func (c *Comm) Broadcast(buf []float32, root int) error {
	c.checkRoot("Broadcast", root)
	return c.collective(call{op: opBroadcast, dtype: float32Type, buf: slicePtr(buf), n: len(buf), root: root})
}

// BroadcastBytes copies root's buf into buf on every other rank. Every rank
// must pass the same length. It panics if root is not a rank.
func (c *Comm) BroadcastBytes(buf []byte, root int) error {
	c.checkRoot("BroadcastBytes", root)
	return c.collective(call{op: opBroadcast, dtype: byteType, buf: slicePtr(buf), n: len(buf), root: root})
}

// AllreduceSum replaces buf, on every rank, by the element-wise sum of every
// rank's buf. Every rank must pass the same length. The sum is computed in
// float32. With Open MPI's ring algorithm, which Init selects, each element
// is summed once and the result sent to every rank, so all ranks get the
// same bits, in the same order from run to run; MPI itself does not
// promise it, and the exactness tests use integer-valued floats.
func (c *Comm) AllreduceSum(buf []float32) error {
	return c.collective(call{op: opAllreduceSum, dtype: float32Type, buf: slicePtr(buf), n: len(buf)})
}

// AllreduceMean replaces buf, on every rank, by the element-wise mean over
// the ranks: AllreduceSum, then a multiplication by 1/Size() (exact when the
// size is a power of two).
func (c *Comm) AllreduceMean(buf []float32) error {
	if err := c.AllreduceSum(buf); err != nil {
		return err
	}
	if c.size > 1 {
		inv := float32(1 / float64(c.size))
		for i := range buf {
			buf[i] *= inv
		}
	}
	return nil
}

// Allgather gathers src from every rank into dst, rank-major: rank r's src
// lands in dst[r*len(src) : (r+1)*len(src)] on every rank. Every rank must
// pass the same len(src). It panics unless len(dst) == Size()*len(src).
func (c *Comm) Allgather(dst, src []float32) error {
	if len(dst) != c.size*len(src) {
		panic(fmt.Sprintf("mpi: Allgather: len(dst) = %d, want Size() x len(src) = %d x %d", len(dst), c.size, len(src)))
	}
	return c.collective(call{op: opAllgather, dtype: float32Type, buf: slicePtr(src), n: len(src), recv: slicePtr(dst)})
}

// MaxBuckets is the most buffers one AllreduceSumBuckets call takes.
const MaxBuckets = 4096

// AllreduceSumBuckets is AllreduceSum on each of bufs, with every bucket in
// flight at once: done(i), when not nil, runs on the calling goroutine as
// soon as bufs[i] holds the sum, in completion order, while the other
// buckets are still being reduced (MPI keeps progressing on its own
// thread). A trainer passes its gradients tensor by tensor or in buckets of
// a few MB and applies the optimizer to each bucket in done, overlapping
// the update with the communication of the rest. Every rank must pass the
// same number of buckets with the same lengths. On error, done has run for
// the buckets that completed. It panics if len(bufs) > MaxBuckets.
func (c *Comm) AllreduceSumBuckets(bufs [][]float32, done func(i int)) error {
	if len(bufs) > MaxBuckets {
		panic(fmt.Sprintf("mpi: AllreduceSumBuckets: %d buckets, at most MaxBuckets = %d", len(bufs), MaxBuckets))
	}
	for _, b := range bufs {
		if len(b) > math.MaxInt32 {
			return fmt.Errorf("mpi: AllreduceSumBuckets: a bucket of %d elements exceeds MPI's 32-bit count; split it", len(b))
		}
	}
	return c.collectiveDone(call{op: opAllreduceBuckets, dtype: float32Type, bufs: bufs}, done)
}

// Abort ends every process of the job: it prints "mpi: rank R aborting:
// message" on standard error and asks the launcher to kill all ranks, this
// one exiting with code. It does not return. It may be called while
// another goroutine is inside a collective.
func (c *Comm) Abort(code int, message string) {
	fmt.Fprintf(os.Stderr, "mpi: rank %d aborting: %s\n", c.rank, strings.TrimSpace(message))
	c.eng.abort(code)
	os.Exit(code) // not reached unless the engine's abort returned
}

// Finalize waits (up to the timeout) until every rank has called Finalize,
// then shuts MPI down. On a broken Comm, or when the other ranks do not
// arrive in time, it aborts the job instead, since MPI cannot shut down
// cleanly without them. Later calls return ErrFinalized.
func (c *Comm) Finalize() error {
	c.mu.Lock()
	err := c.err
	switch err {
	case ErrFinalized:
		c.mu.Unlock()
		return ErrFinalized
	case nil:
		c.seq++
		if err = c.eng.finalize(c.seq, c.timeout); err == nil {
			c.err = ErrFinalized
			c.mu.Unlock()
			return nil
		}
		c.err = err
	}
	c.mu.Unlock()
	c.Abort(1, fmt.Sprintf("finalize: %v", err))
	return err // not reached
}

// collective runs one collective call with the current timeout, keeping the
// first failure sticky.
func (c *Comm) collective(cl call) error {
	return c.collectiveDone(cl, nil)
}

// collectiveDone is collective with a bucket callback for the engine.
func (c *Comm) collectiveDone(cl call, done func(int)) error {
	if cl.n > math.MaxInt32 {
		return fmt.Errorf("mpi: %s of %d elements exceeds MPI's 32-bit count; split the buffer", cl.op, cl.n)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	c.seq++
	cl.seq = c.seq
	cl.timeout = c.timeout
	if err := c.eng.run(&cl, done); err != nil {
		c.err = err
		return err
	}
	return nil
}

func (c *Comm) checkRoot(method string, root int) {
	if root < 0 || root >= c.size {
		panic(fmt.Sprintf("mpi: %s: root %d is not a rank of a world of %d", method, root, c.size))
	}
}

// slicePtr returns the address of s's first element, nil for an empty s.
func slicePtr[E any](s []E) unsafe.Pointer {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Pointer(&s[0])
}

// opKind names a collective.
type opKind int

const (
	opBarrier opKind = iota
	opBroadcast
	opAllreduceSum
	opAllgather
	opAllreduceBuckets
	opFinalize
)

func (o opKind) String() string {
	switch o {
	case opBarrier:
		return "barrier"
	case opBroadcast:
		return "broadcast"
	case opAllreduceSum:
		return "allreduce"
	case opAllgather:
		return "allgather"
	case opAllreduceBuckets:
		return "bucketed allreduce"
	case opFinalize:
		return "finalize"
	}
	return fmt.Sprintf("opKind(%d)", int(o))
}

// dataType is the element type of a call's buffers.
type dataType int

const (
	float32Type dataType = iota
	byteType
)

// call is one collective as the engines see it. Buffers are passed as
// pointers and element counts; the engine must not keep them after run
// returns (unless the Comm is broken, see run in mpi_cgo.go).
type call struct {
	op      opKind
	dtype   dataType
	buf     unsafe.Pointer // in/out buffer (send buffer for allgather)
	recv    unsafe.Pointer // allgather's receive buffer, size*n elements
	n       int            // elements in buf
	bufs    [][]float32    // the buckets of a bucketed all-reduce
	root    int
	seq     uint64
	timeout time.Duration
}

// TimeoutError reports a collective that did not complete in time, naming,
// where this rank can know them, the ranks it waited for.
type TimeoutError struct {
	// Op names the collective ("allreduce", "broadcast", ...).
	Op string
	// Seq numbers the collective: the Seq-th collective this rank started.
	Seq uint64
	// Rank is the rank that timed out (this process).
	Rank int
	// Timeout is how long it waited.
	Timeout time.Duration
	// Missing lists the ranks known not to have reached the collective, or
	// to have gone silent inside it; empty when this rank cannot tell.
	Missing []int
	// Detail says what is known about the other ranks, with the ranks
	// named.
	Detail string
}

// Error implements error.
func (e *TimeoutError) Error() string {
	return fmt.Sprintf("mpi: rank %d: %s #%d did not complete within %v: %s", e.Rank, e.Op, e.Seq, e.Timeout, e.Detail)
}

// Error is a failure reported by an MPI function, with the library's own
// description of the code (MPI_Error_string).
type Error struct {
	// Func is the MPI function that failed, e.g. "MPI_Iallreduce".
	Func string
	// Context says what this package was doing, e.g. "allreduce #12".
	Context string
	// Code is the MPI error code.
	Code int
	// Text is MPI_Error_string's description of Code.
	Text string
}

// Error implements error.
func (e *Error) Error() string {
	return fmt.Sprintf("mpi: %s: %s failed with code %d: %s", e.Context, e.Func, e.Code, e.Text)
}
