package optim_test

import (
	"fmt"

	"github.com/simclr-ort/simclr-ort/runtime/optim"
)

func ExampleSchedule() {
	// Base lr 0.3 scaled linearly to batch 512, 10 warm-up steps of 110.
	s, err := optim.NewSchedule(0.3, 512, optim.Linear, 10, 110)
	if err != nil {
		panic(err)
	}
	for _, step := range []int{0, 5, 10, 60, 109} {
		fmt.Printf("step %3d: lr %.6f\n", step, s.LR(step))
	}
	// Output:
	// step   0: lr 0.000000
	// step   5: lr 0.300000
	// step  10: lr 0.600000
	// step  60: lr 0.300000
	// step 109: lr 0.000148
}

func ExampleLARS() {
	// A conv weight (adapted) and a BatchNorm scale (excluded).
	params := [][]float32{{3, 4}, {1}}
	grads := [][]float32{{0.3, 0.4}, {0.5}}
	o := optim.NewLARS([]int{2, 1}, []bool{false, true}, optim.LARSConfig{WeightDecay: -1})
	o.Step(1, params, grads)
	fmt.Println(params)
	// Output:
	// [[2.997 3.996] [0.5]]
}
