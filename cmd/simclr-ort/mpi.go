package main

import (
	"os"
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
// tag, or when not launched by mpirun or srun). Open MPI's settings that
// runtime/mpi is measured with (mpi.Tuning) apply unless the user set
// them.
func worldComm() (*mpi.Comm, error) {
	world.once.Do(func() {
		for k, v := range mpi.Tuning {
			if _, set := os.LookupEnv(k); !set {
				os.Setenv(k, v)
			}
		}
		launch, err := mpi.DetectLaunch(os.Getenv)
		if err != nil {
			world.err = err
			return
		}
		world.comm, world.err = mpi.Init(launch)
	})
	return world.comm, world.err
}
