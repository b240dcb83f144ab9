package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/streams"
)

// chainYAML is a 2-deployment dataflow chain, two replicas each: First
// adds 1 and its output flows along an edge to Second, which doubles it,
// so key k<i> comes out on the output topic as 2(i+1). %[2]s is the
// delivery.
const chainYAML = `name: %[1]s
route_prefix: /%[1]s
ingress: First
delivery: %[2]s
deployments:
  - name: First
    handler: Adder
    args: [1]
    replicas: {min: 2, initial: 2, max: 2}
  - name: Second
    handler: Multiplier
    args: [2]
    replicas: {min: 2, initial: 2, max: 2}
edges:
  - {from: First, to: Second}
`

// batchReader reads an application's output topic from its start and
// counts each key's records.
type batchReader struct {
	mu     sync.Mutex
	seen   map[string]int
	wrong  []string
	total  int
	full   chan struct{} // closed once total distinct keys came
	isFull bool
	done   chan struct{} // closed once reading stopped (ctx ended)
}

// readBatch reads topic (read_committed when committed) until ctx ends,
// counting the keys of [from, from+total), each wanted as 2(i+1).
func readBatch(ctx context.Context, t testing.TB, topic string, from, total int, committed bool) *batchReader {
	t.Helper()
	return readBatchWant(ctx, t, topic, from, total, committed, func(i int) int { return 2 * (i + 1) })
}

// readBatchWant is readBatch with key k<i> wanted as want(i).
func readBatchWant(ctx context.Context, t testing.TB, topic string, from, total int, committed bool, want func(int) int) *batchReader {
	t.Helper()
	opts := append(seed(), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if committed {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	cons, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	r := &batchReader{seen: map[string]int{}, total: total, full: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		defer cons.Close()
		for ctx.Err() == nil {
			fs := cons.PollFetches(ctx)
			r.mu.Lock()
			fs.EachRecord(func(rec *kgo.Record) {
				k := string(rec.Key)
				i, _ := strconv.Atoi(strings.TrimPrefix(k, "k"))
				if i < from || i >= from+total {
					return // another batch's
				}
				if string(rec.Value) != strconv.Itoa(want(i)) && len(r.wrong) < 10 {
					r.wrong = append(r.wrong, fmt.Sprintf("%s=%s", k, rec.Value))
				}
				r.seen[k]++
			})
			if len(r.seen) == total && !r.isFull {
				r.isFull = true
				close(r.full)
			}
			r.mu.Unlock()
		}
	}()
	return r
}

// out is the number of distinct keys read so far.
func (r *batchReader) out() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

// counts returns the records read and the duplicates among them.
func (r *batchReader) counts() (records, dups int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.seen {
		records += c
		dups += c - 1
	}
	return records, dups
}

// produceBatch writes keyed records k<i> = i for i in [from, from+total)
// to topic, perSecond records a second at most (0: as fast as it goes).
func produceBatch(ctx context.Context, topic string, from, total, perSecond int) error {
	prod, err := kgo.NewClient(seed()...)
	if err != nil {
		return err
	}
	defer prod.Close()
	var mu sync.Mutex
	var produceErr error
	const chunk = 500
	began := time.Now()
	for i := from; i < from+total; i++ {
		if perSecond > 0 && (i-from)%chunk == 0 {
			time.Sleep(time.Until(began.Add(time.Duration(i-from) * time.Second / time.Duration(perSecond))))
		}
		prod.Produce(ctx, &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "k%d", i), Value: strconv.AppendInt(nil, int64(i), 10)},
			func(_ *kgo.Record, err error) {
				if err != nil {
					mu.Lock()
					produceErr = err
					mu.Unlock()
				}
			})
	}
	if err := prod.Flush(ctx); err != nil {
		return err
	}
	return produceErr
}

