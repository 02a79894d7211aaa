//go:build mpi

package mpi

// The heartbeat failure detector: how a rank waiting in a collective tells
// a slow peer from a stopped or dead one (see TimeoutError).

/*
#include "simclr_mpi.h"
*/
import "C"

import (
	"fmt"
	"strings"
	"time"
	"unsafe"
)

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

// beatPeriod is how often a waiting rank sends heartbeats: an eighth of the
// timeout, between 50 ms and 2 s. A rank silent for three periods inside a
// collective is reported as stopped or dead.
func beatPeriod(timeout time.Duration) time.Duration {
	return min(max(timeout/8, 50*time.Millisecond), 2*time.Second)
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
