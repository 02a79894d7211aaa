package augment

import (
	"image"
	"math"
	"math/rand/v2"
)

// CropParams draws a RandomResizedCrop rectangle for an image of the given
// width and height, in coordinates relative to the image's top-left corner,
// exactly as torchvision's RandomResizedCrop.get_params does: up to 10
// attempts at an area fraction uniform in scale and an aspect ratio
// log-uniform in ratio, rounded half to even, accepted when it fits; else
// the centre crop of the whole image clamped to the ratio range.
func CropParams(rng *rand.Rand, width, height int, scale, ratio [2]float64) image.Rectangle {
	area := float64(width) * float64(height)
	logLo, logHi := math.Log(ratio[0]), math.Log(ratio[1])
	for range 10 {
		target := area * uniform(rng, scale[0], scale[1])
		aspect := math.Exp(uniform(rng, logLo, logHi))
		w := int(math.RoundToEven(math.Sqrt(target * aspect)))
		h := int(math.RoundToEven(math.Sqrt(target / aspect)))
		if 0 < w && w <= width && 0 < h && h <= height {
			i := rng.IntN(height - h + 1)
			j := rng.IntN(width - w + 1)
			return image.Rect(j, i, j+w, i+h)
		}
	}
	// Fallback to a centre crop.
	inRatio := float64(width) / float64(height)
	w, h := width, height
	switch {
	case inRatio < min(ratio[0], ratio[1]):
		h = int(math.RoundToEven(float64(w) / min(ratio[0], ratio[1])))
	case inRatio > max(ratio[0], ratio[1]):
		w = int(math.RoundToEven(float64(h) * max(ratio[0], ratio[1])))
	}
	i := (height - h) / 2
	j := (width - w) / 2
	return image.Rect(j, i, j+w, i+h)
}

// uniform returns a value uniform in [lo, hi).
func uniform(rng *rand.Rand, lo, hi float64) float64 {
	return lo + (hi-lo)*rng.Float64()
}
