package checkpoint

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// encoded returns the bytes of a sample checkpoint.
func encoded(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Encode(&buf, sample(t, "lars", 3)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rewriteHeader returns file with its header replaced by edit's change of
// it and both checksums recomputed, as a buggy writer could produce.
func rewriteHeader(t *testing.T, file []byte, edit func(h map[string]any)) []byte {
	t.Helper()
	hlen := binary.LittleEndian.Uint32(file[12:])
	var h map[string]any
	d := json.NewDecoder(bytes.NewReader(file[prefixLen : prefixLen+hlen]))
	d.UseNumber()
	if err := d.Decode(&h); err != nil {
		t.Fatal(err)
	}
	edit(h)
	js, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	out := append([]byte{}, file[:prefixLen]...)
	binary.LittleEndian.PutUint32(out[12:], uint32(len(js)))
	binary.LittleEndian.PutUint32(out[16:], crc32.Checksum(js, castagnoli))
	out = append(out, js...)
	out = append(out, file[prefixLen+hlen:len(file)-trailerLen]...)
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(out, castagnoli))
}

func TestLoadDamaged(t *testing.T) {
	good := encoded(t)
	hlen := int(binary.LittleEndian.Uint32(good[12:]))
	dataStart := prefixLen + hlen
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0x10
		return b
	}
	truncated := "is truncated"
	for _, tc := range []struct {
		name    string
		file    []byte
		want    string
		corrupt bool // matches ErrCorrupt, with advice to use an earlier checkpoint
	}{
		{"empty", nil, "is empty", true},
		{"wrong magic", append([]byte("PK\x03\x04XXXX"), good[8:]...), `is not a simclr-ort checkpoint (it starts with "PK\x03\x04XXXX", a checkpoint with "SIMCLRCK")`, true},
		{"short foreign file", []byte("hi"), "is not a simclr-ort checkpoint", true},
		{"text file", []byte("step,loss\n1,5.54\n2,5.50\n"), "is not a simclr-ort checkpoint", true},
		{"truncated in magic", good[:5], truncated, true},
		{"truncated in prefix", good[:14], truncated, true},
		{"truncated in header", good[:prefixLen+hlen/2], truncated, true},
		{"truncated at data", good[:dataStart], truncated, true},
		{"truncated in data", good[:dataStart+101], truncated, true},
		{"truncated in checksum", good[:len(good)-1], truncated, true},
		{"flipped header byte", flip(prefixLen + hlen/3), "is corrupt (header checksum mismatch)", true},
		{"flipped header checksum", flip(17), "is corrupt (header checksum mismatch)", true},
		{"flipped header length", flip(13), truncated, true},
		{"flipped data byte", flip(dataStart + 200), "is truncated or corrupt (checksum mismatch)", true},
		{"flipped last data byte", flip(len(good) - trailerLen - 1), "is truncated or corrupt (checksum mismatch)", true},
		{"flipped checksum", flip(len(good) - 1), "is truncated or corrupt (checksum mismatch)", true},
		{"trailing bytes", append(bytes.Clone(good), 0), "is corrupt: it has", true},
		{"inconsistent header", rewriteHeader(t, good, func(h map[string]any) {
			p := h["params"].([]any)[1].(map[string]any)
			p["bytes"] = 20
		}), "is corrupt: inconsistent header: parameter 1 (encoder.bn1.weight) has shape [4] and 20 bytes", true},
		{"overlapping tensors", rewriteHeader(t, good, func(h map[string]any) {
			h["buffers"].([]any)[0].(map[string]any)["offset"] = 0
		}), "buffer encoder.bn1.running_mean starts at byte 0 of the data, want", true},
		{"slot for another parameter", rewriteHeader(t, good, func(h map[string]any) {
			h["optimizer"].(map[string]any)["slots"].([]any)[0].([]any)[1].(map[string]any)["name"] = "x"
		}), "optimizer slot 0 tensor 1 is x [4], but parameter 1 is encoder.bn1.weight [4]", true},
		{"header not JSON", rewriteHeaderBytes(good, []byte("{not json")), "its header is not valid JSON", true},
		{"newer version", func() []byte {
			b := bytes.Clone(good)
			binary.LittleEndian.PutUint32(b[8:], 2)
			return b
		}(), "has format version 2, but this simclr-ort reads version 1; load it with the simclr-ort that wrote it", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ck.bin")
			if err := os.WriteFile(path, tc.file, 0o666); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path)
			check := func(err error, name string) {
				t.Helper()
				if err == nil {
					t.Fatalf("%s accepted a damaged file", name)
				}
				msg := err.Error()
				if !strings.HasPrefix(msg, "checkpoint: ") || !strings.Contains(msg, tc.want) {
					t.Errorf("%s: %v\nwant it to contain %q", name, err, tc.want)
				}
				if errors.Is(err, ErrCorrupt) != tc.corrupt {
					t.Errorf("%s: errors.Is(err, ErrCorrupt) = %v, want %v", name, !tc.corrupt, tc.corrupt)
				}
				if tc.corrupt && !strings.Contains(msg, "use an earlier checkpoint") && !strings.Contains(msg, "pass a checkpoint that simclr-ort train wrote") {
					t.Errorf("%s: %v\nwant advice on what to do", name, err)
				}
			}
			check(err, "Load")
			t.Log(err)
			if err != nil && !strings.Contains(err.Error(), path) {
				t.Errorf("Load: %v\nwant it to name %s", err, path)
			}
			_, err = Decode(bytes.NewReader(tc.file))
			check(err, "Decode")
		})
	}
}

