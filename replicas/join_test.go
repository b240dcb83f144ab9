package replicas

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/streams/protocol"
)

// joinFixture is a join of two input topics, A and B, with the same
// partition count.
type joinFixture struct {
	fixture
	a, b string
}

func newJoinFixture(t *testing.T, partitions int32) joinFixture {
	t.Helper()
	f := joinFixture{fixture: newFixture(t, 1), a: uniq(t, "a"), b: uniq(t, "b")}
	createTopics(t, partitions, f.a, f.b)
	return f
}

func (f joinFixture) config(typ string, window time.Duration) Config {
	cfg := f.fixture.config()
	cfg.Topics = []string{f.a, f.b}
	cfg.Join = &JoinConfig{Type: typ, Window: window, Sources: map[string]string{f.a: "A", f.b: "B"}}
	return cfg
}

// echo emits its input: the joined object.
var echo = handlerFunc(func(_ context.Context, in *Input, out Output) error {
	return out.Emit(in.Value, in.Env.ContentType)
})

func input(topic string, p int32, key, value string, kv ...string) *kgo.Record {
	return &kgo.Record{Topic: topic, Partition: p, Key: []byte(key), Value: []byte(value),
		Headers: hdrs(append([]string{protocol.HeaderContentType, "application/json"}, kv...)...)}
}

// An inner join emits one object per key once both inputs came, keyed
// like its inputs; a key whose B never comes is dead-lettered at the
// window's end with what came, naming B. Both inputs' offsets are
// committed only once the join fired.
func TestJoinInner(t *testing.T) {
	t.Parallel()
	f := newJoinFixture(t, 2)
	// The window is wide enough that B's inputs, produced after the
	// commit check, come within it on a loaded machine.
	x := start(t, f.config(JoinInner, 4*time.Second), echo)
	const n = 40
	for i := range n {
		produce(t, input(f.a, int32(i%2), fmt.Sprintf("k%d", i), fmt.Sprint(i)))
	}
	waitFor(t, 5*time.Second, "A's inputs held", func() bool { return x.Stats().Partitions == 4 })
	time.Sleep(300 * time.Millisecond) // past a commit interval
	for p, o := range committed(t, f.group, f.a) {
		if o != 0 {
			t.Fatalf("A/%d committed at %d while every input waits for B", p, o)
		}
	}
	for i := range n {
		produce(t, input(f.b, int32(i%2), fmt.Sprintf("k%d", i), fmt.Sprintf(`{"b":%d}`, i)))
	}
	produce(t, input(f.a, 0, "lonely", `"alone"`))
	got := map[string]string{}
	for _, r := range consume(t, f.out, n, 10*time.Second) {
		got[string(r.Key)] = string(r.Value)
	}
	for i := range n {
		k := fmt.Sprintf("k%d", i)
		if want := fmt.Sprintf(`{"A":%d,"B":{"b":%d}}`, i, i); got[k] != want {
			t.Errorf("%s: %s, want %s", k, got[k], want)
		}
	}
	dl := consume(t, f.dlq, 1, 10*time.Second)[0]
	if string(dl.Key) != "lonely" || string(dl.Value) != `{"A":"alone","B":null}` ||
		!strings.Contains(hget(dl, protocol.HeaderError), "without input from B (came: A)") {
		t.Fatalf("dead letter %s = %s, %q", dl.Key, dl.Value, hget(dl, protocol.HeaderError))
	}
	waitFor(t, 5*time.Second, "every input committed", func() bool {
		a, b := committed(t, f.group, f.a), committed(t, f.group, f.b)
		return a[0]+a[1] == n+1 && b[0]+b[1] == n
	})
	if st := x.JoinStats(); st.Fired != n || st.TimedOut != 1 {
		t.Fatalf("join stats %+v, want %d fired, 1 timed out", st, n)
	}
}

