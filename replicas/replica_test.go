package replicas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/protocol"
)

const wait = 15 * time.Second // bound of every wait for records

func TestConfigRequiresTopics(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{
		{Brokers: []string{"x"}, Topics: []string{"a"}, Output: "o", DeadLetter: "d"},
		{Brokers: []string{"x"}, Group: "g", Output: "o", DeadLetter: "d"},
		{Brokers: []string{"x"}, Group: "g", Topics: []string{"a"}, DeadLetter: "d"},
		{Brokers: []string{"x"}, Group: "g", Topics: []string{"a"}, Output: "o"},
	} {
		if _, err := New(context.Background(), cfg, upper); err == nil {
			t.Errorf("New(%+v) succeeded; want a config error", cfg)
		}
	}
}

// Invariant 1: a unary result goes to the continuation, else to every
// successor, else to the caller, else to the output topic.
func TestUnaryRouting(t *testing.T) {
	t.Parallel()
	deadline := time.Now().Add(time.Hour).Truncate(time.Nanosecond)
	dl := strconv.FormatInt(deadline.UnixNano(), 10)

	type env struct {
		f          fixture
		succ, hops []string
	}
	cases := []struct {
		name       string
		succ, hops int // successor and continuation topics to make
		key        string
		headers    func(e env) []kgo.RecordHeader
		// where the one result must land, and what it must look like
		dest  func(e env) string
		check func(t *testing.T, e env, r *kgo.Record)
		empty func(e env) []string // topics that must stay empty
	}{{
		name: "reply-to",
		key:  "k1",
		headers: func(e env) []kgo.RecordHeader {
			return hdrs(protocol.HeaderID, "req-1", protocol.HeaderReplyTo, e.f.reply, protocol.HeaderContentType, "application/json")
		},
		dest: func(e env) string { return e.f.reply },
		check: func(t *testing.T, e env, r *kgo.Record) {
			if got := hget(r, protocol.HeaderID); got != "req-1" {
				t.Errorf("reply sl-id = %q, want req-1", got)
			}
			if got := hget(r, protocol.HeaderContentType); got != "text/plain" {
				t.Errorf("reply content-type = %q, want text/plain", got)
			}
			if hhas(r, protocol.HeaderStatus) || hhas(r, protocol.HeaderSeq) || hhas(r, protocol.HeaderEOS) {
				t.Errorf("unary success reply has status/seq/eos headers: %v", r.Headers)
			}
		},
		empty: func(e env) []string { return []string{e.f.out, e.f.dlq} },
	}, {
		name:    "output",
		key:     "k2",
		headers: func(env) []kgo.RecordHeader { return hdrs(protocol.HeaderID, "req-2") },
		dest:    func(e env) string { return e.f.out },
		check: func(t *testing.T, e env, r *kgo.Record) {
			if string(r.Key) != "k2" {
				t.Errorf("output key = %q, want the input's k2", r.Key)
			}
			if got := hget(r, protocol.HeaderID); got != "req-2" {
				t.Errorf("output sl-id = %q, want req-2", got)
			}
			if got := hget(r, protocol.HeaderContentType); got != "text/plain" {
				t.Errorf("output content-type = %q, want text/plain", got)
			}
		},
		empty: func(e env) []string { return []string{e.f.reply, e.f.dlq} },
	}, {
		name:    "output without id",
		key:     "k3",
		headers: func(env) []kgo.RecordHeader { return nil },
		dest:    func(e env) string { return e.f.out },
		check: func(t *testing.T, e env, r *kgo.Record) {
			if string(r.Key) != "k3" || hhas(r, protocol.HeaderID) {
				t.Errorf("output key %q headers %v: want key k3 and no sl-id", r.Key, r.Headers)
			}
		},
		empty: func(e env) []string { return []string{e.f.dlq} },
	}, {
		name: "successors",
		succ: 2,
		key:  "k4",
		headers: func(e env) []kgo.RecordHeader {
			return hdrs(protocol.HeaderID, "req-4", protocol.HeaderReplyTo, e.f.reply, protocol.HeaderDeadline, dl,
				protocol.HeaderTrace, "00-abc-def-01", protocol.HeaderModel, "m7", protocol.HeaderContentType, "application/json")
		},
		// checked for every successor below
		empty: func(e env) []string { return []string{e.f.reply, e.f.out, e.f.dlq} },
	}, {
		name: "continuation one hop",
		hops: 1,
		key:  "k5",
		headers: func(e env) []kgo.RecordHeader {
			return hdrs(protocol.HeaderID, "id1", protocol.HeaderReplyTo, e.f.reply, protocol.HeaderDeadline, dl,
				protocol.HeaderCont, e.hops[0]+"/id2")
		},
		dest: func(e env) string { return e.hops[0] },
		check: func(t *testing.T, e env, r *kgo.Record) {
			got, err := protocol.ParseEnvelope(r.Headers)
			if err != nil {
				t.Fatalf("forwarded envelope: %v", err)
			}
			want := protocol.Envelope{ID: "id2", ReplyTo: e.f.reply, Deadline: deadline, ContentType: "text/plain"}
			if !envEqual(got, want) {
				t.Errorf("forwarded envelope = %+v, want %+v", got, want)
			}
			if string(r.Key) != "id2" {
				t.Errorf("forwarded key = %q, want the hop id id2", r.Key)
			}
		},
		empty: func(e env) []string { return []string{e.f.reply, e.f.out, e.f.dlq} },
	}, {
		name: "continuation two hops",
		hops: 2,
		key:  "k6",
		headers: func(e env) []kgo.RecordHeader {
			return hdrs(protocol.HeaderID, "id1", protocol.HeaderReplyTo, e.f.reply,
				protocol.HeaderCont, e.hops[0]+"/id2,"+e.hops[1]+"/id3")
		},
		dest: func(e env) string { return e.hops[0] },
		check: func(t *testing.T, e env, r *kgo.Record) {
			got, err := protocol.ParseEnvelope(r.Headers)
			if err != nil {
				t.Fatalf("forwarded envelope: %v", err)
			}
			want := protocol.Envelope{ID: "id2", ReplyTo: e.f.reply, ContentType: "text/plain",
				Cont: []protocol.Hop{{Topic: e.hops[1], ID: "id3"}}}
			if !envEqual(got, want) {
				t.Errorf("forwarded envelope = %+v, want %+v", got, want)
			}
			if got := hget(r, protocol.HeaderCont); got != e.hops[1]+"/id3" {
				t.Errorf("forwarded sl-cont = %q, want %s/id3", got, e.hops[1])
			}
		},
		empty: func(e env) []string { return []string{e.hops[1], e.f.reply, e.f.out, e.f.dlq} },
	}, {
		name: "continuation beats successors",
		succ: 1,
		hops: 1,
		key:  "k7",
		headers: func(e env) []kgo.RecordHeader {
			return hdrs(protocol.HeaderID, "id1", protocol.HeaderCont, e.hops[0]+"/id2")
		},
		dest: func(e env) string { return e.hops[0] },
		check: func(t *testing.T, e env, r *kgo.Record) {
			if got := hget(r, protocol.HeaderID); got != "id2" || hhas(r, protocol.HeaderReplyTo) {
				t.Errorf("offline forward headers %v: want sl-id id2 and no sl-reply", r.Headers)
			}
		},
		empty: func(e env) []string { return []string{e.succ[0], e.f.out, e.f.dlq} },
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := env{f: newFixture(t, 1)}
			for range c.succ {
				e.succ = append(e.succ, uniq(t, "succ"))
			}
			for range c.hops {
				e.hops = append(e.hops, uniq(t, "hop"))
			}
			if extra := append(slices.Clone(e.succ), e.hops...); len(extra) > 0 {
				createTopics(t, 1, extra...)
			}
			var seen atomic.Pointer[Input]
			cfg := e.f.config()
			cfg.Successors = e.succ
			rep := start(t, cfg, handlerFunc(func(ctx context.Context, in *Input, out Output) error {
				seen.Store(in)
				return upper(ctx, in, out)
			}))
			in := produce(t, &kgo.Record{Topic: e.f.in, Key: []byte(c.key), Value: []byte("hello"), Headers: c.headers(e)})[0]

			dests := []string{}
			if c.dest != nil {
				dests = append(dests, c.dest(e))
			} else {
				dests = e.succ
			}
			for _, d := range dests {
				r := consume(t, d, 1, wait)[0]
				if string(r.Value) != "HELLO" {
					t.Errorf("%s: value %q, want HELLO", d, r.Value)
				}
				if c.check != nil {
					c.check(t, e, r)
				} else { // successors: same key, same envelope but the content type
					if string(r.Key) != c.key {
						t.Errorf("successor %s key = %q, want %q", d, r.Key, c.key)
					}
					want, _ := protocol.ParseEnvelope(in.Headers)
					want.ContentType = "text/plain"
					got, err := protocol.ParseEnvelope(r.Headers)
					if err != nil || !envEqual(got, want) {
						t.Errorf("successor %s envelope = %+v (%v), want %+v", d, got, err, want)
					}
				}
			}
			rep.stop(t)
			for _, d := range dests {
				if n := count(t, d); n != 1 {
					t.Errorf("%s holds %d records, want exactly 1", d, n)
				}
			}
			for _, topic := range c.empty(e) {
				if n := count(t, topic); n != 0 {
					t.Errorf("%s holds %d records, want none", topic, n)
				}
			}
			got := seen.Load()
			if got == nil || got.Topic != e.f.in || string(got.Key) != c.key || string(got.Value) != "hello" {
				t.Errorf("handler input = %+v, want topic %s key %s value hello", got, e.f.in, c.key)
			}
			if st := rep.Stats(); st.Processed != 1 || st.Failed != 0 {
				t.Errorf("stats %+v, want 1 processed, 0 failed", st)
			}
		})
	}
}

