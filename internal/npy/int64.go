package npy

import (
	"fmt"
	"os"
)

// LoadInt64 reads a little-endian int64 .npy file in C order, such as the
// labels `simclr-ort embed` writes.
func LoadInt64(path string) (shape []int64, data []int64, err error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("npy: %w", err)
	}
	return parseInt64(raw, path)
}
