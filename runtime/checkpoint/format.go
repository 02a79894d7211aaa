package checkpoint

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"slices"
	"time"
	"unsafe"

	"github.com/simclr-ort/simclr-ort/graphs"
	"github.com/simclr-ort/simclr-ort/runtime/optim"
)

const (
	magic      = "SIMCLRCK"
	prefixLen  = 20 // magic, version, header length, header CRC
	trailerLen = 4  // CRC of everything before it
	dataAlign  = 64
	maxHeader  = 1 << 30
	bufSize    = 64 << 10
	// maxElems bounds a tensor's element count so that its byte length
	// fits an int.
	maxElems = math.MaxInt / 4
	// streamChunk is the most float32 values Decode allocates for a tensor
	// before they arrive.
	streamChunk = 1 << 16
)

// castagnoli is the CRC-32C table; crc32 uses the CPU's CRC instructions
// for it where they exist.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// littleEndian is true when float32 values are laid out in memory as the
// file stores them, so tensors are written and read without conversion.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// entry describes one tensor in the header.
type entry struct {
	Name   string  `json:"name"`
	Shape  []int64 `json:"shape"`
	Offset int64   `json:"offset"`
	Bytes  int64   `json:"bytes"`
}

// scheduleHeader is optim.Schedule in the header.
type scheduleHeader struct {
	Peak        float64 `json:"peak_lr"`
	WarmupSteps int     `json:"warmup_steps"`
	TotalSteps  int     `json:"total_steps"`
}

// optimizerHeader is optim.State without its values.
type optimizerHeader struct {
	Kind  string    `json:"kind"`
	Steps int64     `json:"steps"`
	Slots [][]entry `json:"slots"`
}

// header is the JSON header: a Checkpoint without its tensor values.
type header struct {
	ManifestIdentity string            `json:"manifest_identity"`
	Config           graphs.Config     `json:"config"`
	Step             int64             `json:"step"`
	Epoch            int               `json:"epoch"`
	StepInEpoch      int               `json:"step_in_epoch"`
	Seed             uint64            `json:"seed"`
	Schedule         scheduleHeader    `json:"schedule"`
	Optimizer        optimizerHeader   `json:"optimizer"`
	Params           []entry           `json:"params"`
	Buffers          []entry           `json:"buffers"`
	Meta             map[string]string `json:"meta,omitempty"`
	Saved            time.Time         `json:"saved"`
	DataBytes        int64             `json:"data_bytes"`
}

// Encode writes ck to w in the checkpoint format, streaming the tensors
// through a 64 KiB buffer. A zero ck.Saved is recorded as the time now.
// Encode is what Save writes; it does not make anything atomic.
func Encode(w io.Writer, ck *Checkpoint) error {
	head, err := prepare(ck)
	if err != nil {
		return fmt.Errorf("checkpoint: encode: %w", err)
	}
	if err := write(w, ck, head); err != nil {
		return fmt.Errorf("checkpoint: encode: %w", err)
	}
	return nil
}

// Decode reads a checkpoint written by Encode from r, which it reads to its
// end, and checks it as Load does. A reader with a Len method (bytes.Reader,
// bytes.Buffer, strings.Reader) is checked against that length as Load
// checks a file's size.
func Decode(r io.Reader) (*Checkpoint, error) {
	size := int64(-1)
	if l, ok := r.(interface{ Len() int }); ok {
		size = int64(l.Len())
	}
	return decode(bufio.NewReaderSize(r, bufSize), size, "input")
}