func envEqual(a, b protocol.Envelope) bool {
	return a.ID == b.ID && a.ReplyTo == b.ReplyTo && a.Deadline.Equal(b.Deadline) && a.Trace == b.Trace &&
		a.ContentType == b.ContentType && a.Model == b.Model && slices.Equal(a.Cont, b.Cont)
}

// faulty fails as its input value says: "invalid", "panic", "plain", or
// succeeds (upper case).
func faulty(calls *atomic.Int64) handlerFunc {
	return func(ctx context.Context, in *Input, out Output) error {
		calls.Add(1)
		switch string(in.Value) {
		case "invalid":
			return &streams.Error{Code: streams.CodeInvalidArgument, Msg: "bad input"}
		case "panic":
			panic("handler exploded")
		case "plain":
			return errors.New("plain failure")
		}
		return upper(ctx, in, out)
	}
}

// Invariant 2: failures reach the caller or the dead-letter topic, with
// their code, and a panic does not stop the replica.
func TestErrors(t *testing.T) {
	t.Parallel()
	type want struct {
		status   streams.Code
		contains string
	}
	cases := []struct {
		name  string
		reply bool     // the records carry sl-reply
		vals  []string // produced in order; the first is the failing one
		extra []string // extra headers of the failing record
		want  want
		calls int64 // handler calls expected
		ok    int   // successful results expected (after the failure)
	}{
		{name: "invalid argument replied", reply: true, vals: []string{"invalid"}, want: want{streams.CodeInvalidArgument, "bad input"}, calls: 1},
		{name: "invalid argument dead-lettered", vals: []string{"invalid", "good"}, want: want{streams.CodeInvalidArgument, "bad input"}, calls: 2, ok: 1},
		{name: "plain error dead-lettered as internal", vals: []string{"plain"}, want: want{streams.CodeInternal, "plain failure"}, calls: 1},
		{name: "panic replied", reply: true, vals: []string{"panic", "after", "again"}, want: want{streams.CodeInternal, "panicked"}, calls: 3, ok: 2},
		{name: "panic dead-lettered", vals: []string{"panic", "after"}, want: want{streams.CodeInternal, "panicked"}, calls: 2, ok: 1},
		{name: "undecodable deadline", vals: []string{"good"}, extra: []string{protocol.HeaderDeadline, "tomorrow"}, want: want{streams.CodeInvalidArgument, protocol.HeaderDeadline}, calls: 0},
		{name: "negative deadline", vals: []string{"good"}, extra: []string{protocol.HeaderDeadline, "-5"}, want: want{streams.CodeInvalidArgument, protocol.HeaderDeadline}, calls: 0},
		{name: "undecodable continuation", vals: []string{"good"}, extra: []string{protocol.HeaderCont, "no-slash"}, want: want{streams.CodeInvalidArgument, protocol.HeaderCont}, calls: 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, 1)
			var calls atomic.Int64
			rep := start(t, f.config(), faulty(&calls))

			// a good record first, so the failing one is not at offset 0
			recs := []*kgo.Record{{Topic: f.in, Key: []byte("warm"), Value: []byte("warm"), Headers: hdrs(protocol.HeaderID, "warm")}}
			for i, v := range c.vals {
				hs := hdrs(protocol.HeaderID, fmt.Sprintf("id-%d", i), "x-custom", "kept")
				if c.reply {
					hs = append(hs, hdrs(protocol.HeaderReplyTo, f.reply)...)
				}
				if i == 0 {
					hs = append(hs, hdrs(c.extra...)...)
				}
				recs = append(recs, &kgo.Record{Topic: f.in, Key: fmt.Appendf(nil, "key-%d", i), Value: []byte(v), Headers: hs})
			}
			produce(t, recs...)
			bad := recs[1]

			var failure *kgo.Record
			if c.reply {
				got := consume(t, f.reply, len(c.vals), wait)
				byID := map[string]*kgo.Record{}
				for _, r := range got {
					byID[hget(r, protocol.HeaderID)] = r
				}
				failure = byID["id-0"]
				if failure == nil {
					t.Fatalf("no reply for the failing record id-0 among %d replies", len(got))
				}
				if len(failure.Value) != 0 {
					t.Errorf("error reply has value %q", failure.Value)
				}
				for i, v := range c.vals[1:] {
					r := byID[fmt.Sprintf("id-%d", i+1)]
					if r == nil || string(r.Value) != strings.ToUpper(v) || hhas(r, protocol.HeaderStatus) {
						t.Errorf("reply to later record id-%d = %v, want value %q without status", i+1, r, strings.ToUpper(v))
					}
				}
			} else {
				failure = consume(t, f.dlq, 1, wait)[0]
				if string(failure.Key) != string(bad.Key) || string(failure.Value) != string(bad.Value) {
					t.Errorf("dead letter key/value = %q/%q, want the original %q/%q", failure.Key, failure.Value, bad.Key, bad.Value)
				}
				if got, want := hget(failure, protocol.HeaderSource), fmt.Sprintf("%s/%d/%d", f.in, bad.Partition, bad.Offset); got != want {
					t.Errorf("dead letter sl-source = %q, want %q", got, want)
				}
				if got := hget(failure, protocol.HeaderDeployment); got != "dep" {
					t.Errorf("dead letter sl-deployment = %q, want dep", got)
				}
				if hget(failure, "x-custom") != "kept" || hget(failure, protocol.HeaderID) != "id-0" {
					t.Errorf("dead letter lost the original headers: %v", failure.Headers)
				}
				if len(c.extra) > 0 && hget(failure, c.extra[0]) != c.extra[1] {
					t.Errorf("dead letter lost the offending header %s: %v", c.extra[0], failure.Headers)
				}
				outs := consume(t, f.out, 1+c.ok, wait) // warm-up and later records
				for _, r := range outs {
					if r.Value == nil || hhas(r, protocol.HeaderStatus) {
						t.Errorf("bad output %v", r)
					}
				}
			}
			if got := streams.Code(hget(failure, protocol.HeaderStatus)); got != c.want.status {
				t.Errorf("sl-status = %q, want %q", got, c.want.status)
			}
			if got := hget(failure, protocol.HeaderError); !strings.Contains(got, c.want.contains) {
				t.Errorf("sl-error = %q, want it to mention %q", got, c.want.contains)
			}

			rep.stop(t)
			if got := calls.Load(); got != c.calls+1 { // +1: the warm-up record
				t.Errorf("handler called %d times, want %d", got, c.calls+1)
			}
			st := rep.Stats()
			wantDL := int64(1)
			if c.reply {
				wantDL = 0
			}
			if st.Failed != 1 || st.DeadLettered != wantDL || st.Processed != int64(1+c.ok) {
				t.Errorf("stats %+v, want 1 failed, %d dead-lettered, %d processed", st, wantDL, 1+c.ok)
			}
			if n := count(t, f.dlq); n != wantDL {
				t.Errorf("dead-letter topic holds %d records, want %d", n, wantDL)
			}
			if got := committed(t, f.group, f.in)[0]; got != int64(len(recs)) {
				t.Errorf("committed offset %d, want %d: a failed record must still be consumed", got, len(recs))
			}
		})
	}
}