// rewriteHeaderBytes replaces the header with js and fixes the header
// checksum.
func rewriteHeaderBytes(file, js []byte) []byte {
	hlen := binary.LittleEndian.Uint32(file[12:])
	out := append([]byte{}, file[:prefixLen]...)
	binary.LittleEndian.PutUint32(out[12:], uint32(len(js)))
	binary.LittleEndian.PutUint32(out[16:], crc32.Checksum(js, castagnoli))
	out = append(out, js...)
	return append(out, file[prefixLen+hlen:]...)
}

// Every truncation of a checkpoint is an error, not a panic or a partial
// checkpoint.
func TestLoadEveryTruncation(t *testing.T) {
	good := encoded(t)
	for n := range len(good) {
		if _, err := Decode(bytes.NewReader(good[:n])); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Decode of the first %d of %d bytes: %v, want an ErrCorrupt error", n, len(good), err)
		}
	}
}

func TestLoadMissing(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(filepath.Join(dir, "none.bin"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "none.bin") {
		t.Errorf("Load(missing): %v, want a not-exist error naming the file", err)
	}
	_, err = Load(dir)
	if err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("Load(directory): %v, want an error saying it is a directory", err)
	}
}

func TestSaveInvalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Checkpoint)
		want string
	}{
		{"short tensor", func(ck *Checkpoint) { ck.Params[3].Data = ck.Params[3].Data[:5] }, "parameter projector.0.weight has 5 values, its shape [2 4] needs 8"},
		{"negative dimension", func(ck *Checkpoint) { ck.Buffers[0].Shape = []int64{-4} }, "buffer encoder.bn1.running_mean has invalid shape [-4]"},
		{"no name", func(ck *Checkpoint) { ck.Buffers[1].Name = "" }, "buffer 1 has no name"},
		{"duplicate name", func(ck *Checkpoint) { ck.Buffers[1].Name = ck.Params[1].Name }, "buffer 1: the name encoder.bn1.weight appears twice"},
		{"slot count", func(ck *Checkpoint) { ck.Optimizer.Slots[0] = ck.Optimizer.Slots[0][:2] }, "optimizer slot 0 has 2 tensors, but there are 4 parameters"},
		{"slot length", func(ck *Checkpoint) { ck.Optimizer.Slots[0][2] = nil }, "optimizer slot 0 of parameter encoder.bn1.bias has 0 values, the parameter 4"},
		{"NaN learning rate", func(ck *Checkpoint) { ck.Schedule.Peak = math.NaN() }, "peak learning rate NaN and temperature 0.5 must be finite"},
		{"negative step", func(ck *Checkpoint) { ck.Step = -1 }, "negative position: step -1"},
		{"nil", nil, "nil checkpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "ck.bin")
			old := sample(t, "lars", 1)
			if err := Save(path, old); err != nil {
				t.Fatal(err)
			}
			var ck *Checkpoint
			if tc.edit != nil {
				ck = sample(t, "lars", 2)
				tc.edit(ck)
			}
			err := Save(path, ck)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "checkpoint: save "+path+": ") {
				t.Fatalf("Save: %v, want an error containing %q", err, tc.want)
			}
			if err := Encode(new(bytes.Buffer), ck); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Encode: %v, want an error containing %q", err, tc.want)
			}
			got, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			assertEqual(t, got, old)
			if tmp := tempFiles(t, dir); len(tmp) > 0 {
				t.Errorf("temporary files left: %v", tmp)
			}
		})
	}
}

func TestSaveReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ck.bin")
	for seed := range 3 {
		ck := sample(t, "adam", float32(seed))
		if err := Save(path, ck); err != nil {
			t.Fatal(err)
		}
		got, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		assertEqual(t, got, ck)
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 || entries[0].Name() != "ck.bin" {
			t.Errorf("after Save %d the directory holds %v, want only ck.bin", seed, entries)
		}
	}
}