// prepare checks ck and returns the file's prefix and padded header.
func prepare(ck *Checkpoint) ([]byte, error) {
	if ck == nil {
		return nil, errors.New("nil checkpoint")
	}
	if err := validate(ck); err != nil {
		return nil, err
	}
	saved := ck.Saved
	if saved.IsZero() {
		saved = time.Now()
	}
	h := header{
		ManifestIdentity: ck.ManifestIdentity,
		Config:           ck.Config,
		Step:             ck.Step,
		Epoch:            ck.Epoch,
		StepInEpoch:      ck.StepInEpoch,
		Seed:             ck.Seed,
		Schedule:         scheduleHeader{ck.Schedule.Peak, ck.Schedule.WarmupSteps, ck.Schedule.TotalSteps},
		Optimizer:        optimizerHeader{Kind: ck.Optimizer.Kind, Steps: ck.Optimizer.Steps},
		Meta:             ck.Meta,
		Saved:            saved.UTC(),
	}
	var off int64
	add := func(name string, shape []int64, n int) entry {
		e := entry{Name: name, Shape: append([]int64{}, shape...), Offset: off, Bytes: 4 * int64(n)}
		off += e.Bytes
		return e
	}
	for _, t := range ck.Params {
		h.Params = append(h.Params, add(t.Name, t.Shape, len(t.Data)))
	}
	for _, t := range ck.Buffers {
		h.Buffers = append(h.Buffers, add(t.Name, t.Shape, len(t.Data)))
	}
	for _, slot := range ck.Optimizer.Slots {
		es := make([]entry, len(slot))
		for i, d := range slot {
			es[i] = add(ck.Params[i].Name, ck.Params[i].Shape, len(d))
		}
		h.Optimizer.Slots = append(h.Optimizer.Slots, es)
	}
	h.DataBytes = off
	js, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("encode header: %w", err)
	}
	n := prefixLen + len(js)
	n += (dataAlign - n%dataAlign) % dataAlign
	if n-prefixLen > maxHeader {
		return nil, fmt.Errorf("header of %d bytes is too large (at most %d)", n-prefixLen, maxHeader)
	}
	b := make([]byte, n)
	copy(b, magic)
	binary.LittleEndian.PutUint32(b[8:], FormatVersion)
	binary.LittleEndian.PutUint32(b[12:], uint32(n-prefixLen))
	copy(b[prefixLen:], js)
	for i := prefixLen + len(js); i < n; i++ {
		b[i] = ' '
	}
	binary.LittleEndian.PutUint32(b[16:], crc32.Checksum(b[prefixLen:], castagnoli))
	return b, nil
}

// validate reports the first inconsistency in ck that would make it
// unloadable.
func validate(ck *Checkpoint) error {
	if ck.Step < 0 || ck.Epoch < 0 || ck.StepInEpoch < 0 || ck.Optimizer.Steps < 0 {
		return fmt.Errorf("negative position: step %d, epoch %d, step in epoch %d, optimizer steps %d", ck.Step, ck.Epoch, ck.StepInEpoch, ck.Optimizer.Steps)
	}
	if !finite(ck.Schedule.Peak) || !finite(ck.Config.Temperature) {
		return fmt.Errorf("peak learning rate %g and temperature %g must be finite", ck.Schedule.Peak, ck.Config.Temperature)
	}
	if ck.Schedule.WarmupSteps < 0 || ck.Schedule.TotalSteps < 0 {
		return fmt.Errorf("negative schedule length: %d warm-up steps, %d steps in all", ck.Schedule.WarmupSteps, ck.Schedule.TotalSteps)
	}
	names := make(map[string]bool, len(ck.Params)+len(ck.Buffers))
	for i, t := range ck.Params {
		if err := checkTensor("parameter", i, t.Name, t.Shape, int64(len(t.Data)), names); err != nil {
			return err
		}
	}
	for i, t := range ck.Buffers {
		if err := checkTensor("buffer", i, t.Name, t.Shape, int64(len(t.Data)), names); err != nil {
			return err
		}
	}
	for k, slot := range ck.Optimizer.Slots {
		if len(slot) != len(ck.Params) {
			return fmt.Errorf("optimizer slot %d has %d tensors, but there are %d parameters", k, len(slot), len(ck.Params))
		}
		for i, d := range slot {
			if len(d) != len(ck.Params[i].Data) {
				return fmt.Errorf("optimizer slot %d of parameter %s has %d values, the parameter %d", k, ck.Params[i].Name, len(d), len(ck.Params[i].Data))
			}
		}
	}
	return nil
}

// checkTensor checks a tensor's name and that its shape holds n values,
// and records the name in names.
func checkTensor(kind string, i int, name string, shape []int64, n int64, names map[string]bool) error {
	if name == "" {
		return fmt.Errorf("%s %d has no name", kind, i)
	}
	if names[name] {
		return fmt.Errorf("%s %d: the name %s appears twice", kind, i, name)
	}
	names[name] = true
	want, ok := elements(shape)
	if !ok {
		return fmt.Errorf("%s %s has invalid shape %v", kind, name, shape)
	}
	if n != want {
		return fmt.Errorf("%s %s has %d values, its shape %v needs %d", kind, name, n, shape, want)
	}
	return nil
}