// An output that cannot be produced (its topic does not exist) is
// dead-lettered as unavailable, and the record is still consumed.
func TestProduceFailureDeadLetters(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	cfg := f.config()
	cfg.Opts = []kgo.Opt{kgo.UnknownTopicRetries(0), kgo.MetadataMinAge(50 * time.Millisecond)}
	rep := start(t, cfg, upper)
	missing := uniq(t, "missing")
	in := produce(t, &kgo.Record{Topic: f.in, Key: []byte("k"), Value: []byte("v"),
		Headers: hdrs(protocol.HeaderID, "id", protocol.HeaderReplyTo, missing)})[0]
	dl := consume(t, f.dlq, 1, wait)[0]
	if got := streams.Code(hget(dl, protocol.HeaderStatus)); got != streams.CodeUnavailable {
		t.Errorf("sl-status = %q, want unavailable", got)
	}
	if got := hget(dl, protocol.HeaderError); !strings.Contains(got, missing) {
		t.Errorf("sl-error = %q, want it to name %s", got, missing)
	}
	if string(dl.Value) != "v" || hget(dl, protocol.HeaderSource) != fmt.Sprintf("%s/0/%d", f.in, in.Offset) {
		t.Errorf("dead letter %q headers %v: want the original value and its source", dl.Value, dl.Headers)
	}
	rep.stop(t)
	if got := committed(t, f.group, f.in)[0]; got != 1 {
		t.Errorf("committed offset %d, want 1", got)
	}
}

