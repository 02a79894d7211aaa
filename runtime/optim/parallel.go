package optim

import (
	"runtime"
	"sort"
	"sync"
)

// plan assigns tensors to workers, balanced by size.
type plan struct {
	workers int
	groups  [][]int // groups[k] lists the tensor indices worker k updates
}

// newPlan partitions the tensors with the given sizes into at most workers
// groups by longest-processing-time-first: tensors in decreasing size, each
// given to the least loaded group. Ties are broken by index, so the plan is
// deterministic.
func newPlan(sizes []int, workers int) plan {
	if workers < 1 {
		workers = 1
	}
	if workers > len(sizes) {
		workers = len(sizes)
	}
	if workers <= 1 {
		all := make([]int, len(sizes))
		for i := range all {
			all[i] = i
		}
		return plan{workers: 1, groups: [][]int{all}}
	}
	order := make([]int, len(sizes))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return sizes[order[a]] > sizes[order[b]] })
	groups := make([][]int, workers)
	load := make([]int, workers)
	for _, t := range order {
		k := 0
		for j := 1; j < workers; j++ {
			if load[j] < load[k] {
				k = j
			}
		}
		groups[k] = append(groups[k], t)
		load[k] += sizes[t]
	}
	return plan{workers: workers, groups: groups}
}

// resolveWorkers maps a Workers field to a count: 0 or less means GOMAXPROCS.
func resolveWorkers(n int) int {
	if n <= 0 {
		return runtime.GOMAXPROCS(0)
	}
	return n
}

// run calls fn for every tensor of the plan; group 0 runs on the calling
// goroutine, the others on their own.
func (p *plan) run(fn func(t int)) {
	if len(p.groups) == 1 {
		for _, t := range p.groups[0] {
			fn(t)
		}
		return
	}
	var wg sync.WaitGroup
	wg.Add(len(p.groups) - 1)
	for _, g := range p.groups[1:] {
		go func() {
			defer wg.Done()
			for _, t := range g {
				fn(t)
			}
		}()
	}
	for _, t := range p.groups[0] {
		fn(t)
	}
	wg.Wait()
}
