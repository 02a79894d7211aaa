package mpi

import (
	"fmt"
	"strconv"
)

// launcherVars are the environment variables, in the order they are
// consulted, through which common launchers announce the number of processes
// they started: Open MPI's mpirun (and srun with Open MPI's PMIx), MPICH's
// and Intel MPI's Hydra and Slurm's PMI-1/PMI-2, MVAPICH2, and Slurm's srun
// itself. SLURM_NTASKS is deliberately absent: an sbatch script sees it too,
// although it runs as a single process.
var launcherVars = []string{
	"OMPI_COMM_WORLD_SIZE",
	"PMI_SIZE",
	"MV2_COMM_WORLD_SIZE",
	"SLURM_STEP_NUM_TASKS",
}

// Tuning are the Open MPI settings (environment variables, read by
// MPI_Init) this package's collectives are measured with, for a command to
// apply to its environment where the user did not set them: Open MPI's
// default nonblocking all-reduce between few ranks moves whole buffers
// (binomial/recursive doubling); the ring (algorithm 1) is about twice as
// fast for gradient-sized buffers (see the package documentation).
var Tuning = map[string]string{"OMPI_MCA_coll_libnbc_iallreduce_algorithm": "1"}

// Launch describes what the environment says about how this process was
// started.
type Launch struct {
	// Size is the number of processes the launcher started; 1 when no
	// launcher variable is set.
	Size int
	// Var names the variable Size was read from; empty when none is set.
	Var string
	// Local is the number of processes on this machine, as Open MPI
	// (OMPI_COMM_WORLD_LOCAL_SIZE) or MPICH's Hydra (MPI_LOCALNRANKS) say;
	// 0 when neither does.
	Local int
}

// localVars announce the processes started on this machine.
var localVars = []string{"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"}

func localSize(getenv func(string) string) int {
	for _, v := range localVars {
		if n, err := strconv.Atoi(getenv(v)); err == nil && n > 0 {
			return n
		}
	}
	return 0
}

// DetectLaunch reads the launcher variables from getenv (os.Getenv in
// production, a map in tests). A variable that is set but is not a positive
// integer is an error naming it.
func DetectLaunch(getenv func(string) string) (Launch, error) {
	for _, name := range launcherVars {
		v := getenv(name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return Launch{}, fmt.Errorf("mpi: environment variable %s=%q is not a positive process count; unset it or launch with mpirun/srun", name, v)
		}
		return Launch{Size: n, Var: name, Local: localSize(getenv)}, nil
	}
	return Launch{Size: 1}, nil
}
