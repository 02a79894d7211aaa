package data

import (
	"image"
	"slices"
	"testing"
)

// labelled is a dataset whose label of image i is i.
type labelled int

func (l labelled) Len() int                       { return int(l) }
func (l labelled) Label(i int) int                { return i }
func (l labelled) Image(int) (image.Image, error) { return nil, nil }
func (l labelled) ClassNames() []string           { return nil }

func TestSpreadAndEvenly(t *testing.T) {
	labels := func(ds Dataset) []int {
		out := make([]int, ds.Len())
		for i := range out {
			out[i] = ds.Label(i)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		ds   Dataset
		want []int
	}{
		{"every third", Spread(labelled(10), 3, 0, 3), []int{0, 3, 6}},
		{"from an offset, fewer than asked", Spread(labelled(10), 9, 1, 4), []int{1, 5, 9}},
		{"offset past the end", Spread(labelled(4), 2, 5, 1), []int{}},
		{"evenly, over all classes", Evenly(labelled(12), 4), []int{0, 3, 6, 9}},
		{"evenly, uneven size", Evenly(labelled(10), 4), []int{0, 2, 5, 7}},
		{"evenly, more than half", Evenly(labelled(10), 6), []int{0, 1, 3, 5, 6, 8}},
		{"spread of a negative count", Spread(labelled(5), -1, 0, 1), []int{}},
		{"the first three", Spread(labelled(5), 3, 0, 1), []int{0, 1, 2}},
		{"picked", Pick(labelled(5), []int{4, 0, 2}), []int{4, 0, 2}},
		{"evenly 0 is all", Evenly(labelled(3), 0), []int{0, 1, 2}},
		{"evenly more than there are is all", Evenly(labelled(3), 5), []int{0, 1, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := labels(tc.ds); !slices.Equal(got, tc.want) {
				t.Errorf("labels %v, want %v", got, tc.want)
			}
		})
	}
}