// elements returns the number of elements of shape, or ok=false for a
// negative dimension or a count above maxElems.
func elements(shape []int64) (n int64, ok bool) {
	n = 1
	for _, d := range shape {
		if d < 0 {
			return 0, false
		}
		if d != 0 && n > maxElems/d {
			return 0, false
		}
		n *= d
	}
	return n, true
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// tensorData lists ck's tensor values in file order.
func tensorData(ck *Checkpoint) [][]float32 {
	out := make([][]float32, 0, len(ck.Params)*(1+len(ck.Optimizer.Slots))+len(ck.Buffers))
	for _, t := range ck.Params {
		out = append(out, t.Data)
	}
	for _, t := range ck.Buffers {
		out = append(out, t.Data)
	}
	for _, slot := range ck.Optimizer.Slots {
		out = append(out, slot...)
	}
	return out
}

// write writes head, the tensors and the trailing checksum to w.
func write(w io.Writer, ck *Checkpoint, head []byte) error {
	bw := bufio.NewWriterSize(w, bufSize)
	cw := &crcWriter{w: bw}
	if _, err := cw.Write(head); err != nil {
		return err
	}
	var scratch []byte
	if !littleEndian {
		scratch = make([]byte, 64<<10)
	}
	for _, d := range tensorData(ck) {
		if err := writeFloats(cw, d, scratch); err != nil {
			return err
		}
	}
	var tail [trailerLen]byte
	binary.LittleEndian.PutUint32(tail[:], cw.crc)
	if _, err := bw.Write(tail[:]); err != nil {
		return err
	}
	return bw.Flush()
}

// crcWriter passes writes on and keeps the CRC-32C of what it passed.
type crcWriter struct {
	w   io.Writer
	crc uint32
}

func (c *crcWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.crc = crc32.Update(c.crc, castagnoli, p[:n])
	return n, err
}

// crcReader passes reads on, counting the bytes and keeping their CRC-32C.
type crcReader struct {
	r   io.Reader
	crc uint32
	n   int64
}

func (c *crcReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.crc = crc32.Update(c.crc, castagnoli, p[:n])
	c.n += int64(n)
	return n, err
}

// asBytes is f's memory as bytes.
func asBytes(f []float32) []byte {
	if len(f) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&f[0])), 4*len(f))
}

// writeFloats writes f as little-endian float32: straight from f's memory
// on little-endian machines, else converted through scratch.
func writeFloats(w io.Writer, f []float32, scratch []byte) error {
	if littleEndian {
		_, err := w.Write(asBytes(f))
		return err
	}
	for len(f) > 0 {
		n := min(len(f), len(scratch)/4)
		for i, v := range f[:n] {
			binary.LittleEndian.PutUint32(scratch[4*i:], math.Float32bits(v))
		}
		if _, err := w.Write(scratch[:4*n]); err != nil {
			return err
		}
		f = f[n:]
	}
	return nil
}

// readFloats fills f from little-endian float32 bytes: straight into f's
// memory on little-endian machines, else converted through scratch.
func readFloats(r io.Reader, f []float32, scratch []byte) error {
	if littleEndian {
		_, err := io.ReadFull(r, asBytes(f))
		return err
	}
	for len(f) > 0 {
		n := min(len(f), len(scratch)/4)
		if _, err := io.ReadFull(r, scratch[:4*n]); err != nil {
			return err
		}
		for i := range f[:n] {
			f[i] = math.Float32frombits(binary.LittleEndian.Uint32(scratch[4*i:]))
		}
		f = f[n:]
	}
	return nil
}

// corruptError is an error about a damaged or foreign file; it matches
// ErrCorrupt.
type corruptError struct{ msg string }

func (e *corruptError) Error() string        { return e.msg }
func (e *corruptError) Is(target error) bool { return target == ErrCorrupt }

// damaged reports a file that is a checkpoint but is incomplete or damaged.
func damaged(name, format string, args ...any) error {
	return &corruptError{fmt.Sprintf("checkpoint: %s %s; it was not written completely or was damaged since — use an earlier checkpoint or start a new --out", name, fmt.Sprintf(format, args...))}
}

// foreign reports a file that is not a checkpoint.
func foreign(name string, start []byte) error {
	return &corruptError{fmt.Sprintf("checkpoint: %s is not a simclr-ort checkpoint (it starts with %q, a checkpoint with %q); pass a checkpoint that simclr-ort train wrote", name, start, magic)}
}

