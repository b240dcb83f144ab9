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
		return nil, usageError("--claim-threshold: %v", err)
	}
	return c, nil
}

// claimArgs passes the claim threshold to a replica process, when it is
// not the default (a code bundle's SDK may not know the flag).
func claimArgs(threshold int) []string {
	if threshold == claim.DefaultThreshold {
		return nil
	}
	return []string{"--claim-threshold", strconv.Itoa(threshold)}
}

// sweepClaims deletes expired claims until ctx ends: the control plane's
// part (sluice dev, the placing sluice node). A claim lives at least as
// long as the gateway's deadline cap and the data topics' retention.
func sweepClaims(ctx context.Context, c *claim.Claims, log *slog.Logger) {
	c.RunSweeper(ctx, claim.TTL(gatewayDeadlineCap, streams.DataRetention.Time), claim.DefaultSweepInterval, log)
}

// gatewayDeadlineCap is the longest a gateway waits for an answer
// (gateway.Config.MaxTimeout's default).
const gatewayDeadlineCap = 5 * time.Minute

// replicaClaims opens the claim checks of a replica process on the blob
// store its node names: S3, or the directory of sluice dev; none without.
func replicaClaims(ctx context.Context, s3 blob.S3Config, blobDir string, threshold int, env Env) (*claim.Claims, error) {
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
	return openClaims(store, threshold, gateway.DefaultMaxBody)
}
