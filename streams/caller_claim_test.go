package streams

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/sluice-serve/sluice/streams/claim"
)

// A store call cut off by its context is the context's code, whatever
// else the store wraps (its unavailable included): not unavailable, which
// tells clients to retry.
func TestClaimErrorCodes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
		code Code
	}{
		{"deadline", fmt.Errorf("%w: get: %w", claim.ErrUnavailable, context.DeadlineExceeded), CodeDeadlineExceeded},
		{"canceled", &claim.Error{Op: "fetch", Key: "k", Err: fmt.Errorf("%w: %w", claim.ErrUnavailable, context.Canceled)}, CodeCanceled},
		{"unavailable", &claim.Error{Op: "fetch", Key: "k", Err: claim.ErrUnavailable}, CodeUnavailable},
		{"not found", &claim.Error{Op: "fetch", Key: "k", Err: claim.ErrNotFound}, CodeInvalidArgument},
		{"too large", &claim.TooLargeError{Size: 2, Limit: 1}, CodeInvalidArgument},
		{"no store", &claim.Error{Op: "fetch", Key: "k", Err: claim.ErrNoStore}, CodeFailedPrecondition},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := ClaimError(tc.err)
			if e.Code != tc.code || !errors.Is(e, tc.err) {
				t.Errorf("ClaimError(%v) = %s (wraps it: %v), want %s", tc.err, e.Code, errors.Is(e, tc.err), tc.code)
			}
		})
	}
}
