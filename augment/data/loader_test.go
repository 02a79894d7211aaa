package data

import (
	"context"
	"errors"
	"fmt"
	"image"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/simclr-ort/simclr-ort/augment"
)

// memDataset holds constant-grey images: image i has grey level i (mod
// 256), label i%3. Indices in bad fail to decode.
type memDataset struct {
	n     int
	side  int
	bad   map[int]bool
	delay time.Duration
}

func (d *memDataset) Len() int             { return d.n }
func (d *memDataset) Label(i int) int      { return i % 3 }
func (d *memDataset) ClassNames() []string { return []string{"a", "b", "c"} }
func (d *memDataset) String() string       { return fmt.Sprintf("mem(%d)", d.n) }
func (d *memDataset) Image(i int) (image.Image, error) {
	if d.delay > 0 {
		time.Sleep(d.delay)
	}
	if d.bad[i] {
		return nil, fmt.Errorf("image %d is corrupt", i)
	}
	img := image.NewGray(image.Rect(0, 0, d.side, d.side+3))
	for j := range img.Pix {
		img.Pix[j] = uint8(i)
	}
	return img, nil
}

// startLoader starts a loader at step and registers its Close.
func startLoader(t *testing.T, ds Dataset, cfg LoaderConfig, step int64) *Loader {
	t.Helper()
	l, err := NewLoader(ds, cfg)
	if err != nil {
		t.Fatal(err)
	}
	l.Start(context.Background(), step)
	t.Cleanup(func() { l.Close() })
	return l
}

// snapshot is a copy of a batch's content.
type snapshot struct {
	data    []float32
	labels  []int
	indices []int
	epoch   int
	step    int64
}

func take(t *testing.T, l *Loader, n int) []snapshot {
	t.Helper()
	var out []snapshot
	for range n {
		b, err := l.Next()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, snapshot{slices.Clone(b.Data), slices.Clone(b.Labels), slices.Clone(b.Indices), b.Epoch, b.Step})
		b.Release()
	}
	return out
}

func TestLoaderDeterministicAcrossWorkersAndResume(t *testing.T) {
	root, _ := makeFolder(t)
	folder, err := OpenFolder(root, Train, Options{})
	if err != nil {
		t.Fatal(err)
	}
	datasets := map[string]Dataset{
		"mem":    &memDataset{n: 23, side: 20},
		"folder": folder, // holds a corrupt PNG
	}
	for name, ds := range datasets {
		t.Run(name, func(t *testing.T) {
			cfg := LoaderConfig{BatchSize: 4, Seed: 42, Augment: augment.Config{Size: 8, Blur: true}}
			spe := ds.Len() / 4
			steps := 2*spe + 1 // crosses two epoch boundaries
			cfg.Workers = 1
			want := take(t, startLoader(t, ds, cfg, 0), steps)
			for _, workers := range []int{2, 5} {
				cfg.Workers = workers
				cfg.Prefetch = workers
				got := take(t, startLoader(t, ds, cfg, 0), steps)
				for s := range want {
					if !slices.Equal(got[s].data, want[s].data) || !slices.Equal(got[s].indices, want[s].indices) {
						t.Fatalf("%d workers: step %d differs from 1 worker", workers, s)
					}
				}
			}
			// Resume at the last step of epoch 0 and in epoch 1.
			for _, start := range []int{spe - 1, spe + 1} {
				got := take(t, startLoader(t, ds, cfg, int64(start)), steps-start)
				for s := range got {
					w := want[start+s]
					if !slices.Equal(got[s].data, w.data) || got[s].step != w.step || got[s].epoch != w.epoch {
						t.Fatalf("resumed at %d: step %d differs", start, start+s)
					}
				}
			}
			// A different seed gives different batches.
			cfg.Seed = 43
			other := take(t, startLoader(t, ds, cfg, 0), 1)
			if slices.Equal(other[0].data, want[0].data) {
				t.Error("seeds 42 and 43 gave the same first batch")
			}
		})
	}
}