// Outer fills what did not come with null at the window's end; any
// emits the first input and drops the later ones, counted.
func TestJoinOuterAndAny(t *testing.T) {
	t.Parallel()
	for _, typ := range []string{JoinOuter, JoinAny} {
		t.Run(typ, func(t *testing.T) {
			t.Parallel()
			f := newJoinFixture(t, 1)
			x := start(t, f.config(typ, 300*time.Millisecond), echo)
			id := func(k string) []string { return []string{protocol.HeaderID, k} }
			produce(t, input(f.a, 0, "both", "1", id("both")...))
			time.Sleep(50 * time.Millisecond)
			produce(t, input(f.b, 0, "both", "2", id("both")...), input(f.b, 0, "onlyB", `"b"`, id("onlyB")...))
			got := map[string]string{}
			for _, r := range consume(t, f.out, 2, 5*time.Second) {
				got[string(r.Key)] = string(r.Value)
			}
			want := map[string]string{"both": `{"A":1,"B":2}`, "onlyB": `{"A":null,"B":"b"}`}
			if typ == JoinAny {
				want["both"] = `{"A":1,"B":null}`
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("got %v, want %v", got, want)
			}
			waitFor(t, 2*time.Second, "the late input counted", func() bool { return typ != JoinAny || x.JoinStats().Late == 1 })
			if c := count(t, f.dlq); c != 0 {
				t.Fatalf("%d dead letters", c)
			}
		})
	}
}

// A sync request's inputs join under its id (keys differ), the caller
// gets the one answer, and an inner join that times out answers the
// caller with an error naming the input that never came.
func TestJoinSync(t *testing.T) {
	t.Parallel()
	f := newJoinFixture(t, 1)
	start(t, f.config(JoinInner, 300*time.Millisecond), echo)
	produce(t,
		input(f.a, 0, "x", "1", protocol.HeaderID, "r1", protocol.HeaderReplyTo, f.reply),
		input(f.b, 0, "y", "2", protocol.HeaderID, "r1", protocol.HeaderReplyTo, f.reply),
		input(f.b, 0, "z", "3", protocol.HeaderID, "r2", protocol.HeaderReplyTo, f.reply))
	got := map[string]*kgo.Record{}
	for _, r := range consume(t, f.reply, 2, 5*time.Second) {
		got[hget(r, protocol.HeaderID)] = r
	}
	if r := got["r1"]; r == nil || string(r.Value) != `{"A":1,"B":2}` {
		t.Fatalf("r1 answered %v", r)
	}
	if r := got["r2"]; r == nil || hget(r, protocol.HeaderStatus) != "deadline_exceeded" || !strings.Contains(hget(r, protocol.HeaderError), "without input from A") {
		t.Fatalf("r2 answered %v", r)
	}
	if c := count(t, f.out); c != 0 {
		t.Fatalf("%d records on the output topic", c)
	}
}

// A replica that stops with a join pending commits none of its inputs:
// the next owner reads the held input again, and joins it with the one
// that comes later.
func TestJoinStateReplayed(t *testing.T) {
	t.Parallel()
	f := newJoinFixture(t, 1)
	cfg := f.config(JoinInner, 5*time.Second)
	x := start(t, cfg, echo)
	produce(t, input(f.a, 0, "done", "0"), input(f.b, 0, "done", "0"), input(f.a, 0, "k", "1"))
	consume(t, f.out, 1, 5*time.Second)
	waitFor(t, 5*time.Second, "the first join committed", func() bool { return committed(t, f.group, f.b)[0] == 1 })
	time.Sleep(300 * time.Millisecond)
	if o := committed(t, f.group, f.a)[0]; o != 1 {
		t.Fatalf("A committed at %d with k's input held, want 1", o)
	}
	x.stop(t)
	start(t, cfg, echo)
	produce(t, input(f.b, 0, "k", "2"))
	var got []string
	for _, r := range consume(t, f.out, 2, 10*time.Second) {
		got = append(got, string(r.Key)+"="+string(r.Value))
	}
	if want := []string{`done={"A":0,"B":0}`, `k={"A":1,"B":2}`}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("output %v, want %v", got, want)
	}
}

// markLocked keeps a partition's commit point at the first input of a
// fired join until its other inputs are completed in their own
// partitions, so that a replay never holds part of a fired join.
func TestJoinCommitsTogether(t *testing.T) {
	t.Parallel()
	f := newJoinFixture(t, 1)
	release := make(chan struct{})
	slow := handlerFunc(func(_ context.Context, in *Input, out Output) error {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(in.Value, &m); err != nil {
			return err
		}
		if string(m["A"]) == `"slow"` {
			<-release
		}
		return out.Emit(in.Value, in.Env.ContentType)
	})
	x := start(t, f.config(JoinInner, 5*time.Second), slow)
	// A: [j1, s], B: [s, j1]. s fires on B's first record and runs
	// slowly; j1 fires on B's second and completes. A's completed prefix
	// is j1, but j1's input on B is behind s's: committing A past j1
	// would let a replay hold j1's B alone.
	produce(t, input(f.a, 0, "j1", "1"), input(f.a, 0, "s", `"slow"`))
	produce(t, input(f.b, 0, "s", "0"), input(f.b, 0, "j1", "1"))
	consume(t, f.out, 1, 5*time.Second)
	time.Sleep(400 * time.Millisecond)
	if a, b := committed(t, f.group, f.a)[0], committed(t, f.group, f.b)[0]; a != 0 || b != 0 {
		t.Fatalf("committed A at %d, B at %d while s's join runs; want 0 and 0", a, b)
	}
	close(release)
	waitFor(t, 5*time.Second, "both joins committed", func() bool {
		return committed(t, f.group, f.a)[0] == 2 && committed(t, f.group, f.b)[0] == 2
	})
	_ = x
}

