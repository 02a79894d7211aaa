// Package turbojpeg decodes JPEG files with libjpeg-turbo's TurboJPEG
// library, the decoder PIL (and so torchvision's ImageFolder) uses. It is
// about three times faster than Go's image/jpeg and gives PIL's pixels
// (accurate integer IDCT, smooth chroma upsampling), where image/jpeg
// upsamples chroma by replication.
//
// The library is loaded at run time (dlopen of libturbojpeg.so.0, Debian's
// libturbojpeg0), so simclr-ort builds and runs without it; callers fall
// back to image/jpeg when Load fails.
package turbojpeg

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>

typedef void* tjhandle;

// The TurboJPEG 2.x functions used here, as declared in turbojpeg.h.
static tjhandle (*tj_init_decompress)(void);
static int (*tj_decompress_header3)(tjhandle, const unsigned char*, unsigned long, int*, int*, int*, int*);
static int (*tj_decompress2)(tjhandle, const unsigned char*, unsigned long, unsigned char*, int, int, int, int, int);
static int (*tj_destroy)(tjhandle);
static char* (*tj_get_error_str2)(tjhandle);
static int (*tj_get_error_code)(tjhandle);

// simclr_tj_load loads the library and its functions. It returns NULL or
// an error text.
static const char* simclr_tj_load(const char* path) {
	void* lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!lib) return dlerror();
	tj_init_decompress = (tjhandle (*)(void))dlsym(lib, "tjInitDecompress");
	tj_decompress_header3 = (int (*)(tjhandle, const unsigned char*, unsigned long, int*, int*, int*, int*))dlsym(lib, "tjDecompressHeader3");
	tj_decompress2 = (int (*)(tjhandle, const unsigned char*, unsigned long, unsigned char*, int, int, int, int, int))dlsym(lib, "tjDecompress2");
	tj_destroy = (int (*)(tjhandle))dlsym(lib, "tjDestroy");
	tj_get_error_str2 = (char* (*)(tjhandle))dlsym(lib, "tjGetErrorStr2");
	tj_get_error_code = (int (*)(tjhandle))dlsym(lib, "tjGetErrorCode");
	if (!tj_init_decompress || !tj_decompress_header3 || !tj_decompress2 || !tj_destroy || !tj_get_error_str2 || !tj_get_error_code)
		return "the library lacks the TurboJPEG 2 functions (tjDecompress2, tjGetErrorCode, ...)";
	return NULL;
}

static tjhandle simclr_tj_init(void) { return tj_init_decompress(); }
static int simclr_tj_destroy(tjhandle h) { return tj_destroy(h); }
static const char* simclr_tj_error(tjhandle h) { return tj_get_error_str2(h); }
static int simclr_tj_error_code(tjhandle h) { return tj_get_error_code(h); }

static int simclr_tj_header(tjhandle h, const unsigned char* b, unsigned long n, int* w, int* ht) {
	int subsamp, colorspace;
	return tj_decompress_header3(h, b, n, w, ht, &subsamp, &colorspace);
}

// TJPF_RGBA is 7 in turbojpeg.h; flags 0 keep the accurate integer IDCT
// and smooth ("fancy") upsampling, libjpeg's and PIL's defaults.
static int simclr_tj_decode_rgba(tjhandle h, const unsigned char* b, unsigned long n, unsigned char* dst, int w, int pitch, int ht) {
	return tj_decompress2(h, b, n, dst, w, pitch, ht, 7, 0);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"image"
	"runtime"
	"strings"
	"sync"
	"unsafe"
)

// LibraryName is the shared library Load opens (Debian package
// libturbojpeg0).
const LibraryName = "libturbojpeg.so.0"

// InstallHint says how to get the library.
const InstallHint = "install libjpeg-turbo's TurboJPEG library (Debian/Ubuntu: sudo apt-get install libturbojpeg0)"

var (
	loadOnce sync.Once
	loadErr  error
)

// Load opens LibraryName once and reports whether it is usable; later calls
// return the first call's result.
func Load() error {
	loadOnce.Do(func() {
		path := C.CString(LibraryName)
		defer C.free(unsafe.Pointer(path))
		if msg := C.simclr_tj_load(path); msg != nil {
			loadErr = fmt.Errorf("turbojpeg: load %s: %s; %s", LibraryName, C.GoString(msg), InstallHint)
		}
	})
	return loadErr
}

// Decoder is one TurboJPEG decompressor. It is not safe for concurrent use:
// use one per goroutine (or a pool).
type Decoder struct {
	h       C.tjhandle
	cleanup runtime.Cleanup
}

// handle is what the cleanup needs to release a decompressor.
type handle struct{ h C.tjhandle }

// NewDecoder returns a decoder; Load must have succeeded. A decoder that is
// dropped without Close is released by the garbage collector.
func NewDecoder() (*Decoder, error) {
	if err := Load(); err != nil {
		return nil, err
	}
	h := C.simclr_tj_init()
	if h == nil {
		return nil, errors.New("turbojpeg: tjInitDecompress could not create a decompressor (out of memory?); free memory, or decode with Go's image/jpeg (the JPEG decoder \"go\")")
	}
	d := &Decoder{h: h}
	d.cleanup = runtime.AddCleanup(d, func(x handle) { C.simclr_tj_destroy(x.h) }, handle{h})
	return d, nil
}

