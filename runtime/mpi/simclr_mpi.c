//go:build mpi

// The C side of runtime/mpi's Open MPI engine: MPI's handles are macros
// over library globals, which cgo reaches through these functions.
#include "simclr_mpi.h"

int simclr_init(int *provided) {
	return MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, provided);
}

int simclr_world(int *rank, int *size) {
	int rc = MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
	if (rc != MPI_SUCCESS) return rc;
	rc = MPI_Comm_rank(MPI_COMM_WORLD, rank);
	if (rc != MPI_SUCCESS) return rc;
	return MPI_Comm_size(MPI_COMM_WORLD, size);
}

int simclr_idup(MPI_Comm *out, MPI_Request *req) {
	return MPI_Comm_idup(MPI_COMM_WORLD, out, req);
}

int simclr_ibarrier(MPI_Comm c, MPI_Request *req) {
	return MPI_Ibarrier(c, req);
}

int simclr_ibcast(void *buf, int n, int bytes, int root, MPI_Comm c, MPI_Request *req) {
	return MPI_Ibcast(buf, n, bytes ? MPI_BYTE : MPI_FLOAT, root, c, req);
}

int simclr_iallreduce_sum(void *buf, int n, MPI_Comm c, MPI_Request *req) {
	return MPI_Iallreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, c, req);
}

int simclr_iallgather(void *src, int n, void *dst, MPI_Comm c, MPI_Request *req) {
	return MPI_Iallgather(src, n, MPI_FLOAT, dst, n, MPI_FLOAT, c, req);
}

int simclr_test(MPI_Request *req, int *flag) {
	return MPI_Test(req, flag, MPI_STATUS_IGNORE);
}

int simclr_testsome(int n, MPI_Request *reqs, int *outcount, int *indices) {
	return MPI_Testsome(n, reqs, outcount, indices, MPI_STATUSES_IGNORE);
}

int simclr_isend_seq(int64_t *v, int dest, MPI_Comm c, MPI_Request *req) {
	return MPI_Isend(v, 1, MPI_INT64_T, dest, 0, c, req);
}

int simclr_irecv_seq(int64_t *v, int src, MPI_Comm c, MPI_Request *req) {
	return MPI_Irecv(v, 1, MPI_INT64_T, src, 0, c, req);
}

int simclr_cancel_wait(MPI_Request *req) {
	if (*req == MPI_REQUEST_NULL) return MPI_SUCCESS;
	int rc = MPI_Cancel(req);
	if (rc != MPI_SUCCESS) return rc;
	return MPI_Wait(req, MPI_STATUS_IGNORE);
}

int simclr_comm_free(MPI_Comm *c) {
	return MPI_Comm_free(c);
}

MPI_Comm simclr_comm_null(void) { return MPI_COMM_NULL; }

MPI_Request simclr_request_null(void) { return MPI_REQUEST_NULL; }

void simclr_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

int simclr_finalize(void) { return MPI_Finalize(); }

void simclr_error_string(int code, char *buf) {
	int len = 0;
	if (MPI_Error_string(code, buf, &len) != MPI_SUCCESS) len = 0;
	buf[len] = 0;
}

void simclr_library_version(char *buf) {
	int len = 0;
	if (MPI_Get_library_version(buf, &len) != MPI_SUCCESS) len = 0;
	buf[len] = 0;
}