// owned is the replica's partitions by topic.
func (r *Replica) owned() map[string][]int32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]int32{}
	for k := range r.parts {
		out[k.topic] = append(out[k.topic], k.partition)
	}
	for _, ps := range out {
		slices.Sort(ps)
	}
	return out
}

// A join's group gives one member the same partition numbers of every
// input topic, as members come and go; a member that stays keeps what it
// has when another joins (cooperative, sticky).
func TestJoinCoPartitioned(t *testing.T) {
	t.Parallel()
	f := newJoinFixture(t, 6)
	cfg := f.config(JoinInner, time.Second)
	colocated := func(x *running, want int) bool {
		o := x.owned()
		return len(o[f.a]) == want && slices.Equal(o[f.a], o[f.b])
	}
	x := start(t, cfg, echo)
	waitFor(t, 10*time.Second, "the first member owning every partition", func() bool { return colocated(x, 6) })
	y := start(t, cfg, echo)
	waitFor(t, 15*time.Second, "two members, three partition numbers each", func() bool { return colocated(x, 3) && colocated(y, 3) })
	kept := x.owned()[f.a]
	z := start(t, cfg, echo)
	waitFor(t, 15*time.Second, "three members, two partition numbers each", func() bool { return colocated(x, 2) && colocated(y, 2) && colocated(z, 2) })
	for _, p := range x.owned()[f.a] {
		if !slices.Contains(kept, p) {
			t.Fatalf("x was given partition %d when z joined: it owned %v", p, kept)
		}
	}
	y.stop(t)
	waitFor(t, 15*time.Second, "two members again", func() bool { return colocated(x, 3) && colocated(z, 3) })
}

// A trigger fires the join once its inputs came, with what else came by
// then; the others are null, and dropped when they come later (by
// request id).
func TestJoinTrigger(t *testing.T) {
	t.Parallel()
	f := newJoinFixture(t, 1)
	cfg := f.config(JoinInner, 5*time.Second)
	cfg.Join.Trigger = []string{"B"}
	x := start(t, cfg, echo)
	produce(t, input(f.a, 0, "k1", "1", protocol.HeaderID, "k1"))
	time.Sleep(100 * time.Millisecond)
	produce(t, input(f.b, 0, "k1", "2", protocol.HeaderID, "k1"), input(f.b, 0, "k2", "3", protocol.HeaderID, "k2"))
	got := map[string]string{}
	for _, r := range consume(t, f.out, 2, 5*time.Second) {
		got[string(r.Key)] = string(r.Value)
	}
	if want := map[string]string{"k1": `{"A":1,"B":2}`, "k2": `{"A":null,"B":3}`}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	produce(t, input(f.a, 0, "k2", "4", protocol.HeaderID, "k2"))
	waitFor(t, 5*time.Second, "k2's late input dropped", func() bool { return x.JoinStats().Late == 1 })
	if c := count(t, f.out); c != 2 {
		t.Fatalf("%d outputs, want 2", c)
	}
}

