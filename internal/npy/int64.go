package npy

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// LoadInt64 reads a little-endian int64 .npy file in C order, such as the
// labels `simclr-ort embed` writes.
func LoadInt64(path string) (shape []int64, data []int64, err error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("npy: %w", err)
	}
	if len(raw) < 10 || string(raw[:6]) != string(magic[:6]) {
		return nil, nil, fmt.Errorf("npy: %s is not a .npy file", path)
	}
	var hlen, start int
	switch raw[6] {
	case 1:
		hlen, start = int(binary.LittleEndian.Uint16(raw[8:])), 10
	case 2, 3:
		hlen, start = int(binary.LittleEndian.Uint32(raw[8:])), 12
	default:
		return nil, nil, fmt.Errorf("npy: %s has unsupported version %d", path, raw[6])
	}
	if start+hlen > len(raw) {
		return nil, nil, fmt.Errorf("npy: %s is truncated", path)
	}
	m := headerRE.FindStringSubmatch(string(raw[start : start+hlen]))
	if m == nil || m[1] != "<i8" || m[2] != "False" {
		return nil, nil, fmt.Errorf("npy: %s must be little-endian int64 in C order, header %q", path, raw[start:start+hlen])
	}
	for _, d := range strings.Split(m[3], ",") {
		if d = strings.TrimSpace(d); d != "" {
			n, err := strconv.ParseInt(d, 10, 64)
			if err != nil || n < 0 {
				return nil, nil, fmt.Errorf("npy: %s: bad shape %q", path, m[3])
			}
			shape = append(shape, n)
		}
	}
	body := raw[start+hlen:]
	n := size(shape)
	if int64(len(body)) != 8*n {
		return nil, nil, fmt.Errorf("npy: %s holds %d bytes for shape %v (%d expected)", path, len(body), shape, 8*n)
	}
	data = make([]int64, n)
	for i := range data {
		data[i] = int64(binary.LittleEndian.Uint64(body[8*i:]))
	}
	return shape, data, nil
}