// Invariant 3: a record past its deadline never reaches the handler; a
// record within its deadline gets it on its context.
func TestDeadline(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	var calls atomic.Int64
	var ctxDeadline atomic.Pointer[time.Time]
	rep := start(t, f.config(), handlerFunc(func(ctx context.Context, in *Input, out Output) error {
		calls.Add(1)
		if d, ok := ctx.Deadline(); ok {
			ctxDeadline.Store(&d)
		}
		return upper(ctx, in, out)
	}))
	past := strconv.FormatInt(time.Now().Add(-time.Second).UnixNano(), 10)
	future := time.Now().Add(time.Hour)
	produce(t,
		&kgo.Record{Topic: f.in, Value: []byte("late"), Headers: hdrs(protocol.HeaderID, "late", protocol.HeaderReplyTo, f.reply, protocol.HeaderDeadline, past)},
		&kgo.Record{Topic: f.in, Key: []byte("lk"), Value: []byte("late-offline"), Headers: hdrs(protocol.HeaderID, "late-offline", protocol.HeaderDeadline, past)},
		&kgo.Record{Topic: f.in, Value: []byte("timely"), Headers: hdrs(protocol.HeaderID, "timely", protocol.HeaderReplyTo, f.reply, protocol.HeaderDeadline, strconv.FormatInt(future.UnixNano(), 10))},
	)
	replies := map[string]*kgo.Record{}
	for _, r := range consume(t, f.reply, 2, wait) {
		replies[hget(r, protocol.HeaderID)] = r
	}
	if r := replies["late"]; r == nil || streams.Code(hget(r, protocol.HeaderStatus)) != streams.CodeDeadlineExceeded {
		t.Errorf("reply to the late record = %v, want deadline_exceeded", r)
	}
	if r := replies["timely"]; r == nil || string(r.Value) != "TIMELY" {
		t.Errorf("reply to the timely record = %v, want TIMELY", r)
	}
	dl := consume(t, f.dlq, 1, wait)[0]
	if streams.Code(hget(dl, protocol.HeaderStatus)) != streams.CodeDeadlineExceeded || string(dl.Key) != "lk" {
		t.Errorf("dead letter of the late offline record: key %q headers %v", dl.Key, dl.Headers)
	}
	rep.stop(t)
	if n := calls.Load(); n != 1 {
		t.Errorf("handler called %d times, want 1 (only the timely record)", n)
	}
	if d := ctxDeadline.Load(); d == nil || !d.Equal(time.Unix(0, future.UnixNano())) {
		t.Errorf("handler context deadline = %v, want the record's %v", d, future)
	}
	if st := rep.Stats(); st.Expired != 2 || st.Failed != 2 || st.Processed != 1 {
		t.Errorf("stats %+v, want 2 expired, 2 failed, 1 processed", st)
	}
}

// Invariant 4: a poison record does not stall its partition.
func TestPoisonDoesNotStall(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	var calls atomic.Int64
	rep := start(t, f.config(), faulty(&calls))
	vals := []string{"good-a", "invalid", "good-b", "good-c"}
	for i, v := range vals {
		produce(t, &kgo.Record{Topic: f.in, Key: fmt.Appendf(nil, "k%d", i), Value: []byte(v)})
	}
	var outs []string
	for _, r := range consume(t, f.out, 3, wait) {
		outs = append(outs, string(r.Value))
	}
	slices.Sort(outs)
	if want := []string{"GOOD-A", "GOOD-B", "GOOD-C"}; !slices.Equal(outs, want) {
		t.Errorf("outputs %v, want %v", outs, want)
	}
	if dl := consume(t, f.dlq, 1, wait)[0]; string(dl.Key) != "k1" || string(dl.Value) != "invalid" {
		t.Errorf("dead letter %q=%q, want k1=invalid", dl.Key, dl.Value)
	}
	rep.stop(t)
	if got := committed(t, f.group, f.in); got[0] != 4 {
		t.Errorf("committed offsets %v, want partition 0 at 4", got)
	}
	if n := count(t, f.out); n != 3 {
		t.Errorf("output holds %d records, want 3", n)
	}
}

// Invariant 5: a partition's offset does not move past a record whose
// outputs are not acknowledged, whatever completes after it.
func TestCommitOnlyAfterOutput(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	release := make(chan struct{})
	blocked := make(chan struct{})
	rep := start(t, f.config(), handlerFunc(func(ctx context.Context, in *Input, out Output) error {
		if string(in.Value) == "0" {
			close(blocked)
			<-release
		}
		return upper(ctx, in, out)
	}))
	produce(t, &kgo.Record{Topic: f.in, Value: []byte("0")})
	select {
	case <-blocked:
	case <-time.After(wait):
		t.Fatal("record #0 never reached the handler")
	}
	for i := 1; i < 4; i++ { // fetched after #0 (TestBlockedRecordDoesNotHoldUpOthers: in one fetch)
		produce(t, &kgo.Record{Topic: f.in, Value: []byte(strconv.Itoa(i))})
	}
	consume(t, f.out, 3, wait) // #1..#3 are done
	time.Sleep(2500 * time.Millisecond)
	if got, ok := committed(t, f.group, f.in)[0]; ok && got != 0 {
		close(release)
		t.Fatalf("committed offset %d while record #0 is still in flight; want none or 0", got)
	}
	if st := rep.Stats(); st.Ongoing != 1 || st.Processed != 3 {
		t.Errorf("stats %+v while #0 is blocked, want 1 ongoing, 3 processed", st)
	}
	close(release)
	waitFor(t, 10*time.Second, "the committed offset to reach 4", func() bool {
		return committed(t, f.group, f.in)[0] == 4
	})
	rep.stop(t)
}

// Invariant 6: MaxOngoing bounds the records being processed.
func TestBoundedConcurrency(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2)
	cfg := f.config()
	cfg.MaxOngoing = 3
	release := make(chan struct{})
	var now, peak, calls atomic.Int64
	rep := start(t, cfg, handlerFunc(func(ctx context.Context, in *Input, out Output) error {
		calls.Add(1)
		n := now.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		<-release
		now.Add(-1)
		return upper(ctx, in, out)
	}))
	var stop atomic.Bool
	var peakOngoing atomic.Int64
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for !stop.Load() {
			if o := rep.Stats().Ongoing; o > peakOngoing.Load() {
				peakOngoing.Store(o)
			}
			time.Sleep(time.Millisecond)
		}
	}()
	for i := range 20 {
		produce(t, &kgo.Record{Topic: f.in, Partition: int32(i % 2), Value: fmt.Appendf(nil, "v%d", i)})
	}
	waitFor(t, wait, "3 handler calls in flight", func() bool { return now.Load() == 3 })
	time.Sleep(time.Second) // more fetches would start more calls here
	if n := calls.Load(); n != 3 {
		t.Errorf("%d handler calls started while 3 are blocked; want 3", n)
	}
	close(release)
	consume(t, f.out, 20, wait)
	rep.stop(t)
	stop.Store(true)
	<-sampled
	if p := peak.Load(); p > 3 {
		t.Errorf("%d handler calls ran at once, want at most 3", p)
	}
	if p := peakOngoing.Load(); p != 3 {
		t.Errorf("Stats().Ongoing peaked at %d, want 3", p)
	}
	if c := committed(t, f.group, f.in); c[0]+c[1] != 20 {
		t.Errorf("committed %v, want 20 records in all", c)
	}
}