func TestSaveFails(t *testing.T) {
	t.Run("parent is a file", func(t *testing.T) {
		dir := t.TempDir()
		parent := filepath.Join(dir, "file")
		if err := os.WriteFile(parent, []byte("x"), 0o666); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(parent, "ck.bin")
		err := Save(path, sample(t, "lars", 1))
		if err == nil || !strings.Contains(err.Error(), "checkpoint: save "+path) || !strings.Contains(err.Error(), "check that the directory exists and is writable") {
			t.Fatalf("Save: %v, want an error naming the path and saying what to check", err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Errorf("the directory holds %v, want only the file", entries)
		}
	})
	t.Run("path is a directory", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "ck.bin")
		if err := os.MkdirAll(filepath.Join(path, "sub"), 0o777); err != nil {
			t.Fatal(err)
		}
		if err := Save(path, sample(t, "lars", 1)); err == nil {
			t.Fatal("Save over a non-empty directory succeeded")
		}
		if tmp := tempFiles(t, dir); len(tmp) > 0 {
			t.Errorf("temporary files left after a failed Save: %v", tmp)
		}
		if _, err := os.Stat(filepath.Join(path, "sub")); err != nil {
			t.Errorf("the directory at path was changed: %v", err)
		}
	})
	t.Run("fails before rename", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "ck.bin")
		old := sample(t, "lars", 1)
		if err := Save(path, old); err != nil {
			t.Fatal(err)
		}
		var sawTemp string
		beforeRename = func(tmp string) error {
			sawTemp = tmp
			if _, err := os.Stat(tmp); err != nil {
				t.Errorf("the temporary file is missing before the rename: %v", err)
			}
			return errors.New("disk on fire")
		}
		defer func() { beforeRename = nil }()
		err := Save(path, sample(t, "lars", 2))
		if err == nil || !strings.Contains(err.Error(), "disk on fire") {
			t.Fatalf("Save: %v, want the injected error", err)
		}
		if !strings.HasPrefix(filepath.Base(sawTemp), "ck.bin.tmp-") || filepath.Dir(sawTemp) != dir {
			t.Errorf("temporary file %s is not ck.bin.tmp-* next to the checkpoint", sawTemp)
		}
		if tmp := tempFiles(t, dir); len(tmp) > 0 {
			t.Errorf("temporary files left after a failed Save: %v", tmp)
		}
		got, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		assertEqual(t, got, old)
	})
}

func TestSaveRemovesStaleTemps(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ck.bin")
	keep := []string{"ck.bin.tmp-notes", "ck.bin.tmp-12-0000000g", "other.bin.tmp-12-deadbeef", "ck.bin.tmp-12-deadbeef0"}
	stale := []string{"ck.bin.tmp-12-deadbeef", "ck.bin.tmp-4194304-00c0ffee"}
	for _, name := range append(append([]string{}, keep...), stale...) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("partial"), 0o666); err != nil {
			t.Fatal(err)
		}
	}
	if err := Save(path, sample(t, "lars", 1)); err != nil {
		t.Fatal(err)
	}
	for _, name := range keep {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("Save removed %s, which is not its temporary file: %v", name, err)
		}
	}
	for _, name := range stale {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Save left the stale temporary file %s (%v)", name, err)
		}
	}
}

// FuzzDecode checks that no input makes Decode panic and that whatever it
// accepts encodes back to the same bytes.
func FuzzDecode(f *testing.F) {
	good := encoded(f)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte(magic))
	f.Fuzz(func(t *testing.T, b []byte) {
		ck, err := Decode(bytes.NewReader(b))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := Encode(&buf, ck); err != nil {
			t.Fatalf("Encode of a decoded checkpoint: %v", err)
		}
		if _, err := Decode(&buf); err != nil {
			t.Fatalf("Decode of a re-encoded checkpoint: %v", err)
		}
	})
}

// The conversion path for big-endian machines writes and reads the same
// bytes as the direct one; forcing it here runs it on any machine.
func TestConvertingPath(t *testing.T) {
	ck := sample(t, "adam", 11)
	big := crashCheckpoint() // tensors larger than the conversion buffer
	setCrashStep(big, 3)
	big.Saved = time.Unix(5, 0) // fixed, so both encodings are equal
	for _, ck := range []*Checkpoint{ck, big} {
		var direct bytes.Buffer
		if err := Encode(&direct, ck); err != nil {
			t.Fatal(err)
		}
		saved := littleEndian
		littleEndian = false
		var converted bytes.Buffer
		err := Encode(&converted, ck)
		var got *Checkpoint
		if err == nil {
			got, err = Decode(bytes.NewReader(direct.Bytes()))
		}
		littleEndian = saved
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(direct.Bytes(), converted.Bytes()) {
			t.Fatal("the converting path wrote other bytes than the direct one")
		}
		assertEqual(t, got, ck)
	}
}
