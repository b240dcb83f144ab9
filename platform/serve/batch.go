package serve

import (
	"context"
	"sync"
	"time"

	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/replicas"
	"github.com/sluice-serve/sluice/streams"
)

// Batching defaults, used when a batch deployment's spec sets none.
const (
	DefaultMaxBatchSize = 10
	DefaultBatchWait    = 10 * time.Millisecond
)

// Batching sets the batch size and how long a batch waits to fill.
func Batching(maxSize int, wait time.Duration) Option {
	return func(d *spec.Deployment) {
		d.Batching = spec.Batching{MaxBatchSize: maxSize, BatchWaitTimeout: spec.Duration(wait)}
	}
}

// BatchFunc is a deployment whose function takes a batch of inputs and
// returns one output per input, in order. Requests a replica has in flight
// at once are grouped, up to batching.max_batch_size, waiting at most
// batching.batch_wait_timeout for a batch to fill; each request still gets
// its own reply or error. max_ongoing_requests must be at least the batch
// size for batches to fill.
func BatchFunc[In, Out any](name string, fn func(ctx context.Context, ins []In) ([]Out, error), opts ...Option) *Deployment {
	d := newDeployment[In, Out](name, false, opts)
	d.batches = true
	d.wrap = func(any, *runtime) (replicas.Handler, error) {
		return &batcher[In, Out]{fn: fn, max: DefaultMaxBatchSize, wait: DefaultBatchWait}, nil
	}
	return d
}

// batcher groups concurrent requests into calls of fn.
type batcher[In, Out any] struct {
	fn   func(context.Context, []In) ([]Out, error)
	max  int
	wait time.Duration

	mu      sync.Mutex
	pending []*batchItem[In, Out]
	timer   *time.Timer
}

type batchItem[In, Out any] struct {
	in       In
	deadline time.Time
	out      Out
	err      error
	done     chan struct{}
}

func (b *batcher[In, Out]) configure(s spec.Batching) {
	if s.MaxBatchSize > 0 {
		b.max = s.MaxBatchSize
	}
	if s.BatchWaitTimeout > 0 {
		b.wait = time.Duration(s.BatchWaitTimeout)
	}
}

func (b *batcher[In, Out]) Handle(ctx context.Context, in *replicas.Input, out replicas.Output) error {
	v, err := decode[In](in.Value)
	if err != nil {
		return err
	}
	it := &batchItem[In, Out]{in: v, deadline: in.Env.Deadline, done: make(chan struct{})}
	b.mu.Lock()
	b.pending = append(b.pending, it)
	var full []*batchItem[In, Out]
	switch {
	case len(b.pending) >= b.max:
		full = b.take()
	case len(b.pending) == 1:
		b.timer = time.AfterFunc(b.wait, b.flush)
	}
	b.mu.Unlock()
	if full != nil {
		go b.run(full)
	}
	select {
	case <-it.done:
	case <-ctx.Done():
		return streams.ContextError(ctx.Err())
	}
	if it.err != nil {
		return it.err
	}
	res, ct, err := encode(it.out)
	if err != nil {
		return err
	}
	return out.Emit(res, ct)
}

// take empties the pending batch; b.mu is held.
func (b *batcher[In, Out]) take() []*batchItem[In, Out] {
	batch := b.pending
	b.pending = nil
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	return batch
}

func (b *batcher[In, Out]) flush() {
	b.mu.Lock()
	batch := b.take()
	b.mu.Unlock()
	if len(batch) > 0 {
		b.run(batch)
	}
}

// run calls fn once for the batch, bounded by the latest deadline in it:
// each request is bounded by its own deadline in Handle.
func (b *batcher[In, Out]) run(batch []*batchItem[In, Out]) {
	ctx := context.Background()
	var latest time.Time
	for _, it := range batch {
		if it.deadline.IsZero() {
			latest = time.Time{}
			break
		}
		if it.deadline.After(latest) {
			latest = it.deadline
		}
	}
	if !latest.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, latest)
		defer cancel()
	}
	ins := make([]In, len(batch))
	for i, it := range batch {
		ins[i] = it.in
	}
	outs, err := b.call(ctx, ins)
	if err == nil && len(outs) != len(ins) {
		err = streams.Errorf(streams.CodeInternal, "batch function returned %d results for %d inputs", len(outs), len(ins))
	}
	for i, it := range batch {
		if err != nil {
			it.err = err
		} else {
			it.out = outs[i]
		}
		close(it.done)
	}
}

// call runs fn, turning a panic into an error for the whole batch: the
// replica's own recovery does not reach this goroutine.
func (b *batcher[In, Out]) call(ctx context.Context, ins []In) (outs []Out, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = streams.Errorf(streams.CodeInternal, "batch function panicked: %v", p)
		}
	}()
	return b.fn(ctx, ins)
}