// Close releases the decompressor. The decoder must not be used afterwards.
func (d *Decoder) Close() {
	if d.h != nil {
		d.cleanup.Stop()
		C.simclr_tj_destroy(d.h)
		d.h = nil
	}
}

// Header returns the width and height the JPEG file in b declares,
// reading only its headers (up to the first scan), so that a caller can
// refuse an image too large to decode before any pixel memory is taken.
func (d *Decoder) Header(b []byte) (width, height int, err error) {
	if d.h == nil {
		panic("turbojpeg: Header on a closed Decoder")
	}
	defer runtime.KeepAlive(d)
	if len(b) == 0 {
		return 0, 0, errors.New("turbojpeg: empty file")
	}
	var w, h C.int
	if C.simclr_tj_header(d.h, (*C.uchar)(unsafe.Pointer(&b[0])), C.ulong(len(b)), &w, &h) != 0 {
		err := d.err("read header")
		d.renew()
		return 0, 0, err
	}
	width, height = int(w), int(h)
	if width <= 0 || height <= 0 {
		return 0, 0, fmt.Errorf("turbojpeg: the header declares an image of %dx%d pixels; the file is corrupt", width, height)
	}
	return width, height, nil
}

// Decode decodes the JPEG file in b into an opaque NRGBA image (every alpha
// 255), grayscale and CMYK-free colour JPEGs alike. dst is reused when its
// Pix has room, else a new image is allocated. Warnings about recoverable
// damage (extraneous bytes, for instance) are ignored as PIL ignores them;
// a file that ends before its image data does is an error, as it is for PIL
// and image/jpeg. On an error, a reused dst's pixels and bounds are
// undefined.
func (d *Decoder) Decode(b []byte, dst *image.NRGBA) (*image.NRGBA, error) {
	if d.h == nil {
		panic("turbojpeg: Decode on a closed Decoder")
	}
	// d's cleanup destroys the handle: d must stay reachable until the C
	// calls on d.h are done.
	defer runtime.KeepAlive(d)
	width, height, err := d.Header(b)
	if err != nil {
		return nil, err
	}
	src := (*C.uchar)(unsafe.Pointer(&b[0]))
	w, h := C.int(width), C.int(height)
	n := 4 * width * height
	if dst == nil || cap(dst.Pix) < n {
		dst = image.NewNRGBA(image.Rect(0, 0, width, height))
	} else {
		*dst = image.NRGBA{Pix: dst.Pix[:n], Stride: 4 * width, Rect: image.Rect(0, 0, width, height)}
	}
	rc := C.simclr_tj_decode_rgba(d.h, src, C.ulong(len(b)), (*C.uchar)(unsafe.Pointer(&dst.Pix[0])), w, C.int(4*width), h)
	if rc != 0 {
		// TurboJPEG gives warnings only as text (the last one). A file cut
		// short ends in libjpeg's "Premature end of JPEG file" or, when the
		// cut falls inside entropy-coded data, "Corrupt JPEG data:
		// premature end of data segment" (seen at 90% of a file); PIL and
		// image/jpeg refuse such files, and so do we. Other warnings, such
		// as "Corrupt JPEG data: N extraneous bytes before marker", leave
		// a complete image that PIL loads, and so do we.
		const warning = 0 // TJERR_WARNING
		msg := C.GoString(C.simclr_tj_error(d.h))
		if C.simclr_tj_error_code(d.h) != warning || strings.Contains(strings.ToLower(msg), "premature end") {
			d.renew()
			return nil, fmt.Errorf("turbojpeg: decode: %s", msg)
		}
	}
	// The warnings alone did not catch every cut: a file cut at 90% of
	// its scan data once decoded without one in a test. A complete file
	// has an end-of-image marker after its last scan.
	if truncated(b) {
		d.renew()
		return nil, errors.New("turbojpeg: decode: the file ends inside its image data (no end-of-image marker after the last scan): it is truncated")
	}
	return dst, nil
}

// truncated reports whether the JPEG data in b lacks an end-of-image
// marker (FF D9) after its last start-of-scan marker (FF DA). Inside scan
// data every 0xFF byte is followed by 0x00 or a restart marker, so neither
// marker can appear there; an EXIF thumbnail's markers come before the
// main image's scans.
// It reads backwards from the end, so a complete file costs a few bytes.
func truncated(b []byte) bool {
	for i := len(b) - 2; i >= 0; i-- {
		if b[i] == 0xFF {
			switch b[i+1] {
			case 0xD9:
				return false
			case 0xDA:
				return true
			}
		}
	}
	return true
}

// renew replaces the decompressor after an error: libjpeg keeps state
// (Huffman tables, for one) across images, and after a damaged file a
// reused decompressor was seen to refuse the next, valid one.
func (d *Decoder) renew() {
	defer runtime.KeepAlive(d)
	h := C.simclr_tj_init()
	if h == nil {
		return // keep the old one; the next call reports its errors
	}
	d.cleanup.Stop()
	C.simclr_tj_destroy(d.h)
	d.h = h
	d.cleanup = runtime.AddCleanup(d, func(x handle) { C.simclr_tj_destroy(x.h) }, handle{h})
}

// err returns the decompressor's last error.
func (d *Decoder) err(what string) error {
	return fmt.Errorf("turbojpeg: %s: %s", what, C.GoString(C.simclr_tj_error(d.h)))
}
