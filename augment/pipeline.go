package augment

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"math/rand/v2"

	"github.com/disintegration/gift"
)

// Probabilities and ranges of the SimCLR augmentation, as in the official
// SimCLR and the PyTorch reference.
const (
	FlipProb     = 0.5 // RandomHorizontalFlip
	JitterProb   = 0.8 // RandomApply(ColorJitter)
	GrayProb     = 0.2 // RandomGrayscale
	BlurProb     = 0.5 // RandomApply(GaussianBlur), when Config.Blur is set
	BlurSigmaMin = 0.1
	BlurSigmaMax = 2.0
)

// Config holds the parameters of the SimCLR augmentation. Zero fields mean
// the defaults.
type Config struct {
	// Size is the side of the square output views in pixels; required.
	Size int
	// ScaleMin and ScaleMax bound the area fraction of the random crop;
	// zeros mean 0.08 and 1.
	ScaleMin, ScaleMax float64
	// RatioMin and RatioMax bound the aspect ratio (width/height) of the
	// random crop; zeros mean 3/4 and 4/3.
	RatioMin, RatioMax float64
	// JitterStrength is s in ColorJitter(0.8s, 0.8s, 0.8s, 0.2s); 0 means 1,
	// a negative value disables colour jitter. At most 2.5 (hue 0.5).
	JitterStrength float64
	// Blur enables the Gaussian blur of the official SimCLR (p=0.5, kernel
	// 10% of the side, sigma uniform in [0.1, 2]).
	Blur bool
}

// resolved fills in the defaults and checks c.
func (c Config) resolved() (Config, error) {
	if c.Size <= 0 {
		return c, fmt.Errorf("augment: image size %d is not positive: pass a positive size", c.Size)
	}
	if c.ScaleMin == 0 && c.ScaleMax == 0 {
		c.ScaleMin, c.ScaleMax = 0.08, 1
	}
	if !(c.ScaleMin > 0 && c.ScaleMin <= c.ScaleMax && c.ScaleMax <= 1) {
		return c, fmt.Errorf("augment: crop scale range [%g, %g] is invalid: use 0 < min <= max <= 1", c.ScaleMin, c.ScaleMax)
	}
	if c.RatioMin == 0 && c.RatioMax == 0 {
		c.RatioMin, c.RatioMax = 3.0/4, 4.0/3
	}
	if !(c.RatioMin > 0 && c.RatioMin <= c.RatioMax) || math.IsInf(c.RatioMax, 0) {
		return c, fmt.Errorf("augment: crop ratio range [%g, %g] is invalid: use 0 < min <= max", c.RatioMin, c.RatioMax)
	}
	switch {
	case c.JitterStrength == 0:
		c.JitterStrength = 1
	case c.JitterStrength < 0:
		c.JitterStrength = -1
	case c.JitterStrength > 2.5 || math.IsNaN(c.JitterStrength):
		return c, fmt.Errorf("augment: jitter strength %g gives a hue range beyond 0.5: use at most 2.5", c.JitterStrength)
	}
	return c, nil
}

// Colour-jitter operations, as indices in Params.Order.
const (
	OpBrightness = iota
	OpContrast
	OpSaturation
	OpHue
)

// Params are the random decisions for one view, drawn by Pipeline.Draw.
type Params struct {
	// Crop is the RandomResizedCrop rectangle in the source image's
	// coordinates.
	Crop image.Rectangle
	// Flip mirrors the view horizontally.
	Flip bool
	// Jitter applies the colour operations in Order with the factors below.
	Jitter bool
	// Order is the random order of OpBrightness, OpContrast, OpSaturation
	// and OpHue.
	Order [4]int
	// Brightness, Contrast and Saturation are blend factors; Hue is a shift
	// in turns.
	Brightness, Contrast, Saturation, Hue float64
	// Gray converts the view to grey levels.
	Gray bool
	// Blur applies a Gaussian blur with standard deviation Sigma.
	Blur  bool
	Sigma float64
}

// Pipeline makes SimCLR views of one configuration. It holds scratch
// buffers: use one per goroutine.
type Pipeline struct {
	cfg     Config
	resize  *gift.GIFT
	small   *image.NRGBA // Size x Size resize target
	evalBuf *image.NRGBA // Eval's resize target, grown as needed
	blur    []float32
	// resampler is the fast path of the resize for opaque NRGBA images.
	resampler resampler
}

