package data

import (
	"bytes"
	"fmt"
	"image"
	"os"
	"sync"

	"github.com/simclr-ort/simclr-ort/augment/data/internal/turbojpeg"
)

// JPEGDecoderEnv names the environment variable that picks the JPEG
// decoder of image folders: "turbo" (libjpeg-turbo, an error if it cannot
// be loaded), "go" (Go's image/jpeg), or unset for libjpeg-turbo when it
// loads and image/jpeg otherwise.
const JPEGDecoderEnv = "SIMCLR_ORT_JPEG_DECODER"

var (
	jpegChoiceOnce sync.Once
	jpegUseTurbo   bool
	jpegChoiceErr  error
	jpegChoiceText string
)

// chooseJPEGDecoder settles, once per process, which decoder reads JPEG
// files.
func chooseJPEGDecoder() {
	jpegChoiceOnce.Do(func() {
		loadErr := turbojpeg.Load()
		switch env := os.Getenv(JPEGDecoderEnv); env {
		case "go":
			jpegChoiceText = "Go's image/jpeg (" + JPEGDecoderEnv + "=go)"
		case "turbo":
			if loadErr != nil {
				jpegChoiceErr = fmt.Errorf("augment/data: %s=turbo: %w", JPEGDecoderEnv, loadErr)
				return
			}
			jpegUseTurbo = true
		case "":
			jpegUseTurbo = loadErr == nil
			if loadErr != nil {
				jpegChoiceText = "Go's image/jpeg, about 3x slower than libjpeg-turbo: " + turbojpeg.LibraryName +
					" did not load; for faster JPEG decoding, " + turbojpeg.InstallHint
			}
		default:
			jpegChoiceErr = fmt.Errorf("augment/data: %s=%q: use turbo, go, or leave it unset", JPEGDecoderEnv, env)
		}
		if jpegUseTurbo {
			jpegChoiceText = "libjpeg-turbo (" + turbojpeg.LibraryName + ")"
		}
	})
}

// JPEGDecoder says which decoder reads the JPEG files of image folders in
// this process, for a line in a program's log; the error reports an invalid
// JPEGDecoderEnv setting.
func JPEGDecoder() (string, error) {
	chooseJPEGDecoder()
	return jpegChoiceText, jpegChoiceErr
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

// decodeImage decodes the image file in b: JPEG files with libjpeg-turbo
// when chosen (falling back to image/jpeg for the rare files it refuses,
// such as CMYK JPEGs), everything else with the registered Go decoders.
// With a non-nil scratch, libjpeg-turbo decodes into *scratch when it has
// room and leaves the buffer it used there: the image is then valid until
// the next call with the same scratch.
func decodeImage(b []byte, scratch **image.NRGBA) (image.Image, error) {
	chooseJPEGDecoder()
	if jpegChoiceErr != nil {
		return nil, jpegChoiceErr
	}
	if !jpegUseTurbo || !isJPEG(b) {
		img, _, err := image.Decode(bytes.NewReader(b))
		return img, err
	}
	var turboErr error
	switch d := turboDecoders.Get().(type) {
	case *turbojpeg.Decoder:
		var dst *image.NRGBA
		if scratch != nil {
			dst = *scratch
		}
		img, err := d.Decode(b, dst)
		turboDecoders.Put(d)
		if err == nil {
			if scratch != nil {
				*scratch = img
			}
			return img, nil
		}
		turboErr = err
	case error:
		turboErr = d
	}
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%w (image/jpeg: %v)", turboErr, err)
	}
	return img, nil
}
