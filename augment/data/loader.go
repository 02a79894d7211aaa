package data

import (
	"context"
	"fmt"
	"image"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/simclr-ort/simclr-ort/augment"
)

// MaxAttempts is how many images in a row a batch slot tries before the
// loader gives up: each unreadable image is replaced by another one drawn
// at random.
const MaxAttempts = 100

// Salts that separate the random streams drawn from one seed.
const (
	orderSalt   = 0x2545f4914f6cdd1d
	replaceSalt = 0x5851f42d4c957f2d
)

// LoaderConfig configures a Loader. Zero fields mean the defaults.
type LoaderConfig struct {
	// BatchSize is N, the number of images per batch; a batch holds 2N
	// views. Required.
	BatchSize int
	// Workers is the number of goroutines decoding and augmenting images;
	// 0 or less means GOMAXPROCS.
	Workers int
	// Prefetch is the number of batch buffers in the ring: one held by the
	// consumer, the others being filled. 0 or less means 2. Ignored when
	// Buffers is set.
	Prefetch int
	// Seed seeds the epoch orders and every view.
	Seed uint64
	// Augment configures the views.
	Augment augment.Config
	// Buffers, if set, are the ring of batch buffers (for instance the
	// memory of ONNX Runtime input tensors), each of 2n*3*Size*Size
	// floats (n = BatchSize/Shards). They must not be used elsewhere while
	// the loader runs.
	Buffers [][]float32
	// Shards and Shard make the loader produce only block Shard of Shards
	// equal blocks of every batch of BatchSize images (a data-parallel
	// rank's share): n = BatchSize/Shards images, those at positions
	// Shard*n ... Shard*n+n-1 of the batch in the epoch's order, with the
	// views a loader of the whole batch would make of them (a view's
	// randomness is keyed by its image's position in the epoch). An epoch
	// still has len/BatchSize steps. 0 or 1 shard: the whole batch.
	Shards, Shard int
}

// Batch is one batch of view pairs. It belongs to the consumer from Next
// until Release.
type Batch struct {
	// Data is the [2N, 3, Size, Size] tensor: view 1 of image i at slot i,
	// view 2 at slot i+N.
	Data []float32
	// Labels and Indices give the class and dataset index of image i.
	Labels  []int
	Indices []int
	// Epoch is the epoch of the batch; Step its global step
	// (Epoch*StepsPerEpoch + batch index in the epoch).
	Epoch int
	Step  int64
	// Wait is how long Next blocked waiting for this batch.
	Wait time.Duration
	// Skipped is the number of unreadable images replaced in this batch.
	Skipped int

	loader  *Loader
	pending atomic.Int32
	skipped atomic.Int32
	done    chan struct{}
	errMu   sync.Mutex
	err     error
	held    bool
}

// fail records the first error of a batch.
func (b *Batch) fail(err error) {
	b.errMu.Lock()
	if b.err == nil {
		b.err = err
	}
	b.errMu.Unlock()
}

// Release gives the batch's buffer back to the loader for refilling. The
// batch must not be used afterwards. It panics if called twice.
func (b *Batch) Release() {
	if !b.held {
		panic("data: Batch.Release: batch released twice or not returned by Next")
	}
	b.held = false
	b.loader.held--
	b.loader.free <- b
}

// Stats are a loader's counters, safe to read while it runs.
type Stats struct {
	// Batches is the number of batches Next returned.
	Batches int64
	// Skipped counts images replaced because they could not be read.
	Skipped int64
	// Unreadable is the number of distinct images that could not be read.
	Unreadable int
	// LastError is the last read error, or nil.
	LastError error
	// DataWait is the total time Next blocked waiting for data.
	DataWait time.Duration
}

// Loader produces shuffled batches of augmented view pairs from a Dataset
// with a pool of workers and a bounded ring of batch buffers. Batches come
// out in step order; their content depends only on the dataset, the
// configuration and the step.
type Loader struct {
	ds      Dataset
	cfg     LoaderConfig
	n       int // images per produced batch (this shard's block)
	global  int // images per batch of the epoch's order (BatchSize)
	offset  int // position of the block in that batch
	viewLen int
	steps   int
	pipes   []*augment.Pipeline

	free  chan *Batch
	order chan *Batch
	jobs  chan job

	ring    int // number of batch buffers
	held    int // batches the consumer holds
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	started bool

	mu      sync.Mutex
	bad     map[int]error
	lastErr error
	skipped atomic.Int64
	batches atomic.Int64
	wait    atomic.Int64
}

// job is one image of one batch.
type job struct {
	b     *Batch
	slot  int
	epoch int
	pos   int // position in the epoch's order
	index int // dataset index
}

