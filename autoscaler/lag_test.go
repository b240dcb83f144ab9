package autoscaler

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/kafkaauth"
)

// ---- what a read_committed consumer is given: no broker ----

// rawBatch is a record batch as a fetch returns it; the records themselves
// are filler, only the header is read.
type rawBatch struct {
	first int64
	last  int64 // 0: first+n-1
	n     int32
	pid   int64 // 0: no producer (-1)
	attrs int16
}

func (b rawBatch) bytes() []byte {
	last, pid := b.last, b.pid
	if last == 0 {
		last = b.first + int64(b.n) - 1
	}
	if pid == 0 {
		pid = -1
	}
	rb := kmsg.RecordBatch{
		FirstOffset:     b.first,
		Magic:           2,
		Attributes:      b.attrs,
		LastOffsetDelta: int32(last - b.first),
		ProducerID:      pid,
		NumRecords:      b.n,
		Records:         make([]byte, 8*b.n),
	}
	rb.Length = int32(49 + len(rb.Records))
	return rb.AppendTo(nil)
}

func rawBatches(bs ...rawBatch) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b.bytes()...)
	}
	return out
}

func abortedTxn(pid, first int64) kmsg.FetchResponseTopicPartitionAbortedTransaction {
	a := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
	a.ProducerID, a.FirstOffset = pid, first
	return a
}

const (
	attrsTxn  = attrTransactional
	attrsCtrl = attrTransactional | attrControl
)

func TestDelivered(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		raw       []byte
		aborted   []kmsg.FetchResponseTopicPartitionAbortedTransaction
		from, end int64
		lag       int64
		exact     bool
	}{
		{
			name: "plain records, from inside a batch",
			raw:  rawBatches(rawBatch{first: 0, n: 3}, rawBatch{first: 3, n: 2}),
			from: 1, end: 5, lag: 4, exact: true,
		},
		{
			name: "committed transaction: the marker is no lag",
			raw:  rawBatches(rawBatch{first: 0, n: 3, pid: 7, attrs: attrsTxn}, rawBatch{first: 3, n: 1, pid: 7, attrs: attrsCtrl}),
			from: 0, end: 4, lag: 3, exact: true,
		},
		{
			name: "committed transaction, consumed up to its marker",
			raw:  rawBatches(rawBatch{first: 0, n: 3, pid: 7, attrs: attrsTxn}, rawBatch{first: 3, n: 1, pid: 7, attrs: attrsCtrl}),
			from: 3, end: 4, lag: 0, exact: true,
		},
		{
			name:    "aborted transaction",
			raw:     rawBatches(rawBatch{first: 0, n: 2, pid: 7, attrs: attrsTxn}, rawBatch{first: 2, n: 1, pid: 7, attrs: attrsCtrl}),
			aborted: []kmsg.FetchResponseTopicPartitionAbortedTransaction{abortedTxn(7, 0)},
			from:    0, end: 3, lag: 0, exact: true,
		},
		{
			name: "aborted then committed by one producer",
			raw: rawBatches(
				rawBatch{first: 0, n: 2, pid: 7, attrs: attrsTxn}, rawBatch{first: 2, n: 1, pid: 7, attrs: attrsCtrl},
				rawBatch{first: 3, n: 2, pid: 7, attrs: attrsTxn}, rawBatch{first: 5, n: 1, pid: 7, attrs: attrsCtrl},
			),
			aborted: []kmsg.FetchResponseTopicPartitionAbortedTransaction{abortedTxn(7, 0)},
			from:    0, end: 6, lag: 2, exact: true,
		},
		{
			name: "interleaved producers, one aborts",
			raw: rawBatches(
				rawBatch{first: 0, n: 1, pid: 7, attrs: attrsTxn}, rawBatch{first: 1, n: 1, pid: 8, attrs: attrsTxn},
				rawBatch{first: 2, n: 1, pid: 7, attrs: attrsTxn}, rawBatch{first: 3, n: 1, pid: 8, attrs: attrsCtrl},
				rawBatch{first: 4, n: 1, pid: 7, attrs: attrsCtrl}, rawBatch{first: 5, n: 2},
			),
			aborted: []kmsg.FetchResponseTopicPartitionAbortedTransaction{abortedTxn(7, 0)},
			from:    0, end: 7, lag: 3, exact: true,
		},
		{
			name: "aborted transaction that began before the fetch offset",
			raw: rawBatches(
				rawBatch{first: 4, n: 2, pid: 7, attrs: attrsTxn}, rawBatch{first: 6, n: 1, pid: 7, attrs: attrsCtrl},
				rawBatch{first: 7, n: 1},
			),
			aborted: []kmsg.FetchResponseTopicPartitionAbortedTransaction{abortedTxn(7, 1)},
			from:    4, end: 8, lag: 1, exact: true,
		},
		{
			name: "records after a marker count",
			raw:  rawBatches(rawBatch{first: 0, n: 3, pid: 7, attrs: attrsTxn}, rawBatch{first: 3, n: 1, pid: 7, attrs: attrsCtrl}, rawBatch{first: 4, n: 2}),
			from: 3, end: 6, lag: 2, exact: true,
		},
		{
			name: "batches past end are not lag",
			raw:  rawBatches(rawBatch{first: 0, n: 2}, rawBatch{first: 2, n: 5}),
			from: 0, end: 4, lag: 4, exact: true,
		},
		{
			name: "compacted batch counts at most what is left",
			raw:  rawBatches(rawBatch{first: 0, last: 9, n: 3}),
			from: 5, end: 10, lag: 3, exact: true,
		},
		{
			name: "a batch cut short by the byte limit ends the walk",
			raw:  rawBatches(rawBatch{first: 0, n: 2}, rawBatch{first: 2, n: 2})[:80],
			from: 0, end: 4, lag: 4, exact: false,
		},
		{
			name: "nothing fetched",
			from: 2, end: 4, lag: 2, exact: false,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			kept, next := delivered(tc.raw, tc.aborted, tc.from, tc.end)
			v := verdict{from: tc.from, end: tc.end, exact: next >= tc.end, kept: kept}
			lag, ok := v.lag(tc.from, tc.end)
			if !ok || lag != tc.lag || v.exact != tc.exact {
				t.Errorf("lag = %d (answers %v), exact %v (next %d); want %d, exact %v", lag, ok, v.exact, next, tc.lag, tc.exact)
			}
		})
	}
}

