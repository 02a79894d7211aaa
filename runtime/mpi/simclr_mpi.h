// simclr_mpi.h declares the C side of runtime/mpi's Open MPI engine
// (simclr_mpi.c, build tag mpi).
#ifndef SIMCLR_MPI_H
#define SIMCLR_MPI_H

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

enum {
	simclr_max_error_string = MPI_MAX_ERROR_STRING,
	simclr_max_library_version = MPI_MAX_LIBRARY_VERSION_STRING,
	simclr_thread_funneled = MPI_THREAD_FUNNELED,
};

int simclr_init(int *provided);
int simclr_world(int *rank, int *size);
int simclr_idup(MPI_Comm *out, MPI_Request *req);
int simclr_ibarrier(MPI_Comm c, MPI_Request *req);
int simclr_ibcast(void *buf, int n, int bytes, int root, MPI_Comm c, MPI_Request *req);
int simclr_iallreduce_sum(void *buf, int n, MPI_Comm c, MPI_Request *req);
int simclr_iallgather(void *src, int n, void *dst, MPI_Comm c, MPI_Request *req);
int simclr_test(MPI_Request *req, int *flag);
int simclr_testsome(int n, MPI_Request *reqs, int *outcount, int *indices);
int simclr_isend_seq(int64_t *v, int dest, MPI_Comm c, MPI_Request *req);
int simclr_irecv_seq(int64_t *v, int src, MPI_Comm c, MPI_Request *req);
int simclr_cancel_wait(MPI_Request *req);
int simclr_comm_free(MPI_Comm *c);
MPI_Comm simclr_comm_null(void);
MPI_Request simclr_request_null(void);
void simclr_abort(int code);
int simclr_finalize(void);
void simclr_error_string(int code, char *buf);
void simclr_library_version(char *buf);

#endif