func TestLoaderBatchLayout(t *testing.T) {
	ds := &memDataset{n: 10, side: 6}
	// No colour jitter: a view of a constant image is that constant (or its
	// grey level, which is the same for a grey image).
	cfg := LoaderConfig{BatchSize: 3, Workers: 2, Seed: 1, Augment: augment.Config{Size: 4, JitterStrength: -1}}
	l := startLoader(t, ds, cfg, 0)
	if l.StepsPerEpoch() != 3 {
		t.Fatalf("StepsPerEpoch = %d, want 3 (10 images, batch 3, last partial batch dropped)", l.StepsPerEpoch())
	}
	const view = 3 * 4 * 4
	for epoch := range 2 {
		seen := map[int]bool{}
		for k := range 3 {
			b, err := l.Next()
			if err != nil {
				t.Fatal(err)
			}
			if b.Epoch != epoch || b.Step != int64(3*epoch+k) {
				t.Fatalf("batch epoch %d step %d, want %d and %d", b.Epoch, b.Step, epoch, 3*epoch+k)
			}
			order := l.Order(epoch)
			for i, idx := range b.Indices {
				if idx != order[3*k+i] {
					t.Fatalf("epoch %d batch %d slot %d has image %d, want %d from the epoch's order", epoch, k, i, idx, order[3*k+i])
				}
				if seen[idx] {
					t.Fatalf("epoch %d: image %d twice", epoch, idx)
				}
				seen[idx] = true
				if b.Labels[i] != idx%3 {
					t.Fatalf("slot %d label %d, want %d", i, b.Labels[i], idx%3)
				}
				want := float32(idx) / 255
				for _, v := range append(b.Data[i*view:(i+1)*view:(i+1)*view], b.Data[(i+3)*view:(i+4)*view]...) {
					if v != want {
						t.Fatalf("slot %d or %d holds %v, want view of image %d (%v)", i, i+3, v, idx, want)
					}
				}
			}
			b.Release()
		}
		if len(seen) != 9 {
			t.Errorf("epoch %d saw %d images, want 9", epoch, len(seen))
		}
	}
	if !slices.Equal(l.Order(0), l.Order(0)) || slices.Equal(l.Order(0), l.Order(1)) {
		t.Error("epoch orders are not reproducible or not reshuffled")
	}
}

func TestLoaderSkipsUnreadableImages(t *testing.T) {
	ds := &memDataset{n: 12, side: 5, bad: map[int]bool{3: true, 7: true}}
	cfg := LoaderConfig{BatchSize: 4, Workers: 3, Seed: 5, Augment: augment.Config{Size: 4}}
	l := startLoader(t, ds, cfg, 0)
	skipped := 0
	for range 9 {
		b, err := l.Next()
		if err != nil {
			t.Fatal(err)
		}
		for i, idx := range b.Indices {
			if ds.bad[idx] {
				t.Fatalf("slot %d holds unreadable image %d", i, idx)
			}
		}
		skipped += b.Skipped
		b.Release()
	}
	st := l.Stats()
	if st.Skipped == 0 || int64(skipped) != st.Skipped || st.Unreadable != 2 || st.Batches != 9 {
		t.Errorf("stats %+v, batches reported %d skips; want skips counted, 2 unreadable images, 9 batches", st, skipped)
	}
	if st.LastError == nil || !strings.Contains(st.LastError.Error(), "corrupt") {
		t.Errorf("LastError = %v", st.LastError)
	}
}

func TestLoaderCorruptFileOnDisk(t *testing.T) {
	root, want := makeFolder(t)
	ds, err := OpenFolder(root, Train, Options{})
	if err != nil {
		t.Fatal(err)
	}
	broken := slices.Index(want, "b_dogs/broken.png")
	l := startLoader(t, ds, LoaderConfig{BatchSize: ds.Len(), Workers: 2, Augment: augment.Config{Size: 8}}, 0)
	b, err := l.Next()
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(b.Indices, broken) || b.Skipped != 1 {
		t.Errorf("indices %v skipped %d; want the broken file (%d) replaced once", b.Indices, b.Skipped, broken)
	}
	b.Release()
	st := l.Stats()
	if st.Unreadable != 1 || !strings.Contains(st.LastError.Error(), filepath.Join("b_dogs", "broken.png")) {
		t.Errorf("stats %+v", st)
	}
}

