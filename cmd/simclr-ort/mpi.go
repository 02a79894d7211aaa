package main

import (
	"sync"

	"github.com/simclr-ort/simclr-ort/runtime/mpi"
)

// world is the process's MPI communicator, initialised on first use: MPI
// can be initialised once per process.
var world struct {
	once sync.Once
	comm *mpi.Comm
	err  error
}

// worldComm returns the MPI world (a world of one without the mpi build
// tag, or when not launched by mpirun or srun).
func worldComm() (*mpi.Comm, error) {
	world.once.Do(func() { world.comm, world.err = mpi.Init() })
	return world.comm, world.err
}
