package data

import "image"

// Spread is up to n images of ds, every stride-th from offset: image
// offset + i·stride for i < n.
func Spread(ds Dataset, n, offset, stride int) Dataset {
	stride = max(stride, 1)
	have := 0
	if offset < ds.Len() {
		have = (ds.Len() - offset + stride - 1) / stride
	}
	return subset{ds, max(0, min(n, have)), func(i int) int { return offset + i*stride }}
}

// Evenly is n images of ds spread evenly over all of it, image
// ⌊i·size/n⌋ for i < n, or ds when n is 0 or not less than its size.
// Datasets may list their images class by class (image folders do), so the
// first n would hold a few classes only.
func Evenly(ds Dataset, n int) Dataset {
	size := ds.Len()
	if n <= 0 || n >= size {
		return ds
	}
	return subset{ds, n, func(i int) int { return int(int64(i) * int64(size) / int64(n)) }}
}

// Pick is the images of ds at indices, in that order.
func Pick(ds Dataset, indices []int) Dataset {
	return subset{ds, len(indices), func(i int) int { return indices[i] }}
}

// subset is n images of a dataset, image i being index(i) of it.
type subset struct {
	Dataset
	n     int
	index func(int) int
}

func (s subset) Len() int                         { return s.n }
func (s subset) Label(i int) int                  { return s.Dataset.Label(s.index(i)) }
func (s subset) Image(i int) (image.Image, error) { return s.Dataset.Image(s.index(i)) }