func TestLoaderAllUnreadable(t *testing.T) {
	bad := map[int]bool{}
	for i := range 5 {
		bad[i] = true
	}
	l := startLoader(t, &memDataset{n: 5, side: 4, bad: bad}, LoaderConfig{BatchSize: 2, Workers: 1, Augment: augment.Config{Size: 4}}, 0)
	_, err := l.Next()
	if err == nil || !strings.Contains(err.Error(), "unreadable images in a row") || !strings.Contains(err.Error(), "check the dataset") {
		t.Errorf("Next error = %v, want one about unreadable images", err)
	}
}

// TestShardedLoadersMakeTheWholeBatch: the loaders of every block of a
// batch (data-parallel ranks) produce exactly the whole-batch loader's
// views and images, block by block, across an epoch boundary.
func TestShardedLoadersMakeTheWholeBatch(t *testing.T) {
	ds := &memDataset{n: 26, side: 20}
	for _, shards := range []int{2, 3} {
		cfg := LoaderConfig{BatchSize: 6, Seed: 7, Workers: 2, Augment: augment.Config{Size: 8}}
		steps := 2*ds.n/cfg.BatchSize + 1
		whole := take(t, startLoader(t, ds, cfg, 0), steps)
		n := cfg.BatchSize / shards
		viewLen := 3 * 8 * 8
		for shard := range shards {
			c := cfg
			c.Shards, c.Shard = shards, shard
			got := take(t, startLoader(t, ds, c, 0), steps)
			for s := range got {
				w := whole[s]
				rows := n * viewLen
				want := slices.Concat(w.data[shard*rows:(shard+1)*rows], w.data[cfg.BatchSize*viewLen+shard*rows:cfg.BatchSize*viewLen+(shard+1)*rows])
				if !slices.Equal(got[s].data, want) || !slices.Equal(got[s].indices, w.indices[shard*n:(shard+1)*n]) ||
					got[s].step != w.step || got[s].epoch != w.epoch {
					t.Fatalf("%d shards: block %d of step %d differs from the whole batch's", shards, shard, s)
				}
			}
		}
	}
}

func TestNewLoaderErrors(t *testing.T) {
	aug := augment.Config{Size: 4}
	tests := []struct {
		name string
		ds   Dataset
		cfg  LoaderConfig
		want string
	}{
		{"empty", &memDataset{n: 0}, LoaderConfig{BatchSize: 1, Augment: aug}, "is empty"},
		{"batch too large", &memDataset{n: 5}, LoaderConfig{BatchSize: 6, Augment: aug}, "larger than the dataset (5 images)"},
		{"no batch size", &memDataset{n: 5}, LoaderConfig{Augment: aug}, "batch size 0"},
		{"no image size", &memDataset{n: 5}, LoaderConfig{BatchSize: 2}, "image size"},
		{"buffer size", &memDataset{n: 5}, LoaderConfig{BatchSize: 2, Augment: aug, Buffers: [][]float32{make([]float32, 10)}}, "buffer 0 has 10 floats, want"},
		{"uneven shards", &memDataset{n: 9}, LoaderConfig{BatchSize: 5, Shards: 2, Augment: aug}, "equal blocks"},
		{"no such shard", &memDataset{n: 9}, LoaderConfig{BatchSize: 4, Shards: 2, Shard: 2, Augment: aug}, "equal blocks"},
	}
	for _, tc := range tests {
		_, err := NewLoader(tc.ds, tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

func TestLoaderCallerBuffers(t *testing.T) {
	ds := &memDataset{n: 8, side: 4}
	bufs := [][]float32{make([]float32, 2*2*3*4*4), make([]float32, 2*2*3*4*4)}
	l := startLoader(t, ds, LoaderConfig{BatchSize: 2, Workers: 2, Augment: augment.Config{Size: 4}, Buffers: bufs}, 0)
	for range 4 {
		b, err := l.Next()
		if err != nil {
			t.Fatal(err)
		}
		if &b.Data[0] != &bufs[0][0] && &b.Data[0] != &bufs[1][0] {
			t.Fatal("batch data is not one of the caller's buffers")
		}
		b.Release()
	}
}

func TestLoaderReleaseTwicePanics(t *testing.T) {
	l := startLoader(t, &memDataset{n: 4, side: 4}, LoaderConfig{BatchSize: 2, Augment: augment.Config{Size: 4}}, 0)
	b, err := l.Next()
	if err != nil {
		t.Fatal(err)
	}
	b.Release()
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "released twice") {
			t.Errorf("second Release: panic %v", r)
		}
	}()
	b.Release()
}

func TestLoaderNextPanicsWhenAllBuffersHeld(t *testing.T) {
	l := startLoader(t, &memDataset{n: 8, side: 4}, LoaderConfig{BatchSize: 2, Prefetch: 2, Augment: augment.Config{Size: 4}}, 0)
	for range 2 {
		if _, err := l.Next(); err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "Release a batch first") {
			t.Errorf("third Next holding both buffers: panic %v", r)
		}
	}()
	l.Next()
}

