package streams

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/streams/protocol"
)

func hdr(k, v string) kgo.RecordHeader { return kgo.RecordHeader{Key: k, Value: []byte(v)} }

// ---- Pending state machine, no broker ----

func testPending(id string) (*Caller, *Pending) {
	c := &Caller{waits: map[string]*Pending{}}
	p := newPending(c, id)
	c.waits[id] = p
	return c, p
}

func unaryReply(v string) Reply { return Reply{Value: []byte(v), Seq: -1, eos: -1} }
func itemReply(seq int64) Reply {
	return Reply{Value: []byte("item" + strconv.FormatInt(seq, 10)), Seq: seq, eos: -1}
}
func eosReply(n int64) Reply { return Reply{Seq: -1, eos: n} }
func errReply(code Code, msg string) Reply {
	return Reply{Seq: -1, eos: -1, err: &Error{Code: code, Msg: msg}}
}

// stillOpen is the end a drain sees when nothing is ready and the pending
// has not settled: the canceled context's error.
var stillOpen = errors.New("still open")

// drain takes every reply that is ready without blocking: it calls Next with
// a canceled context, which hands out ready items first, then the end error,
// and only then reports the context. It returns the items and the end
// (stillOpen when the pending is not settled).
func drain(t *testing.T, p *Pending) ([]Reply, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var got []Reply
	for i := 0; ; i++ {
		if i > 1000 {
			t.Fatal("drain: Next never ended")
		}
		r, err := p.Next(ctx)
		if err == nil {
			got = append(got, r)
			continue
		}
		var e *Error
		if errors.As(err, &e) && e.Code == CodeCanceled && errors.Is(err, context.Canceled) {
			return got, stillOpen
		}
		return got, err
	}
}

func seqs(rs []Reply) []int64 {
	out := make([]int64, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.Seq)
	}
	return out
}

// step is one action on a Pending: push a reply (expecting push's result),
// or drain what is ready (expecting these sequence numbers and this end;
// endCode "" with end nil means stillOpen).
type step struct {
	push    *Reply
	ok      bool
	take    []int64
	end     error // stillOpen, io.EOF, or nil when endCode is set
	endCode Code
	endMsg  string
}

func push(r Reply, ok bool) step { return step{push: &r, ok: ok} }
func take(end error, seqs ...int64) step {
	if seqs == nil {
		seqs = []int64{}
	}
	return step{take: seqs, end: end}
}
func takeErr(code Code, msg string, seqs ...int64) step {
	if seqs == nil {
		seqs = []int64{}
	}
	return step{take: seqs, endCode: code, endMsg: msg}
}

