// Package mpi is simclr-ort's only door to MPI: process launch by mpirun or
// srun, rank and world size, and the collectives data-parallel training
// needs (Broadcast, AllreduceSum and AllreduceMean, AllreduceSumBuckets,
// Allgather, Barrier), each bounded by a timeout whose error names the
// ranks that did not arrive.
//
// # Launch
//
// Processes are started the way cluster users expect, and rank and size
// come from the MPI environment:
//
//	mpirun -np 4 simclr-ort train ...
//	srun --mpi=pmix -n 4 simclr-ort train ...
//
// As root, mpirun also needs --allow-run-as-root (or OMPI_ALLOW_RUN_AS_ROOT=1
// and OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1); with more processes than cores,
// --oversubscribe.
//
// # The mpi build tag
//
// Built with -tags mpi, the package binds Open MPI through cgo
// (#cgo pkg-config: ompi; Debian: libopenmpi-dev to build, libopenmpi3 to
// run). Without the tag it is a world of one: Rank 0, Size 1, collectives
// are copies or nothing, and Init refuses to start when the environment
// says a launcher started more than one process (OMPI_COMM_WORLD_SIZE,
// PMI_SIZE, MV2_COMM_WORLD_SIZE, SLURM_STEP_NUM_TASKS), telling the user to
// rebuild with -tags mpi; N copies of an MPI-less binary never train N
// separate models by mistake.
//
// The tag keeps MPI optional because a cgo binding makes libmpi a
// link-time dependency of every binary: the default build would need a C
// compiler, pkg-config and libopenmpi-dev, and the binary would need
// libmpi.so.40, libopen-rte, libopen-pal and libhwloc at run time even for
// a single process, whose MPI_Init then starts Open MPI's runtime as a
// singleton (measured: 0.4 s for Init and 0.05 s for Finalize, against
// 20 µs without the tag). Default builds and the CI unit tests therefore
// need no MPI at all; only distributed runs pay for it. Loading libmpi
// with dlopen instead was not chosen: MPI's handles are macros over
// implementation-specific globals, so it would tie the code to one MPI ABI
// without a compiler to check it.
//
// # Threads
//
// MPI is initialised with MPI_THREAD_FUNNELED, and every MPI call is made by
// one goroutine locked to its OS thread (Go moves goroutines between
// threads). The Comm methods may be called from any goroutine: they hand
// the call to that goroutine over a channel, by value, and wait. A
// collective allocates nothing in the steady state: Go slices are passed to
// MPI without copies, pinned with a runtime.Pinner while the nonblocking
// call owns them; every request, flag and handle MPI writes lives in C
// memory.
//
// Open MPI installs its backtrace signal handlers (MCA opal_signal) only
// for signals that have none; Go has installed its own before main, so a
// nil dereference stays a recoverable Go panic (checked by the tests).
//
// # Faults
//
// When a rank is killed (SIGKILL, a crash), Open MPI's mpirun notices by
// itself, kills the other ranks and exits within about 2 s, printing
// "mpirun noticed that process rank 1 with PID ... exited on signal 9
// (Killed)". A rank that exits non-zero without Finalize ends the job the
// same way. But when a rank hangs (SIGSTOP, a deadlock, a dead node that
// keeps its connections), Open MPI does nothing: the others would wait in
// the next blocking collective forever.
//
// So every collective here is a nonblocking MPI call (MPI_Ibarrier,
// MPI_Ibcast, MPI_Iallreduce, MPI_Iallgather; MPI_Comm_idup in Init) polled
// with MPI_Test until it completes or its deadline passes (Comm.SetTimeout,
// DefaultTimeout 60 s; Finalize is preceded by a bounded barrier). To name
// the culprit, every rank sends a heartbeat, the collective's sequence
// number in 8 bytes on a private duplicate of the world communicator, to
// rank 0 before each collective and every eighth of the timeout while it
// waits inside one; rank 0 sends its own to every rank. On timeout, rank 0
// names the ranks that never reached the collective ("rank 1 did not reach
// it (last collective reached: #20 ...)") or that reached it and then went
// silent ("rank 1 reached it but has been silent for 3s (stopped or
// dead)"); another rank names rank 0 the same way, or says that rank 0 is
// alive and will name the missing rank. The error is a *TimeoutError; the
// Comm is broken from then on, and the caller reports the error and calls
// Abort (Finalize aborts too), which makes mpirun end the whole job. The
// error handler is MPI_ERRORS_RETURN, and MPI error codes become *Error
// values with MPI_Error_string's text.
//
// Polling: the request is tested in a busy loop for the first 5 ms (Open
// MPI's nonblocking collectives progress only inside MPI calls), then with
// sleeps from 20 µs doubling to 500 µs, so that a rank waiting for a slower
// one does not take a core from it. Measured: a 46 MB all-reduce whose
// peers arrive 200 ms late costs no more after their arrival than one
// whose peers are on time (see below).
//
// # Performance
//
// Open MPI's default nonblocking all-reduce algorithm moves whole buffers
// between few ranks and was about half as fast as its blocking
// MPI_Allreduce for gradient-sized buffers; the ring (MCA
// coll_libnbc_iallreduce_algorithm=1) is as fast, so Init selects it unless
// OMPI_MCA_coll_libnbc_iallreduce_algorithm is set. AllreduceSum then
// splits buffers into chunks of 1M floats, all in flight at once: the
// ring's scratch space stays in cache, which halved the time again (256K
// chunks were no better). Figures between two local processes (Open MPI
// 4.1.4, shared memory with CMA single copy, a 2-core VM shared with a
// training job, load 5, so noisy; median of 10 over three runs):
//
//	AllreduceSum 11.5M float32 (ResNet18)    45-49 ms (~1 GB/s)   before chunking 64-95 ms; C MPI_Allreduce 76-109 ms
//	AllreduceSum 23.5M float32 (ResNet50)    79-91 ms (~1.1 GB/s) before chunking 150-270 ms; C MPI_Allreduce 170-255 ms
//	AllreduceSumBuckets 11.5M, 1M buckets    21-23 ms
//	AllreduceSum 11.5M, peers 200 ms late    20-22 ms after their arrival
//	AllreduceSum of 1 float32                14-40 µs
//	Allgather 256x64 float32 per rank        40-55 µs
//	Barrier                                  11-12 µs
//
// Run go test -tags mpi -run Bench -v ./runtime/mpi with SIMCLR_MPI_BENCH=1
// for this machine's figures.
//
// # NCCL
//
// GPU builds would reduce gradients with NCCL rather than MPI, and use MPI
// only to bootstrap it: rank 0 calls ncclGetUniqueId, BroadcastBytes sends
// the 128-byte ncclUniqueId to every rank, and each rank calls
// ncclCommInitRank(&comm, Size(), id, Rank()) after selecting its GPU
// (cudaSetDevice by local rank, OMPI_COMM_WORLD_LOCAL_RANK). This is not
// implemented: there is no GPU or NCCL here to build or test it against.
//
// # Tests
//
// go test ./runtime/mpi tests the single-process build. With Open MPI
// installed, go test -tags mpi ./runtime/mpi starts internal/mpitest under
// mpirun --oversubscribe -np 2 and 3, checks every collective exactly
// against hand-computed values (up to 3M floats) and zero allocations, and
// kills and stops ranks to check that the job ends within the bounds
// above, naming the rank.
package mpi