func TestLoaderCloseAndCancel(t *testing.T) {
	ds := &memDataset{n: 64, side: 8, delay: time.Millisecond}
	l, err := NewLoader(ds, LoaderConfig{BatchSize: 8, Workers: 2, Augment: augment.Config{Size: 8}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.Start(ctx, 0)
	b, err := l.Next()
	if err != nil {
		t.Fatal(err)
	}
	if b.Wait <= 0 || l.Stats().DataWait < b.Wait {
		t.Errorf("first batch wait %v, total %v; want the wait measured", b.Wait, l.Stats().DataWait)
	}
	cancel()
	if _, err := l.Next(); !errors.Is(err, context.Canceled) {
		t.Errorf("Next after cancel: %v, want context.Canceled", err)
	}
	done := make(chan struct{})
	go func() { l.Close(); l.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
}

func TestLoaderFashionMNIST(t *testing.T) {
	const dir = "/usr/share/datasets/fashion-mnist"
	ds, err := Open("fmnist:"+dir, Test)
	if err != nil {
		t.Skipf("Fashion-MNIST not usable at %s (apt-get install dataset-fashion-mnist): %v", dir, err)
	}
	l := startLoader(t, ds, LoaderConfig{BatchSize: 128, Seed: 3, Augment: augment.Config{Size: 28}}, 0)
	start := time.Now()
	const steps = 10
	for range steps {
		b, err := l.Next()
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range b.Data {
			if !(v >= 0 && v <= 1) {
				t.Fatalf("value %v outside [0, 1]", v)
			}
		}
		n := 28 * 28
		// Grey input: three equal channels.
		if b.Data[5] != b.Data[n+5] || b.Data[5] != b.Data[2*n+5] {
			t.Fatal("Fashion-MNIST view channels differ")
		}
		b.Release()
	}
	el := time.Since(start)
	t.Logf("Fashion-MNIST: %d batches of 128 pairs in %v with %d workers: %.0f views/s", steps, el, l.Config().Workers, float64(steps*256)/el.Seconds())
}

// BenchmarkLoader reports views per second through the whole loader.
func BenchmarkLoader(b *testing.B) {
	ds := &memDataset{n: 4096, side: 32}
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("gray32-to32/workers=%d", workers), func(b *testing.B) {
			l, err := NewLoader(ds, LoaderConfig{BatchSize: 64, Workers: workers, Augment: augment.Config{Size: 32}})
			if err != nil {
				b.Fatal(err)
			}
			l.Start(context.Background(), 0)
			defer l.Close()
			b.ReportAllocs()
			for b.Loop() {
				batch, err := l.Next()
				if err != nil {
					b.Fatal(err)
				}
				batch.Release()
			}
			b.ReportMetric(float64(b.N*128)/b.Elapsed().Seconds(), "views/s")
		})
	}
}
