package streams

import (
	"bytes"
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// embedded starts a broker with opts and an admin client on it.
func embedded(t *testing.T, opts ...EmbeddedOpt) (*kgo.Client, *kadm.Client) {
	t.Helper()
	e, err := StartEmbedded(0, "", opts...)
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	t.Cleanup(e.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.Brokers()...), kgo.ProducerLinger(0), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl, kadm.NewClient(cl)
}

// topicConfigs returns the configs a topic was given (not defaults).
func topicConfigs(t *testing.T, ctx context.Context, adm *kadm.Client, topic string) map[string]string {
	t.Helper()
	rc, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		t.Fatalf("DescribeTopicConfigs: %v", err)
	}
	c, err := rc.On(topic, nil)
	if err != nil {
		t.Fatalf("configs of %s: %v", topic, err)
	}
	m := map[string]string{}
	for _, kv := range c.Configs {
		if kv.Source == 1 { // DYNAMIC_TOPIC_CONFIG: set on the topic
			m[kv.Key] = kv.MaybeValue()
		}
	}
	return m
}

func TestEmbeddedBoundsTopicsAtCreation(t *testing.T) {
	t.Parallel()
	ms := func(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
	day, gib, mib := ms(24*time.Hour), strconv.Itoa(1<<30), strconv.Itoa(1<<20)
	tests := []struct {
		name string
		ret  *Retention // nil: the default bound
		spec TopicSpec
		want map[string]string // configs that must hold, "" for absent
	}{
		{"no configs get the bound", nil, TopicSpec{Name: "plain", Partitions: 2},
			map[string]string{"retention.ms": "600000", "retention.bytes": mib, "segment.bytes": strconv.Itoa(256 << 10)}},
		{"a data topic is lowered to the bound", nil, DataTopic("data", 2),
			map[string]string{"retention.ms": "600000", "retention.bytes": mib, "segment.bytes": strconv.Itoa(256 << 10), "segment.ms": ms(3 * time.Hour)}},
		{"lower configs are kept", nil, TopicSpec{Name: "short", Partitions: 1, Configs: map[string]*string{"retention.ms": ptr("1000"), "retention.bytes": ptr("4096")}},
			map[string]string{"retention.ms": "1000", "retention.bytes": "4096"}},
		{"unlimited is lowered", nil, TopicSpec{Name: "forever", Partitions: 1, Configs: map[string]*string{"retention.ms": ptr("-1"), "retention.bytes": ptr("-1")}},
			map[string]string{"retention.ms": "600000", "retention.bytes": mib}},
		{"a reply topic is lowered", nil, ReplyTopic("reply"),
			map[string]string{"retention.ms": "600000", "retention.bytes": mib}},
		{"a compacted topic keeps every key", nil, CompactedTopic("control"),
			map[string]string{"cleanup.policy": "compact", "retention.ms": "-1", "retention.bytes": "-1"}},
		{"compacted by someone else", nil, TopicSpec{Name: "theirs", Partitions: 1, Configs: map[string]*string{"cleanup.policy": ptr("compact"), "retention.ms": ptr("1000")}},
			map[string]string{"retention.ms": "-1", "retention.bytes": "-1"}},
		{"compact,delete is bounded", nil, TopicSpec{Name: "both", Partitions: 1, Configs: map[string]*string{"cleanup.policy": ptr("compact,delete")}},
			map[string]string{"retention.ms": "600000", "retention.bytes": mib}},
		{"no bound: a data topic keeps its own", &Retention{}, DataTopic("data", 2),
			map[string]string{"retention.ms": day, "retention.bytes": gib, "segment.bytes": strconv.Itoa(1 << 20)}},
		{"no bound: no configs stay absent", &Retention{}, TopicSpec{Name: "plain", Partitions: 1},
			map[string]string{"retention.ms": "", "retention.bytes": ""}},
		{"time bound only", &Retention{Time: time.Minute}, DataTopic("data", 1),
			map[string]string{"retention.ms": "60000", "retention.bytes": gib}},
		{"bytes bound only", &Retention{Bytes: 8 << 20}, DataTopic("data", 1),
			map[string]string{"retention.ms": day, "retention.bytes": strconv.Itoa(8 << 20), "segment.bytes": strconv.Itoa(1 << 20)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var opts []EmbeddedOpt
			if tc.ret != nil {
				opts = append(opts, WithRetention(*tc.ret))
			}
			_, adm := embedded(t, opts...)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := CreateTopics(ctx, adm, tc.spec); err != nil {
				t.Fatalf("CreateTopics: %v", err)
			}
			got := topicConfigs(t, ctx, adm, tc.spec.Name)
			for k, want := range tc.want {
				if got[k] != want {
					t.Errorf("%s = %q, want %q (all: %v)", k, got[k], want, got)
				}
			}
		})
	}
}

func TestEmbeddedRefusesNegativeRetention(t *testing.T) {
	t.Parallel()
	for _, r := range []Retention{{Time: -time.Second}, {Bytes: -1}} {
		if e, err := StartEmbedded(0, "", WithRetention(r)); err == nil {
			e.Close()
			t.Errorf("StartEmbedded with %+v: no error", r)
		}
	}
}

// offsets returns a partition's log start and end offsets.
func offsets(t *testing.T, ctx context.Context, adm *kadm.Client, topic string, p int32) (start, end int64) {
	t.Helper()
	s, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("ListStartOffsets: %v", err)
	}
	e, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("ListEndOffsets: %v", err)
	}
	so, _ := s.Lookup(topic, p)
	eo, _ := e.Lookup(topic, p)
	return so.Offset, eo.Offset
}

