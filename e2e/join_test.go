package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/protocol"
)

// diamondYAML is the diamond a user measured, joined: In fans out to
// Plus1 and Times10, whose outputs Final joins (inner) and sums with no
// code (kind cel); In also mirrors every request to Shadow, whose
// answers reach nobody. x becomes (x+1) + 10x.
const diamondYAML = `name: %[1]s
route_prefix: /%[1]s
ingress: In
deployments:
  - {name: In, kind: cel}
  - {name: Plus1, handler: Adder, args: [1]}
  - {name: Times10, handler: Multiplier, args: [10]}
  - name: Final
    kind: cel
    transform: 'int(body.Plus1) + int(body.Times10)'
    join: {type: inner, window: 5s}
    replicas: {min: %[2]d, initial: %[2]d, max: %[2]d}
  - {name: Shadow, handler: Adder, args: [1000]}
edges:
  - {from: In, to: Plus1}
  - {from: In, to: Times10}
  - {from: Plus1, to: Final}
  - {from: Times10, to: Final}
  - {from: In, to: Shadow, mirror: true}
`

func diamondWant(x int) string { return strconv.Itoa(x + 1 + 10*x) }

// A joined diamond answers a sync caller once, with the join of both
// branches; an offline batch gives one output per key, keyed as it came;
// the mirror's answers reach neither the caller nor the output topic and
// are counted in /metrics.
func TestJoinDiamond(t *testing.T) {
	t.Parallel()
	const app, total = "jdiamond", 300
	if code, out := run(t, "deploy", "-f", writeFile(t, app+".yaml", fmt.Sprintf(diamondYAML, app, 1))); code != 0 {
		t.Fatalf("deploy: %s", out)
	}
	for _, x := range []int{5, 0, 12} {
		if code, got := post(t, "/"+app, strconv.Itoa(x)); code != 200 || got != diamondWant(x) {
			t.Fatalf("POST %d: %d %q, want 200 %q", x, code, got, diamondWant(x))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(seed()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := range total {
		recs = append(recs, &kgo.Record{Topic: namer.Ingress(app), Key: fmt.Appendf(nil, "k%d", i), Value: strconv.AppendInt(nil, int64(i), 10)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, r := range consumeN(ctx, t, namer.Output(app), total) {
		i, _ := strconv.Atoi(strings.TrimPrefix(string(r.Key), "k"))
		if string(r.Value) != diamondWant(i) {
			t.Errorf("%s = %s, want %s", r.Key, r.Value, diamondWant(i))
		}
		seen[string(r.Key)]++
	}
	if len(seen) != total {
		t.Fatalf("%d distinct keys out, want %d", len(seen), total)
	}
	// What else reaches the output topic (a mirror's answer, a second
	// answer per key) has had time to: the mirror runs beside the join.
	time.Sleep(time.Second)
	if n := topicCount(t, cl, namer.Output(app)); n != total {
		t.Fatalf("%d records on the output topic, want %d (one per key)", n, total)
	}
	if n := topicCount(t, cl, namer.DeadLetter(app)); n != 0 {
		t.Fatalf("%d dead letters", n)
	}
	want := fmt.Sprintf(`sluice_deployment_mirrored_total{app=%q,deployment="Shadow"} %d`, app, total+3)
	deadline := time.Now().Add(20 * time.Second)
	for {
		m := metrics(t, plat.Addr)
		if strings.Contains(m, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics lacks %s:\n%s", want, grepLines(m, app))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// An inner join whose window ends without an input answers the caller
// with the inputs that never came, and dead-letters an offline record
// with what came.
func TestJoinWindowEnds(t *testing.T) {
	t.Parallel()
	const app = "joinwindow"
	yaml := fmt.Sprintf(`name: %[1]s
route_prefix: /%[1]s
ingress: In
deployments:
  - {name: In, kind: cel}
  - {name: Plus1, handler: Adder, args: [1]}
  - {name: Slow, kind: cel}
  - {name: Final, kind: cel, join: {type: inner, window: 300ms}}
edges:
  - {from: In, to: Plus1}
  - {from: In, to: Slow, when: 'body != 7'}
  - {from: Plus1, to: Final}
  - {from: Slow, to: Final}
`, app)
	if code, out := run(t, "deploy", "-f", writeFile(t, app+".yaml", yaml)); code != 0 {
		t.Fatalf("deploy: %s", out)
	}
	if code, got := post(t, "/"+app, "2"); code != 200 || got != `{"Plus1":3,"Slow":2}` {
		t.Fatalf("POST 2: %d %q", code, got)
	}
	code, got := post(t, "/"+app, "7")
	if code != 504 || !strings.Contains(got, "join window 300ms ended without input from Slow (came: Plus1)") {
		t.Fatalf("POST 7: %d %q, want 504 naming Slow", code, got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(seed()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: namer.Ingress(app), Key: []byte("seven"), Value: []byte("7")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	dl := consumeN(ctx, t, namer.DeadLetter(app), 1)[0]
	if string(dl.Key) != "seven" || string(dl.Value) != `{"Plus1":8,"Slow":null}` ||
		!strings.Contains(string(protocol.Header(dl.Headers, protocol.HeaderError)), "without input from Slow") {
		t.Fatalf("dead letter %s=%s %q", dl.Key, dl.Value, protocol.Header(dl.Headers, protocol.HeaderError))
	}
}

func topicCount(t *testing.T, cl *kgo.Client, topic string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offs, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	offs.Each(func(o kadm.ListedOffset) { n += int(o.Offset) })
	return n
}

func metrics(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// grepLines is the lines of s that contain any of subs.
func grepLines(s string, subs ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if slices.ContainsFunc(subs, func(sub string) bool { return strings.Contains(l, sub) }) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// A join replica process killed with SIGKILL in the middle of an offline
// batch loses nothing: its held inputs were not committed, so its
// replacement reads them again and joins them. On the real broker
// (SLUICE_TEST_BROKERS), on `sluice node` with two join replicas.
//
// Duplicates: a join that fired, whose output was acknowledged, but
// whose inputs' offsets were not committed yet when the process died,
// fires again on the replay. A replay starts at the committed offsets,
// and a fired join's inputs are committed together, so a duplicate is a
// join both of whose inputs lay past the committed offsets at the kill,
// and whose output was out before it: the test asserts at most half the
// join's inputs uncommitted at the kill (read right after it, before
// the replacement joins), and prints the count.
func TestNodeJoinFailover(t *testing.T) { joinFailover(t, "joinfail", false) }

// Under delivery: exactly_once the same kill loses nothing and repeats
// nothing a read_committed reader sees: a fired join's outputs and the
// commit that records its inputs as done are one transaction, so the
// replay either finds the join done (its output committed) or fires it
// again in place of an aborted output.
func TestNodeJoinFailoverExactlyOnce(t *testing.T) { joinFailover(t, "joinfailx", true) }

func joinFailover(t *testing.T, app string, exactlyOnce bool) {
	const total = 2000
	var n *testNode
	t.Cleanup(func() {
		if n != nil {
			for _, pid := range replicaPIDs(n.prefix, "") {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	n = startNode(t)
	yaml := fmt.Sprintf(diamondYAML, app, 2)
	if exactlyOnce {
		yaml = strings.Replace(yaml, "ingress: In\n", "ingress: In\ndelivery: exactly_once\n", 1)
	}
	spec := writeFile(t, app+".yaml", yaml)
	if b, err := exec.Command(n.bin, "deploy", "-f", spec, "--addr", n.addr).CombinedOutput(); err != nil {
		t.Fatalf("deploy: %v\n%s", err, b)
	}
	// The join's group holds both input topics' partitions, split by
	// range: the same partition number of each to one replica.
	waitGroupSplit(t, n, app, "Final", map[string]int{app + ".Final.0": 8, app + ".Final.1": 8})
	nm, err := streams.NewNamer(n.prefix)
	if err != nil {
		t.Fatal(err)
	}
	for _, pid := range replicaPIDs(n.prefix, app+".Final.0") {
		if began, err := processStart(pid); err == nil {
			time.Sleep(time.Until(began.Add(11 * time.Second)))
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cons, err := kgo.NewClient(append(seed(), kgo.ConsumeTopics(nm.Output(app)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var (
		mu    sync.Mutex
		seen  = map[string]int{}
		wrong []string
	)
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		settle := time.Time{}
		for ctx.Err() == nil {
			pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
			fs := cons.PollFetches(pctx)
			pcancel()
			mu.Lock()
			fs.EachRecord(func(r *kgo.Record) {
				i, _ := strconv.Atoi(strings.TrimPrefix(string(r.Key), "k"))
				if string(r.Value) != diamondWant(i) && len(wrong) < 10 {
					wrong = append(wrong, fmt.Sprintf("%s=%s", r.Key, r.Value))
				}
				seen[string(r.Key)]++
			})
			done := len(seen) == total
			mu.Unlock()
			// Once every key is out, read on for 3s: duplicates come late.
			if done && settle.IsZero() {
				settle = time.Now().Add(3 * time.Second)
			}
			if !settle.IsZero() && time.Now().After(settle) {
				return
			}
		}
	}()
	out := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(seen)
	}
	prod, err := kgo.NewClient(seed()...)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	began := time.Now()
	for i := range total {
		prod.Produce(ctx, &kgo.Record{Topic: nm.Ingress(app), Key: fmt.Appendf(nil, "k%d", i), Value: strconv.AppendInt(nil, int64(i), 10)}, nil)
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, time.Minute, fmt.Sprintf("%d results out", total/4), n, func() bool { return out() >= total/4 })
	pids := replicaPIDs(n.prefix, app+".Final.0")
	if len(pids) != 1 {
		t.Fatalf("replica processes of Final.0: %v, want one", pids)
	}
	atKill, killedAt := out(), time.Now()
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Read at once: the dead replica commits nothing more, and its
	// replacement has not joined the group yet (it takes half a second).
	uncommitted := uncommittedInputs(t, prod, nm.Group(app, "Final"), nm.Edge(app, "Plus1", "Final"), nm.Edge(app, "Times10", "Final"))
	rate := float64(atKill) / killedAt.Sub(began).Seconds()
	var assigned time.Time
	pollUntil(t, 20*time.Second, "the replacement of Final.0 assigned", n, func() bool {
		var ok bool
		assigned, _, ok = assignedAt(n.errw.String(), app+".Final.0", killedAt)
		return ok
	})
	select {
	case <-consumed:
	case <-ctx.Done():
	}
	took := time.Since(began)

	mu.Lock()
	defer mu.Unlock()
	records, dups := 0, 0
	for _, c := range seen {
		records += c
		dups += c - 1
	}
	dlq := topicCount(t, prod, nm.DeadLetter(app))
	bound := uncommitted / 2
	t.Logf("%d keys in %v; kill -9 %s.Final.0 at %d out (%.0f joins/s): its replacement's partitions assigned %v after the kill",
		total, took.Round(time.Millisecond), app, atKill, rate, assigned.Sub(killedAt).Round(time.Millisecond))
	t.Logf("lost %d, duplicates %d (bound %d: %d inputs uncommitted at the kill), output records %d, dead letters %d",
		total-len(seen), dups, bound, uncommitted, records, dlq)
	if dups > 0 {
		t.Logf("the join replicas' partition and join log lines:\n%s", grepLines(grepLines(n.errw.String(), "Final"), "partitions")+"\n"+grepLines(n.errw.String(), "join:"))
	}
	if lost, dlq := total-len(seen), dlq; lost != 0 || dlq != 0 {
		t.Logf("the join replicas' partitions and transactions:\n%s", grepLines(grepLines(n.errw.String(), app+".Final."), "partitions", "transaction", "join:", "exited"))
	}
	if lost := total - len(seen); lost != 0 {
		t.Errorf("%d of %d keys lost", lost, total)
	}
	if len(wrong) > 0 {
		t.Errorf("wrong results: %v", wrong)
	}
	if dlq != 0 {
		t.Errorf("%d dead letters (a replay that held part of a fired join would time out)", dlq)
	}
	if exactlyOnce && dups != 0 {
		t.Errorf("%d duplicates under exactly-once delivery", dups)
	}
	if dups > bound {
		t.Errorf("%d duplicates, more than the bound %d", dups, bound)
	}
	n.stop(t)
}

// uncommittedInputs is how many records of the topics lie past group's
// committed offsets (all of them where it committed none).
func uncommittedInputs(t *testing.T, cl *kgo.Client, group string, topics ...string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	comm, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	ends.Each(func(o kadm.ListedOffset) {
		at := int64(0)
		if c, ok := comm.Lookup(o.Topic, o.Partition); ok && c.At >= 0 {
			at = c.At
		}
		n += int(o.Offset - at)
	})
	return n
}
