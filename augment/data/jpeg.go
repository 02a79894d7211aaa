package data

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"math"
	"sync"

	"github.com/simclr-ort/simclr-ort/augment/data/internal/turbojpeg"
)

// The JPEG decoders of image folders, the values of Options.JPEGDecoder.
const (
	// JPEGAuto decodes with libjpeg-turbo where its library loads, else
	// with Go's image/jpeg (and the decoder's description says why). It is
	// the default; "" means it too.
	JPEGAuto = "auto"
	// JPEGGo decodes with Go's image/jpeg.
	JPEGGo = "go"
	// JPEGTurbo decodes with libjpeg-turbo (libturbojpeg.so.0); opening an
	// image folder is an error where the library does not load.
	JPEGTurbo = "turbo"
)

// DefaultMaxImagePixels is the default of Options.MaxImagePixels:
// 8192x8192 pixels, 256 MiB decoded as RGBA; a 48-megapixel photo
// (8000x6000) fits.
const DefaultMaxImagePixels = 8192 * 8192

// ErrImageTooLarge is matched (errors.Is) by the error of an image file
// whose header declares more pixels than Options.MaxImagePixels allows. The
// file is refused before it is decoded; a loader skips and counts it as an
// unreadable image.
var ErrImageTooLarge = errors.New("image larger than the pixel limit")

// Options configure how a dataset's image files are read. The zero value
// means the defaults.
type Options struct {
	// JPEGDecoder picks the decoder of an image folder's JPEG files:
	// JPEGAuto (or ""), JPEGGo or JPEGTurbo. Any other value is an error.
	JPEGDecoder string
	// MaxImagePixels bounds the width x height an image file of a folder
	// may declare in its header: a larger one is refused before decoding,
	// so that a small file claiming a huge size cannot take gigabytes per
	// worker (decoding takes about 4 bytes per pixel, and up to 3 times
	// that for image/jpeg's progressive files). 0 means
	// DefaultMaxImagePixels; a negative value is an error.
	MaxImagePixels int
}

// check validates o and fills in its defaults.
func (o Options) check() (Options, error) {
	switch o.JPEGDecoder {
	case "":
		o.JPEGDecoder = JPEGAuto
	case JPEGAuto, JPEGGo, JPEGTurbo:
	default:
		return o, fmt.Errorf("data: unknown JPEG decoder %q: use %s (libjpeg-turbo if it loads, else Go's image/jpeg), %s or %s", o.JPEGDecoder, JPEGAuto, JPEGGo, JPEGTurbo)
	}
	switch {
	case o.MaxImagePixels < 0:
		return o, fmt.Errorf("data: image pixel limit %d is negative: pass a positive number of pixels (width x height), or 0 for the default %s", o.MaxImagePixels, pixels(DefaultMaxImagePixels))
	case o.MaxImagePixels == 0:
		o.MaxImagePixels = DefaultMaxImagePixels
	}
	return o, nil
}

// pixels describes a pixel count, as a square where it is one.
func pixels(n int) string {
	if s := int(math.Sqrt(float64(n))); s*s == n {
		return fmt.Sprintf("of %d pixels (%dx%d)", n, s, s)
	}
	return fmt.Sprintf("of %d pixels", n)
}

// JPEGDecoderFor says which decoder reads JPEG files in this process under
// the choice (JPEGAuto or "", JPEGGo, JPEGTurbo), for a line in a
// program's log. An unknown choice, or JPEGTurbo where libjpeg-turbo does
// not load, is an error that says what to do.
func JPEGDecoderFor(choice string) (string, error) {
	o, err := Options{JPEGDecoder: choice}.check()
	if err != nil {
		return "", err
	}
	dec, err := newImageDecoder(o)
	return dec.desc, err
}

// JPEGDecoder says which decoder reads JPEG files under the default choice,
// JPEGAuto; its error is always nil. See JPEGDecoderFor for an explicit
// choice, and Folder.JPEGDecoder for an opened folder's.
func JPEGDecoder() (string, error) {
	return JPEGDecoderFor(JPEGAuto)
}

// imageDecoder decodes the image files of a folder.
type imageDecoder struct {
	turbo     bool   // libjpeg-turbo decodes JPEG files
	maxPixels int    // the limit on declared width x height
	desc      string // which decoder reads JPEG files, for a log line
}