// eventually polls cond every 100 ms until it holds or 4 clean intervals
// pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(4 * EmbeddedCleanInterval)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, 4*EmbeddedCleanInterval)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestEmbeddedRetentionDeletesBySize(t *testing.T) {
	t.Parallel()
	const bound = 64 << 10
	cl, adm := embedded(t, WithRetention(Retention{Bytes: bound}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := CreateTopics(ctx, adm, DataTopic("data", 1)); err != nil {
		t.Fatal(err)
	}
	value := bytes.Repeat([]byte("x"), 500)
	const n = 1000 // about 550 KB, eight times the bound
	for i := range n {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "data", Value: value, Key: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// Each record is a batch of about 570 bytes: the bound keeps about
	// 115 of them, the last on each clean.
	var start, end int64
	eventually(t, "the oldest records deleted", func() bool {
		start, end = offsets(t, ctx, adm, "data", 0)
		return end-start <= bound/500
	})
	if end != n || end-start < bound/1000 {
		t.Errorf("log [%d, %d): %d records kept, want about %d", start, end, end-start, bound/570)
	}
}

func TestEmbeddedRetentionDeletesByTime(t *testing.T) {
	t.Parallel()
	cl, adm := embedded(t, WithRetention(Retention{Time: time.Second}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := CreateTopics(ctx, adm, DataTopic("data", 1)); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "data", Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "every record older than a second deleted", func() bool {
		start, end := offsets(t, ctx, adm, "data", 0)
		return start == end && end == 10
	})
}

func TestEmbeddedCompactsCompactedTopics(t *testing.T) {
	t.Parallel()
	// A one-second time bound must not touch a compacted topic, even for
	// records stamped a week ago.
	cl, adm := embedded(t, WithRetention(Retention{Time: time.Second, Bytes: 1 << 10}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := CreateTopics(ctx, adm, CompactedTopic("status")); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-7 * 24 * time.Hour)
	const keys, rounds = 5, 40
	for r := range rounds {
		for k := range keys {
			rec := &kgo.Record{Topic: "status", Key: []byte("k" + strconv.Itoa(k)), Value: []byte(strconv.Itoa(r)), Timestamp: old}
			if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	eventually(t, "compacted", func() bool {
		start, _ := offsets(t, ctx, adm, "status", 0)
		return start > 0
	})
	// Read it back from the start: the latest value of every key, and
	// nothing superseded but the active (last) batch.
	rd, err := kgo.NewClient(kgo.SeedBrokers(cl.OptValue(kgo.SeedBrokers).([]string)...), kgo.FetchMaxWait(100*time.Millisecond),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"status": {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	_, end := offsets(t, ctx, adm, "status", 0)
	latest, read := map[string]string{}, 0
	for read == 0 || latest["k4"] != strconv.Itoa(rounds-1) {
		fs := rd.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("reading back: %v (read %d: %v)", err, read, latest)
		}
		fs.EachRecord(func(r *kgo.Record) {
			read++
			latest[string(r.Key)] = string(r.Value)
		})
	}
	if read > keys+1 {
		t.Errorf("read %d records of %d offsets, want at most %d", read, end, keys+1)
	}
	for k := range keys {
		if got := latest["k"+strconv.Itoa(k)]; got != strconv.Itoa(rounds-1) {
			t.Errorf("k%d = %q, want %d", k, got, rounds-1)
		}
	}
}