// Records without an sl-id are matched by key, in the order the join
// takes them (offset order for an ordered deployment): one key twice on
// each input gives two joins, the first with the first.
func TestJoinSameKeyInOrder(t *testing.T) {
	t.Parallel()
	f := newJoinFixture(t, 1)
	cfg := f.config(JoinInner, 5*time.Second)
	cfg.Ordered = true
	start(t, cfg, echo)
	produce(t, input(f.a, 0, "sensor", "1"), input(f.a, 0, "sensor", "2"))
	produce(t, input(f.b, 0, "sensor", "10"), input(f.b, 0, "sensor", "20"))
	var got []string
	for _, r := range consume(t, f.out, 2, 5*time.Second) {
		got = append(got, string(r.Value))
	}
	slices.Sort(got)
	if want := []string{`{"A":1,"B":10}`, `{"A":2,"B":20}`}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// An offline record of a joined graph's ingress gets an sl-id from its
// partition and offset, the same when read again; one with an id keeps it.
func TestStampIngress(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	cfg := f.config()
	cfg.StampIngress = f.in
	start(t, cfg, echo)
	produce(t, input(f.in, 0, "k", "1"), input(f.in, 0, "k", "2", protocol.HeaderID, "mine"))
	ids := map[string]string{} // by output value: the deployment is not ordered
	for _, r := range consume(t, f.out, 2, 5*time.Second) {
		ids[string(r.Value)] = hget(r, protocol.HeaderID)
	}
	if want := map[string]string{"1": "o-0-0", "2": "mine"}; !maps.Equal(ids, want) {
		t.Fatalf("output ids by value %v, want %v", ids, want)
	}
}

// A replica that took over a join's partitions does not fire again, nor
// wait for, a join that fired before: the last commit's metadata names
// the inputs done past the commit point, and the replay drops them.
func TestJoinReplayDone(t *testing.T) {
	t.Parallel()
	f := newJoinFixture(t, 1)
	cfg := f.config(JoinInner, time.Second)
	x := start(t, cfg, echo)
	id := func(k string) []string { return []string{protocol.HeaderID, k} }
	// A: [h, j1], B: [j1]. j1 fires; h waits, so A's commit stays at h
	// while j1's input on B is committed. The stop gives h up: the next
	// owner reads A's h and j1 again, and must not wait for j1's B.
	produce(t, input(f.a, 0, "h", "0", id("h")...), input(f.a, 0, "j1", "1", id("j1")...))
	produce(t, input(f.b, 0, "j1", "10", id("j1")...))
	consume(t, f.out, 1, 5*time.Second)
	time.Sleep(3 * commitEvery)
	x.stop(t)
	if a, b := committed(t, f.group, f.a)[0], committed(t, f.group, f.b)[0]; a != 0 || b != 1 {
		t.Fatalf("committed A at %d, B at %d; want 0 and 1", a, b)
	}
	y := start(t, cfg, echo)
	produce(t, input(f.b, 0, "h", "20", id("h")...))
	got := map[string]int{}
	consumeUntil(t, f.out, 10*time.Second, func(r *kgo.Record) bool {
		got[string(r.Key)]++
		return got["h"] == 1
	})
	time.Sleep(1500 * time.Millisecond) // past the window
	if n := count(t, f.out); n != 2 || got["j1"] != 1 {
		t.Fatalf("%d outputs (%v), want j1 and h once each", n, got)
	}
	if n := count(t, f.dlq); n != 0 {
		t.Fatalf("%d dead letters: the replayed input of j1 waited for its join again", n)
	}
	if st := y.JoinStats(); st.Replayed != 1 || st.TimedOut != 0 {
		t.Fatalf("join stats %+v, want j1's input on A replayed as done", st)
	}
}

// An input parked for its join leaves the count of records in flight,
// and whoever waits for that count to reach zero wakes at once: an
// exactly-once window ends when its other records are done, not at the
// waiter's bound (the ended window's timers, held at its gate meanwhile,
// failed every join they held once it ended).
func TestJoinHoldWakesWaiters(t *testing.T) {
	r := &Replica{cfg: Config{DrainTimeout: time.Minute}, freed: make(chan struct{}, 1), drained: make(chan struct{}, 1)}
	r.idle = sync.NewCond(&r.mu)
	j := &joiner{r: r}
	r.ongoing.Store(1)
	x := &run{r: r}
	waiting := make(chan struct{})
	woke := make(chan time.Duration)
	go func() {
		r.mu.Lock()
		close(waiting)
		began := time.Now()
		r.waitLocked(func() bool { return r.ongoing.Load() == 0 })
		r.mu.Unlock()
		woke <- time.Since(began)
	}()
	<-waiting
	r.mu.Lock() // the waiter is in Wait once it let go of r.mu
	r.mu.Unlock()
	j.hold(x)
	select {
	case d := <-woke:
		t.Logf("the waiter waited %v", d)
	case <-time.After(10 * time.Second):
		t.Fatal("a held input did not wake the waiter for the records in flight: it sleeps until its bound")
	}
	select {
	case <-r.drained:
	default:
		t.Error("no drained signal: an exactly-once window whose records are all held stays open until its interval")
	}
	if n := x.pending.Load(); n != 1 {
		t.Errorf("held run's pending count %d, want 1", n)
	}
}