// New returns a Pipeline for cfg, or an error saying which setting to fix.
func New(cfg Config) (*Pipeline, error) {
	c, err := cfg.resolved()
	if err != nil {
		return nil, err
	}
	g := gift.New(gift.Resize(c.Size, c.Size, gift.LinearResampling))
	g.SetParallelization(false)
	p := &Pipeline{
		cfg:    c,
		resize: g,
		small:  image.NewNRGBA(image.Rect(0, 0, c.Size, c.Size)),
	}
	if c.Blur {
		p.blur = make([]float32, p.ViewLen())
	}
	return p, nil
}

// Config returns the configuration in use, defaults filled in (a disabled
// jitter reads as JitterStrength -1).
func (p *Pipeline) Config() Config { return p.cfg }

// ViewLen returns the number of floats in one view: 3*Size*Size.
func (p *Pipeline) ViewLen() int { return 3 * p.cfg.Size * p.cfg.Size }

// Draw takes the random decisions for one view of an image with the given
// bounds from rng, in torchvision's order: crop, flip, colour jitter (apply,
// order, brightness, contrast, saturation, hue), grayscale, blur.
func (p *Pipeline) Draw(rng *rand.Rand, bounds image.Rectangle) Params {
	c := p.cfg
	var v Params
	v.Crop = CropParams(rng, bounds.Dx(), bounds.Dy(), [2]float64{c.ScaleMin, c.ScaleMax}, [2]float64{c.RatioMin, c.RatioMax}).Add(bounds.Min)
	v.Flip = rng.Float64() < FlipProb
	if c.JitterStrength > 0 && rng.Float64() <= JitterProb {
		v.Jitter = true
		v.Order = [4]int{0, 1, 2, 3}
		for i := 3; i > 0; i-- {
			j := rng.IntN(i + 1)
			v.Order[i], v.Order[j] = v.Order[j], v.Order[i]
		}
		bcs := 0.8 * c.JitterStrength
		h := 0.2 * c.JitterStrength
		v.Brightness = uniform(rng, max(0, 1-bcs), 1+bcs)
		v.Contrast = uniform(rng, max(0, 1-bcs), 1+bcs)
		v.Saturation = uniform(rng, max(0, 1-bcs), 1+bcs)
		v.Hue = uniform(rng, -h, h)
	}
	v.Gray = rng.Float64() < GrayProb
	if c.Blur && rng.Float64() <= BlurProb {
		v.Blur = true
		v.Sigma = uniform(rng, BlurSigmaMin, BlurSigmaMax)
	}
	return v
}

// Apply makes the view described by v from src into dst, a [3, Size, Size]
// float32 tensor in [0, 1]. Opaque *image.NRGBA sources (JPEG files
// decoded by libjpeg-turbo) are resized by a direct implementation of
// gift's bilinear filter that does not allocate once warm; other image
// types go through gift's Resize, which allocates its temporary image.
// It panics if len(dst) is not ViewLen or the crop is empty or outside src.
func (p *Pipeline) Apply(dst []float32, src image.Image, v Params) {
	n := p.cfg.Size
	if len(dst) != p.ViewLen() {
		panic(fmt.Sprintf("augment: Apply: dst has %d floats, want 3x%dx%d = %d", len(dst), n, n, p.ViewLen()))
	}
	if v.Crop.Empty() || !v.Crop.In(src.Bounds()) {
		panic(fmt.Sprintf("augment: Apply: crop %v is empty or outside the image bounds %v", v.Crop, src.Bounds()))
	}
	sub := subImage(src, v.Crop)
	if v.Crop.Dx() == n && v.Crop.Dy() == n {
		toCHW(dst, sub, v.Flip)
	} else {
		if nrgba, ok := sub.(*image.NRGBA); !ok || !p.resampler.resize(p.small, nrgba) {
			p.resize.Draw(p.small, sub)
		}
		toCHW(dst, p.small, v.Flip)
	}
	if v.Jitter {
		for _, op := range v.Order {
			switch op {
			case OpBrightness:
				Brightness(dst, v.Brightness)
			case OpContrast:
				Contrast(dst, v.Contrast)
			case OpSaturation:
				Saturation(dst, v.Saturation)
			case OpHue:
				Hue(dst, v.Hue)
			}
		}
	}
	if v.Gray {
		Grayscale(dst)
	}
	if v.Blur {
		if p.blur == nil {
			p.blur = make([]float32, p.ViewLen())
		}
		GaussianBlur(dst, p.blur, n, n, BlurKernelSize(n), v.Sigma)
	}
}

