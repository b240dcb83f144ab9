package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/streams/protocol"
)

// Two Remote calls made back to back run at the same time.
func TestRemoteCallsRunInParallel(t *testing.T) {
	t.Parallel()
	if code, got := post(t, "/fan", "0"); code != 200 || got != "ab" { // warm: groups joined
		t.Fatalf("fan warm-up = %d %q", code, got)
	}
	start := time.Now()
	code, got := post(t, "/fan", "400")
	took := time.Since(start)
	if code != 200 || got != "ab" {
		t.Fatalf("fan = %d %q", code, got)
	}
	if took > 750*time.Millisecond {
		t.Fatalf("two 400ms calls took %s: they ran one after the other", took)
	}
}

// The chain's sum travels from the Adder's replica to the Multiplier's
// topic: the Adder's request carries the continuation, and the record on
// the Multiplier's edge has the continuation's id and the Adder's output.
// The caller's x-* header travels on both: the Ingress's handle call and
// the Adder's forwarded output.
func TestForwardedFutureSkipsTheCaller(t *testing.T) {
	t.Parallel()
	if code, got := postHeader(t, "/chain", "1234", "X-Tenant", "acme"); code != 200 || got != "2470" {
		t.Fatalf("chain 1234 = %d %q", code, got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	toMultiplier := namer.Edge("chain", "Ingress", "Multiplier")
	req := findRecord(ctx, t, namer.Edge("chain", "Ingress", "Adder"), func(r *kgo.Record) bool {
		return string(r.Value) == "1234"
	})
	env, err := protocol.ParseEnvelope(req.Headers)
	if err != nil || len(env.Cont) != 1 || env.Cont[0].Topic != toMultiplier {
		t.Fatalf("the Adder's request carries no continuation to %s: %+v %v", toMultiplier, env, err)
	}
	if got := env.RequestHeaders()["x-tenant"]; got != "acme" {
		t.Errorf("the Adder's request (a handle call) carries x-tenant %q, want the caller's acme", got)
	}
	fwd := findRecord(ctx, t, toMultiplier, func(r *kgo.Record) bool {
		return string(protocol.Header(r.Headers, protocol.HeaderID)) == env.Cont[0].ID
	})
	if string(fwd.Value) != "1235" {
		t.Fatalf("multiplier input %q, want the Adder's sum 1235", fwd.Value)
	}
	if got := string(protocol.Header(fwd.Headers, protocol.HeaderRequestPrefix+"x-tenant")); got != "acme" {
		t.Errorf("the forwarded record carries x-tenant %q, want the caller's acme", got)
	}
}

// findRecord reads topic from the start until match accepts a record.
func findRecord(ctx context.Context, t *testing.T, topic string, match func(*kgo.Record) bool) *kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append(seed(), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("no matching record on %s", topic)
		}
		for _, r := range fs.Records() {
			if match(r) {
				return r
			}
		}
	}
}