// readErr turns an error from reading the part what of name into a
// truncation report when the file ended early, else wraps it.
func readErr(name, what string, at int64, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return damaged(name, "is truncated: it ends after %d bytes, inside %s", at, what)
	}
	return fmt.Errorf("checkpoint: read %s: %w", name, err)
}

// decode reads and checks a checkpoint from r. size is the file's length,
// or -1 when unknown; name names the file in errors.
func decode(r io.Reader, size int64, name string) (*Checkpoint, error) {
	cr := &crcReader{r: r}
	var prefix [prefixLen]byte
	n, err := io.ReadFull(cr, prefix[:])
	switch {
	case n == 0 && errors.Is(err, io.EOF):
		return nil, damaged(name, "is empty")
	case n < len(magic) && err != nil:
		if !bytes.HasPrefix([]byte(magic), prefix[:n]) {
			return nil, foreign(name, prefix[:n])
		}
		return nil, readErr(name, "the magic", cr.n, err)
	case string(prefix[:len(magic)]) != magic:
		return nil, foreign(name, prefix[:len(magic)])
	case err != nil:
		return nil, readErr(name, "the file prefix", cr.n, err)
	}
	if v := binary.LittleEndian.Uint32(prefix[8:]); v != FormatVersion {
		return nil, fmt.Errorf("checkpoint: %s has format version %d, but this simclr-ort reads version %d; load it with the simclr-ort that wrote it, or start a new --out", name, v, FormatVersion)
	}
	hlen := int64(binary.LittleEndian.Uint32(prefix[12:]))
	if hlen > maxHeader || (size >= 0 && prefixLen+hlen > size) {
		if size >= 0 {
			return nil, damaged(name, "is truncated or corrupt: it has %d bytes, too few for its %d-byte header", size, hlen)
		}
		return nil, damaged(name, "is corrupt: its header length %d is implausible", hlen)
	}
	// ReadAll grows with what arrives, so a damaged length read from a
	// stream does not allocate up to maxHeader up front.
	js, err := io.ReadAll(io.LimitReader(cr, hlen))
	if err == nil && int64(len(js)) < hlen {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return nil, readErr(name, "the header", cr.n, err)
	}
	if got, want := crc32.Checksum(js, castagnoli), binary.LittleEndian.Uint32(prefix[16:]); got != want {
		return nil, damaged(name, "is corrupt (header checksum mismatch)")
	}
	var h header
	if err := json.Unmarshal(js, &h); err != nil {
		return nil, damaged(name, "is corrupt: its header is not valid JSON (%v)", err)
	}
	if err := checkHeader(&h); err != nil {
		return nil, damaged(name, "is corrupt: inconsistent header: %v", err)
	}
	total := prefixLen + hlen + h.DataBytes + trailerLen
	switch {
	case size >= 0 && size < total:
		return nil, damaged(name, "is truncated: it has %d bytes, its header describes %d", size, total)
	case size > total:
		return nil, damaged(name, "is corrupt: it has %d bytes, %d more than its header describes", size, size-total)
	}

	ck := &Checkpoint{
		Version:          FormatVersion,
		ManifestIdentity: h.ManifestIdentity,
		Config:           h.Config,
		Step:             h.Step,
		Epoch:            h.Epoch,
		StepInEpoch:      h.StepInEpoch,
		Seed:             h.Seed,
		Schedule:         optim.Schedule{Peak: h.Schedule.Peak, WarmupSteps: h.Schedule.WarmupSteps, TotalSteps: h.Schedule.TotalSteps},
		Optimizer:        optim.State{Kind: h.Optimizer.Kind, Steps: h.Optimizer.Steps},
		Meta:             h.Meta,
		Saved:            h.Saved,
	}
	var scratch []byte
	if !littleEndian {
		scratch = make([]byte, 64<<10)
	}
	read := func(kind string, e entry) ([]float32, error) {
		// Load checked the header against the file's size; a stream of
		// unknown length gets a tensor's memory as its values arrive, so
		// that a header claiming more than the input holds cannot take it.
		n := int(e.Bytes / 4)
		chunk := n
		if size < 0 {
			chunk = min(n, streamChunk)
		}
		d := make([]float32, 0, chunk)
		for len(d) < n {
			k := min(n-len(d), max(chunk, len(d)))
			d = slices.Grow(d, k)[:len(d)+k]
			if err := readFloats(cr, d[len(d)-k:], scratch); err != nil {
				return nil, readErr(name, "the values of "+kind+" "+e.Name, cr.n, err)
			}
		}
		return d, nil
	}
	for _, e := range h.Params {
		d, err := read("parameter", e)
		if err != nil {
			return nil, err
		}
		ck.Params = append(ck.Params, Tensor{Name: e.Name, Shape: e.Shape, Data: d})
	}
	for _, e := range h.Buffers {
		d, err := read("buffer", e)
		if err != nil {
			return nil, err
		}
		ck.Buffers = append(ck.Buffers, Tensor{Name: e.Name, Shape: e.Shape, Data: d})
	}
	for k, es := range h.Optimizer.Slots {
		slot := make([][]float32, len(es))
		for i, e := range es {
			if slot[i], err = read(fmt.Sprintf("optimizer slot %d of", k), e); err != nil {
				return nil, err
			}
		}
		ck.Optimizer.Slots = append(ck.Optimizer.Slots, slot)
	}
	want := cr.crc
	var tail [trailerLen]byte
	if _, err := io.ReadFull(cr, tail[:]); err != nil {
		return nil, readErr(name, "the checksum", cr.n, err)
	}
	if binary.LittleEndian.Uint32(tail[:]) != want {
		return nil, damaged(name, "is truncated or corrupt (checksum mismatch)")
	}
	if size < 0 {
		var extra [1]byte
		if n, _ := io.ReadFull(cr, extra[:]); n > 0 {
			return nil, damaged(name, "is corrupt: it has bytes after the end of the checkpoint (%d expected)", total)
		}
	}
	return ck, nil
}