// Invariant 7: Ordered processes a partition one record at a time, in
// offset order; unordered processes records of a partition at once.
func TestOrdered(t *testing.T) {
	t.Parallel()
	const n = 40
	for _, ordered := range []bool{true, false} {
		t.Run(fmt.Sprintf("ordered=%v", ordered), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, 1)
			cfg := f.config()
			cfg.Ordered = ordered
			cfg.MaxOngoing = 10
			var now, peak atomic.Int64
			h := handlerFunc(func(ctx context.Context, in *Input, out Output) error {
				c := now.Add(1)
				for p := peak.Load(); c > p && !peak.CompareAndSwap(p, c); p = peak.Load() {
				}
				if ordered {
					time.Sleep(time.Duration(rand.IntN(3001)) * time.Microsecond)
				} else { // wait (bounded) for a second call to overlap this one
					for end := time.Now().Add(2 * time.Second); peak.Load() < 2 && time.Now().Before(end); {
						time.Sleep(time.Millisecond)
					}
				}
				now.Add(-1)
				return upper(ctx, in, out)
			})
			var recs []*kgo.Record
			for i := range n {
				recs = append(recs, &kgo.Record{Topic: f.in, Value: fmt.Appendf(nil, "v%03d", i)})
			}
			produce(t, recs...) // before start: the first fetch brings many
			rep := start(t, cfg, h)
			outs := consume(t, f.out, n, wait)
			rep.stop(t)
			if ordered {
				for i, r := range outs {
					if want := fmt.Sprintf("V%03d", i); string(r.Value) != want {
						t.Fatalf("output #%d is %q, want %q: ordered mode reordered", i, r.Value, want)
					}
				}
				if p := peak.Load(); p != 1 {
					t.Errorf("ordered mode ran %d calls of one partition at once", p)
				}
			} else if p := peak.Load(); p < 2 {
				t.Errorf("unordered mode never ran two calls at once (peak %d)", p)
			}
			if got := committed(t, f.group, f.in)[0]; got != n {
				t.Errorf("committed offset %d, want %d", got, n)
			}
		})
	}
}

// Invariant 7, several partitions: order holds per partition, and the
// partitions run side by side.
func TestOrderedPerPartition(t *testing.T) {
	t.Parallel()
	const parts, n = 3, 30
	f := newFixture(t, parts)
	outs := make([]string, parts)
	for p := range parts {
		outs[p] = uniq(t, fmt.Sprintf("out%d", p))
	}
	createTopics(t, 1, outs...)
	cfg := f.config()
	cfg.Ordered = true
	cfg.MaxOngoing = 9
	var now, peak atomic.Int64
	h := handlerFunc(func(ctx context.Context, in *Input, out Output) error {
		c := now.Add(1)
		for p := peak.Load(); c > p && !peak.CompareAndSwap(p, c); p = peak.Load() {
		}
		time.Sleep(time.Duration(1+rand.IntN(3)) * time.Millisecond)
		now.Add(-1)
		return upper(ctx, in, out)
	})
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Topic: f.in, Partition: int32(i % parts), Key: []byte{byte('0' + i%parts)}, Value: fmt.Appendf(nil, "v%03d", i)})
	}
	produce(t, recs...)
	rep := start(t, cfg, h)
	got := map[string][]string{}
	for _, r := range consume(t, f.out, n, wait) {
		got[string(r.Key)] = append(got[string(r.Key)], string(r.Value))
	}
	rep.stop(t)
	for k, vs := range got {
		if !slices.IsSorted(vs) {
			t.Errorf("partition %s outputs out of order: %v", k, vs)
		}
	}
	if p := peak.Load(); p > parts {
		t.Errorf("%d calls at once with %d ordered partitions", p, parts)
	}
	t.Logf("peak concurrency across %d ordered partitions: %d", parts, peak.Load())
}