func TestVerdictAnswers(t *testing.T) {
	t.Parallel()
	// Offsets 0-2 data, 3 a commit marker, 4-5 data.
	exact := verdict{from: 0, end: 6, exact: true, kept: []span{{0, 2, 3}, {4, 5, 2}}}
	inexact := verdict{from: 2, end: 6}
	tests := []struct {
		v         verdict
		from, end int64
		lag       int64
		ok        bool
	}{
		{exact, 0, 6, 5, true},
		{exact, 2, 6, 3, true},
		{exact, 3, 6, 2, true},
		{exact, 5, 6, 1, true},
		{exact, 0, 7, 0, false}, // the end moved: stale
		{exact, -1, 6, 0, false},
		{inexact, 2, 6, 4, true}, // the raw lag, without a new fetch
		{inexact, 3, 6, 0, false},
	}
	for _, tc := range tests {
		lag, ok := tc.v.lag(tc.from, tc.end)
		if lag != tc.lag || ok != tc.ok {
			t.Errorf("%+v.lag(%d, %d) = %d, %v; want %d, %v", tc.v, tc.from, tc.end, lag, ok, tc.lag, tc.ok)
		}
	}
}

// A probe that fails leaves the raw lag, and Read does not fail for it.
func TestFailedProbeKeepsRawLag(t *testing.T) {
	t.Parallel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(lagDeadAddr(t)))
	if err != nil {
		t.Fatal(err)
	}
	cl.Close()
	r := NewLagReader(cl)
	parts := []PartitionLag{
		{Topic: "a", Partition: 0, Start: 0, End: 5, Committed: 2, Lag: 3},
		{Topic: "a", Partition: 1, Start: 4, End: 9, Committed: -1, Lag: 5},
	}
	r.verify(context.Background(), parts)
	if parts[0].Lag != 3 || parts[1].Lag != 5 {
		t.Errorf("lags after a failed probe = %d, %d; want the raw 3, 5", parts[0].Lag, parts[1].Lag)
	}
	if r.probes.Load() != 0 || len(r.verdicts) != 0 {
		t.Errorf("a failed probe left %d fetches, %d verdicts", r.probes.Load(), len(r.verdicts))
	}
}

