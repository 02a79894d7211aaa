package checkpoint

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/simclr-ort/simclr-ort/graphs"
	"github.com/simclr-ort/simclr-ort/runtime/optim"
)

// resnet18Checkpoint is a checkpoint of the embedded ResNet18 manifest
// (11.5M parameters) with LARS momentum: about 92 MB.
func resnet18Checkpoint(b *testing.B) *Checkpoint {
	b.Helper()
	m, _, _, ok, err := graphs.Lookup(graphs.Config{Arch: "resnet18", Stem: "cifar", ImageSize: 32}.Defaults())
	if err != nil || !ok {
		b.Fatalf("no embedded resnet18 manifest: %v", err)
	}
	val := func(t, i int) float32 { return float32(t) + float32(i%1000)/1000 }
	params, buffers := filled(m.Params, val), filled(m.Buffers, val)
	ck, err := New(m, params, buffers, optim.State{Kind: "lars", Steps: 1, Slots: [][][]float32{filled(m.Params, val)}})
	if err != nil {
		b.Fatal(err)
	}
	return ck
}

// encodedSize is the file size of ck.
func encodedSize(b *testing.B, ck *Checkpoint) int64 {
	var w countWriter
	if err := Encode(&w, ck); err != nil {
		b.Fatal(err)
	}
	return int64(w)
}

type countWriter int64

func (w *countWriter) Write(p []byte) (int, error) { *w += countWriter(len(p)); return len(p), nil }

// BenchmarkSave writes, syncs and renames a ResNet18 checkpoint.
func BenchmarkSave(b *testing.B) {
	ck := resnet18Checkpoint(b)
	b.SetBytes(encodedSize(b, ck))
	path := filepath.Join(b.TempDir(), "ck.bin")
	for b.Loop() {
		if err := Save(path, ck); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoad reads and checks a ResNet18 checkpoint (from the page
// cache, after the first iteration).
func BenchmarkLoad(b *testing.B) {
	ck := resnet18Checkpoint(b)
	path := filepath.Join(b.TempDir(), "ck.bin")
	if err := Save(path, ck); err != nil {
		b.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(st.Size())
	for b.Loop() {
		if _, err := Load(path); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncode is Save without the file system: formatting and
// checksumming only.
func BenchmarkEncode(b *testing.B) {
	ck := resnet18Checkpoint(b)
	b.SetBytes(encodedSize(b, ck))
	for b.Loop() {
		if err := Encode(io.Discard, ck); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecode is Load without the file system.
func BenchmarkDecode(b *testing.B) {
	var buf bytes.Buffer
	if err := Encode(&buf, resnet18Checkpoint(b)); err != nil {
		b.Fatal(err)
	}
	file := buf.Bytes()
	b.SetBytes(int64(len(file)))
	for b.Loop() {
		if _, err := Decode(bytes.NewReader(file)); err != nil {
			b.Fatal(err)
		}
	}
}
