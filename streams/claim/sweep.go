package claim

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"
)

// DefaultSweepInterval is how often the control plane sweeps expired
// claims.
const DefaultSweepInterval = 10 * time.Minute

// TTL is how long a claim must stay readable: as long as a record that
// references it can still be read and acted on. That is the longer of the
// request deadline cap (a sync request's records are useless after it)
// and the data topics' retention (an offline record can be read, and
// read again after a crash, until retention deletes it).
func TTL(deadlineCap, retention time.Duration) time.Duration {
	return max(deadlineCap, retention)
}

// Sweep deletes the claims that expired: those whose bucket ended ttl ago
// or more. The age is read from the key, not the object. It returns how
// many it deleted; the store must list (Lister).
func (c *Claims) Sweep(ctx context.Context, ttl time.Duration) (int, error) {
	if c == nil {
		return 0, nil
	}
	l, ok := c.store.(Lister)
	if !ok {
		return 0, errors.New("claims: the store cannot list: no sweep")
	}
	keys, err := l.List(ctx, c.prefix)
	if err != nil {
		return 0, err
	}
	now := c.now()
	n := 0
	var errs []error
	for _, k := range keys {
		bucket, _, ok := parseKey(strings.TrimPrefix(k, c.prefix))
		if !ok || now.Before(bucket.Add(BucketWidth+ttl)) {
			continue // not a claim of ours, or still live
		}
		if err := c.store.Delete(ctx, k); err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// RunSweeper sweeps at once, then every interval give or take a quarter
// (jitter: several processes that sweep one store, as every gateway
// does, spread their sweeps) until ctx ends, logging what it deleted and
// what failed.
func (c *Claims) RunSweeper(ctx context.Context, ttl, interval time.Duration, log *slog.Logger) {
	if c == nil {
		return
	}
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		n, err := c.Sweep(ctx, ttl)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("claim sweep failed", "prefix", c.prefix, "deleted", n, "err", err)
		case n > 0:
			log.Info("expired claims deleted", "prefix", c.prefix, "deleted", n, "ttl", ttl)
		}
		t.Reset(interval*3/4 + rand.N(interval/2+1))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