func TestPendingStateMachine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		steps []step
	}{
		{"unary", []step{
			take(stillOpen),
			push(unaryReply("v"), true),
			push(unaryReply("v"), false), // duplicate before delivery
			take(io.EOF, -1),
			push(unaryReply("v"), false), // duplicate after delivery
			push(itemReply(0), false),
			push(eosReply(1), false),
			push(errReply(CodeInternal, "late"), false),
			take(io.EOF),
		}},
		{"error reply", []step{
			push(errReply(CodeNotFound, "no model m"), true),
			takeErr(CodeNotFound, "no model m"),
			push(errReply(CodeNotFound, "no model m"), false),
			push(unaryReply("v"), false),
			push(itemReply(0), false),
			takeErr(CodeNotFound, "no model m"),
		}},
		{"stream in order", []step{
			push(itemReply(0), true),
			push(itemReply(1), true),
			take(stillOpen, 0, 1),
			push(itemReply(2), true),
			take(stillOpen, 2),
			push(eosReply(3), true),
			take(io.EOF),
			push(itemReply(3), false),
		}},
		{"stream out of order", []step{
			push(itemReply(2), true),
			take(stillOpen),
			push(itemReply(0), true),
			take(stillOpen, 0),
			push(itemReply(1), true),
			push(eosReply(3), true),
			take(io.EOF, 1, 2),
		}},
		{"stream out of order, one drain", []step{
			push(itemReply(2), true),
			push(itemReply(0), true),
			push(itemReply(1), true),
			push(eosReply(3), true),
			take(io.EOF, 0, 1, 2),
		}},
		{"stream duplicates", []step{
			push(itemReply(2), true),
			push(itemReply(2), false), // duplicate while waiting behind a gap
			push(itemReply(0), true),
			push(itemReply(0), false), // duplicate, ready but not taken
			take(stillOpen, 0),
			push(itemReply(0), false), // duplicate after delivery
			push(itemReply(1), true),
			push(itemReply(1), false),
			push(itemReply(2), false), // moved from later to ready
			take(stillOpen, 1, 2),
			push(itemReply(2), false), // after delivery
			push(eosReply(3), true),
			push(itemReply(0), false), // after settling
			push(itemReply(1), false),
			push(eosReply(3), false),
			take(io.EOF),
		}},
		{"eos before items", []step{
			push(eosReply(3), true),
			take(stillOpen),
			push(itemReply(1), true),
			take(stillOpen),
			push(itemReply(0), true),
			take(stillOpen, 0, 1),
			push(itemReply(2), true),
			push(itemReply(2), false),
			take(io.EOF, 2),
		}},
		{"eos reached only when all delivered", []step{
			push(eosReply(3), true),
			push(itemReply(0), true),
			push(itemReply(2), true),
			take(stillOpen, 0),
			push(itemReply(1), true),
			take(io.EOF, 1, 2),
		}},
		{"empty stream", []step{
			push(eosReply(0), true),
			take(io.EOF),
			push(itemReply(0), false),
		}},
		{"error after partial stream", []step{
			push(itemReply(0), true),
			push(itemReply(1), true),
			push(itemReply(3), true), // behind a gap: never handed out
			push(errReply(CodeUnavailable, "replica gone"), true),
			push(itemReply(2), false),
			takeErr(CodeUnavailable, "replica gone", 0, 1),
		}},
		{"error while items ready but untaken", []step{
			push(itemReply(0), true),
			take(stillOpen, 0),
			push(itemReply(1), true),
			push(errReply(CodeInternal, "boom"), true),
			takeErr(CodeInternal, "boom", 1),
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, p := testPending("req-1")
			for i, s := range tc.steps {
				if s.push != nil {
					if got := p.push(*s.push); got != s.ok {
						t.Fatalf("step %d: push(seq %d eos %d err %v) = %v, want %v", i, s.push.Seq, s.push.eos, s.push.err, got, s.ok)
					}
					continue
				}
				got, end := drain(t, p)
				if !slices.Equal(seqs(got), s.take) {
					t.Fatalf("step %d: delivered seqs %v, want %v", i, seqs(got), s.take)
				}
				for _, r := range got {
					want := "item" + strconv.FormatInt(r.Seq, 10)
					if r.Seq < 0 {
						want = "v"
					}
					if string(r.Value) != want {
						t.Errorf("step %d: seq %d value %q, want %q", i, r.Seq, r.Value, want)
					}
				}
				if s.endCode != "" {
					var e *Error
					if !errors.As(end, &e) || e.Code != s.endCode || e.Msg != s.endMsg {
						t.Fatalf("step %d: end %v, want *Error %s %q", i, end, s.endCode, s.endMsg)
					}
					continue
				}
				if end != s.end {
					t.Fatalf("step %d: end %v, want %v", i, end, s.end)
				}
			}
		})
	}
}

func TestPendingFailAfterPartialStream(t *testing.T) {
	t.Parallel()
	_, p := testPending("req-1")
	for _, seq := range []int64{0, 1, 3} {
		if !p.push(itemReply(seq)) {
			t.Fatalf("push %d rejected", seq)
		}
	}
	closed := &Error{Code: CodeUnavailable, Msg: "caller closed"}
	p.fail(closed)
	p.fail(&Error{Code: CodeInternal, Msg: "second fail is ignored"})
	// Contract: items already in order are still handed out, then the
	// failure; the item behind the gap (3) is lost.
	got, end := drain(t, p)
	if !slices.Equal(seqs(got), []int64{0, 1}) {
		t.Errorf("delivered %v, want [0 1]", seqs(got))
	}
	if end != closed {
		t.Errorf("end = %v, want the first fail's error", end)
	}
	if p.push(itemReply(2)) {
		t.Error("push after fail accepted")
	}
	// fail on a pending that already ended with io.EOF changes nothing.
	_, q := testPending("req-2")
	q.push(unaryReply("v"))
	q.fail(closed)
	if got, end := drain(t, q); len(got) != 1 || end != io.EOF {
		t.Errorf("after unary then fail: %v, %v; want one reply then io.EOF", seqs(got), end)
	}
}

