package augment

import (
	"fmt"
	"image"
	"slices"
)

// u8 maps a byte to float32(b)/255, the division torchvision's ToTensor
// performs.
var u8 = func() (t [256]float32) {
	for i := range t {
		t[i] = float32(i) / 255
	}
	return t
}()

// ToCHW writes src as a float32 tensor of shape [3, H, W] with values in
// [0, 1] into dst, as torchvision's ToTensor does for an RGB image. Grey
// images are expanded to three equal channels; alpha is dropped (colours are
// taken un-premultiplied, as PIL's convert("RGB") does). It panics unless
// len(dst) is 3*W*H of src's bounds.
//
// *image.YCbCr, *image.NRGBA, *image.RGBA and *image.Gray take fast paths;
// other types go through image.Image.At.
func ToCHW(dst []float32, src image.Image) {
	toCHW(dst, src, false)
}

// toCHW is ToCHW with an optional horizontal flip.
func toCHW(dst []float32, src image.Image, flip bool) {
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	if len(dst) != 3*w*h {
		panic(fmt.Sprintf("augment: ToCHW: dst has %d floats, want 3x%dx%d = %d", len(dst), h, w, 3*w*h))
	}
	if w == 0 || h == 0 {
		return
	}
	plane := w * h
	r, g, bl := dst[:plane:plane], dst[plane:2*plane:2*plane], dst[2*plane:]
	switch img := src.(type) {
	case *image.NRGBA:
		for y := range h {
			row := img.Pix[img.PixOffset(b.Min.X, b.Min.Y+y):]
			row = row[:4*w]
			ro, go_, bo := r[y*w:(y+1)*w], g[y*w:(y+1)*w], bl[y*w:(y+1)*w]
			for x := range ro {
				p := row[4*x : 4*x+4 : 4*x+4]
				ro[x], go_[x], bo[x] = u8[p[0]], u8[p[1]], u8[p[2]]
			}
		}
	case *image.RGBA:
		for y := range h {
			row := img.Pix[img.PixOffset(b.Min.X, b.Min.Y+y):]
			row = row[:4*w]
			ro, go_, bo := r[y*w:(y+1)*w], g[y*w:(y+1)*w], bl[y*w:(y+1)*w]
			for x := range ro {
				p := row[4*x : 4*x+4 : 4*x+4]
				switch a := p[3]; a {
				case 0xff:
					ro[x], go_[x], bo[x] = u8[p[0]], u8[p[1]], u8[p[2]]
				case 0:
					ro[x], go_[x], bo[x] = 0, 0, 0
				default:
					// Un-premultiply as color.NRGBAModel does.
					ro[x], go_[x], bo[x] = u8[unpremul(p[0], a)], u8[unpremul(p[1], a)], u8[unpremul(p[2], a)]
				}
			}
		}
	case *image.Gray:
		for y := range h {
			row := img.Pix[img.PixOffset(b.Min.X, b.Min.Y+y):]
			row = row[:w]
			ro, go_, bo := r[y*w:(y+1)*w], g[y*w:(y+1)*w], bl[y*w:(y+1)*w]
			for x, v := range row {
				f := u8[v]
				ro[x], go_[x], bo[x] = f, f, f
			}
		}
	case *image.YCbCr:
		if b.Min.X >= 0 {
			ycbcrToCHW(r, g, bl, img)
		} else {
			genericToCHW(r, g, bl, src)
		}
	default:
		genericToCHW(r, g, bl, src)
	}
	if flip {
		for y := range h {
			slices.Reverse(r[y*w : (y+1)*w])
			slices.Reverse(g[y*w : (y+1)*w])
			slices.Reverse(bl[y*w : (y+1)*w])
		}
	}
}

// genericToCHW converts any image through At.
func genericToCHW(r, g, bl []float32, src image.Image) {
	b := src.Bounds()
	w := b.Dx()
	for i := range r {
		cr, cg, cb, ca := src.At(b.Min.X+i%w, b.Min.Y+i/w).RGBA()
		switch ca {
		case 0xffff:
		case 0:
			cr, cg, cb = 0, 0, 0
		default:
			cr, cg, cb = cr*0xffff/ca, cg*0xffff/ca, cb*0xffff/ca
		}
		r[i] = float32(cr) / 0xffff
		g[i] = float32(cg) / 0xffff
		bl[i] = float32(cb) / 0xffff
	}
}

// ycbcrToCHW converts a YCbCr image with Go's (JFIF) conversion
// (color.YCbCrToRGB), rounding to 8 bits as a JPEG decoder does, then to
// [0, 1]. img.Rect.Min.X must not be negative (the chroma column is found
// with a shift).
func ycbcrToCHW(r, g, bl []float32, img *image.YCbCr) {
	b := img.Rect
	w, h := b.Dx(), b.Dy()
	// Horizontal chroma subsampling shift; COffset handles the vertical.
	var sx uint
	switch img.SubsampleRatio {
	case image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio420:
		sx = 1
	case image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410:
		sx = 2
	}
	for y := range h {
		yy := b.Min.Y + y
		yrow := img.Y[img.YOffset(b.Min.X, yy):]
		yrow = yrow[:w]
		// Chroma index of absolute column X is COffset(Min.X) + X>>sx -
		// Min.X>>sx, as image.YCbCr.COffset computes it.
		ci := img.COffset(b.Min.X, yy)
		cx0 := b.Min.X >> sx
		n := (b.Min.X+w-1)>>sx - cx0 + 1
		cb, cr := img.Cb[ci:ci+n], img.Cr[ci:ci+n]
		ro, go_, bo := r[y*w:(y+1)*w], g[y*w:(y+1)*w], bl[y*w:(y+1)*w]
		for x, yv := range yrow {
			c := (b.Min.X+x)>>sx - cx0
			// color.YCbCrToRGB, inlined.
			yy1 := int32(yv) * 0x10101
			cb1 := int32(cb[c]) - 128
			cr1 := int32(cr[c]) - 128
			rr := yy1 + 91881*cr1
			if uint32(rr)&0xff000000 == 0 {
				rr >>= 16
			} else {
				rr = ^(rr >> 31)
			}
			gg := yy1 - 22554*cb1 - 46802*cr1
			if uint32(gg)&0xff000000 == 0 {
				gg >>= 16
			} else {
				gg = ^(gg >> 31)
			}
			bb := yy1 + 116130*cb1
			if uint32(bb)&0xff000000 == 0 {
				bb >>= 16
			} else {
				bb = ^(bb >> 31)
			}
			ro[x], go_[x], bo[x] = u8[uint8(rr)], u8[uint8(gg)], u8[uint8(bb)]
		}
	}
}

// unpremul returns the straight 8-bit value of premultiplied c at alpha a,
// as color.NRGBAModel computes it.
func unpremul(c, a uint8) uint8 {
	return uint8((uint32(c) * 0x101 * 0xffff / (uint32(a) * 0x101)) >> 8)
}
