package replicas

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/protocol"
)

// readCommitted reads topic from its start, read_committed, for d and
// returns how many times each value came.
func readCommitted(t *testing.T, topic string, d time.Duration, enough func(map[string]int) bool) map[string]int {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(100*time.Millisecond),
	)
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	seen := map[string]int{}
	for ctx.Err() == nil && !enough(seen) {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++ })
	}
	return seen
}

// An exactly-once replica's outputs stay invisible to read_committed
// readers, and its offsets uncommitted, until every record of the
// transaction finished; then both land together.
func TestExactlyOnceCommitsWithOutputs(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	cfg := f.config()
	cfg.ExactlyOnce = true
	cfg.InstanceID = "slot-0"
	release := make(chan struct{})
	blocked := make(chan struct{})
	rep := start(t, cfg, handlerFunc(func(ctx context.Context, in *Input, out Output) error {
		if string(in.Value) == "0" {
			close(blocked)
			<-release
		}
		return upper(ctx, in, out)
	}))
	// One produce, one batch, one fetch: the four records are in one
	// window (a window polls nothing more once it closed, until its
	// records are done).
	var recs []*kgo.Record
	for i := range 4 {
		recs = append(recs, &kgo.Record{Topic: f.in, Value: []byte(strconv.Itoa(i))})
	}
	produce(t, recs...)
	select {
	case <-blocked:
	case <-time.After(wait):
		t.Fatal("record #0 never reached the handler")
	}
	// #1..#3 are produced (read uncommitted they are there) ...
	consume(t, f.out, 3, wait)
	// ... but not committed while #0 holds the transaction open.
	time.Sleep(time.Second)
	if got := readCommitted(t, f.out, 500*time.Millisecond, func(map[string]int) bool { return false }); len(got) != 0 {
		close(release)
		t.Fatalf("read_committed saw %v while the transaction is open", got)
	}
	if got, ok := committed(t, f.group, f.in)[0]; ok && got != 0 {
		close(release)
		t.Fatalf("committed offset %d while the transaction is open", got)
	}
	close(release)
	got := readCommitted(t, f.out, wait, func(m map[string]int) bool { return len(m) == 4 })
	for i := range 4 {
		if got[strconv.Itoa(i)] != 1 {
			t.Errorf("value %d read_committed %d times, want once (%v)", i, got[strconv.Itoa(i)], got)
		}
	}
	waitFor(t, 10*time.Second, "the committed offset to reach 4", func() bool {
		return committed(t, f.group, f.in)[0] == 4
	})
	rep.stop(t)
}

// Rebalances abort the transactions they cut: a second exactly-once
// replica joining mid-batch, then the first stopping, leave every input's
// output exactly once for read_committed readers, edges and dead letters
// included.
func TestExactlyOnceRebalance(t *testing.T) {
	t.Parallel()
	const total = 3000
	f := newFixture(t, 4)
	edge := uniq(t, "edge")
	createTopics(t, 4, edge)
	first := f.config()
	first.ExactlyOnce, first.Successors = true, []string{edge}
	// Every 100th record fails: it is dead-lettered, in the transaction.
	h := handlerFunc(func(ctx context.Context, in *Input, out Output) error {
		time.Sleep(2 * time.Millisecond) // windows long enough for the rebalances to cut
		if n, _ := strconv.Atoi(string(in.Value)); n%100 == 99 {
			return streams.Errorf(streams.CodeInvalidArgument, "no %d", n)
		}
		return upper(ctx, in, out)
	})
	second := f.config()
	second.Group, second.Topics, second.ExactlyOnce = uniq(t, "group2"), []string{edge}, true
	down := start(t, second, upper)
	a := start(t, withInstance(first, "a"), h)
	recs := make([]*kgo.Record, total)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: f.in, Partition: int32(i % 4), Value: []byte(strconv.Itoa(i))}
	}
	produce(t, recs[:total/2]...)
	b := start(t, withInstance(first, "b"), h) // joins mid-batch
	produce(t, recs[total/2:]...)
	time.Sleep(300 * time.Millisecond)
	a.stop(t) // leaves mid-batch
	want := total - total/100
	readCommitted(t, f.out, 60*time.Second, func(m map[string]int) bool { return len(m) >= want })
	time.Sleep(time.Second) // anything late would be a duplicate
	never := func(map[string]int) bool { return false }
	got := readCommitted(t, f.out, 3*time.Second, never)
	dead := readCommitted(t, f.dlq, 2*time.Second, never)
	missing, dups := 0, 0
	for i := range total {
		v := strconv.Itoa(i)
		n, d := got[v], dead[v]
		if i%100 == 99 {
			n, d = d, n
		}
		if n == 0 {
			missing++
		}
		dups += max(n-1, 0) + d
	}
	if missing != 0 || dups != 0 {
		t.Errorf("read_committed: %d missing, %d duplicates or misplaced of %d (outputs %d, dead letters %d)", missing, dups, total, len(got), len(dead))
	}
	b.stop(t)
	down.stop(t)
}

func withInstance(cfg Config, id string) Config {
	cfg.InstanceID = id
	return cfg
}