// newImageDecoder returns the decoder of checked options o.
func newImageDecoder(o Options) (imageDecoder, error) {
	dec := imageDecoder{maxPixels: o.MaxImagePixels}
	loadErr := turbojpeg.Load()
	switch o.JPEGDecoder {
	case JPEGGo:
		dec.desc = fmt.Sprintf("Go's image/jpeg (JPEG decoder %q chosen)", JPEGGo)
		return dec, nil
	case JPEGTurbo:
		if loadErr != nil {
			return dec, fmt.Errorf("data: JPEG decoder %q: %w; or choose the JPEG decoder %q or %q", JPEGTurbo, loadErr, JPEGAuto, JPEGGo)
		}
	default: // JPEGAuto
		if loadErr != nil {
			dec.desc = "Go's image/jpeg, about 3x slower than libjpeg-turbo: " + turbojpeg.LibraryName +
				" did not load; for faster JPEG decoding, " + turbojpeg.InstallHint
			return dec, nil
		}
	}
	dec.turbo = true
	dec.desc = "libjpeg-turbo (" + turbojpeg.LibraryName + ")"
	return dec, nil
}

// tooLargeError reports an image file over the pixel limit; it matches
// ErrImageTooLarge.
type tooLargeError struct{ width, height, limit int }

func (e *tooLargeError) Error() string {
	return fmt.Sprintf("the image is %dx%d pixels, more than the limit %s, so it was not decoded: downscale the file, or raise the limit (simclr-ort train --max-image-pixels; augment/data Options.MaxImagePixels)", e.width, e.height, pixels(e.limit))
}

func (e *tooLargeError) Is(target error) bool { return target == ErrImageTooLarge }

// checkSize refuses declared dimensions over the limit.
func (dec imageDecoder) checkSize(width, height int) error {
	if width > 0 && height > 0 && width > dec.maxPixels/height {
		return &tooLargeError{width, height, dec.maxPixels}
	}
	return nil
}

// turboDecoders pools libjpeg-turbo decompressors across the goroutines
// that decode images.
var turboDecoders = sync.Pool{New: func() any {
	d, err := turbojpeg.NewDecoder()
	if err != nil {
		return err
	}
	return d
}}

// isJPEG reports whether b starts with a JPEG SOI marker.
func isJPEG(b []byte) bool {
	return len(b) >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF
}

// decode decodes the image file in b, after checking the dimensions its
// header declares against the limit: JPEG files with libjpeg-turbo when
// chosen (falling back to image/jpeg for the rare files it refuses, such
// as CMYK JPEGs), everything else with the registered Go decoders. With a
// non-nil scratch, libjpeg-turbo decodes into *scratch when it has room
// and leaves the buffer it used there: the image is then valid until the
// next call with the same scratch.
func (dec imageDecoder) decode(b []byte, scratch **image.NRGBA) (image.Image, error) {
	if !dec.turbo || !isJPEG(b) {
		return dec.decodeGo(b)
	}
	var turboErr error
	switch d := turboDecoders.Get().(type) {
	case *turbojpeg.Decoder:
		img, err := dec.decodeTurbo(d, b, scratch)
		turboDecoders.Put(d)
		if err == nil || errors.Is(err, ErrImageTooLarge) {
			return img, err
		}
		turboErr = err
	case error:
		turboErr = d
	}
	img, err := dec.decodeGo(b)
	if err != nil {
		if errors.Is(err, ErrImageTooLarge) {
			return nil, err
		}
		return nil, fmt.Errorf("%w (image/jpeg: %v)", turboErr, err)
	}
	return img, nil
}

// decodeTurbo decodes the JPEG file in b with d.
func (dec imageDecoder) decodeTurbo(d *turbojpeg.Decoder, b []byte, scratch **image.NRGBA) (image.Image, error) {
	w, h, err := d.Header(b)
	if err != nil {
		return nil, err
	}
	if err := dec.checkSize(w, h); err != nil {
		return nil, err
	}
	var dst *image.NRGBA
	if scratch != nil {
		dst = *scratch
	}
	img, err := d.Decode(b, dst)
	if err != nil {
		return nil, err
	}
	if scratch != nil {
		*scratch = img
	}
	return img, nil
}

// decodeGo decodes b with the registered Go decoders.
func (dec imageDecoder) decodeGo(b []byte) (image.Image, error) {
	if err := checkRIFF(b); err != nil {
		return nil, err
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	if err := dec.checkSize(cfg.Width, cfg.Height); err != nil {
		return nil, err
	}
	img, _, err := image.Decode(bytes.NewReader(b))
	return img, err
}

// checkRIFF refuses a WebP file whose RIFF header declares more bytes than
// the file has: golang.org/x/image/vp8 allocates a chunk's declared length
// (up to 16 MiB) before reading it, so a cut 100-byte file took 6 MB.
// Every chunk length is checked against the RIFF length.
func checkRIFF(b []byte) error {
	if len(b) < 12 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WEBP" {
		return nil
	}
	if n := int64(binary.LittleEndian.Uint32(b[4:])); n > int64(len(b))-8 {
		return fmt.Errorf("webp: the RIFF header declares %d bytes after it, the file has %d: it is truncated", n, len(b)-8)
	}
	return nil
}
