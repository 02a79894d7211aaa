// Package npy reads and writes float32 and int64 arrays in NumPy's .npy
// format (version 1.0, little-endian, C order), which Python, NumPy and
// PyTorch read directly.
package npy

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/simclr-ort/simclr-ort/internal/atomicfile"
)

var magic = []byte("\x93NUMPY\x01\x00")

func header(descr string, shape []int64) []byte {
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = strconv.FormatInt(d, 10)
	}
	tuple := strings.Join(dims, ", ")
	if len(shape) == 1 {
		tuple += ","
	}
	h := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, tuple)
	// Pad so that magic + length + header + newline is a multiple of 64.
	total := len(magic) + 2 + len(h) + 1
	h += strings.Repeat(" ", (64-total%64)%64) + "\n"
	out := append([]byte(nil), magic...)
	out = binary.LittleEndian.AppendUint16(out, uint16(len(h)))
	return append(out, h...)
}

// WriteFloat32 writes data with the given shape to w.
func WriteFloat32(w io.Writer, shape []int64, data []float32) error {
	if n := size(shape); n != int64(len(data)) {
		return fmt.Errorf("npy: shape %v needs %d values, got %d", shape, n, len(data))
	}
	bw := bufio.NewWriter(w)
	bw.Write(header("<f4", shape))
	var b [4]byte
	for _, f := range data {
		binary.LittleEndian.PutUint32(b[:], math.Float32bits(f))
		bw.Write(b[:])
	}
	return bw.Flush()
}

// WriteInt64 writes data with the given shape to w.
func WriteInt64(w io.Writer, shape []int64, data []int64) error {
	if n := size(shape); n != int64(len(data)) {
		return fmt.Errorf("npy: shape %v needs %d values, got %d", shape, n, len(data))
	}
	bw := bufio.NewWriter(w)
	bw.Write(header("<i8", shape))
	var b [8]byte
	for _, x := range data {
		binary.LittleEndian.PutUint64(b[:], uint64(x))
		bw.Write(b[:])
	}
	return bw.Flush()
}

// SaveFloat32 writes a float32 .npy file atomically.
func SaveFloat32(path string, shape []int64, data []float32) error {
	if err := atomicfile.WriteFunc(path, 0o644, func(w io.Writer) error { return WriteFloat32(w, shape, data) }); err != nil {
		return fmt.Errorf("npy: %w", err)
	}
	return nil
}

// SaveInt64 writes an int64 .npy file atomically.
func SaveInt64(path string, shape []int64, data []int64) error {
	if err := atomicfile.WriteFunc(path, 0o644, func(w io.Writer) error { return WriteInt64(w, shape, data) }); err != nil {
		return fmt.Errorf("npy: %w", err)
	}
	return nil
}

var headerRE = regexp.MustCompile(`'descr':\s*'([^']+)'.*'fortran_order':\s*(True|False).*'shape':\s*\(([^)]*)\)`)

// LoadFloat32 reads a little-endian float32 .npy file in C order.
func LoadFloat32(path string) (shape []int64, data []float32, err error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("npy: %w", err)
	}
	return parseFloat32(raw, path)
}

// parseFloat32 decodes raw, the content of the .npy file path.
func parseFloat32(raw []byte, path string) (shape []int64, data []float32, err error) {
	shape, body, err := parseHeader(raw, path, "<f4", "float32", 4)
	if err != nil {
		return nil, nil, err
	}
	data = make([]float32, len(body)/4)
	for i := range data {
		data[i] = math.Float32frombits(binary.LittleEndian.Uint32(body[4*i:]))
	}
	return shape, data, nil
}

// parseInt64 decodes raw, the content of the .npy file path.
func parseInt64(raw []byte, path string) (shape []int64, data []int64, err error) {
	shape, body, err := parseHeader(raw, path, "<i8", "int64", 8)
	if err != nil {
		return nil, nil, err
	}
	data = make([]int64, len(body)/8)
	for i := range data {
		data[i] = int64(binary.LittleEndian.Uint64(body[8*i:]))
	}
	return shape, data, nil
}

// parseHeader checks that raw, the content of the .npy file path, holds
// C-ordered values of dtype descr (kind in messages, width bytes each)
// and returns their shape and bytes.
func parseHeader(raw []byte, path, descr, kind string, width int64) (shape []int64, body []byte, err error) {
	if len(raw) < 10 || string(raw[:6]) != string(magic[:6]) {
		return nil, nil, fmt.Errorf("npy: %s is not a .npy file", path)
	}
	var hlen, start int
	switch raw[6] {
	case 1:
		hlen, start = int(binary.LittleEndian.Uint16(raw[8:])), 10
	case 2, 3:
		if len(raw) < 12 {
			return nil, nil, fmt.Errorf("npy: %s is truncated inside its header length; write it again", path)
		}
		hlen, start = int(binary.LittleEndian.Uint32(raw[8:])), 12
	default:
		return nil, nil, fmt.Errorf("npy: %s has unsupported version %d", path, raw[6])
	}
	if start+hlen > len(raw) {
		return nil, nil, fmt.Errorf("npy: %s is truncated", path)
	}
	m := headerRE.FindStringSubmatch(string(raw[start : start+hlen]))
	if m == nil || m[1] != descr || m[2] != "False" {
		return nil, nil, fmt.Errorf("npy: %s must be little-endian %s in C order, header %q", path, kind, raw[start:start+hlen])
	}
	for _, d := range strings.Split(m[3], ",") {
		if d = strings.TrimSpace(d); d != "" {
			n, err := strconv.ParseInt(d, 10, 64)
			if err != nil {
				return nil, nil, fmt.Errorf("npy: %s: bad shape %q", path, m[3])
			}
			shape = append(shape, n)
		}
	}
	body = raw[start+hlen:]
	n, ok := elements(shape, width)
	if !ok {
		return nil, nil, fmt.Errorf("npy: %s: shape %v has a negative dimension or more values than memory holds; the file is corrupt, write it again", path, shape)
	}
	if int64(len(body)) != width*n {
		return nil, nil, fmt.Errorf("npy: %s holds %d bytes for shape %v (%d expected)", path, len(body), shape, width*n)
	}
	return shape, body, nil
}

// elements returns the number of values of shape, or ok=false for a
// negative dimension or a count whose bytes (width each) overflow an int.
func elements(shape []int64, width int64) (n int64, ok bool) {
	n = 1
	for _, d := range shape {
		if d < 0 || d != 0 && n > math.MaxInt/width/d {
			return 0, false
		}
		n *= d
	}
	return n, true
}

func size(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}