// deadLetters is the number of records on the application's dead-letter
// topic.
func deadLetters(t testing.TB, nm streams.Namer, app string) int {
	t.Helper()
	cl, err := kgo.NewClient(seed()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offs, err := kadm.NewClient(cl).ListEndOffsets(ctx, nm.DeadLetter(app))
	if err != nil {
		t.Fatalf("dead-letter end offsets: %v", err)
	}
	n := 0
	offs.Each(func(o kadm.ListedOffset) { n += int(o.Offset) })
	return n
}

// An exactly-once application under `sluice node` with replicas as
// processes: 20,000 keyed records (over about 8 s) through a 2-deployment
// chain while a replica process of each deployment is killed with kill -9
// (the first at a quarter of the results out, the second at 60%) and
// restarted by the node. Reading the output topic read_committed, every
// key comes out exactly once with its right value: 0 missing, 0
// duplicates, nothing dead-lettered. The chain is a dataflow edge
// (chainYAML), or handle calls with a future forwarded from one Adder
// replica to the next (failoverYAML: the handle calls are outside the
// transactions, the Front's output is in them).
func TestNodeExactlyOnceKill9(t *testing.T) {
	for _, tc := range []struct {
		name, app, yaml string
		kill            [2]string
		want            func(int) int
	}{
		{"dataflow", "eoskill", fmt.Sprintf(chainYAML, "eoskill", "exactly_once"), [2]string{"First.0", "Second.1"}, func(i int) int { return 2 * (i + 1) }},
		{"handles", "eoshandles", "delivery: exactly_once\n" + fmt.Sprintf(failoverYAML, "eoshandles"), [2]string{"Adder.0", "Front.1"}, func(i int) int { return i + 2 }},
	} {
		t.Run(tc.name, func(t *testing.T) { exactlyOnceKill9(t, tc.app, tc.yaml, tc.kill, tc.want) })
	}
}

func exactlyOnceKill9(t *testing.T, app, yaml string, kill [2]string, want func(int) int) {
	const total = 20_000
	var n *testNode
	t.Cleanup(func() { // registered first, so it runs after the node's own cleanup
		if n == nil {
			return
		}
		for _, pid := range replicaPIDs(n.prefix, "") {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	n = startNode(t)
	spec := writeFile(t, app+".yaml", yaml)
	if b, err := exec.Command(n.bin, "deploy", "-f", spec, "--addr", n.addr).CombinedOutput(); err != nil {
		t.Fatalf("deploy: %v\n%s", err, b)
	}
	for _, k := range kill {
		dep := strings.Split(k, ".")[0]
		waitGroupSplit(t, n, app, dep, map[string]int{app + "." + dep + ".0": 4, app + "." + dep + ".1": 4})
	}
	nm, err := streams.NewNamer(n.prefix)
	if err != nil {
		t.Fatal(err)
	}
	// Kill replicas that have been running (see killReplica); wait now so
	// that the kills land where they are meant to.
	for _, pid := range replicaPIDs(n.prefix, "") {
		if began, err := processStart(pid); err == nil {
			time.Sleep(time.Until(began.Add(11 * time.Second)))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r := readBatchWant(ctx, t, nm.Output(app), 0, total, true, want)
	began := time.Now()
	// Produced over about 8s, so that the kills land mid-batch.
	produced := make(chan error, 1)
	go func() { produced <- produceBatch(ctx, nm.Ingress(app), 0, total, 2500) }()
	for _, step := range []struct {
		inst string
		at   int
	}{{app + "." + kill[0], total / 4}, {app + "." + kill[1], total * 6 / 10}} {
		pollUntil(t, 2*time.Minute, fmt.Sprintf("%d results out", step.at), n, func() bool { return r.out() >= step.at })
		o := r.out()
		k := killReplica(t, n, step.inst)
		t.Logf("kill -9 %s at %d results out: replacement started %v after the kill, its %d partitions assigned %v after its start",
			step.inst, o, k.restarted.Round(time.Millisecond), k.owned, k.reassign.Round(time.Millisecond))
	}
	if err := <-produced; err != nil {
		t.Fatalf("produce: %v", err)
	}
	select {
	case <-r.full:
	case <-ctx.Done():
	}
	took := time.Since(began)
	// Anything that would still come is a duplicate: read a little longer.
	time.Sleep(3 * time.Second)
	cancel()
	<-r.done
	records, dups := r.counts()
	dlq := deadLetters(t, nm, app)
	t.Logf("%d keys: %d out (read_committed) %v after the first produce (%.0f/s); %d output records, %d duplicates; %d dead-lettered",
		total, r.out(), took.Round(time.Millisecond), float64(r.out())/took.Seconds(), records, dups, dlq)
	if missing := total - r.out(); missing != 0 {
		t.Errorf("%d of %d keys missing from the output topic (read_committed) after %v", missing, total, took)
	}
	if dups != 0 {
		t.Errorf("%d duplicates on the output topic (read_committed); want 0", dups)
	}
	if len(r.wrong) > 0 {
		t.Errorf("wrong results: %v", r.wrong)
	}
	if dlq != 0 {
		t.Errorf("%d records dead-lettered", dlq)
	}
	n.stop(t)
}

// Sync requests on an exactly-once application are answered: each hop
// waits for the transaction of the one before to commit (edges are read
// read_committed), and the last answers the caller at once (the gateway
// reads its reply topic read_uncommitted).
func TestExactlyOnceSync(t *testing.T) {
	t.Parallel()
	const app = "eossync"
	f := writeFile(t, app+".yaml", fmt.Sprintf(chainYAML, app, "exactly_once"))
	if code, out := run(t, "deploy", "-f", f); code != 0 {
		t.Fatalf("deploy: exit %d: %s", code, out)
	}
	defer run(t, "delete", app)
	for i := range 20 {
		if code, got := post(t, "/"+app, strconv.Itoa(i)); code != 200 || got != strconv.Itoa(2*(i+1)) {
			t.Fatalf("POST /%s %d = %d %q, want 200 %d", app, i, code, got, 2*(i+1))
		}
	}
}