// checkHeader checks a decoded header's tensors: valid shapes, byte lengths
// that match them, contiguous offsets in file order, optimizer slots that
// match the parameters, and the data length.
func checkHeader(h *header) error {
	if h.Step < 0 || h.Epoch < 0 || h.StepInEpoch < 0 || h.Optimizer.Steps < 0 {
		return fmt.Errorf("negative position: step %d, epoch %d, step in epoch %d, optimizer steps %d", h.Step, h.Epoch, h.StepInEpoch, h.Optimizer.Steps)
	}
	var off int64
	names := make(map[string]bool, len(h.Params)+len(h.Buffers))
	walk := func(kind string, es []entry, names map[string]bool) error {
		for i, e := range es {
			n, ok := elements(e.Shape)
			if !ok || e.Bytes != 4*n {
				return fmt.Errorf("%s %d (%s) has shape %v and %d bytes", kind, i, e.Name, e.Shape, e.Bytes)
			}
			if names != nil {
				if err := checkTensor(kind, i, e.Name, e.Shape, n, names); err != nil {
					return err
				}
			}
			if e.Offset != off {
				return fmt.Errorf("%s %s starts at byte %d of the data, want %d", kind, e.Name, e.Offset, off)
			}
			if off > math.MaxInt64-e.Bytes {
				return fmt.Errorf("%s %s ends beyond any file", kind, e.Name)
			}
			off += e.Bytes
		}
		return nil
	}
	if err := walk("parameter", h.Params, names); err != nil {
		return err
	}
	if err := walk("buffer", h.Buffers, names); err != nil {
		return err
	}
	for k, es := range h.Optimizer.Slots {
		if len(es) != len(h.Params) {
			return fmt.Errorf("optimizer slot %d has %d tensors, but there are %d parameters", k, len(es), len(h.Params))
		}
		for i, e := range es {
			if e.Name != h.Params[i].Name || !slices.Equal(e.Shape, h.Params[i].Shape) {
				return fmt.Errorf("optimizer slot %d tensor %d is %s %v, but parameter %d is %s %v", k, i, e.Name, e.Shape, i, h.Params[i].Name, h.Params[i].Shape)
			}
		}
		if err := walk(fmt.Sprintf("optimizer slot %d of parameter", k), es, nil); err != nil {
			return err
		}
	}
	if h.DataBytes != off {
		return fmt.Errorf("data_bytes is %d, the tensors take %d", h.DataBytes, off)
	}
	if off > math.MaxInt64-prefixLen-maxHeader-trailerLen {
		return fmt.Errorf("the tensors take %d bytes, more than any file", off)
	}
	return nil
}
