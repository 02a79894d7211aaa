package data

import "image"

// Spread is up to n images of ds spread evenly over all of it: image
// offset + i·stride for i < n. Datasets may list their images class by
// class (image folders do), so the first n would hold a few classes only.
func Spread(ds Dataset, n, offset, stride int) Dataset {
	if stride < 1 {
		stride = 1
	}
	if offset >= ds.Len() {
		return spread{ds, offset, stride, 0}
	}
	return spread{ds, offset, stride, min(n, (ds.Len()-offset+stride-1)/stride)}
}

// Evenly is n images of ds spread over all of it (Spread from the first
// image with the largest stride that gives n), or ds when n is 0 or not
// less than its size.
func Evenly(ds Dataset, n int) Dataset {
	if n <= 0 || n >= ds.Len() {
		return ds
	}
	return Spread(ds, n, 0, ds.Len()/n)
}

type spread struct {
	Dataset
	offset, stride, n int
}

func (s spread) Len() int                         { return s.n }
func (s spread) Label(i int) int                  { return s.Dataset.Label(s.offset + i*s.stride) }
func (s spread) Image(i int) (image.Image, error) { return s.Dataset.Image(s.offset + i*s.stride) }
