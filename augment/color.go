package augment

import (
	"fmt"
	"math"
)

// ITU-R 601-2 luma weights, as torchvision's rgb_to_grayscale uses them.
const (
	lumaR = 0.299
	lumaG = 0.587
	lumaB = 0.114
)

// planes splits a [3, H, W] tensor into its channels; it panics unless the
// length is a multiple of 3.
func planes(who string, img []float32) (r, g, b []float32) {
	if len(img)%3 != 0 {
		panic(fmt.Sprintf("augment: %s: tensor has %d floats, not a multiple of 3 channels", who, len(img)))
	}
	n := len(img) / 3
	return img[:n:n], img[n : 2*n : 2*n], img[2*n : 3*n : 3*n]
}

// clamp01 clamps x to [0, 1].
func clamp01(x float32) float32 {
	if x < 0 {
		return 0
	}
	if x > 1 {
		return 1
	}
	return x
}

// gray returns the luma of one pixel in float32, as torchvision computes it.
func gray(r, g, b float32) float32 {
	return float32(lumaR)*r + float32(lumaG)*g + float32(lumaB)*b
}

// Brightness scales img, a [3, H, W] tensor in [0, 1], by factor and clamps
// the result to [0, 1] (torchvision's adjust_brightness: a blend with black).
func Brightness(img []float32, factor float64) {
	planes("Brightness", img)
	f := float32(factor)
	for i, x := range img {
		img[i] = clamp01(f * x)
	}
}

// Contrast blends img, a [3, H, W] tensor in [0, 1], with the mean of its
// grey levels: factor*x + (1-factor)*mean, clamped to [0, 1]
// (torchvision's adjust_contrast).
func Contrast(img []float32, factor float64) {
	r, g, b := planes("Contrast", img)
	if len(r) == 0 {
		return
	}
	var sum float64
	for i := range r {
		sum += float64(gray(r[i], g[i], b[i]))
	}
	mean := float32(sum / float64(len(r)))
	f, f1 := float32(factor), float32(1-factor)
	m := f1 * mean
	for i, x := range img {
		img[i] = clamp01(f*x + m)
	}
}

// Saturation blends every pixel of img, a [3, H, W] tensor in [0, 1], with
// its grey level: factor*x + (1-factor)*grey, clamped to [0, 1]
// (torchvision's adjust_saturation). Factor 0 gives a grey image.
func Saturation(img []float32, factor float64) {
	r, g, b := planes("Saturation", img)
	f, f1 := float32(factor), float32(1-factor)
	for i := range r {
		m := f1 * gray(r[i], g[i], b[i])
		r[i] = clamp01(f*r[i] + m)
		g[i] = clamp01(f*g[i] + m)
		b[i] = clamp01(f*b[i] + m)
	}
}

// Grayscale replaces every pixel of img, a [3, H, W] tensor, by its grey
// level in all three channels (torchvision's rgb_to_grayscale with three
// output channels).
func Grayscale(img []float32) {
	r, g, b := planes("Grayscale", img)
	for i := range r {
		l := gray(r[i], g[i], b[i])
		r[i], g[i], b[i] = l, l, l
	}
}

// Hue shifts the HSV hue of every pixel of img, a [3, H, W] tensor in
// [0, 1], by shift turns (torchvision's adjust_hue; shift is in
// [-0.5, 0.5]). It panics on a shift outside that range.
func Hue(img []float32, shift float64) {
	if shift < -0.5 || shift > 0.5 {
		panic(fmt.Sprintf("augment: Hue: shift %g outside [-0.5, 0.5]", shift))
	}
	r, g, b := planes("Hue", img)
	s32 := float32(shift)
	for i := range r {
		h, s, v := rgbToHSV(r[i], g[i], b[i])
		// (h + shift) % 1 for h + shift in [-0.5, 1.5), as torch.remainder
		// computes it: x - floor(x).
		h += s32
		if h < 0 {
			h += 1
		} else if h >= 1 {
			h -= 1
		}
		r[i], g[i], b[i] = hsvToRGB(h, s, v)
	}
}