func FuzzDelivered(f *testing.F) {
	f.Add(rawBatches(rawBatch{first: 0, n: 3, pid: 7, attrs: attrsTxn}, rawBatch{first: 3, n: 1, pid: 7, attrs: attrsCtrl}), int64(0), int64(4))
	f.Add(rawBatches(rawBatch{first: 0, last: 9, n: 3}), int64(5), int64(10))
	f.Add([]byte("\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x0010000\x0200000A0000000000000000000000000000000000\xff000000000000000000000000000"), int64(5), int64(10)) // a negative record count
	f.Fuzz(func(t *testing.T, raw []byte, from, end int64) {
		if from < 0 || end <= from || end-from > probeMaxLag {
			return
		}
		kept, _ := delivered(raw, []kmsg.FetchResponseTopicPartitionAbortedTransaction{abortedTxn(7, 0)}, from, end)
		v := verdict{from: from, end: end, exact: true, kept: kept}
		lag, ok := v.lag(from, end)
		if !ok || lag < 0 || lag > end-from {
			t.Fatalf("lag %d (answers %v) outside [0, %d]", lag, ok, end-from)
		}
	})
}

// ---- against a broker: embedded, or the real Kafka in SLUICE_TEST_BROKERS ----

// lagKafka is the Kafka a test runs on: the real brokers named by
// SLUICE_TEST_BROKERS (comma-separated), or an embedded broker of the
// test's own. Names carry a per-test suffix so tests can share a real
// broker.
type lagKafka struct {
	brokers []string
	cl      *kgo.Client // manual partitioning: records go where they say
	adm     *kadm.Client
	id      string
}

func lagTestBrokers() []string {
	var out []string
	for _, b := range strings.Split(os.Getenv("SLUICE_TEST_BROKERS"), ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

func lagEmbedded(t *testing.T) []string {
	t.Helper()
	e, err := streams.StartEmbedded(0, "")
	if err != nil {
		t.Fatalf("embedded broker: %v", err)
	}
	t.Cleanup(e.Close)
	return e.Brokers()
}

func newLagKafka(t *testing.T) *lagKafka {
	t.Helper()
	brokers := lagTestBrokers()
	if brokers == nil {
		brokers = lagEmbedded(t)
	} else {
		// A real broker's TLS and SASL, as its SLUICE_KAFKA_* lines say
		// (scripts/kafka.sh with KAFKA_SECURITY=sasl_ssl): every client of
		// these addresses, the lag reader's included, connects so.
		cfg, err := kafkaauth.Resolve("", os.Getenv, kafkaauth.Config{})
		if err != nil {
			t.Fatal(err)
		}
		if !cfg.IsZero() {
			if err := streams.Secure(brokers, cfg); err != nil {
				t.Fatal(err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cl, err := streams.Dial(ctx, brokers, lagQuiet, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &lagKafka{brokers: brokers, cl: cl, adm: kadm.NewClient(cl), id: streams.Instance()}
}

var lagQuiet = slog.New(slog.DiscardHandler)

func lagCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// name returns a name unique to this test run.
func (k *lagKafka) name(s string) string { return "lag-" + s + "-" + k.id }

// topic creates a topic of its own and deletes it after the test.
func (k *lagKafka) topic(t *testing.T, s string, partitions int32) string {
	t.Helper()
	name := k.name(s)
	if err := streams.CreateTopics(lagCtx(t), k.adm, streams.TopicSpec{Name: name, Partitions: partitions}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = streams.DeleteTopics(ctx, k.adm, name)
	})
	return name
}

// group names a group and deletes it after the test.
func (k *lagKafka) group(t *testing.T, s string) string {
	name := k.name(s)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = k.adm.DeleteGroup(ctx, name)
	})
	return name
}

func (k *lagKafka) produce(t *testing.T, topic string, partition int32, n int) {
	t.Helper()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Partition: partition, Value: []byte("r")}
	}
	if err := k.cl.ProduceSync(lagCtx(t), recs...).FirstErr(); err != nil {
		t.Fatalf("produce to %s/%d: %v", topic, partition, err)
	}
}

func (k *lagKafka) commit(t *testing.T, group, topic string, partition int32, at int64) {
	t.Helper()
	var offs kadm.Offsets
	offs.AddOffset(topic, partition, at, -1)
	if err := k.adm.CommitAllOffsets(lagCtx(t), group, offs); err != nil {
		t.Fatalf("commit %s %s/%d at %d: %v", group, topic, partition, at, err)
	}
}

// lagTransactor produces in transactions to one partition.
type lagTransactor struct {
	k         *lagKafka
	cl        *kgo.Client
	topic     string
	partition int32
}

func (k *lagKafka) transactor(t *testing.T, topic string, partition int32) *lagTransactor {
	t.Helper()
	cl, err := streams.Dial(lagCtx(t), k.brokers, lagQuiet,
		kgo.TransactionalID(k.name(topic+"-tx")),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &lagTransactor{k: k, cl: cl, topic: topic, partition: partition}
}

// send produces n records in one transaction and commits or aborts it,
// then waits until its marker is in the log and readable: a real broker
// writes markers after EndTransaction returns.
func (x *lagTransactor) send(t *testing.T, n int, commit bool) {
	t.Helper()
	ctx := lagCtx(t)
	if err := x.cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: x.topic, Partition: x.partition, Value: []byte("tx")}
	}
	if err := x.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce in a transaction: %v", err)
	}
	if err := x.cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
		t.Fatalf("end transaction (commit %v): %v", commit, err)
	}
	end := recs[n-1].Offset + 2 // the marker follows the last record
	x.k.waitStable(t, x.topic, x.partition, end)
}

