package streams

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/streams/claim"
	"github.com/sluice-serve/sluice/streams/protocol"
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

// claimCaller is a Caller with a claim store and no broker: deliver and
// Close run as they do on a real one.
func claimCaller(t *testing.T, store *claim.Memory) *Caller {
	t.Helper()
	claims, err := claim.New(store)
	if err != nil {
		t.Fatal(err)
	}
	c := &Caller{waits: map[string]*Pending{}, orphans: map[string]orphan{}, claims: claims, log: slog.New(slog.DiscardHandler)}
	c.bgCtx, c.bgCancel = context.WithCancel(context.Background())
	t.Cleanup(func() { c.waitBackground(context.Background()) })
	return c
}

// stored puts a request value over the threshold in the store and
// returns its reference.
func stored(t *testing.T, c *Caller) claim.Ref {
	t.Helper()
	rec := &kgo.Record{Value: make([]byte, claim.DefaultThreshold+1)}
	ref, err := c.claims.Put(context.Background(), rec, claim.KindRequest)
	if err != nil || ref.IsZero() {
		t.Fatalf("put: %+v, %v", ref, err)
	}
	return ref
}

func has(store *claim.Memory, ref claim.Ref) bool {
	keys, _ := store.List(context.Background(), claim.DefaultPrefix)
	return slices.Contains(keys, ref.Key)
}

// A Pending closed before any reply came (a handle call nobody awaits)
// keeps its request's claim for the callee that has not read it yet; the
// first reply for its id deletes it. One closed after a reply deletes it
// at once.
func TestPendingCloseKeepsUnreadClaim(t *testing.T) {
	t.Parallel()
	store := claim.NewMemory()
	c := claimCaller(t, store)
	reply := func(id string) *kgo.Record {
		return &kgo.Record{Value: []byte("v"), Headers: []kgo.RecordHeader{hdr(protocol.HeaderID, id)}}
	}

	unawaited := newPending(c, "call-1")
	c.waits["call-1"] = unawaited
	unawaited.claim = stored(t, c)
	unawaited.Close()
	c.bg.Wait()
	if !has(store, unawaited.c.orphans["call-1"].ref) || len(c.orphans) != 1 {
		t.Fatalf("closed before any reply: the claim is gone (orphans %v)", c.orphans)
	}
	ref := c.orphans["call-1"].ref
	c.deliver(reply("call-1")) // the callee answered: it read the request
	c.bg.Wait()
	if has(store, ref) || len(c.orphans) != 0 {
		t.Errorf("after the reply: claim kept %v, orphans %v", has(store, ref), c.orphans)
	}
	if c.Dropped() != 1 {
		t.Errorf("Dropped = %d, want the late reply dropped", c.Dropped())
	}

	answered := newPending(c, "call-2")
	c.waits["call-2"] = answered
	ref = stored(t, c)
	answered.claim = ref
	c.deliver(reply("call-2"))
	answered.Close()
	c.bg.Wait()
	if has(store, ref) || len(c.orphans) != 0 {
		t.Errorf("closed after its reply: claim kept %v, orphans %v", has(store, ref), c.orphans)
	}
}

// Orphaned claims are bounded: past MaxOrphans the expired go first.
func TestOrphansBounded(t *testing.T) {
	t.Parallel()
	c := claimCaller(t, claim.NewMemory())
	past := time.Now().Add(-time.Minute)
	for i := range MaxOrphans {
		c.orphans[strconv.Itoa(i)] = orphan{ref: claim.Ref{Key: "claims/x"}, expires: past}
	}
	p := newPending(c, "new")
	c.waits["new"] = p
	if got := c.forget(p, claim.Ref{Key: "claims/2026120607/q/ab"}); !got.IsZero() {
		t.Fatalf("forget returned %v to delete now", got)
	}
	if len(c.orphans) != 1 || c.orphans["new"].ref.IsZero() {
		t.Errorf("%d orphans, want only the new one", len(c.orphans))
	}
}

// An error reply that comes after claimed items still being fetched is
// applied after them: the items are handed out, then the error.
func TestPendingErrorWaitsForFetchedItems(t *testing.T) {
	t.Parallel()
	_, p := testPending("s")
	if !p.fetching() || !p.fetching() {
		t.Fatal("fetching refused on an open pending")
	}
	if !p.push(errReply(CodeInternal, "boom")) {
		t.Fatal("the error was dropped")
	}
	if got, end := drain(t, p); len(got) != 0 || end != stillOpen {
		t.Fatalf("before the fetches: %d items, end %v; want none, still open", len(got), end)
	}
	if !p.fetched(itemReply(1), nil) { // fetches complete in any order
		t.Fatal("item 1 dropped")
	}
	if got, end := drain(t, p); len(got) != 0 || end != stillOpen {
		t.Fatalf("item 1 only: %d items, end %v", len(got), end)
	}
	p.fetched(itemReply(0), nil)
	got, end := drain(t, p)
	if len(got) != 2 || got[0].Seq != 0 || got[1].Seq != 1 || CodeOf(end) != CodeInternal {
		t.Fatalf("after both fetches: %v, end %v; want items 0 and 1, then internal", got, end)
	}
	if p.fetching() {
		t.Error("a settled pending takes a fetch")
	}
}
