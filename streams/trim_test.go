package streams

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Trimming deletes what every group reading a partition has committed
// past, and nothing of a partition no group has committed on: an
// unprocessed offline batch stays.
func TestTrimConsumed(t *testing.T) {
	t.Parallel()
	e, err := StartEmbedded(0, "")
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := Dial(ctx, e.Brokers(), slog.New(slog.DiscardHandler), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if err := CreateTopics(ctx, adm, TopicSpec{Name: "in", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	for p := range int32(2) {
		for range 10 {
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "in", Partition: p, Value: []byte("x")}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	commit := func(group string, at int64) {
		t.Helper()
		os := kadm.Offsets{}
		os.Add(kadm.Offset{Topic: "in", Partition: 0, At: at, LeaderEpoch: -1})
		if _, err := adm.CommitOffsets(ctx, group, os); err != nil {
			t.Fatal(err)
		}
	}
	commit("a", 7)
	commit("b", 4) // the slower group holds the trim point
	if err := trimOnce(ctx, adm); err != nil {
		t.Fatal(err)
	}
	starts, err := adm.ListStartOffsets(ctx, "in")
	if err != nil {
		t.Fatal(err)
	}
	p0, _ := starts.Lookup("in", 0)
	p1, _ := starts.Lookup("in", 1)
	if p0.Offset != 4 || p1.Offset != 0 {
		t.Fatalf("log starts %d and %d, want 4 (the slower group's commit) and 0 (no commit)", p0.Offset, p1.Offset)
	}
}
