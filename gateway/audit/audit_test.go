package audit

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/sluice-serve/sluice/streams"
)

// Entries recorded by two gateways reach both through the topic, in
// order; a gateway started later reads what was written before it; the
// topic is created with its retention, not compacted.
func TestTrail(t *testing.T) {
	t.Parallel()
	kafka, err := streams.StartEmbedded(0, "", streams.WithRetention(streams.Retention{}))
	if err != nil {
		t.Fatal(err)
	}
	defer kafka.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	open := func(instance string) *Trail {
		tr, err := Open(ctx, kafka.Brokers(), "sluice.control.audit", instance, log)
		if err != nil {
			t.Fatal(err)
		}
		rctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); tr.Run(rctx) }()
		t.Cleanup(func() { stop(); <-done })
		return tr
	}
	waitFor := func(tr *Trail, n int) []Entry {
		for {
			if got := tr.Latest(0); len(got) >= n {
				return got
			}
			if ctx.Err() != nil {
				t.Fatalf("%d entries, want %d", len(tr.Latest(0)), n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	a, b := open("gw-a"), open("gw-b")
	a.Record(ctx, Entry{Identity: "ci", Action: "deploy", Target: "apps shop", Outcome: "ok"})
	waitFor(b, 1)
	b.Record(ctx, Entry{Identity: "bob", Action: "delete", Target: "app shop", Outcome: "permission_denied", Error: "no"})
	for _, tr := range []*Trail{a, b} {
		got := waitFor(tr, 2)
		if got[0].Identity != "ci" || got[0].Gateway != "gw-a" || got[1].Identity != "bob" || got[1].Gateway != "gw-b" ||
			got[1].Outcome != "permission_denied" || got[0].Time.IsZero() {
			t.Errorf("entries %+v", got)
		}
	}
	if last := b.Latest(1); len(last) != 1 || last[0].Identity != "bob" {
		t.Errorf("Latest(1) = %+v, want bob's", last)
	}
	late := open("gw-c")
	if got := waitFor(late, 2); got[0].Action != "deploy" || got[1].Action != "delete" {
		t.Errorf("a gateway started after: %+v", got)
	}

	cl, err := streams.Dial(ctx, kafka.Brokers(), log)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rc, err := kadm.NewClient(cl).DescribeTopicConfigs(ctx, "sluice.control.audit")
	if err != nil {
		t.Fatal(err)
	}
	c, err := rc.On("sluice.control.audit", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"cleanup.policy": "delete", "retention.ms": "7776000000"}
	for _, kv := range c.Configs {
		if w, ok := want[kv.Key]; ok {
			if kv.MaybeValue() != w {
				t.Errorf("%s = %q, want %q", kv.Key, kv.MaybeValue(), w)
			}
			delete(want, kv.Key)
		}
	}
	if len(want) > 0 {
		t.Errorf("configs missing: %v", want)
	}
}

// syncWriter is a log destination a test reads while the trail writes.
type syncWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// With the broker gone, recording never blocks, past the client's
// buffer too: entries that cannot be kept are logged as not written.
func TestRecordWithBrokerDown(t *testing.T) {
	t.Parallel()
	kafka, err := streams.StartEmbedded(0, "", streams.WithRetention(streams.Retention{}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var logged syncWriter
	tr, err := Open(ctx, kafka.Brokers(), "sluice.control.audit", "gw", slog.New(slog.NewTextHandler(&logged, nil)))
	if err != nil {
		t.Fatal(err)
	}
	kafka.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range Buffered + 200 {
			tr.Record(ctx, Entry{Identity: "ci", Action: "deploy", Target: "apps shop", Outcome: "ok"})
		}
	}()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("Record blocked with the broker down")
	}
	for !strings.Contains(logged.String(), "audit entry not written to the topic") {
		if ctx.Err() != nil {
			t.Fatalf("no entry logged as not written:\n%.2000s", logged.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	rctx, stop := context.WithCancel(ctx)
	stop()
	tr.Run(rctx) // closes the client, its flush bounded
}