// NewLoader returns a loader over ds. It returns an error for an empty
// dataset, a batch larger than the dataset, or an invalid configuration.
func NewLoader(ds Dataset, cfg LoaderConfig) (*Loader, error) {
	if ds.Len() == 0 {
		return nil, fmt.Errorf("data: dataset %v is empty: check the data path", ds)
	}
	if cfg.BatchSize <= 0 {
		return nil, fmt.Errorf("data: batch size %d is not positive: pass a positive batch size", cfg.BatchSize)
	}
	if cfg.BatchSize > ds.Len() {
		return nil, fmt.Errorf("data: batch size %d is larger than the dataset (%d images): use a batch size of at most %d", cfg.BatchSize, ds.Len(), ds.Len())
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.Prefetch <= 0 {
		cfg.Prefetch = 2
	}
	shards := max(cfg.Shards, 1)
	if cfg.BatchSize%shards != 0 || cfg.Shard < 0 || cfg.Shard >= shards {
		return nil, fmt.Errorf("data: block %d of %d of a batch of %d images: the batch must split into equal blocks and the block exist", cfg.Shard, shards, cfg.BatchSize)
	}
	l := &Loader{
		ds:     ds,
		n:      cfg.BatchSize / shards,
		global: cfg.BatchSize,
		offset: cfg.Shard * (cfg.BatchSize / shards),
		steps:  ds.Len() / cfg.BatchSize,
		bad:    map[int]error{},
	}
	for range cfg.Workers {
		p, err := augment.New(cfg.Augment)
		if err != nil {
			return nil, err
		}
		l.pipes = append(l.pipes, p)
	}
	cfg.Augment = l.pipes[0].Config()
	l.cfg = cfg
	l.viewLen = l.pipes[0].ViewLen()
	size := 2 * l.n * l.viewLen
	bufs := cfg.Buffers
	if bufs == nil {
		for range cfg.Prefetch {
			bufs = append(bufs, make([]float32, size))
		}
	}
	for i, buf := range bufs {
		if len(buf) != size {
			return nil, fmt.Errorf("data: batch buffer %d has %d floats, want 2x%dx3x%dx%d = %d", i, len(buf), l.n, l.cfg.Augment.Size, l.cfg.Augment.Size, size)
		}
	}
	l.ring = len(bufs)
	l.free = make(chan *Batch, len(bufs))
	l.order = make(chan *Batch, len(bufs))
	l.jobs = make(chan job, l.n)
	for _, buf := range bufs {
		l.free <- &Batch{
			Data:    buf,
			Labels:  make([]int, l.n),
			Indices: make([]int, l.n),
			loader:  l,
			done:    make(chan struct{}, 1),
		}
	}
	return l, nil
}

// StepsPerEpoch returns the number of batches in an epoch (the last partial
// batch is dropped).
func (l *Loader) StepsPerEpoch() int { return l.steps }

// Config returns the configuration in use, defaults filled in.
func (l *Loader) Config() LoaderConfig { return l.cfg }

// Order returns the shuffled order of the dataset in the given epoch.
func (l *Loader) Order(epoch int) []int {
	rng := rand.New(rand.NewPCG(l.cfg.Seed^orderSalt, uint64(epoch)))
	return rng.Perm(l.ds.Len())
}

// Start starts producing batches from global step step (epoch
// step/StepsPerEpoch). The loader stops when ctx is cancelled or Close is
// called. It panics if called twice or with a negative step.
func (l *Loader) Start(ctx context.Context, step int64) {
	if l.started {
		panic("data: Loader.Start called twice")
	}
	if step < 0 {
		panic(fmt.Sprintf("data: Loader.Start: negative step %d", step))
	}
	l.started = true
	l.ctx, l.cancel = context.WithCancel(ctx)
	l.wg.Add(1 + len(l.pipes))
	go l.produce(step)
	for _, p := range l.pipes {
		go l.work(p)
	}
}

// Next returns the next batch in step order, blocking until its views are
// ready. It returns an error when the loader is stopped or too many images
// in a row could not be read. It panics if the loader was not started or
// the consumer holds every buffer of the ring. Next and Release must be
// called from one goroutine.
func (l *Loader) Next() (*Batch, error) {
	if !l.started {
		panic("data: Loader.Next called before Start")
	}
	if l.held == l.ring {
		panic(fmt.Sprintf("data: Loader.Next: all %d batch buffers are held; Release a batch first or raise Prefetch", l.ring))
	}
	start := time.Now()
	var b *Batch
	select {
	case b = <-l.order:
	case <-l.ctx.Done():
		return nil, fmt.Errorf("data: loader stopped: %w", l.ctx.Err())
	}
	select {
	case <-b.done:
	case <-l.ctx.Done():
		return nil, fmt.Errorf("data: loader stopped: %w", l.ctx.Err())
	}
	b.Wait = time.Since(start)
	l.wait.Add(int64(b.Wait))
	if b.err != nil {
		return nil, b.err
	}
	l.batches.Add(1)
	b.Skipped = int(b.skipped.Load())
	b.held = true
	l.held++
	return b, nil
}

// Close stops the workers and waits for them. Batches still held must not
// be used afterwards. Close may be called more than once.
func (l *Loader) Close() error {
	if l.cancel != nil {
		l.cancel()
	}
	l.wg.Wait()
	return nil
}

// Stats returns the loader's counters.
func (l *Loader) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Stats{
		Batches:    l.batches.Load(),
		Skipped:    l.skipped.Load(),
		Unreadable: len(l.bad),
		LastError:  l.lastErr,
		DataWait:   time.Duration(l.wait.Load()),
	}
}