// A window whose records outlast the transaction timeout: the broker
// aborts the transaction; the replica renews its session and goes on, and
// the record is done again, once, in a later transaction.
func TestExactlyOnceTransactionTimeout(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	cfg := f.config()
	cfg.ExactlyOnce, cfg.InstanceID, cfg.TransactionTimeout = true, "slot-0", time.Second
	var slow atomic.Bool
	rep := start(t, cfg, handlerFunc(func(ctx context.Context, in *Input, out Output) error {
		if string(in.Value) == "slow" && slow.CompareAndSwap(false, true) {
			if err := out.Emit([]byte("early"), "text/plain"); err != nil {
				return err
			}
			time.Sleep(3 * time.Second)
		}
		return upper(ctx, in, out)
	}))
	produce(t, &kgo.Record{Topic: f.in, Value: []byte("slow")})
	produce(t, &kgo.Record{Topic: f.in, Value: []byte("next")})
	got := readCommitted(t, f.out, 20*time.Second, func(m map[string]int) bool { return m["SLOW"] > 0 && m["NEXT"] > 0 })
	time.Sleep(time.Second)
	got = readCommitted(t, f.out, 2*time.Second, func(map[string]int) bool { return false })
	// The embedded broker aborts the window at once, so its "early" is
	// gone and the record's second run emits none; Kafka looks for timed
	// out transactions every 10 s (transaction.abort.timed.out.transaction.
	// cleanup.interval.ms), and may commit the window whole: "early" once.
	if got["SLOW"] != 1 || got["NEXT"] != 1 || got["early"] > 1 {
		t.Errorf("read_committed %v; want SLOW and NEXT once, early at most once", got)
	}
	select {
	case err := <-rep.done:
		t.Fatalf("the replica stopped: %v", err)
	default:
	}
	rep.stop(t)
}

// An output that can never be produced (over the broker's size limit)
// is dead-lettered in the transaction, as at-least-once, and the
// partition moves on: no window repeats for ever.
func TestExactlyOnceOutputTooLarge(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	cfg := f.config()
	cfg.ExactlyOnce, cfg.InstanceID = true, "slot-0"
	rep := start(t, cfg, handlerFunc(func(ctx context.Context, in *Input, out Output) error {
		if string(in.Value) == "huge" {
			return out.Emit(make([]byte, 3<<20), "application/octet-stream")
		}
		return upper(ctx, in, out)
	}))
	produce(t, &kgo.Record{Topic: f.in, Value: []byte("huge")}, &kgo.Record{Topic: f.in, Value: []byte("next")})
	dead := readCommitted(t, f.dlq, wait, func(m map[string]int) bool { return m["huge"] > 0 })
	got := readCommitted(t, f.out, wait, func(m map[string]int) bool { return m["NEXT"] > 0 })
	if dead["huge"] != 1 || got["NEXT"] != 1 {
		t.Errorf("dead letters %v, outputs %v; want huge dead-lettered once, NEXT out once", dead, got)
	}
	rep.stop(t)
}

// An exactly-once join commits its commit points and what is done past
// them in its transactions: a held input keeps its partition's commit
// where it is (not at the records polled), the next owner does not join
// a done input again, and a window timer's output commits without a
// record to open its window.
func TestExactlyOnceJoin(t *testing.T) {
	t.Parallel()
	f := newJoinFixture(t, 1)
	cfg := f.config(JoinInner, 2*time.Second)
	cfg.ExactlyOnce = true
	x := start(t, cfg, echo)
	id := func(k string) []string { return []string{protocol.HeaderID, k} }
	// A: [h, j1], B: [j1]. j1 fires; h waits, so A's commit stays at h.
	produce(t, input(f.a, 0, "h", "0", id("h")...), input(f.a, 0, "j1", "1", id("j1")...))
	produce(t, input(f.b, 0, "j1", "10", id("j1")...))
	readCommitted(t, f.out, 5*time.Second, func(m map[string]int) bool { return m[`{"A":1,"B":10}`] == 1 })
	time.Sleep(300 * time.Millisecond) // windows commit
	if a := committed(t, f.group, f.a)[0]; a != 0 {
		t.Fatalf("committed A at %d with h held, want 0", a)
	}
	x.stop(t)
	y := start(t, cfg, echo)
	produce(t, input(f.b, 0, "h", "20", id("h")...))
	readCommitted(t, f.out, 5*time.Second, func(m map[string]int) bool { return m[`{"A":0,"B":20}`] == 1 })
	time.Sleep(2500 * time.Millisecond) // past the window
	got := readCommitted(t, f.out, time.Second, func(map[string]int) bool { return false })
	if len(got) != 2 || got[`{"A":1,"B":10}`] != 1 || got[`{"A":0,"B":20}`] != 1 {
		t.Fatalf("outputs %v, want j1 and h once each", got)
	}
	if dl := readCommitted(t, f.dlq, time.Second, func(map[string]int) bool { return false }); len(dl) != 0 {
		t.Fatalf("dead letters %v: the replayed input of j1 waited for its join again", dl)
	}
	if st := y.JoinStats(); st.Replayed != 2 || st.TimedOut != 0 {
		t.Fatalf("join stats %+v, want both of j1's inputs replayed as done", st)
	}

	g := newJoinFixture(t, 1)
	outer := g.config(JoinOuter, 300*time.Millisecond)
	outer.ExactlyOnce = true
	start(t, outer, echo)
	produce(t, input(g.a, 0, "o", "5", id("o")...))
	if got := readCommitted(t, g.out, 5*time.Second, func(m map[string]int) bool { return m[`{"A":5,"B":null}`] == 1 }); got[`{"A":5,"B":null}`] != 1 {
		t.Fatalf("outer join at its window's end: committed outputs %v", got)
	}
}