// View draws the parameters of one view from rng and makes it into dst. It
// returns the parameters drawn.
func (p *Pipeline) View(dst []float32, src image.Image, rng *rand.Rand) Params {
	v := p.Draw(rng, src.Bounds())
	p.Apply(dst, src, v)
	return v
}

// Pair makes the two views of src SimCLR trains on, the first into dst1 and
// the second into dst2, drawing from rng in that order.
func (p *Pipeline) Pair(dst1, dst2 []float32, src image.Image, rng *rand.Rand) {
	p.View(dst1, src, rng)
	p.View(dst2, src, rng)
}

// Eval writes the evaluation view of src into dst: the reference's
// test_transform, Resize(Size) (shorter side to Size, aspect ratio kept,
// bilinear) then ToTensor, followed by a centre crop to Size x Size (as
// torchvision's CenterCrop) so that non-square images fit a batch; square
// images are not cropped. It panics if len(dst) is not ViewLen or src is
// empty.
func (p *Pipeline) Eval(dst []float32, src image.Image) {
	n := p.cfg.Size
	if len(dst) != p.ViewLen() {
		panic(fmt.Sprintf("augment: Eval: dst has %d floats, want 3x%dx%d = %d", len(dst), n, n, p.ViewLen()))
	}
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	if w <= 0 || h <= 0 {
		panic(fmt.Sprintf("augment: Eval: empty image bounds %v", b))
	}
	if w == n && h == n {
		toCHW(dst, src, false)
		return
	}
	nw, nh := ResizeShorter(w, h, n)
	if p.evalBuf == nil || p.evalBuf.Rect.Dx() != nw || p.evalBuf.Rect.Dy() != nh {
		if p.evalBuf != nil && cap(p.evalBuf.Pix) >= 4*nw*nh {
			p.evalBuf = &image.NRGBA{Pix: p.evalBuf.Pix[:4*nw*nh], Stride: 4 * nw, Rect: image.Rect(0, 0, nw, nh)}
		} else {
			p.evalBuf = image.NewNRGBA(image.Rect(0, 0, nw, nh))
		}
	}
	g := gift.New(gift.Resize(nw, nh, gift.LinearResampling))
	g.SetParallelization(false)
	g.Draw(p.evalBuf, src)
	top := int(math.RoundToEven(float64(nh-n) / 2))
	left := int(math.RoundToEven(float64(nw-n) / 2))
	toCHW(dst, p.evalBuf.SubImage(image.Rect(left, top, left+n, top+n)), false)
}

// ResizeShorter returns the size torchvision's Resize(size) gives an image
// of w x h: the shorter side becomes size, the longer side
// int(size*long/short).
func ResizeShorter(w, h, size int) (nw, nh int) {
	if w <= h {
		return size, int(float64(size) * float64(h) / float64(w))
	}
	return int(float64(size) * float64(w) / float64(h)), size
}

// subImager is implemented by the standard library's image types.
type subImager interface {
	SubImage(r image.Rectangle) image.Image
}

// subImage returns the part of src inside r without copying.
func subImage(src image.Image, r image.Rectangle) image.Image {
	if s, ok := src.(subImager); ok {
		return s.SubImage(r)
	}
	return &cropped{src: src, r: r}
}

// cropped restricts an image without SubImage to a rectangle.
type cropped struct {
	src image.Image
	r   image.Rectangle
}

// ColorModel returns the source's colour model.
func (c *cropped) ColorModel() color.Model { return c.src.ColorModel() }

// Bounds returns the crop rectangle.
func (c *cropped) Bounds() image.Rectangle { return c.r }

// At returns the source's colour at (x, y).
func (c *cropped) At(x, y int) color.Color { return c.src.At(x, y) }