func TestPendingNextContext(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		code Code
		is   error
	}{
		{"deadline passed", func() (context.Context, context.CancelFunc) {
			return context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		}, CodeDeadlineExceeded, context.DeadlineExceeded},
		{"deadline while waiting", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 20*time.Millisecond)
		}, CodeDeadlineExceeded, context.DeadlineExceeded},
		{"canceled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, CodeCanceled, context.Canceled},
		{"canceled while waiting", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(20*time.Millisecond, cancel)
			return ctx, cancel
		}, CodeCanceled, context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, p := testPending("req-1")
			ctx, cancel := tc.ctx()
			defer cancel()
			_, err := p.Next(ctx)
			var e *Error
			if !errors.As(err, &e) || e.Code != tc.code || !errors.Is(err, tc.is) {
				t.Fatalf("Next = %v, want *Error %s wrapping %v", err, tc.code, tc.is)
			}
			// The pending is not settled by the context: a reply still comes.
			if !p.push(unaryReply("v")) {
				t.Fatal("push after Next's context ended rejected")
			}
			if got, end := drain(t, p); len(got) != 1 || end != io.EOF {
				t.Errorf("drain = %v, %v", seqs(got), end)
			}
		})
	}
	// Ready replies win over an ended context.
	_, p := testPending("req-2")
	p.push(unaryReply("v"))
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if r, err := p.Next(ctx); err != nil || string(r.Value) != "v" {
		t.Errorf("Next with expired ctx and a ready reply = %v, %v", r, err)
	}
}

func TestPendingNextWakesOnPush(t *testing.T) {
	t.Parallel()
	_, p := testPending("req-1")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type res struct {
		r   Reply
		err error
	}
	out := make(chan res, 8)
	go func() {
		for {
			r, err := p.Next(ctx)
			out <- res{r, err}
			if err != nil {
				return
			}
		}
	}()
	for _, seq := range []int64{1, 0, 2} {
		p.push(itemReply(seq))
	}
	p.push(eosReply(3))
	var got []int64
	for {
		x := <-out
		if x.err != nil {
			if x.err != io.EOF {
				t.Fatalf("Next: %v", x.err)
			}
			break
		}
		got = append(got, x.r.Seq)
	}
	if !slices.Equal(got, []int64{0, 1, 2}) {
		t.Errorf("got %v, want [0 1 2]", got)
	}
}

