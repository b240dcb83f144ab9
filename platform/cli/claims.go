package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/sluice-serve/sluice/gateway"
	"github.com/sluice-serve/sluice/registry/blob"
	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/claim"
)

// claimStore adapts a blob store to what claim checks need: whole values
// by key, the keys under a prefix, and the blob errors as claim errors.
type claimStore struct{ s blob.Store }

func (c claimStore) Put(ctx context.Context, key string, value []byte) (string, error) {
	info, err := c.s.Put(ctx, key, bytes.NewReader(value), int64(len(value)))
	return info.SHA256, claimErr(err)
}

func (c claimStore) Get(ctx context.Context, key string) ([]byte, error) {
	rc, info, err := c.s.Get(ctx, key)
	if err != nil {
		return nil, claimErr(err)
	}
	defer rc.Close()
	b := make([]byte, 0, max(info.Size, 0)+1) // +1: ReadAll sees EOF without growing
	b, err = readAll(rc, b)
	return b, claimErr(err)
}

func readAll(r io.Reader, b []byte) ([]byte, error) {
	w := bytes.NewBuffer(b)
	_, err := w.ReadFrom(r)
	return w.Bytes(), err
}

func (c claimStore) Delete(ctx context.Context, key string) error {
	return claimErr(c.s.Delete(ctx, key))
}

func (c claimStore) List(ctx context.Context, prefix string) ([]string, error) {
	infos, err := c.s.List(ctx, prefix)
	if err != nil {
		return nil, claimErr(err)
	}
	keys := make([]string, len(infos))
	for i, in := range infos {
		keys[i] = in.Key
	}
	return keys, nil
}

func claimErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, blob.ErrNotFound):
		return fmt.Errorf("%w: %w", claim.ErrNotFound, err)
	case errors.Is(err, blob.ErrUnavailable):
		return fmt.Errorf("%w: %w", claim.ErrUnavailable, err)
	}
	return err
}

// claimFlags are the claim check's knobs of every command that produces
// or reads data records: values over the threshold go through the blob
// store (--s3-endpoint, or --blob-dir where the command has it).
func claimFlags(fs *flagSet) *int {
	return fs.Int("claim-threshold", claim.DefaultThreshold, "values over this many bytes travel through the blob store as claim checks, not in their Kafka record (below the broker's record limit, about 1 MB by default)")
}

// claimLimitFlag is the largest value a claim carries, for the commands
// that run replicas and have no --max-body of their own (sluice node,
// sluice replica): the gateway's --max-body when that is larger than its
// default. sluice gateway and sluice dev take it from --max-body.
func claimLimitFlag(fs *flagSet) *int64 {
	return fs.Int64("claim-limit", gateway.DefaultMaxBody, "largest value in bytes a claim check carries: set it to the gateway's --max-body when that is larger")
}

// claimLimit is the largest value the claims of a gateway with limits
// lim carry: its request size limit, the default at least (a replica's
// answer may be larger than the request it answers).
func claimLimit(lim gateway.Limits) int64 {
	return max(lim.WithDefaults().MaxBody, gateway.DefaultMaxBody)
}

// openClaims makes the claim checks of a process whose blob store is
// store, carrying values up to limit bytes; nil store: none (values go in
// their records, and one too large for the broker fails naming the size
// and how to configure a store).
func openClaims(store blob.Store, threshold int, limit int64) (*claim.Claims, error) {
	if store == nil {
		return nil, nil
	}
	c, err := claim.New(claimStore{store}, claim.WithThreshold(threshold), claim.WithLimit(int(limit)))
	if err != nil {
		return nil, usageError("--claim-threshold, --claim-limit: %v", err)
	}
	return c, nil
}

// claimArgs passes the claim threshold and limit to a replica process,
// each when it is not the default (a code bundle's SDK may not know the
// flags).
func claimArgs(threshold int, limit int64) []string {
	var args []string
	if threshold != claim.DefaultThreshold {
		args = append(args, "--claim-threshold", strconv.Itoa(threshold))
	}
	if limit != gateway.DefaultMaxBody {
		args = append(args, "--claim-limit", strconv.FormatInt(limit, 10))
	}
	return args
}

// sweepClaims deletes expired claims until ctx ends: every gateway (the
// one process of every topology that has the store and runs for good:
// on Kubernetes there is no other), sluice dev and the placing sluice
// node. Several sweepers are fine: deletes are idempotent, and their
// sweeps are spread by jitter. A claim lives at least as long as the
// deadline cap (maxTimeout, the gateway's --max-timeout) and the data
// topics' retention.
func sweepClaims(ctx context.Context, c *claim.Claims, maxTimeout time.Duration, log *slog.Logger) {
	c.RunSweeper(ctx, claim.TTL(maxTimeout, streams.DataRetention.Time), claim.DefaultSweepInterval, log)
}

// replicaClaims opens the claim checks of a replica process on the blob
// store its node names: S3, or the directory of sluice dev; none without.
func replicaClaims(ctx context.Context, s3 blob.S3Config, blobDir string, threshold int, limit int64, env Env) (*claim.Claims, error) {
	var store blob.Store
	var err error
	switch {
	case s3.Endpoint != "":
		store, err = blob.NewS3(ctx, s3, env.Log)
	case blobDir != "":
		store, err = blob.NewDir(blobDir)
	}
	if err != nil {
		return nil, err
	}
	return openClaims(store, threshold, limit)
}
