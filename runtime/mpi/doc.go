// Package mpi is simclr-ort's only door to MPI: process launch by mpirun or
// srun, rank and world size, and the collectives data-parallel training
// needs (Broadcast, AllreduceSum, Allgather, Barrier), each bounded by a
// timeout that names the ranks that did not arrive.
//
// Built with -tags mpi it binds Open MPI through cgo; without the tag it is
// a world of one in which collectives are copies or nothing.
package mpi