// Invariant 8: a streaming handler's items carry sl-seq, and an end record
// carries sl-eos; a failure ends the stream with an error reply.
func TestStreaming(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		items   int
		failAt  int // fail after this many items; -1 never
		reply   bool
		hop     bool
		wantErr streams.Code
	}{
		{name: "five items", items: 5, failAt: -1, reply: true},
		{name: "no items", items: 0, failAt: -1, reply: true},
		{name: "error after two", items: 5, failAt: 2, reply: true, wantErr: streams.CodeInvalidArgument},
		{name: "offline", items: 3, failAt: -1},
		{name: "offline error after two", items: 5, failAt: 2, wantErr: streams.CodeInvalidArgument},
		{name: "continuation refused", items: 3, failAt: -1, reply: true, hop: true, wantErr: streams.CodeInvalidArgument},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, 1)
			h := streamFunc(func(_ context.Context, in *Input, out Output) error {
				for i := range c.items {
					if i == c.failAt {
						return streams.Errorf(streams.CodeInvalidArgument, "stream broke at %d", i)
					}
					if err := out.Emit(fmt.Appendf(nil, "item-%d", i), "text/plain"); err != nil {
						return err
					}
				}
				return nil
			})
			rep := start(t, f.config(), h)
			hs := hdrs(protocol.HeaderID, "s1")
			if c.reply {
				hs = append(hs, hdrs(protocol.HeaderReplyTo, f.reply)...)
			}
			hop := uniq(t, "hop")
			if c.hop {
				createTopics(t, 1, hop)
				hs = append(hs, hdrs(protocol.HeaderCont, hop+"/s2")...)
			}
			produce(t, &kgo.Record{Topic: f.in, Key: []byte("sk"), Value: []byte("go"), Headers: hs})

			emitted := c.items
			if c.failAt >= 0 {
				emitted = c.failAt
			}
			if c.hop {
				emitted = 0
			}
			dest := f.out
			if c.reply {
				dest = f.reply
			}
			wantRecs := emitted + 1 // the items, then the end or the error
			if !c.reply && c.wantErr != "" {
				wantRecs = emitted // the error goes to the dead-letter topic
			}
			got := consume(t, dest, wantRecs, wait)
			for i, r := range got[:emitted] {
				if string(r.Value) != fmt.Sprintf("item-%d", i) || hget(r, protocol.HeaderSeq) != strconv.Itoa(i) ||
					hget(r, protocol.HeaderID) != "s1" || hget(r, protocol.HeaderContentType) != "text/plain" {
					t.Errorf("item %d: value %q headers %v", i, r.Value, r.Headers)
				}
				if !c.reply && string(r.Key) != "sk" {
					t.Errorf("offline item %d key %q, want sk", i, r.Key)
				}
			}
			switch {
			case c.wantErr != "" && c.reply:
				last := got[emitted]
				if streams.Code(hget(last, protocol.HeaderStatus)) != c.wantErr || hhas(last, protocol.HeaderEOS) {
					t.Errorf("last reply headers %v, want sl-status %s and no sl-eos", last.Headers, c.wantErr)
				}
			case c.wantErr != "":
				dl := consume(t, f.dlq, 1, wait)[0]
				if streams.Code(hget(dl, protocol.HeaderStatus)) != c.wantErr {
					t.Errorf("dead letter headers %v, want sl-status %s", dl.Headers, c.wantErr)
				}
			default:
				last := got[emitted]
				if hget(last, protocol.HeaderEOS) != strconv.Itoa(c.items) || hget(last, protocol.HeaderID) != "s1" ||
					hhas(last, protocol.HeaderSeq) || hhas(last, protocol.HeaderStatus) || len(last.Value) != 0 {
					t.Errorf("end record value %q headers %v, want sl-eos %d", last.Value, last.Headers, c.items)
				}
				if !c.reply && string(last.Key) != "sk" {
					t.Errorf("offline end record key %q, want sk", last.Key)
				}
			}
			rep.stop(t)
			if n := count(t, dest); n != int64(wantRecs) {
				t.Errorf("%s holds %d records, want %d", dest, n, wantRecs)
			}
			if c.hop {
				if n := count(t, hop); n != 0 {
					t.Errorf("a streaming result was forwarded to %s (%d records)", hop, n)
				}
			}
			if got := committed(t, f.group, f.in)[0]; got != 1 {
				t.Errorf("committed offset %d, want 1", got)
			}
		})
	}
}

// The caller side reassembles a replica's stream and unary replies.
func TestCallerRoundTrip(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	g := fixture{in: uniq(t, "in2"), out: f.out, dlq: f.dlq, group: uniq(t, "group2")}
	createTopics(t, 1, g.in)
	start(t, f.config(), streamFunc(func(_ context.Context, in *Input, out Output) error {
		for i := range 4 {
			if err := out.Emit(fmt.Appendf(nil, "%s-%d", in.Value, i), "text/plain"); err != nil {
				return err
			}
		}
		return nil
	}))
	start(t, g.config(), upper)

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := streams.NewCaller(ctx, brokers, streams.Namer{}, streams.Instance(), testLog)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())

	p := c.Start(ctx, &protocol.Request{Topic: f.in, Value: []byte("x")})
	defer p.Close()
	var items []string
	for {
		r, err := p.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("stream: %v after %v", err, items)
		}
		items = append(items, string(r.Value))
	}
	if want := []string{"x-0", "x-1", "x-2", "x-3"}; !slices.Equal(items, want) {
		t.Errorf("stream items %v, want %v", items, want)
	}
	r, err := c.Call(ctx, &protocol.Request{Topic: g.in, Value: []byte("unary")})
	if err != nil || string(r.Value) != "UNARY" || r.ContentType != "text/plain" {
		t.Errorf("unary call = %q %q %v, want UNARY text/plain", r.Value, r.ContentType, err)
	}
}

// Invariant 9: cancelling Run lets the records in flight finish, produce
// and commit before Run returns nil, and starts no new ones.
func TestSoftStop(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		maxOngoing int
		records    int
	}{
		{name: "one in flight", maxOngoing: 10, records: 1},
		{name: "full", maxOngoing: 1, records: 3}, // Run waits for a free slot when cancelled
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, 1)
			cfg := f.config()
			cfg.MaxOngoing = c.maxOngoing
			started := make(chan struct{}, c.records)
			var calls, finished atomic.Int64
			rep := start(t, cfg, handlerFunc(func(ctx context.Context, in *Input, out Output) error {
				calls.Add(1)
				started <- struct{}{}
				time.Sleep(300 * time.Millisecond)
				finished.Add(1)
				return upper(ctx, in, out)
			}))
			for i := range c.records {
				produce(t, &kgo.Record{Topic: f.in, Value: fmt.Appendf(nil, "slow-%d", i)})
			}
			select {
			case <-started:
			case <-time.After(wait):
				t.Fatal("no record reached the handler")
			}
			if err := rep.stop(t); err != nil {
				t.Fatalf("Run returned %v, want nil", err)
			}
			if calls.Load() != 1 || finished.Load() != 1 {
				t.Fatalf("after Run returned: %d calls started, %d finished; want the one in flight, finished",
					calls.Load(), finished.Load())
			}
			if n := count(t, f.out); n != 1 {
				t.Errorf("output holds %d records after Run returned, want 1", n)
			}
			if got := committed(t, f.group, f.in)[0]; got != 1 {
				t.Errorf("committed offset %d after Run returned, want 1", got)
			}
			t.Logf("soft stop took %s", rep.stopTook)
		})
	}
}