// rgbToHSV is torchvision's _rgb2hsv for one pixel, in float32.
func rgbToHSV(r, g, b float32) (h, s, v float32) {
	maxc := max(r, g, b)
	minc := min(r, g, b)
	cr := maxc - minc
	if maxc == minc {
		// s = cr/1 = 0 and h = 0 (r == maxc, bc - gc = 0).
		return 0, cr, maxc
	}
	s = cr / maxc
	rc := (maxc - r) / cr
	gc := (maxc - g) / cr
	bc := (maxc - b) / cr
	switch {
	case maxc == r:
		h = bc - gc
	case maxc == g:
		h = 2 + rc - bc
	default:
		h = 4 + gc - rc
	}
	// fmod(h/6 + 1, 1) with h/6 + 1 in [5/6, 11/6): subtracting 1 is exact.
	h = h/6 + 1
	if h >= 1 {
		h -= 1
	}
	return h, s, maxc
}

// hsvToRGB is torchvision's _hsv2rgb for one pixel, in float32.
func hsvToRGB(h, s, v float32) (r, g, b float32) {
	h6 := h * 6
	// h6 is in [0, 6]: truncation is floor.
	fi := float32(int(h6))
	f := h6 - fi
	i := int(fi) % 6
	p := clamp01(v * (1 - s))
	q := clamp01(v * (1 - s*f))
	t := clamp01(v * (1 - s*(1-f)))
	switch i {
	case 0:
		return v, t, p
	case 1:
		return q, v, p
	case 2:
		return p, v, t
	case 3:
		return p, q, v
	case 4:
		return t, p, v
	default:
		return v, p, q
	}
}

// BlurKernelSize returns the Gaussian blur kernel size the official SimCLR
// uses for images of the given side: 10% of the side, made odd
// (side/10/2*2 + 1).
func BlurKernelSize(side int) int {
	return side/10/2*2 + 1
}

// GaussianBlur blurs img, a [3, h, w] tensor, with a Gaussian kernel of odd
// size ksize and standard deviation sigma, reflecting at the borders
// (torchvision's gaussian_blur, computed separably). scratch must hold
// len(img) floats. It panics on inconsistent sizes or a kernel wider than
// twice the image.
func GaussianBlur(img, scratch []float32, w, h, ksize int, sigma float64) {
	if len(img) != 3*w*h || len(scratch) < len(img) {
		panic(fmt.Sprintf("augment: GaussianBlur: tensor has %d floats and scratch %d, want 3x%dx%d = %d", len(img), len(scratch), h, w, 3*w*h))
	}
	if ksize < 1 || ksize%2 == 0 || !(sigma > 0) {
		panic(fmt.Sprintf("augment: GaussianBlur: kernel size %d and sigma %g, want an odd size and a positive sigma", ksize, sigma))
	}
	half := ksize / 2
	if half >= w || half >= h {
		panic(fmt.Sprintf("augment: GaussianBlur: kernel size %d too large for reflect padding of a %dx%d image", ksize, w, h))
	}
	if ksize == 1 {
		return
	}
	var kbuf [64]float32
	k := kbuf[:0]
	if ksize > len(kbuf) {
		k = make([]float32, 0, ksize)
	}
	var sum float32
	s32 := float32(sigma)
	for i := -half; i <= half; i++ {
		x := float32(i) / s32
		v := float32(math.Exp(float64(-0.5 * x * x)))
		k = append(k, v)
		sum += v
	}
	for i := range k {
		k[i] /= sum
	}
	scratch = scratch[:len(img)]
	for c := range 3 {
		src := img[c*w*h : (c+1)*w*h]
		dst := scratch[c*w*h : (c+1)*w*h]
		// Horizontal pass into scratch.
		for y := range h {
			row := src[y*w : (y+1)*w]
			out := dst[y*w : (y+1)*w]
			for x := range w {
				var acc float32
				if x >= half && x+half < w {
					win := row[x-half : x+half+1]
					for j, kv := range k {
						acc += kv * win[j]
					}
				} else {
					for j, kv := range k {
						acc += kv * row[reflect(x+j-half, w)]
					}
				}
				out[x] = acc
			}
		}
		// Vertical pass back into img.
		for y := range h {
			out := src[y*w : (y+1)*w]
			for x := range out {
				out[x] = 0
			}
			for j, kv := range k {
				in := dst[reflect(y+j-half, h)*w:]
				in = in[:w]
				for x := range out {
					out[x] += kv * in[x]
				}
			}
		}
	}
}

// reflect maps index i into [0, n) by reflection without repeating the
// edge (PyTorch's "reflect" padding); |overhang| must be below n.
func reflect(i, n int) int {
	if i < 0 {
		return -i
	}
	if i >= n {
		return 2*(n-1) - i
	}
	return i
}
