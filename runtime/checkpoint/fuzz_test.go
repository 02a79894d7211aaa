package checkpoint

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"runtime"
	"strings"
	"testing"
)

// allocated returns the bytes of heap memory fn allocates.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// withChecksums returns the checkpoint file made of the header js and the
// tensor bytes data, with its prefix and both checksums right, as a buggy
// writer (or a deliberate one) could produce: what the checksums let
// through to the header's checks.
func withChecksums(js, data []byte) []byte {
	b := make([]byte, prefixLen, prefixLen+len(js)+len(data)+trailerLen)
	copy(b, magic)
	binary.LittleEndian.PutUint32(b[8:], FormatVersion)
	binary.LittleEndian.PutUint32(b[12:], uint32(len(js)))
	binary.LittleEndian.PutUint32(b[16:], crc32.Checksum(js, castagnoli))
	b = append(b, js...)
	b = append(b, data...)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// consistent returns the header js with every tensor's byte length and
// offset and the data length recomputed from the shapes, and the optimizer
// slots' names and shapes the parameters', so that a mutated shape reaches
// the reading of the tensors; ok is false when js is not a header.
func consistent(js []byte) (out []byte, ok bool) {
	var h header
	if json.Unmarshal(js, &h) != nil {
		return nil, false
	}
	var off int64
	fix := func(es []entry) {
		for i := range es {
			n, ok := elements(es[i].Shape)
			if !ok {
				n = 0
			}
			es[i].Offset, es[i].Bytes = off, 4*n
			off += 4 * n
		}
	}
	fix(h.Params)
	fix(h.Buffers)
	for _, es := range h.Optimizer.Slots {
		for i := range min(len(es), len(h.Params)) {
			es[i].Name, es[i].Shape = h.Params[i].Name, h.Params[i].Shape
		}
		fix(es)
	}
	h.DataBytes = off
	out, err := json.Marshal(h)
	return out, err == nil
}

// FuzzDecodeHeader fuzzes the header and tensor bytes behind valid
// checksums, which FuzzDecode's mutations rarely get past, both as they
// are and made consistent with their shapes: no input makes Load or
// Decode panic or allocate more memory than the input holds, and what they
// accept encodes and decodes again.
//
//	go test -run='^$' -fuzz=FuzzDecodeHeader -fuzztime=3m ./runtime/checkpoint
func FuzzDecodeHeader(f *testing.F) {
	for _, kind := range []string{"", "lars", "adam"} {
		var buf bytes.Buffer
		if err := Encode(&buf, sample(f, kind, 2)); err != nil {
			f.Fatal(err)
		}
		file := buf.Bytes()
		hlen := binary.LittleEndian.Uint32(file[12:])
		js := bytes.TrimRight(file[prefixLen:prefixLen+hlen], " ")
		data := file[prefixLen+hlen : len(file)-trailerLen]
		if _, err := Decode(bytes.NewReader(withChecksums(js, data))); err != nil {
			f.Fatalf("seed %q: %v", kind, err)
		}
		f.Add(js, data)
		// A buffer claiming 2^28 values with the data of 6 (review found
		// Decode allocated the claim; see TestDecodeClaimedSize).
		var h header
		if err := json.Unmarshal(js, &h); err != nil {
			f.Fatal(err)
		}
		h.Buffers[1].Shape = []int64{1 << 28}
		claim, err := json.Marshal(h)
		if err != nil {
			f.Fatal(err)
		}
		if claim, ok := consistent(claim); ok {
			f.Add(claim, data)
		}
	}
	f.Fuzz(func(t *testing.T, js, data []byte) {
		inputs := [][]byte{withChecksums(js, data)}
		if fixed, ok := consistent(js); ok {
			inputs = append(inputs, withChecksums(fixed, data))
		}
		for _, file := range inputs {
			for _, size := range []int64{int64(len(file)), -1} { // Load's and Decode's paths
				var ck *Checkpoint
				var err error
				grew := allocated(func() { ck, err = decode(bytes.NewReader(file), size, "fuzz") })
				if limit := 1<<20 + 4*uint64(len(file)); grew > limit {
					t.Fatalf("decoding %d bytes (size %d) allocated %d bytes (err %v)", len(file), size, grew, err)
				}
				if err != nil {
					continue
				}
				var buf bytes.Buffer
				if err := Encode(&buf, ck); err != nil {
					t.Fatalf("Encode of a decoded checkpoint: %v", err)
				}
				if _, err := Decode(&buf); err != nil {
					t.Fatalf("Decode of a re-encoded checkpoint: %v", err)
				}
			}
		}
	})
}

// TestDecodeClaimedSize: a stream whose checksummed header claims tensors
// far larger than the stream (a buggy or deliberate writer) is an error
// that says it is truncated, and takes memory in proportion to the bytes
// that arrived, not to the claim: Decode of 2.3 KB claiming a 1 GiB buffer
// allocated the 1 GiB, and a larger claim could end the process.
func TestDecodeClaimedSize(t *testing.T) {
	var buf bytes.Buffer
	if err := Encode(&buf, sample(t, "lars", 2)); err != nil {
		t.Fatal(err)
	}
	file := buf.Bytes()
	hlen := binary.LittleEndian.Uint32(file[12:])
	data := file[prefixLen+hlen : len(file)-trailerLen]
	for _, tc := range []struct {
		claim int64
		want  string
	}{
		{1 << 28, "truncated"},
		{1 << 40, "truncated"},
		{maxElems / 8, "truncated"},
		{maxElems, "ends beyond any file"},
	} {
		claim := tc.claim
		var h header
		if err := json.Unmarshal(file[prefixLen:prefixLen+hlen], &h); err != nil {
			t.Fatal(err)
		}
		h.Buffers[1].Shape = []int64{claim}
		js, err := json.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		js, _ = consistent(js)
		in := withChecksums(js, data)
		for _, size := range []int64{int64(len(in)), -1} {
			var err error
			grew := allocated(func() { _, err = decode(bytes.NewReader(in), size, "claim.ckpt") })
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrCorrupt) {
				t.Errorf("claim of %d values, size %d: error %v, want one matching ErrCorrupt containing %q", claim, size, err, tc.want)
			}
			if limit := uint64(16 << 20); grew > limit {
				t.Errorf("claim of %d values, size %d: decoding %d bytes allocated %d MB", claim, size, len(in), grew>>20)
			}
		}
	}
}