func TestPendingConcurrentPushes(t *testing.T) {
	t.Parallel()
	const n = 200
	_, p := testPending("req-1")
	var wg sync.WaitGroup
	var accepted sync.Map
	for w := 0; w < 4; w++ { // every item pushed by four writers: three are duplicates
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := n - 1; i >= 0; i-- {
				if p.push(itemReply(int64(i))) {
					if _, dup := accepted.LoadOrStore(i, true); dup {
						t.Errorf("item %d accepted twice", i)
					}
				}
			}
			p.push(eosReply(n))
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := int64(0); ; i++ {
		r, err := p.Next(ctx)
		if err == io.EOF {
			if i != n {
				t.Fatalf("EOF after %d items, want %d", i, n)
			}
			break
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if r.Seq != i {
			t.Fatalf("item %d has seq %d", i, r.Seq)
		}
	}
	wg.Wait()
}

func TestPendingClose(t *testing.T) {
	t.Parallel()
	c, p := testPending("req-1")
	if p.ID() != "req-1" {
		t.Errorf("ID = %q", p.ID())
	}
	// A newer pending under the same id is not removed by the old one's Close.
	newer := newPending(c, "req-1")
	c.waits["req-1"] = newer
	p.Close()
	if c.waits["req-1"] != newer {
		t.Fatal("Close of a replaced pending removed its successor")
	}
	newer.Close()
	if _, ok := c.waits["req-1"]; ok {
		t.Fatal("Close left the waiter registered")
	}
	newer.Close() // twice is harmless
}

func TestCallerDeliverWithoutBroker(t *testing.T) {
	t.Parallel()
	c, p := testPending("req-1")
	c.log = slog.New(slog.DiscardHandler)
	rec := func(hs ...string) *kgo.Record {
		r := &kgo.Record{Value: []byte("v")}
		for i := 0; i+1 < len(hs); i += 2 {
			r.Headers = append(r.Headers, hdr(hs[i], hs[i+1]))
		}
		return r
	}
	c.deliver(rec(protocol.HeaderID, "req-1"))                          // delivered
	c.deliver(rec(protocol.HeaderID, "req-1"))                          // duplicate: dropped
	c.deliver(rec(protocol.HeaderID, "other"))                          // nobody waits: dropped
	c.deliver(rec())                                                    // no id: dropped
	c.deliver(rec(protocol.HeaderID, "req-1", protocol.HeaderSeq, "x")) // bad seq: dropped
	if got := c.Dropped(); got != 4 {
		t.Errorf("Dropped = %d, want 4", got)
	}
	if got, end := drain(t, p); len(got) != 1 || string(got[0].Value) != "v" || end != io.EOF {
		t.Errorf("drain = %v, %v", got, end)
	}
}

func TestParseReply(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		hs      []string
		id      string
		seq     int64
		eos     int64
		ct      string
		code    Code
		msg     string
		errPart string // non-empty: parseReply must fail wrapping protocol.ErrMalformed and mention it
	}{
		{name: "unary", hs: []string{protocol.HeaderID, "r1"}, id: "r1", seq: -1, eos: -1},
		{name: "content type", hs: []string{protocol.HeaderID, "r1", protocol.HeaderContentType, "application/json"}, id: "r1", seq: -1, eos: -1, ct: "application/json"},
		{name: "seq", hs: []string{protocol.HeaderID, "r1", protocol.HeaderSeq, "7"}, id: "r1", seq: 7, eos: -1},
		{name: "seq zero", hs: []string{protocol.HeaderID, "r1", protocol.HeaderSeq, "0"}, id: "r1", seq: 0, eos: -1},
		{name: "eos", hs: []string{protocol.HeaderID, "r1", protocol.HeaderEOS, "5"}, id: "r1", seq: -1, eos: 5},
		{name: "eos zero", hs: []string{protocol.HeaderID, "r1", protocol.HeaderEOS, "0"}, id: "r1", seq: -1, eos: 0},
		{name: "status and error", hs: []string{protocol.HeaderID, "r1", protocol.HeaderStatus, "not_found", protocol.HeaderError, "no model m"}, id: "r1", seq: -1, eos: -1, code: CodeNotFound, msg: "no model m"},
		{name: "error before status", hs: []string{protocol.HeaderError, "busy", protocol.HeaderStatus, "resource_exhausted", protocol.HeaderID, "r1"}, id: "r1", seq: -1, eos: -1, code: CodeResourceExhausted, msg: "busy"},
		{name: "status only", hs: []string{protocol.HeaderID, "r1", protocol.HeaderStatus, "internal"}, id: "r1", seq: -1, eos: -1, code: CodeInternal},
		{name: "unknown status kept", hs: []string{protocol.HeaderID, "r1", protocol.HeaderStatus, "new_code"}, id: "r1", seq: -1, eos: -1, code: "new_code"},
		{name: "empty status is success", hs: []string{protocol.HeaderID, "r1", protocol.HeaderStatus, "", protocol.HeaderError, "ignored"}, id: "r1", seq: -1, eos: -1},
		{name: "error without status is success", hs: []string{protocol.HeaderID, "r1", protocol.HeaderError, "ignored"}, id: "r1", seq: -1, eos: -1},
		{name: "unknown headers", hs: []string{"x", "y", protocol.HeaderID, "r1", protocol.HeaderDeadline, "junk"}, id: "r1", seq: -1, eos: -1},
		{name: "missing id", hs: nil, errPart: protocol.HeaderID},
		{name: "empty id", hs: []string{protocol.HeaderID, ""}, errPart: protocol.HeaderID},
		{name: "missing id with seq", hs: []string{protocol.HeaderSeq, "1"}, errPart: protocol.HeaderID},
		{name: "bad seq", hs: []string{protocol.HeaderID, "r1", protocol.HeaderSeq, "x"}, errPart: protocol.HeaderSeq},
		{name: "negative seq", hs: []string{protocol.HeaderID, "r1", protocol.HeaderSeq, "-1"}, errPart: protocol.HeaderSeq},
		{name: "empty seq", hs: []string{protocol.HeaderID, "r1", protocol.HeaderSeq, ""}, errPart: protocol.HeaderSeq},
		{name: "float seq", hs: []string{protocol.HeaderID, "r1", protocol.HeaderSeq, "1.0"}, errPart: protocol.HeaderSeq},
		{name: "bad eos", hs: []string{protocol.HeaderID, "r1", protocol.HeaderEOS, "many"}, errPart: protocol.HeaderEOS},
		{name: "negative eos", hs: []string{protocol.HeaderID, "r1", protocol.HeaderEOS, "-2"}, errPart: protocol.HeaderEOS},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := &kgo.Record{Value: []byte("payload")}
			for i := 0; i+1 < len(tc.hs); i += 2 {
				r.Headers = append(r.Headers, hdr(tc.hs[i], tc.hs[i+1]))
			}
			rep, id, err := parseReply(r)
			if tc.errPart != "" {
				if err == nil {
					t.Fatalf("parseReply succeeded: %+v id %q", rep, id)
				}
				if !errors.Is(err, protocol.ErrMalformed) || !strings.Contains(err.Error(), tc.errPart) {
					t.Fatalf("error %v: want wrapping protocol.ErrMalformed and naming %s", err, tc.errPart)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseReply: %v", err)
			}
			if id != tc.id || rep.Seq != tc.seq || rep.eos != tc.eos || rep.ContentType != tc.ct || string(rep.Value) != "payload" {
				t.Errorf("parseReply = id %q seq %d eos %d ct %q value %q; want id %q seq %d eos %d ct %q",
					id, rep.Seq, rep.eos, rep.ContentType, rep.Value, tc.id, tc.seq, tc.eos, tc.ct)
			}
			if rep.Streamed() != (tc.seq >= 0) {
				t.Errorf("Streamed = %v", rep.Streamed())
			}
			if tc.code == CodeOK {
				if rep.err != nil {
					t.Errorf("err = %v, want none", rep.err)
				}
				return
			}
			var e *Error
			if !errors.As(rep.err, &e) || e.Code != tc.code || e.Msg != tc.msg {
				t.Errorf("err = %#v, want *Error{%s %q}", rep.err, tc.code, tc.msg)
			}
		})
	}
}