// waitStable waits until a partition's end and last stable offsets reach end.
func (k *lagKafka) waitStable(t *testing.T, topic string, partition int32, end int64) {
	t.Helper()
	ctx := lagCtx(t)
	for {
		ends, err1 := k.adm.ListEndOffsets(ctx, topic)
		stable, err2 := k.adm.ListCommittedOffsets(ctx, topic)
		e, _ := ends.Lookup(topic, partition)
		s, _ := stable.Lookup(topic, partition)
		if err1 == nil && err2 == nil && e.Offset >= end && s.Offset >= end {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s/%d: end %d, stable %d, want %d (%v, %v)", topic, partition, e.Offset, s.Offset, end, err1, err2)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (k *lagKafka) read(t *testing.T, r *LagReader, group string, topics ...string) GroupLag {
	t.Helper()
	gl, err := r.Read(lagCtx(t), group, topics)
	if err != nil {
		t.Fatalf("Read(%s, %v): %v", group, topics, err)
	}
	return gl
}

// lagConsumer is a live member of a group, reading committed records and
// committing what it was given when asked.
type lagConsumer struct {
	cl      *kgo.Client
	mu      sync.Mutex
	records int
}

func (k *lagKafka) consumer(t *testing.T, group string, topics []string, extra ...kgo.Opt) *lagConsumer {
	t.Helper()
	cl, err := streams.Dial(lagCtx(t), k.brokers, lagQuiet, append([]kgo.Opt{
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DisableAutoCommit(),
		kgo.FetchMaxWait(100 * time.Millisecond),
	}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	c := &lagConsumer{cl: cl}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			c.mu.Lock()
			c.records += fs.NumRecords()
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		cl.Close()
	})
	return c
}

// consumed waits until the consumer was given n records and commits them.
func (c *lagConsumer) consumed(t *testing.T, n int) {
	t.Helper()
	ctx := lagCtx(t)
	for {
		c.mu.Lock()
		got := c.records
		c.mu.Unlock()
		if got >= n {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("consumer was given %d records, want %d", got, n)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := c.cl.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

func wantPartitionLag(t *testing.T, got PartitionLag, want PartitionLag) {
	t.Helper()
	if got != want {
		t.Errorf("partition %s/%d = %+v, want %+v", got.Topic, got.Partition, got, want)
	}
}

func TestLagCommittedPart(t *testing.T) {
	t.Parallel()
	k := newLagKafka(t)
	topic := k.topic(t, "plain", 3)
	group := k.group(t, "plain")
	k.produce(t, topic, 0, 5)
	k.produce(t, topic, 1, 3)
	k.produce(t, topic, 2, 100)
	k.commit(t, group, topic, 0, 2)
	k.commit(t, group, topic, 2, 0)

	r := NewLagReader(k.cl)
	gl := k.read(t, r, group, topic, topic) // a topic named twice counts once
	if len(gl.Partitions) != 3 {
		t.Fatalf("partitions = %+v, want 3", gl.Partitions)
	}
	wantPartitionLag(t, gl.Partitions[0], PartitionLag{Topic: topic, Partition: 0, Start: 0, End: 5, Committed: 2, Lag: 3})
	wantPartitionLag(t, gl.Partitions[1], PartitionLag{Topic: topic, Partition: 1, Start: 0, End: 3, Committed: -1, Lag: 3})
	wantPartitionLag(t, gl.Partitions[2], PartitionLag{Topic: topic, Partition: 2, Start: 0, End: 100, Committed: 0, Lag: 100})
	if gl.Total != 106 || gl.Members != 0 {
		t.Errorf("total %d, members %d; want 106, 0", gl.Total, gl.Members)
	}
	// The two small lags were verified by a fetch; the large one was not.
	if n := r.probes.Load(); n != 2 {
		t.Errorf("probed %d partitions, want 2", n)
	}
}

func TestLagGroupNeverCommitted(t *testing.T) {
	t.Parallel()
	k := newLagKafka(t)
	topic := k.topic(t, "fresh", 2)
	k.produce(t, topic, 0, 4)
	k.produce(t, topic, 1, 70)

	gl := k.read(t, NewLagReader(k.cl), k.group(t, "fresh"), topic)
	if gl.Total != 74 || gl.Members != 0 {
		t.Errorf("total %d, members %d; want 74 from the start, 0", gl.Total, gl.Members)
	}
	for _, p := range gl.Partitions {
		if p.Committed != -1 || p.Lag != p.End-p.Start {
			t.Errorf("partition %+v: want nothing committed, lag end-start", p)
		}
	}
}

func TestLagAfterDeletedRecords(t *testing.T) {
	t.Parallel()
	k := newLagKafka(t)
	topic := k.topic(t, "deleted", 1)
	behind, fresh := k.group(t, "deleted-behind"), k.group(t, "deleted-fresh")
	k.produce(t, topic, 0, 10)
	k.commit(t, behind, topic, 0, 3)

	var offs kadm.Offsets
	offs.AddOffset(topic, 0, 7, -1)
	res, err := k.adm.DeleteRecords(lagCtx(t), offs)
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		t.Fatalf("delete records: %v", err)
	}

	r := NewLagReader(k.cl)
	for _, group := range []string{behind, fresh} {
		gl := k.read(t, r, group, topic)
		p := gl.Partitions[0]
		if p.Start != 7 || p.End != 10 || p.Lag != 3 || gl.Total != 3 {
			t.Errorf("%s: %+v, total %d; want start 7, end 10, lag 3 (KEDA: end-committed)", group, p, gl.Total)
		}
		if p.Lag > p.End-p.Start {
			t.Errorf("%s: lag %d above end-start %d", group, p.Lag, p.End-p.Start)
		}
	}
}

func TestLagCommittedTransaction(t *testing.T) {
	t.Parallel()
	k := newLagKafka(t)
	topic := k.topic(t, "txcommit", 1)
	group := k.group(t, "txcommit")
	k.transactor(t, topic, 0).send(t, 3, true)

	c := k.consumer(t, group, []string{topic})
	c.consumed(t, 3)
	gl := k.read(t, NewLagReader(k.cl), group, topic)
	p := gl.Partitions[0]
	// The lagConsumer commits after its last record, at the marker: KEDA's
	// end-committed is 1 here, forever.
	if p.End-p.Committed < 1 {
		t.Fatalf("%+v: the commit is past the marker, the case is not exercised", p)
	}
	if p.Lag != 0 || gl.Total != 0 {
		t.Errorf("%+v, total %d; want lag 0 behind a commit marker", p, gl.Total)
	}
}

func TestLagAbortedTransaction(t *testing.T) {
	t.Parallel()
	k := newLagKafka(t)
	topic := k.topic(t, "txabort", 1)
	done, fresh := k.group(t, "txabort-done"), k.group(t, "txabort-fresh")
	x := k.transactor(t, topic, 0)
	x.send(t, 3, true)  // 0-2, commit marker 3
	x.send(t, 2, false) // 4-5 aborted, abort marker 6

	c := k.consumer(t, done, []string{topic})
	c.consumed(t, 3)
	r := NewLagReader(k.cl)
	gl := k.read(t, r, done, topic)
	if p := gl.Partitions[0]; p.End != 7 || p.Committed != 3 || p.Lag != 0 {
		t.Errorf("%s: %+v; want end 7, committed 3, lag 0 (KEDA: 4)", done, p)
	}
	gl = k.read(t, r, fresh, topic)
	if p := gl.Partitions[0]; p.Lag != 3 {
		t.Errorf("%s: %+v; want lag 3: the committed records only", fresh, p)
	}
}

func TestLagRecordsAfterMarker(t *testing.T) {
	t.Parallel()
	k := newLagKafka(t)
	topic := k.topic(t, "txmix", 1)
	done, fresh := k.group(t, "txmix-done"), k.group(t, "txmix-fresh")
	x := k.transactor(t, topic, 0)
	x.send(t, 3, true) // 0-2, commit marker 3
	k.commit(t, done, topic, 0, 3)
	k.produce(t, topic, 0, 2) // 4-5
	x.send(t, 2, false)       // 6-7 aborted, abort marker 8
	x.send(t, 1, true)        // 9, commit marker 10
	k.waitStable(t, topic, 0, 11)

	r := NewLagReader(k.cl)
	if p := k.read(t, r, done, topic).Partitions[0]; p.End != 11 || p.Lag != 3 {
		t.Errorf("%s: %+v; want end 11, lag 3 (offsets 4, 5, 9)", done, p)
	}
	if p := k.read(t, r, fresh, topic).Partitions[0]; p.Lag != 6 {
		t.Errorf("%s: %+v; want lag 6 (offsets 0-2, 4, 5, 9)", fresh, p)
	}
}

// A verdict is reused while the partition's end stays, for any group at or
// past the offset it was probed from, and is dropped once unused.
func TestLagProbeCache(t *testing.T) {
	t.Parallel()
	k := newLagKafka(t)
	topic, other := k.topic(t, "cache", 1), k.topic(t, "cache-other", 1)
	done, fresh := k.group(t, "cache-done"), k.group(t, "cache-fresh")
	k.transactor(t, topic, 0).send(t, 3, true) // 0-2, commit marker 3
	k.commit(t, done, topic, 0, 3)

	r := NewLagReader(k.cl)
	check := func(group string, lag, probes int64) {
		t.Helper()
		gl := k.read(t, r, group, topic)
		if gl.Total != lag || r.probes.Load() != probes {
			t.Errorf("%s: lag %d after %d probes; want %d after %d", group, gl.Total, r.probes.Load(), lag, probes)
		}
	}
	check(done, 0, 1)
	check(done, 0, 1)  // unchanged: no fetch
	check(fresh, 3, 2) // from further back: fetched
	check(done, 0, 2)  // answered by fresh's verdict
	k.produce(t, topic, 0, 1)
	check(done, 1, 3) // the end moved

	later := time.Now().Add(2 * verdictTTL)
	r.now = func() time.Time { return later }
	k.read(t, r, done, other)
	r.mu.Lock()
	_, kept := r.verdicts[tp{topic, 0}]
	r.mu.Unlock()
	if kept {
		t.Errorf("the verdict of %s/0, unused for %s, was kept", topic, 2*verdictTTL)
	}
}

func TestLagMembers(t *testing.T) {
	t.Parallel()
	k := newLagKafka(t)
	topic := k.topic(t, "members", 1)
	group := k.group(t, "members")
	k.produce(t, topic, 0, 2)
	r := NewLagReader(k.cl)

	k.consumer(t, group, []string{topic})
	waitLagMembers(t, k, group, 1)
	k.consumer(t, group, []string{topic})
	waitLagMembers(t, k, group, 2)
	// Two members, one partition: one of them holds nothing.
	if gl := k.read(t, r, group, topic); gl.Members != 1 {
		t.Errorf("members = %d, want 1: only one holds the partition", gl.Members)
	}
}

// A group of the next-gen protocol (KIP-848) is described by
// ConsumerGroupDescribe, not DescribeGroups.
func TestLagMembersNextGen(t *testing.T) {
	t.Parallel()
	if lagTestBrokers() == nil {
		t.Skip("kfake answers DescribeGroups for a next-gen group with the group and no members, not GROUP_ID_NOT_FOUND as Kafka 4 does: covered on a real broker (SLUICE_TEST_BROKERS)")
	}
	k := newLagKafka(t)
	topic := k.topic(t, "members848", 1)
	group := k.group(t, "members848")
	r := NewLagReader(k.cl)
	nextGen := []kgo.Opt{kgo.Balancers(kgo.RangeBalancer()), kgo.ServerSideBalancer()}

	k.consumer(t, group, []string{topic}, nextGen...)
	waitLag(t, k, r, group, topic, func(gl GroupLag) bool { return gl.Members == 1 })
	k.consumer(t, group, []string{topic}, nextGen...)
	ctx := lagCtx(t)
	for {
		gs, err := k.adm.DescribeConsumerGroups(ctx, group)
		if err == nil && len(gs[group].Members) == 2 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("group %s: %d members, want 2 (%v)", group, len(gs[group].Members), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if gl := k.read(t, r, group, topic); gl.Members != 1 {
		t.Errorf("members = %d, want 1: only one holds the partition", gl.Members)
	}
}

// waitLag reads until ok holds of the group's lag.
func waitLag(t *testing.T, k *lagKafka, r *LagReader, group, topic string, ok func(GroupLag) bool) {
	t.Helper()
	ctx := lagCtx(t)
	for {
		gl := k.read(t, r, group, topic)
		if ok(gl) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("group %s: lag %+v never as wanted", group, gl)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitLagMembers waits until the group is stable with n members.
func waitLagMembers(t *testing.T, k *lagKafka, group string, n int) {
	t.Helper()
	ctx := lagCtx(t)
	for {
		gs, err := k.adm.DescribeGroups(ctx, group)
		g := gs[group]
		if err == nil && g.State == "Stable" && len(g.Members) == n {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("group %s: state %q with %d members, want Stable with %d (%v)", group, g.State, len(g.Members), n, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func TestLagUnknownTopic(t *testing.T) {
	t.Parallel()
	k := newLagKafka(t)
	topic := k.topic(t, "known", 1)
	missing := k.name("missing")
	gl, err := NewLagReader(k.cl).Read(lagCtx(t), k.group(t, "unknown"), []string{topic, missing})
	if err == nil {
		t.Fatalf("Read on a missing topic = %+v, want an error", gl)
	}
	if !errors.Is(err, kerr.UnknownTopicOrPartition) || !strings.Contains(err.Error(), missing) {
		t.Errorf("err = %v, want UNKNOWN_TOPIC_OR_PARTITION naming %s", err, missing)
	}
}

func TestLagBadArguments(t *testing.T) {
	t.Parallel()
	r := NewLagReader(nil) // never reached
	for _, tc := range []struct {
		group  string
		topics []string
	}{{"", []string{"a"}}, {"g", nil}, {"g", []string{""}}} {
		if _, err := r.Read(context.Background(), tc.group, tc.topics); err == nil {
			t.Errorf("Read(%q, %q) succeeded", tc.group, tc.topics)
		}
	}
}

// lagDeadAddr returns an address nothing listens on.
func lagDeadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestLagNoBroker(t *testing.T) {
	t.Parallel()
	closed, err := kgo.NewClient(kgo.SeedBrokers(lagDeadAddr(t)))
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	unreachable, err := kgo.NewClient(kgo.SeedBrokers(lagDeadAddr(t)), kgo.RetryTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unreachable.Close)

	for name, cl := range map[string]*kgo.Client{"closed client": closed, "unreachable broker": unreachable} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			gl, err := NewLagReader(cl).Read(ctx, "g", []string{"t"})
			if err == nil || !strings.Contains(err.Error(), "group g") {
				t.Errorf("Read = %+v, %v; want an error naming the group", gl, err)
			}
		})
	}
}

// A broker that goes away after a good read makes the next read fail, not
// read zero. Always on an embedded broker: it is the one a test can stop.
func TestLagBrokerGone(t *testing.T) {
	t.Parallel()
	e, err := streams.StartEmbedded(0, "")
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	cl, err := streams.Dial(lagCtx(t), e.Brokers(), lagQuiet, kgo.RetryTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	k := &lagKafka{brokers: e.Brokers(), cl: cl, adm: kadm.NewClient(cl), id: streams.Instance()}
	topic := k.topic(t, "gone", 1)
	k.produce(t, topic, 0, 5)
	r := NewLagReader(cl)
	if gl := k.read(t, r, "g", topic); gl.Total != 5 {
		t.Fatalf("lag before = %d, want 5", gl.Total)
	}

	e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if gl, err := r.Read(ctx, "g", []string{topic}); err == nil {
		t.Errorf("Read with the broker gone = %+v, want an error", gl)
	}
}
