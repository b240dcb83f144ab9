// Package audit is the trail of admin actions: deploys and deletes of
// applications, pushes, aliases and deletions of model and code
// versions, each with who asked, on what, and how it ended. Every
// gateway writes its entries to one topic (<prefix>.control.audit) and
// follows it, keeping the latest entries of all gateways in memory for
// the API that lists them (`sluice audit`).
package audit

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/streams"
)

// Entry is one admin action.
type Entry struct {
	Time     time.Time `json:"time"`
	Identity string    `json:"identity"` // the token's name or the JWT's subject; anonymous without authentication
	Action   string    `json:"action"`   // deploy, delete, models.push, models.alias, models.rm, code.push, code.alias, code.rm
	Target   string    `json:"target"`   // the application, model or bundle (and version or alias) acted on
	Outcome  string    `json:"outcome"`  // ok, or the error code (permission_denied, unauthenticated, not_found…)
	Error    string    `json:"error,omitempty"`
	Gateway  string    `json:"gateway,omitempty"` // the instance that served it
}

// Retention is how long the topic keeps entries (a topic created by an
// earlier version keeps its own setting; change it with kafka-configs).
const Retention = 90 * 24 * time.Hour

// Keep is how many of the latest entries a gateway holds to list.
const Keep = 1000

// Buffered is how many entries wait for the broker at most; past it
// an entry is logged as not written.
const Buffered = 1000

// Topic is the audit topic: one partition, so that entries keep their
// order, deleted after Retention, never compacted.
func Topic(name string) streams.TopicSpec {
	ms := strconv.FormatInt(Retention.Milliseconds(), 10)
	del, unbounded := "delete", "-1"
	return streams.TopicSpec{Name: name, Partitions: 1, Configs: map[string]*string{
		"cleanup.policy": &del, "retention.ms": &ms, "retention.bytes": &unbounded,
	}}
}

// Trail writes entries to the topic and keeps the latest Keep of it.
type Trail struct {
	cl       *kgo.Client
	topic    string
	instance string
	log      *slog.Logger

	mu     sync.Mutex // guards latest
	latest []Entry    // oldest first, at most Keep
}

// Open connects, creates the topic if missing, and starts reading its
// last Keep entries (Run reads them).
func Open(ctx context.Context, brokers []string, topic, instance string, log *slog.Logger) (*Trail, error) {
	cl, err := streams.Dial(ctx, brokers, log,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtEnd().Relative(-Keep)}}),
		kgo.FetchMaxWait(500*time.Millisecond),
		// Entries wait for a broker that is down, Buffered of them at most.
		kgo.MaxBufferedRecords(Buffered))
	if err != nil {
		return nil, err
	}
	if err := streams.CreateTopics(ctx, kadm.NewClient(cl), Topic(topic)); err != nil {
		cl.Close()
		return nil, err
	}
	return &Trail{cl: cl, topic: topic, instance: instance, log: log}, nil
}

// Run follows the topic until ctx ends, then flushes what is being
// written (bounded) and closes the client.
func (t *Trail) Run(ctx context.Context) {
	defer func() {
		fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = t.cl.Flush(fctx)
		cancel()
		t.cl.Close()
	}()
	for {
		fs := t.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		fs.EachError(func(topic string, _ int32, err error) {
			if !errors.Is(err, context.Canceled) {
				t.log.Warn("audit topic not read", "topic", topic, "err", err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			var e Entry
			if err := json.Unmarshal(r.Value, &e); err != nil {
				t.log.Warn("audit record skipped", "offset", r.Offset, "err", err)
				return
			}
			t.mu.Lock()
			t.latest = append(t.latest, e)
			if len(t.latest) > Keep {
				t.latest = append(t.latest[:0], t.latest[len(t.latest)-Keep:]...)
			}
			t.mu.Unlock()
		})
	}
}

// Record writes e to the topic, stamped with the time and this
// instance (the gateway has logged it). The write never holds the call
// up, not even with the broker down and the client's buffer full
// (TryProduce fails at once then); one that fails is logged with the
// entry.
func (t *Trail) Record(ctx context.Context, e Entry) {
	e.Time, e.Gateway = time.Now().UTC(), t.instance
	value, err := json.Marshal(e)
	if err != nil {
		return
	}
	t.cl.TryProduce(context.WithoutCancel(ctx), &kgo.Record{Topic: t.topic, Key: []byte(e.Identity), Value: value}, func(_ *kgo.Record, err error) {
		if err != nil {
			t.log.Error("audit entry not written to the topic", "topic", t.topic, "identity", e.Identity, "action", e.Action, "target", e.Target, "err", err)
		}
	})
}

// Latest is the latest n entries (all it holds when n <= 0), oldest
// first.
func (t *Trail) Latest(n int) []Entry {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n <= 0 || n > len(t.latest) {
		n = len(t.latest)
	}
	out := make([]Entry, n)
	copy(out, t.latest[len(t.latest)-n:])
	return out
}