// produce hands out the images of every batch from step on, in order.
func (l *Loader) produce(step int64) {
	defer l.wg.Done()
	defer close(l.jobs)
	done := l.ctx.Done()
	var order []int
	orderEpoch := -1
	for ; ; step++ {
		epoch := int(step / int64(l.steps))
		k := int(step % int64(l.steps))
		if epoch != orderEpoch {
			order, orderEpoch = l.Order(epoch), epoch
		}
		var b *Batch
		select {
		case b = <-l.free:
		case <-done:
			return
		}
		b.Epoch, b.Step, b.Wait, b.Skipped, b.err = epoch, step, 0, 0, nil
		b.skipped.Store(0)
		b.pending.Store(int32(l.n))
		l.order <- b // never blocks: it has room for every buffer
		for slot := range l.n {
			pos := k*l.global + l.offset + slot
			select {
			case l.jobs <- job{b: b, slot: slot, epoch: epoch, pos: pos, index: order[pos]}:
			case <-done:
				return
			}
		}
	}
}

// maxScratchBytes bounds the scratch image a worker keeps between images:
// one larger (a photo of 4000x3000 pixels is 48 MB) is dropped after use
// rather than held by every worker for the whole run.
const maxScratchBytes = 32 << 20

// scratchImager is a Dataset that can decode into a worker's scratch
// image instead of allocating one per image (a 500x375 JPEG is 750 KB of
// pixels, and collecting them cost the JPEG pipeline about 15%). The image
// returned may share *scratch's memory and is valid until the next call
// with the same scratch.
type scratchImager interface {
	imageScratch(i int, scratch **image.NRGBA) (image.Image, error)
}

// work makes the views of the jobs it receives.
func (l *Loader) work(p *augment.Pipeline) {
	defer l.wg.Done()
	var scratch *image.NRGBA
	viewSrc := rand.NewPCG(0, 0)
	viewRNG := rand.New(viewSrc)
	replSrc := rand.NewPCG(0, 0)
	replRNG := rand.New(replSrc)
	for j := range l.jobs {
		if l.ctx.Err() == nil {
			key := uint64(j.epoch)<<40 | uint64(j.pos)
			viewSrc.Seed(l.cfg.Seed, key)
			replSrc.Seed(l.cfg.Seed^replaceSalt, key)
			l.fill(j, p, viewRNG, replRNG, &scratch)
			if scratch != nil && cap(scratch.Pix) > maxScratchBytes {
				scratch = nil
			}
		}
		if j.b.pending.Add(-1) == 0 {
			j.b.done <- struct{}{}
		}
	}
}

// fill writes the two views of job j's image, replacing unreadable images
// by others drawn from repl.
func (l *Loader) fill(j job, p *augment.Pipeline, views, repl *rand.Rand, scratch **image.NRGBA) {
	idx := j.index
	for attempt := 1; ; attempt++ {
		img, err := l.image(idx, scratch)
		if err == nil {
			b := j.b
			v1 := b.Data[j.slot*l.viewLen : (j.slot+1)*l.viewLen]
			v2 := b.Data[(j.slot+l.n)*l.viewLen : (j.slot+l.n+1)*l.viewLen]
			p.Pair(v1, v2, img, views)
			b.Labels[j.slot] = l.ds.Label(idx)
			b.Indices[j.slot] = idx
			return
		}
		l.skipped.Add(1)
		j.b.skipped.Add(1)
		if attempt >= MaxAttempts {
			j.b.fail(fmt.Errorf("data: %d unreadable images in a row (last: %w): check the dataset", attempt, err))
			return
		}
		idx = repl.IntN(l.ds.Len())
	}
}

// image returns image idx, decoded into *scratch where the dataset can
// (see scratchImager), remembering unreadable images so they are not
// decoded again.
func (l *Loader) image(idx int, scratch **image.NRGBA) (img image.Image, err error) {
	l.mu.Lock()
	err, known := l.bad[idx]
	l.mu.Unlock()
	if known {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			img, err = nil, fmt.Errorf("data: decode image %d: decoder panicked: %v", idx, r)
		}
		if err == nil && (img == nil || img.Bounds().Empty()) {
			err = fmt.Errorf("data: image %d is empty", idx)
		}
		if err != nil {
			l.mu.Lock()
			l.bad[idx] = err
			l.lastErr = err
			l.mu.Unlock()
		}
	}()
	if s, ok := l.ds.(scratchImager); ok {
		return s.imageScratch(idx, scratch)
	}
	return l.ds.Image(idx)
}
