package replicas

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/claim"
	"github.com/sluice-serve/sluice/streams/protocol"
)

func newClaims(t *testing.T, store claim.Store, opts ...claim.Option) *claim.Claims {
	t.Helper()
	c, err := claim.New(store, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// bigValue is n bytes of lower-case text, so upper changes every byte.
func bigValue(n int) []byte {
	return bytes.Repeat([]byte("abcdefghijklmnopqrstuvwxyz012345"), n/32)
}

// A 3 MiB request crosses a dataflow edge and comes back as a 3 MiB
// reply, three times the broker's record limit: every record carries a
// claim, every claim is deleted once the caller has its answer.
func TestClaimLargeEdgeAndReply(t *testing.T) {
	t.Parallel()
	store := claim.NewMemory()
	claims := newClaims(t, store)
	f := newFixture(t, 1)
	g := fixture{in: uniq(t, "in2"), out: f.out, dlq: f.dlq, group: uniq(t, "group2")}
	createTopics(t, 1, g.in)
	var sawEdge bool
	a := f.config()
	a.Successors, a.Claims = []string{g.in}, claims
	start(t, a, handlerFunc(func(_ context.Context, in *Input, out Output) error {
		return out.Emit(append(bytes.Clone(in.Value), '!'), "text/plain")
	}))
	b := g.config()
	b.Claims = claims
	start(t, b, handlerFunc(func(ctx context.Context, in *Input, out Output) error {
		sawEdge = in.Topic == g.in
		return upper(ctx, in, out)
	}))

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := streams.NewCaller(ctx, brokers, streams.Namer{}, streams.Instance(), testLog, streams.WithClaims(claims))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	value := bigValue(3 << 20)
	r, err := c.Call(ctx, &protocol.Request{Topic: f.in, Value: value})
	if err != nil {
		t.Fatalf("3 MiB call: %v", err)
	}
	want := append(bytes.ToUpper(value), '!')
	if !bytes.Equal(r.Value, want) || r.ContentType != "text/plain" || !sawEdge {
		t.Fatalf("answer: %d bytes (want %d), equal %v, %q, through the edge %v", len(r.Value), len(want), bytes.Equal(r.Value, want), r.ContentType, sawEdge)
	}
	// Every record on the way carried a claim, not the value.
	for _, topic := range []string{f.in, g.in} {
		rec := consume(t, topic, 1, wait)[0]
		if len(rec.Value) != 0 || !hhas(rec, protocol.HeaderClaim) {
			t.Errorf("%s: a %d-byte value, claim %q", topic, len(rec.Value), hget(rec, protocol.HeaderClaim))
		}
	}
	// The request's claim (its caller), the edge's (the replica that
	// answered it) and the reply's (its reader) are all gone.
	waitFor(t, wait, "every claim deleted", func() bool {
		keys, _ := store.List(ctx, claim.DefaultPrefix)
		return len(keys) == 0
	})
}

// Offline, a claim that cannot be fetched dead-letters its record with
// the reason, the record as read (claim included), and the partition
// keeps moving.
func TestClaimUnfetchableDeadLettered(t *testing.T) {
	t.Parallel()
	store := claim.NewMemory()
	claims := newClaims(t, store)
	f := newFixture(t, 1)
	cfg := f.config()
	cfg.Claims = claims
	rep := start(t, cfg, upper)

	gone := claim.Ref{Key: "claims/2026120607/e/0123", Size: 10, SHA256: sha256.Sum256([]byte("0123456789"))}
	altered := claim.Ref{Key: "claims/2026120607/e/4567", Size: 10, SHA256: sha256.Sum256([]byte("0123456789"))}
	store.Set(altered.Key, []byte("0123456780"))
	recs := produce(t,
		&kgo.Record{Topic: f.in, Key: []byte("k1"), Headers: hdrs(protocol.HeaderID, "r1", protocol.HeaderClaim, gone.String())},
		&kgo.Record{Topic: f.in, Key: []byte("k2"), Headers: hdrs(protocol.HeaderID, "r2", protocol.HeaderClaim, altered.String())},
		&kgo.Record{Topic: f.in, Key: []byte("k3"), Headers: hdrs(protocol.HeaderClaim, "12 nothex k")},
		&kgo.Record{Topic: f.in, Key: []byte("k4"), Value: []byte("fine")},
	)
	// The three fail on workers of their own: their dead letters come in
	// any order, each naming the record it is by its source.
	bySource := map[string]*kgo.Record{}
	for _, d := range consume(t, f.dlq, 3, wait) {
		bySource[hget(d, protocol.HeaderSource)] = d
	}
	for i, tc := range []struct{ key, says string }{
		{gone.Key, "not found"},
		{altered.Key, "SHA-256"},
		{"(unreadable)", "malformed claim reference"},
	} {
		d := bySource[fmt.Sprintf("%s/%d/%d", recs[i].Topic, recs[i].Partition, recs[i].Offset)]
		if d == nil {
			t.Fatalf("no dead letter of record %d (sources %v)", i, slices.Collect(maps.Keys(bySource)))
		}
		if got := streams.Code(hget(d, protocol.HeaderStatus)); got != streams.CodeInvalidArgument {
			t.Errorf("dead letter %d: sl-status %q, want invalid_argument", i, got)
		}
		if msg := hget(d, protocol.HeaderError); !strings.Contains(msg, tc.key) || !strings.Contains(msg, tc.says) {
			t.Errorf("dead letter %d: sl-error %q, want it to name %s and %q", i, msg, tc.key, tc.says)
		}
		if hget(d, protocol.HeaderClaim) != hget(recs[i], protocol.HeaderClaim) || hget(d, protocol.HeaderSource) == "" {
			t.Errorf("dead letter %d is not the record as read: %v", i, d.Headers)
		}
	}
	out := consume(t, f.out, 1, wait)[0]
	if string(out.Value) != "FINE" {
		t.Errorf("the record after them: %q", out.Value)
	}
	waitFor(t, wait, "the partition committed past all four", func() bool { return committed(t, f.group, f.in)[0] == 4 })
	if s := rep.Stats(); s.DeadLettered != 3 || s.Failed != 3 {
		t.Errorf("stats %+v, want 3 dead-lettered and failed", s)
	}
}

// A sync caller whose request claim cannot be fetched gets the error at
// once; a sync record whose replica-made claim is gone was answered
// already (its replica deletes it then) and is skipped.
func TestClaimUnfetchableSync(t *testing.T) {
	t.Parallel()
	store := claim.NewMemory()
	claims := newClaims(t, store)
	f := newFixture(t, 1)
	cfg := f.config()
	cfg.Claims = claims
	start(t, cfg, upper)

	sum := sha256.Sum256([]byte("x"))
	request := claim.Ref{Key: "claims/2026120607/q/aa", Size: 1, SHA256: sum}
	answered := claim.Ref{Key: "claims/2026120607/e/bb", Size: 1, SHA256: sum}
	produce(t,
		&kgo.Record{Topic: f.in, Headers: hdrs(protocol.HeaderID, "done", protocol.HeaderReplyTo, f.reply, protocol.HeaderClaim, answered.String())},
		&kgo.Record{Topic: f.in, Headers: hdrs(protocol.HeaderID, "r1", protocol.HeaderReplyTo, f.reply, protocol.HeaderClaim, request.String())},
	)
	r := consume(t, f.reply, 1, wait)[0]
	if hget(r, protocol.HeaderID) != "r1" || streams.Code(hget(r, protocol.HeaderStatus)) != streams.CodeInvalidArgument ||
		!strings.Contains(hget(r, protocol.HeaderError), request.Key) {
		t.Fatalf("reply %v, want r1's invalid_argument naming %s", r.Headers, request.Key)
	}
	waitFor(t, wait, "both committed", func() bool { return committed(t, f.group, f.in)[0] == 2 })
	if n := count(t, f.reply); n != 1 {
		t.Errorf("%d replies, want 1: the answered record is skipped", n)
	}
	if n := count(t, f.dlq); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
}

// An answer over the payload limit fails at once, counted as failed,
// and nothing is left in the store; offline, a large output is claimed
// and stays for the output topic's readers (expiry deletes it).
func TestClaimOutputLimits(t *testing.T) {
	t.Parallel()
	store := claim.NewMemory()
	claims := newClaims(t, store, claim.WithLimit(4<<20))
	f := newFixture(t, 1)
	cfg := f.config()
	cfg.Claims = claims
	rep := start(t, cfg, handlerFunc(func(_ context.Context, in *Input, out Output) error {
		n := 2 << 20
		if string(in.Key) == "huge" {
			n = 5 << 20
		}
		return out.Emit(bigValue(n), "application/octet-stream")
	}))
	produce(t,
		&kgo.Record{Topic: f.in, Key: []byte("huge"), Headers: hdrs(protocol.HeaderID, "h", protocol.HeaderReplyTo, f.reply)},
		&kgo.Record{Topic: f.in, Key: []byte("big"), Headers: hdrs(protocol.HeaderID, "b")},
	)
	r := consume(t, f.reply, 1, wait)[0]
	if got := streams.Code(hget(r, protocol.HeaderStatus)); got != streams.CodeInternal || !strings.Contains(hget(r, protocol.HeaderError), "over the 4194304-byte limit") {
		t.Errorf("too large: %q %q", got, hget(r, protocol.HeaderError))
	}
	out := consume(t, f.out, 1, wait)[0]
	got, ref, err := claims.Fetch(context.Background(), out.Headers, out.Value)
	if err != nil || !bytes.Equal(got, bigValue(2<<20)) || ref.Kind() != claim.KindRecord || string(out.Key) != "big" {
		t.Fatalf("offline output: %d bytes, %+v, %v", len(got), ref, err)
	}
	waitFor(t, wait, "both committed", func() bool { return committed(t, f.group, f.in)[0] == 2 })
	if keys, _ := store.List(context.Background(), claim.DefaultPrefix); len(keys) != 1 || keys[0] != ref.Key {
		t.Errorf("store holds %v, want the output's claim only", keys)
	}
	if s := rep.Stats(); s.Failed != 1 || s.Processed != 2 {
		t.Errorf("stats %+v, want 1 failed of 2", s)
	}
}

// A caller without a store is told, for a request over the broker's
// limit, the size, the limit and how to configure a store; with one, a
// request past the payload limit fails at once, before anything is sent.
func TestClaimCallerLimits(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	plain, err := streams.NewCaller(ctx, brokers, streams.Namer{}, streams.Instance(), testLog)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close(context.Background())
	_, err = plain.Call(ctx, &protocol.Request{Topic: f.in, Value: make([]byte, 3<<20)})
	if streams.CodeOf(err) != streams.CodeUnavailable || !strings.Contains(err.Error(), "3145728 bytes") || !strings.Contains(err.Error(), "--s3-endpoint") {
		t.Errorf("no store: %v", err)
	}
	store := claim.NewMemory()
	c, err := streams.NewCaller(ctx, brokers, streams.Namer{}, streams.Instance(), testLog, streams.WithClaims(newClaims(t, store, claim.WithLimit(1<<20))))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	_, err = c.Call(ctx, &protocol.Request{Topic: f.in, Value: make([]byte, 1<<20+1)})
	if !errors.Is(err, claim.ErrTooLarge) || streams.CodeOf(err) != streams.CodeInvalidArgument || ctx.Err() != nil {
		t.Errorf("over the limit: %v (%s)", err, streams.CodeOf(err))
	}
	if n := count(t, f.in); n != 0 {
		t.Errorf("%d records sent, want none", n)
	}
}

// Stream items over the threshold come to the caller in order, each one
// fetched and deleted.
func TestClaimStreamItems(t *testing.T) {
	t.Parallel()
	store := claim.NewMemory()
	claims := newClaims(t, store, claim.WithThreshold(1<<10))
	f := newFixture(t, 1)
	cfg := f.config()
	cfg.Claims = claims
	start(t, cfg, streamFunc(func(_ context.Context, in *Input, out Output) error {
		for i := range 3 {
			if err := out.Emit(bytes.Repeat([]byte{byte('a' + i)}, 4<<10*(i+1)), "application/octet-stream"); err != nil {
				return err
			}
		}
		return nil
	}))
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := streams.NewCaller(ctx, brokers, streams.Namer{}, streams.Instance(), testLog, streams.WithClaims(claims))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	p := c.Start(ctx, &protocol.Request{Topic: f.in, Value: []byte("go")})
	defer p.Close()
	for i := range 3 {
		r, err := p.Next(ctx)
		if err != nil || r.Seq != int64(i) || !bytes.Equal(r.Value, bytes.Repeat([]byte{byte('a' + i)}, 4<<10*(i+1))) {
			t.Fatalf("item %d: seq %d, %d bytes, %v", i, r.Seq, len(r.Value), err)
		}
	}
	if _, err := p.Next(ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("after the items: %v, want EOF", err)
	}
	items := consume(t, c.Topic(), 4, wait)
	for _, r := range items[:3] {
		if !hhas(r, protocol.HeaderClaim) || len(r.Value) != 0 {
			t.Errorf("item %s carries %d bytes and claim %q", hget(r, protocol.HeaderSeq), len(r.Value), hget(r, protocol.HeaderClaim))
		}
	}
	waitFor(t, wait, "every item's claim deleted", func() bool {
		keys, _ := store.List(ctx, claim.DefaultPrefix)
		return len(keys) == 0
	})
}

// slowGets is a store whose reads take a while: a claimed reply is still
// being fetched when the records after it arrive.
type slowGets struct {
	*claim.Memory
	delay time.Duration
}

func (s slowGets) Get(ctx context.Context, key string) ([]byte, error) {
	time.Sleep(s.delay)
	return s.Memory.Get(ctx, key)
}

// A stream that fails after claimed items hands the caller every item,
// then the error: the error waits for the items fetched before it.
func TestClaimStreamItemsThenError(t *testing.T) {
	t.Parallel()
	mem := claim.NewMemory()
	claims := newClaims(t, slowGets{mem, 200 * time.Millisecond}, claim.WithThreshold(1<<10))
	f := newFixture(t, 1)
	cfg := f.config()
	cfg.Claims = claims
	start(t, cfg, streamFunc(func(_ context.Context, in *Input, out Output) error {
		for i := range 2 {
			if err := out.Emit(bytes.Repeat([]byte{byte('a' + i)}, 4<<10), "application/octet-stream"); err != nil {
				return err
			}
		}
		return streams.Errorf(streams.CodeInternal, "out of ideas")
	}))
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := streams.NewCaller(ctx, brokers, streams.Namer{}, streams.Instance(), testLog, streams.WithClaims(claims))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	p := c.Start(ctx, &protocol.Request{Topic: f.in, Value: []byte("go")})
	defer p.Close()
	for i := range 2 {
		r, err := p.Next(ctx)
		if err != nil || r.Seq != int64(i) || !bytes.Equal(r.Value, bytes.Repeat([]byte{byte('a' + i)}, 4<<10)) {
			t.Fatalf("item %d: seq %d, %d bytes, %v", i, r.Seq, len(r.Value), err)
		}
	}
	if _, err := p.Next(ctx); streams.CodeOf(err) != streams.CodeInternal || !strings.Contains(err.Error(), "out of ideas") {
		t.Fatalf("after the items: %v, want the handler's error", err)
	}
}

// A call nobody awaits (started and closed at once, as a handle call
// whose result is never read) still reaches its callee with its large
// argument: the caller keeps the claim until a reply for it comes, then
// deletes it.
func TestClaimUnawaitedCall(t *testing.T) {
	t.Parallel()
	store := claim.NewMemory()
	claims := newClaims(t, store)
	f := newFixture(t, 1)
	cfg := f.config()
	cfg.Claims = claims
	got := make(chan int, 1)
	rep := start(t, cfg, handlerFunc(func(_ context.Context, in *Input, out Output) error {
		got <- len(in.Value)
		return out.Emit([]byte("ok"), "text/plain")
	}))
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := streams.NewCaller(ctx, brokers, streams.Namer{}, streams.Instance(), testLog, streams.WithClaims(claims))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	value := bigValue(2 << 20)
	c.Start(ctx, &protocol.Request{Topic: f.in, Value: value}).Close()
	select {
	case n := <-got:
		if n != len(value) {
			t.Fatalf("the callee got %d bytes, want %d", n, len(value))
		}
	case <-ctx.Done():
		t.Fatalf("the callee never ran: stats %+v", rep.Stats())
	}
	if s := rep.Stats(); s.Failed != 0 {
		t.Fatalf("stats %+v: the call failed", s)
	}
	waitFor(t, wait, "the request's claim deleted after its reply", func() bool {
		keys, _ := store.List(ctx, claim.DefaultPrefix)
		return len(keys) == 0
	})
}

// claimedRecord is a record whose value, over the threshold, is claimed
// in claims' store.
func claimedRecord(t *testing.T, claims *claim.Claims, topic string, value []byte, kv ...string) *kgo.Record {
	t.Helper()
	rec := &kgo.Record{Topic: topic, Value: value, Headers: hdrs(kv...)}
	if ref, err := claims.Put(context.Background(), rec, claim.KindRecord); err != nil || ref.IsZero() {
		t.Fatalf("claim: %+v, %v", ref, err)
	}
	return rec
}

var storeDown = fmt.Errorf("%w: connection refused", claim.ErrUnavailable)

// An offline record whose claim store is down is fetched again until the
// store answers: nothing is dead-lettered, nothing committed past it,
// and it is processed once the store is back.
func TestClaimStoreOutageOffline(t *testing.T) {
	t.Parallel()
	store := claim.NewMemory()
	claims := newClaims(t, store)
	f := newFixture(t, 1)
	cfg := f.config()
	cfg.Claims = claims
	rep := start(t, cfg, handlerFunc(func(_ context.Context, in *Input, out Output) error {
		return out.Emit([]byte(strconv.Itoa(len(in.Value))), "text/plain")
	}))
	rec := claimedRecord(t, claims, f.in, bigValue(1<<20), protocol.HeaderID, "big")
	store.SetFail(storeDown)
	produce(t, rec, &kgo.Record{Topic: f.in, Value: []byte("small")})
	waitFor(t, wait, "a fetch retried", func() bool { return store.Gets() >= 3 })
	if n, c := count(t, f.dlq), committed(t, f.group, f.in)[0]; n != 0 || c > 0 {
		t.Fatalf("while the store is down: %d dead letters, committed %d; want none, 0", n, c)
	}
	store.SetFail(nil)
	outs := consume(t, f.out, 2, wait)
	var got []string
	for _, o := range outs {
		got = append(got, string(o.Value))
	}
	slices.Sort(got)
	if want := []string{"1048576", "5"}; !slices.Equal(got, want) {
		t.Errorf("outputs %q, want %q", got, want)
	}
	waitFor(t, wait, "both committed", func() bool { return committed(t, f.group, f.in)[0] == 2 })
	if s := rep.Stats(); s.DeadLettered != 0 || s.Failed != 0 {
		t.Errorf("stats %+v, want nothing failed", s)
	}
}

// A sync record's fetch is retried until its deadline, then answered
// deadline_exceeded naming the store; a replica that stops while
// retrying leaves an offline record uncommitted for the next owner.
func TestClaimStoreOutageSyncAndStop(t *testing.T) {
	t.Parallel()
	store := claim.NewMemory()
	claims := newClaims(t, store)
	f := newFixture(t, 1)
	cfg := f.config()
	cfg.Claims = claims
	rep := start(t, cfg, upper)
	deadline := time.Now().Add(time.Second)
	sync := claimedRecord(t, claims, f.in, bigValue(1<<20), protocol.HeaderID, "s1", protocol.HeaderReplyTo, f.reply,
		protocol.HeaderDeadline, strconv.FormatInt(deadline.UnixNano(), 10))
	offline := claimedRecord(t, claims, f.in, bigValue(1<<20), protocol.HeaderID, "o1")
	store.SetFail(storeDown)
	produce(t, sync, offline)
	r := consume(t, f.reply, 1, wait)[0]
	if code := streams.Code(hget(r, protocol.HeaderStatus)); code != streams.CodeDeadlineExceeded || !strings.Contains(hget(r, protocol.HeaderError), "unavailable") {
		t.Errorf("sync reply %s %q, want deadline_exceeded naming the store", code, hget(r, protocol.HeaderError))
	}
	if time.Now().Before(deadline) {
		t.Errorf("answered before the deadline")
	}
	waitFor(t, wait, "the sync record committed", func() bool { return committed(t, f.group, f.in)[0] == 1 })
	if err := rep.stop(t); err != nil {
		t.Fatal(err)
	}
	if rep.stopTook > cfg.DrainTimeout/2 {
		t.Errorf("stop took %s while retrying a fetch", rep.stopTook)
	}
	if c := committed(t, f.group, f.in)[0]; c != 1 {
		t.Errorf("committed %d after the stop, want 1: the offline record is the next owner's", c)
	}
	if n := count(t, f.dlq); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
}