// ---- Caller against the embedded broker ----

func startBroker(t *testing.T) []string {
	t.Helper()
	b, err := StartEmbedded(0, "")
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	t.Cleanup(b.Close)
	return b.Brokers()
}

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// responder is a stand-in replica: it reads requests and answers on their
// reply topic the way replicas do, the behaviour chosen by the value.
//
//	echo      one reply, value "echo"
//	dup       the same reply twice
//	stream    items 4,0,3,1,2 then end of stream 5
//	fail      an unavailable error reply
//	deadline  one reply whose value is the request's sl-deadline header
//	hang      nothing
func startResponder(t *testing.T, brokers []string, topic string) {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	if err != nil {
		t.Fatalf("responder client: %v", err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { cl.Close(); <-done })
	send := func(r protocol.Reply) {
		if err := cl.ProduceSync(context.Background(), r.Record()).FirstErr(); err != nil && !errors.Is(err, kgo.ErrClientClosed) {
			t.Errorf("responder produce: %v", err)
		}
	}
	go func() {
		defer close(done)
		for {
			fs := cl.PollFetches(context.Background())
			if fs.IsClientClosed() {
				return
			}
			fs.EachRecord(func(r *kgo.Record) {
				env, err := protocol.ParseEnvelope(r.Headers)
				if err != nil || env.ReplyTo == "" {
					t.Errorf("responder: bad request %v %+v", err, env)
					return
				}
				switch string(r.Value) {
				case "echo":
					send(protocol.UnaryReply(&env, []byte("echo"), "text/plain"))
				case "dup":
					send(protocol.UnaryReply(&env, []byte("once"), ""))
					send(protocol.UnaryReply(&env, []byte("once"), ""))
				case "stream":
					for _, seq := range []int64{4, 0, 3, 1, 2} {
						send(protocol.ItemReply(&env, seq, fmt.Appendf(nil, "item%d", seq), ""))
					}
					send(protocol.EndReply(&env, 5))
				case "fail":
					send(protocol.ErrorReply(&env, CodeUnavailable, "replica draining"))
				case "deadline":
					send(protocol.UnaryReply(&env, protocol.Header(r.Headers, protocol.HeaderDeadline), ""))
				case "hang":
				}
			})
		}
	}()
}

func newTestCaller(t *testing.T, brokers []string) *Caller {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := NewCaller(ctx, brokers, Namer{}, "t"+Instance(), quietLog())
	if err != nil {
		t.Fatalf("NewCaller: %v", err)
	}
	return c
}

func closeCaller(t *testing.T, c *Caller) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.Close(ctx)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// listTopics lists topics through a fresh client: kadm answers ListTopics
// from the client's metadata cache, which may predate a create or delete.
func listTopics(t *testing.T, ctx context.Context, brokers []string) kadm.TopicDetails {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	td, err := kadm.NewClient(cl).ListTopics(ctx)
	if err != nil {
		t.Fatalf("ListTopics: %v", err)
	}
	return td
}

func TestCallerEmbedded(t *testing.T) {
	t.Parallel()
	brokers := startBroker(t)
	adm, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(adm.Close)
	admin := kadm.NewClient(adm)
	const reqTopic = "sluice.app.test.in"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := CreateTopics(ctx, admin, TopicSpec{Name: reqTopic, Partitions: 1}); err != nil {
		t.Fatalf("CreateTopics: %v", err)
	}
	startResponder(t, brokers, reqTopic)

	t.Run("call", func(t *testing.T) {
		t.Parallel()
		c := newTestCaller(t, brokers)
		defer closeCaller(t, c)
		if !strings.HasPrefix(c.Topic(), "sluice.reply.t") || c.Client() == nil || c.NextID() == c.NextID() {
			t.Errorf("Topic %q, Client %v", c.Topic(), c.Client())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req := &protocol.Request{Topic: reqTopic, Value: []byte("echo")}
		r, err := c.Call(ctx, req)
		if err != nil {
			t.Fatalf("Call: %v", err)
		}
		if string(r.Value) != "echo" || r.ContentType != "text/plain" || r.Streamed() {
			t.Errorf("reply = %+v", r)
		}
		if req.Env.ID == "" || req.Env.ReplyTo != c.Topic() {
			t.Errorf("Start did not fill the envelope: %+v", req.Env)
		}
		c.mu.Lock()
		n := len(c.waits)
		c.mu.Unlock()
		if n != 0 {
			t.Errorf("%d waiters left after Call", n)
		}
		if d := c.Dropped(); d != 0 {
			t.Errorf("Dropped = %d, want 0", d)
		}
	})

	t.Run("deadline from context", func(t *testing.T) {
		t.Parallel()
		c := newTestCaller(t, brokers)
		defer closeCaller(t, c)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		d, _ := ctx.Deadline()
		r, err := c.Call(ctx, &protocol.Request{Topic: reqTopic, Value: []byte("deadline"), Env: protocol.Envelope{Deadline: d.Add(time.Hour)}})
		if err != nil {
			t.Fatalf("Call: %v", err)
		}
		if got := string(r.Value); got != strconv.FormatInt(d.UnixNano(), 10) {
			t.Errorf("request deadline header %q, want the context's %d", got, d.UnixNano())
		}
		early := d.Add(-time.Minute)
		r, err = c.Call(ctx, &protocol.Request{Topic: reqTopic, Value: []byte("deadline"), Env: protocol.Envelope{Deadline: early}})
		if err != nil {
			t.Fatalf("Call: %v", err)
		}
		if got := string(r.Value); got != strconv.FormatInt(early.UnixNano(), 10) {
			t.Errorf("request deadline header %q, want the earlier envelope deadline %d", got, early.UnixNano())
		}
	})

	t.Run("continuation waits on final id", func(t *testing.T) {
		t.Parallel()
		c := newTestCaller(t, brokers)
		defer closeCaller(t, c)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p := c.Start(ctx, &protocol.Request{Topic: reqTopic, Value: []byte("echo"), Env: protocol.Envelope{Cont: []protocol.Hop{{Topic: "sluice.app.x.in", ID: "mid"}, {Topic: "sluice.app.y.in", ID: "final-1"}}}})
		defer p.Close()
		if p.ID() != "final-1" {
			t.Errorf("ID = %q, want final-1", p.ID())
		}
		if r, err := p.Next(ctx); err != nil || string(r.Value) != "echo" {
			t.Fatalf("Next = %+v, %v", r, err)
		}
	})

	t.Run("error reply", func(t *testing.T) {
		t.Parallel()
		c := newTestCaller(t, brokers)
		defer closeCaller(t, c)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := c.Call(ctx, &protocol.Request{Topic: reqTopic, Value: []byte("fail")})
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeUnavailable || e.Msg != "replica draining" || !IsRetryable(err) {
			t.Fatalf("Call error = %#v, want unavailable 'replica draining'", err)
		}
	})

	t.Run("duplicate reply delivered once", func(t *testing.T) {
		t.Parallel()
		c := newTestCaller(t, brokers)
		defer closeCaller(t, c)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p := c.Start(ctx, &protocol.Request{Topic: reqTopic, Value: []byte("dup")})
		r, err := p.Next(ctx)
		if err != nil || string(r.Value) != "once" {
			t.Fatalf("Next = %+v, %v", r, err)
		}
		if _, err := p.Next(ctx); err != io.EOF {
			t.Fatalf("second Next = %v, want io.EOF", err)
		}
		p.Close()
		waitFor(t, "the duplicate to be dropped", 10*time.Second, func() bool { return c.Dropped() >= 1 })
		if d := c.Dropped(); d != 1 {
			t.Errorf("Dropped = %d, want 1", d)
		}
	})

	t.Run("stream out of order", func(t *testing.T) {
		t.Parallel()
		c := newTestCaller(t, brokers)
		defer closeCaller(t, c)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p := c.Start(ctx, &protocol.Request{Topic: reqTopic, Value: []byte("stream")})
		defer p.Close()
		var got []string
		for {
			r, err := p.Next(ctx)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("Next after %v: %v", got, err)
			}
			if !r.Streamed() || string(r.Value) != fmt.Sprintf("item%d", r.Seq) {
				t.Errorf("item %+v", r)
			}
			got = append(got, string(r.Value))
		}
		if want := []string{"item0", "item1", "item2", "item3", "item4"}; !slices.Equal(got, want) {
			t.Errorf("stream = %v, want %v", got, want)
		}
		if d := c.Dropped(); d != 0 {
			t.Errorf("Dropped = %d, want 0", d)
		}
	})

	t.Run("context deadline", func(t *testing.T) {
		t.Parallel()
		c := newTestCaller(t, brokers)
		defer closeCaller(t, c)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err := c.Call(ctx, &protocol.Request{Topic: reqTopic, Value: []byte("hang")})
		if CodeOf(err) != CodeDeadlineExceeded {
			t.Fatalf("Call = %v, want deadline exceeded", err)
		}
	})

	t.Run("close", func(t *testing.T) {
		t.Parallel()
		c := newTestCaller(t, brokers)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// The reply topic exists while the caller runs.
		if !listTopics(t, ctx, brokers).Has(c.Topic()) {
			t.Fatalf("reply topic %s not listed while the caller runs", c.Topic())
		}
		p := c.Start(ctx, &protocol.Request{Topic: reqTopic, Value: []byte("hang")})
		q := c.Expect("someone-else")
		c.Close(ctx)
		for _, x := range []*Pending{p, q} {
			_, err := x.Next(ctx)
			var e *Error
			if !errors.As(err, &e) || e.Code != CodeUnavailable {
				t.Errorf("Next(%s) after Close = %v, want unavailable", x.ID(), err)
			}
			x.Close()
		}
		td := listTopics(t, ctx, brokers)
		if !td.Has(reqTopic) {
			t.Errorf("ListTopics %v lacks %s: listing is broken", td.Names(), reqTopic)
		}
		if td.Has(c.Topic()) {
			t.Errorf("reply topic %s still exists after Close", c.Topic())
		}
	})
}
