package mpi

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDetectLaunch(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    Launch
		wantErr string // substring; empty for no error
	}{
		{name: "no launcher", env: nil, want: Launch{Size: 1}},
		{name: "mpirun", env: map[string]string{"OMPI_COMM_WORLD_SIZE": "2"}, want: Launch{Size: 2, Var: "OMPI_COMM_WORLD_SIZE"}},
		{name: "mpirun one process", env: map[string]string{"OMPI_COMM_WORLD_SIZE": "1"}, want: Launch{Size: 1, Var: "OMPI_COMM_WORLD_SIZE"}},
		{name: "hydra or PMI", env: map[string]string{"PMI_SIZE": "4"}, want: Launch{Size: 4, Var: "PMI_SIZE"}},
		{name: "mvapich", env: map[string]string{"MV2_COMM_WORLD_SIZE": "8"}, want: Launch{Size: 8, Var: "MV2_COMM_WORLD_SIZE"}},
		{name: "srun", env: map[string]string{"SLURM_STEP_NUM_TASKS": "3"}, want: Launch{Size: 3, Var: "SLURM_STEP_NUM_TASKS"}},
		{name: "sbatch script alone", env: map[string]string{"SLURM_NTASKS": "16", "SLURM_JOB_ID": "7"}, want: Launch{Size: 1}},
		{name: "Open MPI first", env: map[string]string{"OMPI_COMM_WORLD_SIZE": "2", "SLURM_STEP_NUM_TASKS": "5"}, want: Launch{Size: 2, Var: "OMPI_COMM_WORLD_SIZE"}},
		{name: "mpirun on two machines", env: map[string]string{"OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_LOCAL_SIZE": "2"}, want: Launch{Size: 4, Var: "OMPI_COMM_WORLD_SIZE", Local: 2}},
		{name: "hydra local count", env: map[string]string{"PMI_SIZE": "4", "MPI_LOCALNRANKS": "4"}, want: Launch{Size: 4, Var: "PMI_SIZE", Local: 4}},
		{name: "not a number", env: map[string]string{"PMI_SIZE": "two"}, wantErr: `PMI_SIZE="two"`},
		{name: "zero", env: map[string]string{"OMPI_COMM_WORLD_SIZE": "0"}, wantErr: "OMPI_COMM_WORLD_SIZE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DetectLaunch(func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("DetectLaunch: error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("DetectLaunch: %v", err)
			}
			if got != tc.want {
				t.Errorf("DetectLaunch = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestErrorMessages(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{
			name: "timeout",
			err: &TimeoutError{Op: "allreduce", Seq: 12, Rank: 0, Timeout: 3 * time.Second, Missing: []int{1},
				Detail: "rank 1 did not reach it (last collective reached: #11, heard 3s ago)"},
			want: "mpi: rank 0: allreduce #12 did not complete within 3s: rank 1 did not reach it (last collective reached: #11, heard 3s ago)",
		},
		{
			name: "mpi",
			err:  &Error{Func: "MPI_Iallreduce", Context: "rank 1: allreduce #3", Code: 15, Text: "MPI_ERR_TRUNCATE: message truncated"},
			want: "mpi: rank 1: allreduce #3: MPI_Iallreduce failed with code 15: MPI_ERR_TRUNCATE: message truncated",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("Error() =\n%s\nwant\n%s", got, tc.want)
			}
			var te *TimeoutError
			if errors.As(tc.err, &te) != (tc.name == "timeout") {
				t.Errorf("errors.As(*TimeoutError) = %v", !(tc.name == "timeout"))
			}
		})
	}
}
