package augment

import (
	"image"
	"math"

	"github.com/disintegration/gift"
)

// resampler resizes opaque *image.NRGBA crops (what libjpeg-turbo decodes
// JPEG files into) with gift's LinearResampling filter, reading the
// source bytes directly. gift's own Resize converts every source pixel to
// four float32s through a per-pixel type switch and keeps a 16-bit
// intermediate image; for a 32x32 view of a photo-sized crop that was most
// of the view's cost. The filter weights are computed exactly as gift
// computes them (from gift.LinearResampling's Kernel and Support), and the
// horizontal pass is rounded to 16 bits where gift keeps a 16-bit
// intermediate image (both sides resized). The views equal gift's within
// one 8-bit level, where float32 sums in another order break exact
// half-level ties the other way (TestResampleMatchesGift). It keeps scratch buffers: one per Pipeline.
type resampler struct {
	x, y resampleWeights
	tmp  []float32 // horizontal pass in 16-bit levels: [3][srcH][dstW]
	acc  []float32 // one output row: [3][dstW]
}

// resampleWeights are the filter taps of a resize from src to dst samples:
// output i reads first[i], first[i]+1, ... with weights w[off[i]:off[i+1]].
type resampleWeights struct {
	src, dst int
	first    []int
	off      []int
	w        []float32
}

// prepare fills rw for a resize from src to dst samples, unless it already
// holds that resize. It mirrors gift's prepareResampWeights.
func (rw *resampleWeights) prepare(src, dst int) {
	if rw.src == src && rw.dst == dst {
		return
	}
	f := gift.LinearResampling
	rw.src, rw.dst = src, dst
	rw.first, rw.off, rw.w = rw.first[:0], append(rw.off[:0], 0), rw.w[:0]
	delta := float32(src) / float32(dst)
	scale := max(delta, 1)
	radius := float32(math.Ceil(float64(scale * f.Support())))
	for i := range dst {
		center := (float32(i)+0.5)*delta - 0.5
		left := max(int(math.Ceil(float64(center-radius))), 0)
		right := min(int(math.Floor(float64(center+radius))), src-1)
		start := len(rw.w)
		first := -1
		var sum float32
		for j := left; j <= right; j++ {
			wt := f.Kernel((float32(j) - center) / scale)
			if wt == 0 {
				if first >= 0 { // keep the taps contiguous
					rw.w = append(rw.w, 0)
				}
				continue
			}
			if first < 0 {
				first = j
			}
			rw.w = append(rw.w, wt)
			sum += wt
		}
		// Trailing zero taps add nothing; drop them.
		for len(rw.w) > start && rw.w[len(rw.w)-1] == 0 {
			rw.w = rw.w[:len(rw.w)-1]
		}
		for k := start; k < len(rw.w); k++ {
			rw.w[k] /= sum
		}
		rw.first = append(rw.first, max(first, 0))
		rw.off = append(rw.off, len(rw.w))
	}
}

// resize writes src resized to dst's bounds into dst (alpha 255),
// rounding to 8 bits as gift does, and reports true, if every source pixel
// the filter reads is opaque; otherwise it reports false and dst is
// garbage (gift's resize, which weights colours by alpha, must do it).
func (r *resampler) resize(dst, src *image.NRGBA) bool {
	sb, db := src.Bounds(), dst.Bounds()
	sw, sh, dw, dh := sb.Dx(), sb.Dy(), db.Dx(), db.Dy()
	r.x.prepare(sw, dw)
	r.y.prepare(sh, dh)
	plane := sh * dw
	if cap(r.tmp) < 3*plane {
		r.tmp = make([]float32, 3*plane)
	}
	tmp := r.tmp[:3*plane]
	tr, tg, tb := tmp[:plane], tmp[plane:2*plane], tmp[2*plane:]
	// gift keeps a 16-bit intermediate image only when both sides change;
	// a resize along one axis is a single pass straight to 8 bits.
	quantize := sw != dw && sh != dh
	outScale := float32(1)
	if quantize {
		outScale = 255.0 / 65535
	}
	// Horizontal pass: every source row of the crop to dw samples.
	alpha := uint8(0xff)
	for y := range sh {
		row := src.Pix[src.PixOffset(sb.Min.X, sb.Min.Y+y):]
		row = row[:4*sw]
		for i := range dw {
			ws := r.x.w[r.x.off[i]:r.x.off[i+1]]
			px := row[4*r.x.first[i]:]
			px = px[:4*len(ws)]
			var cr, cg, cb float32
			for k, w := range ws {
				p := px[4*k : 4*k+4 : 4*k+4]
				cr += float32(p[0]) * w
				cg += float32(p[1]) * w
				cb += float32(p[2]) * w
				alpha &= p[3]
			}
			if quantize {
				cr, cg, cb = to16(cr), to16(cg), to16(cb)
			}
			tr[y*dw+i], tg[y*dw+i], tb[y*dw+i] = cr, cg, cb
		}
	}
	if alpha != 0xff {
		return false
	}
	// Vertical pass: dh output rows, each a weighted sum of tmp rows.
	if cap(r.acc) < 3*dw {
		r.acc = make([]float32, 3*dw)
	}
	acc := r.acc[:3*dw]
	ar, ag, ab := acc[:dw], acc[dw:2*dw], acc[2*dw:]
	for j := range dh {
		clear(acc)
		ws := r.y.w[r.y.off[j]:r.y.off[j+1]]
		for k, w := range ws {
			o := (r.y.first[j] + k) * dw
			sr, sg, sbl := tr[o:o+dw], tg[o:o+dw], tb[o:o+dw]
			for i := range ar {
				ar[i] += sr[i] * w
				ag[i] += sg[i] * w
				ab[i] += sbl[i] * w
			}
		}
		out := dst.Pix[dst.PixOffset(db.Min.X, db.Min.Y+j):]
		out = out[:4*dw]
		for i := range dw {
			p := out[4*i : 4*i+4 : 4*i+4]
			p[0], p[1], p[2], p[3] = roundU8(ar[i]*outScale), roundU8(ag[i]*outScale), roundU8(ab[i]*outScale), 0xff
		}
	}
	return true
}

// to16 rounds a value on the 0..255 scale to gift's 16-bit intermediate
// levels (0..65535), as its two-pass resize stores the horizontal pass.
func to16(v float32) float32 {
	return float32(int64(v*(65535.0/255) + 0.5))
}

// roundU8 rounds a value on the 0..255 scale to a byte as gift's setters
// do: add 0.5, truncate, clamp.
func roundU8(v float32) uint8 {
	x := int64(v + 0.5)
	switch {
	case x > 0xff:
		return 0xff
	case x < 0:
		return 0
	}
	return uint8(x)
}