// A record that outlives DrainTimeout is not committed: it will be
// processed again.
func TestSoftStopDrainTimeout(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	cfg := f.config()
	cfg.DrainTimeout = 500 * time.Millisecond
	started := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	rep := start(t, cfg, handlerFunc(func(ctx context.Context, in *Input, out Output) error {
		if string(in.Value) == "stuck" {
			once.Do(func() { close(started) })
			<-release
		}
		return upper(ctx, in, out)
	}))
	defer close(release)
	produce(t, &kgo.Record{Topic: f.in, Value: []byte("fast")}, &kgo.Record{Topic: f.in, Value: []byte("stuck")})
	select {
	case <-started:
	case <-time.After(wait):
		t.Fatal("the stuck record never reached the handler")
	}
	consume(t, f.out, 1, wait)
	if err := rep.stop(t); err != nil {
		t.Fatalf("Run returned %v, want nil", err)
	}
	if got := committed(t, f.group, f.in)[0]; got != 1 {
		t.Errorf("committed offset %d, want 1: the finished record only", got)
	}
	t.Logf("stop with a stuck record took %s (DrainTimeout %s)", rep.stopTook, cfg.DrainTimeout)
}

// Invariant 10: a second replica joining the group takes partitions over;
// every record is processed at least once, every reply arrives, and all
// offsets end committed.
func TestRevoke(t *testing.T) {
	t.Parallel()
	const parts = 4
	f := newFixture(t, parts)
	cfg := f.config()
	cfg.MaxOngoing = 8
	cfg.Opts = []kgo.Opt{kgo.HeartbeatInterval(200 * time.Millisecond)}
	var mu sync.Mutex
	calls := map[string]int{}
	h := handlerFunc(func(ctx context.Context, in *Input, out Output) error {
		mu.Lock()
		calls[in.Env.ID]++
		mu.Unlock()
		time.Sleep(time.Duration(2+rand.IntN(10)) * time.Millisecond)
		return upper(ctx, in, out)
	})
	n := 0
	send := func(k int) {
		for range k {
			id := fmt.Sprintf("r%04d", n)
			produce(t, &kgo.Record{Topic: f.in, Partition: int32(n % parts), Key: []byte(id), Value: []byte(id),
				Headers: hdrs(protocol.HeaderID, id, protocol.HeaderReplyTo, f.reply)})
			n++
			time.Sleep(2 * time.Millisecond)
		}
	}
	split := func(a, b *running) bool {
		pa, pb := a.Stats().Partitions, b.Stats().Partitions
		return pa > 0 && pb > 0 && pa+pb == parts
	}
	a := start(t, cfg, h)
	send(40)
	waitFor(t, wait, "replica A to own all partitions", func() bool { return a.Stats().Partitions == parts })
	b := start(t, cfg, h)
	for end := time.Now().Add(wait); !split(a, b); { // records keep coming during the rebalance
		if time.Now().After(end) {
			t.Fatalf("partitions not split between A and B within %s", wait)
		}
		send(8)
	}
	send(40)
	seen := map[string]int{}
	consumeUntil(t, f.reply, 30*time.Second, func(r *kgo.Record) bool {
		if want := strings.ToUpper(hget(r, protocol.HeaderID)); string(r.Value) != want || hhas(r, protocol.HeaderStatus) {
			t.Errorf("reply %v, want value %s", r, want)
		}
		seen[hget(r, protocol.HeaderID)]++
		return len(seen) == n
	})
	sa, sb := a.Stats(), b.Stats()
	a.stop(t)
	b.stop(t)

	dups, dupReplies := 0, 0
	mu.Lock()
	for i := range n {
		id := fmt.Sprintf("r%04d", i)
		switch c := calls[id]; {
		case c == 0:
			t.Errorf("record %s never processed", id)
		case c > 1:
			dups += c - 1
		}
		dupReplies += max(seen[id]-1, 0)
	}
	mu.Unlock()
	t.Logf("%d records; A processed %d (now %d partitions), B processed %d (now %d partitions); %d duplicate calls, %d duplicate replies",
		n, sa.Processed, sa.Partitions, sb.Processed, sb.Partitions, dups, dupReplies)
	if sb.Processed == 0 {
		t.Errorf("replica B processed nothing after the rebalance")
	}
	end := endOffsets(t, f.in)
	got := committed(t, f.group, f.in)
	for p, e := range end {
		if got[p] != e {
			t.Errorf("partition %d committed at %d, want its end offset %d", p, got[p], e)
		}
	}
}

// A revoke waits for the moving partition's record in flight and commits
// it, so the new owner does not process it again; when the record outlives
// DrainTimeout it is not committed and the new owner processes it again.
func TestRevokeWaitsForInFlight(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		drain time.Duration
		twice int // records processed twice: the one whose partition moved
	}{
		{name: "within drain timeout", drain: 5 * time.Second, twice: 0},
		{name: "past drain timeout", drain: 200 * time.Millisecond, twice: 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, 2)
			cfg := f.config()
			cfg.DrainTimeout = c.drain
			cfg.Opts = []kgo.Opt{kgo.HeartbeatInterval(100 * time.Millisecond)}
			var mu sync.Mutex
			calls := map[string]int{}
			var slept atomic.Int64
			h := handlerFunc(func(ctx context.Context, in *Input, out Output) error {
				mu.Lock()
				calls[in.Env.ID]++
				first := calls[in.Env.ID] == 1
				mu.Unlock()
				if first {
					slept.Add(1)
					time.Sleep(time.Second)
				}
				return upper(ctx, in, out)
			})
			produce(t,
				&kgo.Record{Topic: f.in, Partition: 0, Value: []byte("p0"), Headers: hdrs(protocol.HeaderID, "p0", protocol.HeaderReplyTo, f.reply)},
				&kgo.Record{Topic: f.in, Partition: 1, Value: []byte("p1"), Headers: hdrs(protocol.HeaderID, "p1", protocol.HeaderReplyTo, f.reply)},
			)
			a := start(t, cfg, h)
			waitFor(t, wait, "A to run both records", func() bool { return slept.Load() == 2 })
			b := start(t, cfg, h)
			waitFor(t, wait, "one partition each", func() bool {
				return a.Stats().Partitions == 1 && b.Stats().Partitions == 1
			})
			replies := 0
			consumeUntil(t, f.reply, wait, func(*kgo.Record) bool { replies++; return replies == 2+c.twice })
			a.stop(t)
			b.stop(t)
			mu.Lock()
			twice := 0
			for id, n := range calls {
				if n > 1 {
					twice++
					t.Logf("%s processed %d times", id, n)
				}
			}
			mu.Unlock()
			if twice != c.twice {
				t.Errorf("%d records processed twice, want %d (calls %v)", twice, c.twice, calls)
			}
			if got := committed(t, f.group, f.in); got[0] != 1 || got[1] != 1 {
				t.Errorf("committed %v, want both partitions at 1", got)
			}
		})
	}
}

