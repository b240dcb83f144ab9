package dlq

import (
	"context"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/cel"
	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/protocol"
)

var quiet = slog.New(slog.DiscardHandler)

// broker starts an embedded broker with a dead-letter topic and two input
// topics (2 partitions each) and returns its brokers and a client.
func broker(t *testing.T) ([]string, *kgo.Client) {
	t.Helper()
	emb, err := streams.StartEmbedded(0, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(emb.Brokers()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	if _, err := kadm.NewClient(cl).CreateTopics(t.Context(), 2, 1, nil, "dlq", "in", "edge"); err != nil {
		t.Fatal(err)
	}
	return emb.Brokers(), cl
}

// deadLetter is the dead letter of record i of topic from, failed at dep.
func deadLetter(i int, from, dep string, code protocol.Code) *kgo.Record {
	in := &kgo.Record{Topic: from, Partition: int32(i % 2), Offset: int64(i), Key: []byte("k" + strconv.Itoa(i)), Value: []byte(strconv.Itoa(i)),
		Headers: []kgo.RecordHeader{{Key: protocol.HeaderID, Value: []byte("id" + strconv.Itoa(i))}, {Key: "h-x-tenant", Value: []byte("t")}}}
	d := protocol.NewDeadLetter("dlq", in, dep, code, "failed "+strconv.Itoa(i))
	r := d.Record()
	r.Partition = int32(i % 2)
	return r
}

// Read counts what committed, skips what aborted, and ends on a partition
// whose last offsets are transaction markers; Summarize groups by
// deployment and code with the latest error.
func TestReadAndSummarize(t *testing.T) {
	t.Parallel()
	bs, cl := broker(t)
	ctx := t.Context()
	var plain []*kgo.Record
	for i := range 6 {
		dep, code := "A", protocol.Code("invalid_argument")
		if i >= 4 {
			dep, code = "B", "internal"
		}
		plain = append(plain, deadLetter(i, "in", dep, code))
	}
	plain = append(plain, &kgo.Record{Topic: "dlq", Value: []byte("not a dead letter")})
	if err := cl.ProduceSync(ctx, plain...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// A transaction that aborts (a dead letter and a marker naming
	// dead letter 0), then one that commits (dead letter 6): both
	// partitions end in markers.
	tx, err := kgo.NewClient(kgo.SeedBrokers(bs...), kgo.TransactionalID("t"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	for _, commit := range []kgo.TransactionEndTry{kgo.TryAbort, kgo.TryCommit} {
		if err := tx.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		recs := []*kgo.Record{deadLetter(6, "in", "B", "internal")}
		if !commit {
			recs = append(recs, &kgo.Record{Topic: "dlq", Partition: 1, Headers: []kgo.RecordHeader{{Key: protocol.HeaderReplayed, Value: []byte("0/0")}}})
			recs[0] = deadLetter(7, "in", "C", "internal")
		}
		if err := tx.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := tx.EndTransaction(ctx, commit); err != nil {
			t.Fatal(err)
		}
	}
	l, err := Read(ctx, bs, quiet, "dlq")
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Letters) != 7 || l.Unreadable != 1 {
		t.Fatalf("read %d dead letters, %d unreadable; want 7, 1", len(l.Letters), l.Unreadable)
	}
	s := Summarize("app", l)
	if s.Pending != 7 || s.Replayed != 0 || len(s.Groups) != 2 {
		t.Fatalf("summary %+v", s)
	}
	if g := s.Groups[0]; g.Deployment != "A" || g.Code != "invalid_argument" || g.Count != 4 || g.First.After(g.Last) {
		t.Errorf("group A: %+v", g)
	}
	if g := s.Groups[1]; g.Deployment != "B" || g.Code != "internal" || g.Count != 3 || g.LatestError != "failed 6" {
		t.Errorf("group B: %+v", g)
	}
}

// Replay re-produces each chosen dead letter to its source with its key
// and headers less the failure's (Plan saying so first, writing nothing),
// once: a second replay, with another
// filter, skips those already replayed; --since, --where and a source
// topic that is gone skip with their reasons.
func TestReplayOnce(t *testing.T) {
	t.Parallel()
	bs, cl := broker(t)
	ctx := t.Context()
	var recs []*kgo.Record
	for i := range 8 {
		from := "in"
		if i%4 == 3 {
			from = "edge"
		}
		recs = append(recs, deadLetter(i, from, "A", "invalid_argument"))
	}
	recs = append(recs, deadLetter(8, "gone", "A", "invalid_argument"))
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	where, err := cel.Compile(`int(body) >= 4 && request.headers["sl-status"] == "invalid_argument" && deployment == "A"`, cel.Condition)
	if err != nil {
		t.Fatal(err)
	}
	// A plan says the same as the replay after it, and writes nothing.
	for range 2 {
		res, err := Plan(ctx, bs, quiet, "app", "dlq", Filter{Where: where})
		if err != nil {
			t.Fatal(err)
		}
		if res.Replayed != 4 || res.Skipped[SkipWhere] != 4 || res.Skipped[SkipNoTopic] != 1 {
			t.Errorf("plan: %+v; want 4 to replay, 4 --where false, 1 gone", res)
		}
	}
	res, err := Replay(ctx, bs, quiet, "app", "dlq", Filter{Where: where})
	if err != nil {
		t.Fatal(err)
	}
	if res.Replayed != 4 || res.Skipped[SkipWhere] != 4 || res.Skipped[SkipNoTopic] != 1 || len(res.Skipped) != 2 {
		t.Errorf("first replay: %+v; want 4 replayed, 4 --where false, 1 gone", res)
	}
	res, err = Replay(ctx, bs, quiet, "app", "dlq", Filter{Since: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Replayed != 0 || res.Skipped[SkipReplayed] != 4 || res.Skipped[SkipSince] != 5 {
		t.Errorf("replay --since later: %+v; want 4 already replayed, 5 before --since", res)
	}
	res, err = Replay(ctx, bs, quiet, "app", "dlq", Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Replayed != 4 || res.Skipped[SkipReplayed] != 4 || res.Skipped[SkipNoTopic] != 1 {
		t.Errorf("plain replay: %+v; want 4 replayed, 4 already, 1 gone", res)
	}
	// Eight records came back, each once, to where each failed.
	got := map[string]string{}
	rd, err := kgo.NewClient(kgo.SeedBrokers(bs...), kgo.ConsumeTopics("in", "edge"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	n := 0
	for pctx.Err() == nil {
		rd.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
			n++
			got[string(r.Key)] = r.Topic
			for _, h := range r.Headers {
				switch h.Key {
				case protocol.HeaderStatus, protocol.HeaderError, protocol.HeaderSource, protocol.HeaderDeployment:
					t.Errorf("replayed %s carries %s", r.Key, h.Key)
				}
			}
			if protocol.Header(r.Headers, "h-x-tenant") == nil || string(r.Value) != string(r.Key[1:]) {
				t.Errorf("replayed %s: value %q, headers %v", r.Key, r.Value, r.Headers)
			}
		})
	}
	if n != 8 || len(got) != 8 || got["k3"] != "edge" || got["k0"] != "in" {
		t.Errorf("replayed records: %d, %v; want 8, each once, to its source", n, got)
	}
	l, err := Read(ctx, bs, quiet, "dlq")
	if err != nil {
		t.Fatal(err)
	}
	if s := Summarize("app", l); s.Pending != 1 || s.Replayed != 8 {
		t.Errorf("after the replays: %+v; want 1 pending (its topic gone), 8 replayed", s)
	}
}
