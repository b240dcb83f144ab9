package cli

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"testing"

	"github.com/sluice-serve/sluice/gateway"
	"github.com/sluice-serve/sluice/streams/claim"
)

// Claims carry what the gateway takes: --max-body past its default
// raises the limit, and a replica process is told it (--claim-limit),
// as it is told a threshold other than the default; defaults pass
// nothing (a code bundle's SDK may not know the flags).
func TestClaimLimitFollowsMaxBody(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		maxBody, want int64
	}{
		{0, gateway.DefaultMaxBody},
		{1000, gateway.DefaultMaxBody},
		{128 << 20, 128 << 20},
	} {
		if got := claimLimit(gateway.Limits{MaxBody: tc.maxBody}); got != tc.want {
			t.Errorf("claimLimit(MaxBody %d) = %d, want %d", tc.maxBody, got, tc.want)
		}
	}
	if args := claimArgs(claim.DefaultThreshold, gateway.DefaultMaxBody); args != nil {
		t.Errorf("defaults pass %v", args)
	}
	want := []string{"--claim-threshold", "1024", "--claim-limit", strconv.Itoa(128 << 20)}
	if args := claimArgs(1024, 128<<20); !slices.Equal(args, want) {
		t.Errorf("claimArgs = %v, want %v", args, want)
	}
}

// `sluice dev --max-body 128MiB` takes a 100 MiB body all the way: its
// claims carry 128 MiB, and so do those of the replica processes it
// starts.
func TestDevClaimLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the platform")
	}
	t.Parallel()
	d, err := StartDev(context.Background(), DevConfig{
		HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0", BlobDir: t.TempDir(), Log: slog.New(slog.DiscardHandler),
		Limits: gateway.Limits{MaxBody: 128 << 20},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got := d.claims.Limit(); got != 128<<20 {
		t.Errorf("dev's claims carry %d bytes, want %d", got, 128<<20)
	}
	args := d.replicaArgs("a", "d", "0", "r")
	if i := slices.Index(args, "--claim-limit"); i < 0 || i+1 >= len(args) || args[i+1] != strconv.Itoa(128<<20) {
		t.Errorf("replica process args %v, want --claim-limit %d", args, 128<<20)
	}
}