// Bug: a soft stop waits up to twice DrainTimeout for a record that does
// not finish: Run's drain waits DrainTimeout, then Close leaves the group,
// which calls the revoke callback, which waits DrainTimeout again for the
// same record.
func TestSoftStopBoundedByDrainTimeout(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	cfg := f.config()
	cfg.DrainTimeout = time.Second
	started := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	rep := start(t, cfg, handlerFunc(func(ctx context.Context, in *Input, out Output) error {
		close(started)
		<-release
		return upper(ctx, in, out)
	}))
	produce(t, &kgo.Record{Topic: f.in, Value: []byte("stuck")})
	select {
	case <-started:
	case <-time.After(wait):
		t.Fatal("the record never reached the handler")
	}
	rep.stop(t)
	if limit := cfg.DrainTimeout + cfg.DrainTimeout/2; rep.stopTook > limit {
		t.Errorf("soft stop took %s with DrainTimeout %s; want at most about DrainTimeout", rep.stopTook, cfg.DrainTimeout)
	}
}

// Bug: in Ordered mode, records queued behind a record that outlives the
// revoke's DrainTimeout are still processed by the old owner after the
// partition was revoked, concurrently with the new owner, which processes
// them again from the committed offset.
func TestOrderedRevokeSkipsQueued(t *testing.T) {
	t.Parallel()
	const queued = 4
	f := newFixture(t, 2)
	cfg := f.config()
	cfg.Ordered = true
	cfg.DrainTimeout = 200 * time.Millisecond
	cfg.Opts = []kgo.Opt{kgo.HeartbeatInterval(100 * time.Millisecond)}
	var mu sync.Mutex
	calls := map[string][]string{} // id -> the replicas that processed it
	var heads atomic.Int64
	handler := func(name string) Handler {
		return handlerFunc(func(ctx context.Context, in *Input, out Output) error {
			mu.Lock()
			calls[in.Env.ID] = append(calls[in.Env.ID], name)
			first := len(calls[in.Env.ID]) == 1
			mu.Unlock()
			if first && strings.HasSuffix(in.Env.ID, "-0") { // each partition's head outlives the drain
				heads.Add(1)
				time.Sleep(time.Second)
			}
			return upper(ctx, in, out)
		})
	}
	var recs []*kgo.Record
	for p := range int32(2) {
		for i := range queued + 1 {
			id := fmt.Sprintf("p%d-%d", p, i)
			recs = append(recs, &kgo.Record{Topic: f.in, Partition: p, Value: []byte(id), Headers: hdrs(protocol.HeaderID, id)})
		}
	}
	produce(t, recs...)
	a := start(t, cfg, handler("A"))
	waitFor(t, wait, "A to run both partitions' heads", func() bool { return heads.Load() == 2 })
	b := start(t, cfg, handler("B"))
	waitFor(t, wait, "one partition each", func() bool {
		return a.Stats().Partitions == 1 && b.Stats().Partitions == 1
	})
	waitFor(t, wait, "A to go idle", func() bool { return a.Stats().Ongoing == 0 })
	a.stop(t)
	b.stop(t)
	mu.Lock()
	defer mu.Unlock()
	for id, by := range calls {
		if !strings.HasSuffix(id, "-0") && len(by) > 1 {
			t.Errorf("queued record %s processed by %v: the old owner ran it after its partition was revoked", id, by)
		}
	}
}

// Bug: records fetched together wait behind a blocked one although
// MaxOngoing leaves room. dispatch starts a worker only when r.waiting is 0,
// but an idle worker counts as waiting until it is scheduled and takes its
// record, so one idle worker makes every record of the batch go to it.
func TestBlockedRecordDoesNotHoldUpOthers(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	cfg := f.config()
	cfg.MaxOngoing = 10
	release := make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	defer unblock()
	rep := start(t, cfg, handlerFunc(func(ctx context.Context, in *Input, out Output) error {
		if string(in.Value) == "block" {
			<-release
		}
		return upper(ctx, in, out)
	}))
	produce(t, &kgo.Record{Topic: f.in, Value: []byte("warm")})
	consume(t, f.out, 1, wait)
	time.Sleep(100 * time.Millisecond) // the worker is idle again
	// one batch, so one fetch
	produce(t,
		&kgo.Record{Topic: f.in, Value: []byte("block")},
		&kgo.Record{Topic: f.in, Value: []byte("a")},
		&kgo.Record{Topic: f.in, Value: []byte("b")},
		&kgo.Record{Topic: f.in, Value: []byte("c")},
	)
	for end := time.Now().Add(3 * time.Second); count(t, f.out) < 4 && time.Now().Before(end); {
		time.Sleep(50 * time.Millisecond)
	}
	n := count(t, f.out)
	st := rep.Stats()
	unblock()
	if n != 4 {
		t.Errorf("%d of 3 records behind the blocked one completed within 3s (stats %+v); they waited for a worker although MaxOngoing is %d",
			n-1, st, cfg.MaxOngoing)
	}
	consume(t, f.out, 5, wait)
	rep.stop(t)
}

// An answer too large for the broker reaches its caller at once as an
// error naming the cause (never a wait until the deadline), counted as
// failed.
func TestAnswerTooLargeAnswersTheCaller(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	huge := handlerFunc(func(_ context.Context, _ *Input, out Output) error {
		return out.Emit(make([]byte, 3<<20), "application/octet-stream")
	})
	rep := start(t, f.config(), huge)
	produce(t, &kgo.Record{Topic: f.in, Key: []byte("k"), Value: []byte("v"),
		Headers: hdrs(protocol.HeaderID, "id", protocol.HeaderReplyTo, f.reply)})
	r := consume(t, f.reply, 1, wait)[0]
	if got := streams.Code(hget(r, protocol.HeaderStatus)); got != streams.CodeInternal {
		t.Errorf("sl-status = %q, want internal", got)
	}
	if got := hget(r, protocol.HeaderError); !strings.Contains(got, "could not be delivered") || !strings.Contains(got, "MESSAGE_TOO_LARGE") || !strings.Contains(got, "no claim store") {
		t.Errorf("sl-error = %q, want it to name the cause", got)
	}
	waitFor(t, wait, "the request counted as failed", func() bool { return rep.Stats().Failed == 1 })
}
