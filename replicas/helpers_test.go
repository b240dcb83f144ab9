package replicas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/protocol"
)

// One embedded broker serves the whole package; every test makes its own
// topics and groups, so tests run in parallel on it.
var (
	brokers []string
	prod    *kgo.Client // producer (manual partitioner) and admin client
	adm     *kadm.Client
	testLog *slog.Logger
	seq     atomic.Int64
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	testLog = slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("REPLICAS_TEST_LOG") != "" {
		testLog = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	emb, err := streams.StartEmbedded(0, "")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer emb.Close()
	brokers = emb.Brokers()
	prod, err = kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0),
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer prod.Close()
	adm = kadm.NewClient(prod)
	return m.Run()
}

// ---- names and topics ----

// uniq returns a topic or group name unique in the package run.
func uniq(t *testing.T, what string) string {
	t.Helper()
	name := strings.Map(func(r rune) rune {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '-':
			return r
		}
		return '-'
	}, t.Name())
	return fmt.Sprintf("%s-%s-%d", name, what, seq.Add(1))
}

func createTopics(t *testing.T, partitions int32, names ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := adm.CreateTopics(ctx, partitions, 1, nil, names...)
	if err != nil {
		t.Fatalf("create topics %v: %v", names, err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("create topic %s: %v", r.Topic, r.Err)
		}
	}
}

// fixture is one test's deployment: its input, output, dead-letter and
// reply topics and its consumer group.
type fixture struct {
	in, out, dlq, reply, group string
}

func newFixture(t *testing.T, partitions int32) fixture {
	t.Helper()
	f := fixture{
		in:    uniq(t, "in"),
		out:   uniq(t, "out"),
		dlq:   uniq(t, "dlq"),
		reply: uniq(t, "reply"),
		group: uniq(t, "group"),
	}
	createTopics(t, partitions, f.in)
	createTopics(t, 1, f.out, f.dlq, f.reply)
	return f
}

func (f fixture) config() Config {
	return Config{
		Brokers:      brokers,
		Group:        f.group,
		Topics:       []string{f.in},
		Output:       f.out,
		DeadLetter:   f.dlq,
		Deployment:   "dep",
		DrainTimeout: 5 * time.Second,
		Log:          testLog,
	}
}

// ---- producing and reading ----

func hdrs(kv ...string) []kgo.RecordHeader {
	hs := make([]kgo.RecordHeader, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		hs = append(hs, kgo.RecordHeader{Key: kv[i], Value: []byte(kv[i+1])})
	}
	return hs
}

func hget(r *kgo.Record, key string) string { return string(protocol.Header(r.Headers, key)) }

func hhas(r *kgo.Record, key string) bool {
	for _, h := range r.Headers {
		if h.Key == key {
			return true
		}
	}
	return false
}

// produce writes recs synchronously (each to the partition it names) and
// returns them with their offsets.
func produce(t *testing.T, recs ...*kgo.Record) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	return recs
}

// consumeUntil reads topic from its start (all partitions, no group) and
// hands each record to each; it stops when each returns true, and fails
// the test if that does not happen within d.
func consumeUntil(t *testing.T, topic string, d time.Duration, each func(*kgo.Record) bool) {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100*time.Millisecond),
	)
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	n := 0
	for {
		fs := cl.PollFetches(ctx)
		done := false
		fs.EachRecord(func(r *kgo.Record) {
			if !done {
				n++
				done = each(r)
			}
		})
		if done {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("topic %s: condition not met within %s (%d records read)", topic, d, n)
		}
	}
}

// consume reads n records of topic from its start, within d.
func consume(t *testing.T, topic string, n int, d time.Duration) []*kgo.Record {
	t.Helper()
	var got []*kgo.Record
	if n == 0 {
		return nil
	}
	consumeUntil(t, topic, d, func(r *kgo.Record) bool {
		got = append(got, r)
		return len(got) >= n
	})
	return got
}

// endOffsets returns the end offset of every partition of topic.
func endOffsets(t *testing.T, topic string) map[int32]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("list end offsets of %s: %v", topic, err)
	}
	out := map[int32]int64{}
	res.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatalf("end offset of %s/%d: %v", o.Topic, o.Partition, o.Err)
		}
		out[o.Partition] = o.Offset
	})
	return out
}

// count is the number of records in topic (it is never trimmed in tests).
func count(t *testing.T, topic string) int64 {
	t.Helper()
	var n int64
	for _, o := range endOffsets(t, topic) {
		n += o
	}
	return n
}

// committed returns the group's committed offset of every partition of
// topic that has one; partitions without a commit are absent.
func committed(t *testing.T, group, topic string) map[int32]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("fetch offsets of %s: %v", group, err)
	}
	out := map[int32]int64{}
	res.Each(func(o kadm.OffsetResponse) {
		if o.Topic != topic {
			return
		}
		if o.Err != nil {
			t.Fatalf("committed offset of %s/%d: %v", o.Topic, o.Partition, o.Err)
		}
		if o.At >= 0 {
			out[o.Partition] = o.At
		}
	})
	return out
}

// waitFor polls cond every 20ms until it holds, failing after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ---- replicas ----

type handlerFunc func(ctx context.Context, in *Input, out Output) error

func (f handlerFunc) Handle(ctx context.Context, in *Input, out Output) error { return f(ctx, in, out) }

// streamFunc is a streaming handler.
type streamFunc func(ctx context.Context, in *Input, out Output) error

func (f streamFunc) Handle(ctx context.Context, in *Input, out Output) error { return f(ctx, in, out) }
func (streamFunc) Streams() bool                                             { return true }

// upper emits the input in upper case as text/plain.
var upper = handlerFunc(func(_ context.Context, in *Input, out Output) error {
	return out.Emit([]byte(strings.ToUpper(string(in.Value))), "text/plain")
})

// running is a replica whose Run goroutine is going.
type running struct {
	*Replica
	cancel   context.CancelFunc
	done     chan error
	once     sync.Once
	err      error
	stopTook time.Duration
}

// start creates a replica and runs it until stop (or the test's end).
func start(t *testing.T, cfg Config, h Handler) *running {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	r, err := New(ctx, cfg, h)
	if err != nil {
		t.Fatalf("new replica: %v", err)
	}
	rctx, rcancel := context.WithCancel(context.Background())
	x := &running{Replica: r, cancel: rcancel, done: make(chan error, 1)}
	go func() { x.done <- r.Run(rctx) }()
	t.Cleanup(func() { x.stop(t) })
	return x
}

// stop cancels Run's context and waits (bounded) for Run to return its error.
func (x *running) stop(t *testing.T) error {
	t.Helper()
	x.once.Do(func() {
		began := time.Now()
		x.cancel()
		select {
		case x.err = <-x.done:
		case <-time.After(30 * time.Second):
			x.err = errors.New("Run did not return within 30s of its context ending")
		}
		x.stopTook = time.Since(began)
	})
	if x.err != nil {
		t.Errorf("Run: %v", x.err)
	}
	return x.err
}
