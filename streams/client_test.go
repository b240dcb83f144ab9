package streams

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// deadPort returns a loopback address nobody listens on.
func deadPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func TestDialNoBroker(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		timeout time.Duration // 0: no deadline on ctx, DialTimeout bounds it
	}{
		{"dial timeout bounds", 0},
		{"context bounds", 500 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr := deadPort(t)
			ctx := context.Background()
			bound := DialTimeout
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
				bound = tc.timeout
			}
			start := time.Now()
			cl, err := Dial(ctx, []string{addr}, quietLog())
			elapsed := time.Since(start)
			if err == nil {
				cl.Close()
				t.Fatalf("Dial(%s) succeeded with nobody listening", addr)
			}
			if !errors.Is(err, ErrNoBroker) {
				t.Errorf("error %v does not wrap ErrNoBroker", err)
			}
			if !strings.Contains(err.Error(), addr) {
				t.Errorf("error %q does not name the broker %s", err, addr)
			}
			if elapsed > bound+2*time.Second {
				t.Errorf("Dial took %s, want at most %s", elapsed, bound+2*time.Second)
			}
			if elapsed < bound-50*time.Millisecond {
				t.Errorf("Dial gave up after %s, before its bound %s", elapsed, bound)
			}
		})
	}
}

func TestDialNoBrokersGiven(t *testing.T) {
	t.Parallel()
	for _, brokers := range [][]string{nil, {}} {
		start := time.Now()
		cl, err := Dial(context.Background(), brokers, quietLog())
		if err == nil {
			cl.Close()
			t.Fatalf("Dial(%v) succeeded", brokers)
		}
		if !errors.Is(err, ErrNoBroker) {
			t.Errorf("Dial(%v) error %v does not wrap ErrNoBroker", brokers, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("Dial(%v) took %s, want an immediate error", brokers, d)
		}
	}
}

func TestDialEmbedded(t *testing.T) {
	t.Parallel()
	brokers := startBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	cl, err := Dial(ctx, brokers, quietLog())
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer cl.Close()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Dial to a live broker took %s", d)
	}
	if err := cl.Ping(ctx); err != nil {
		t.Errorf("Ping after Dial: %v", err)
	}
	// A canceled context fails at once, still as ErrNoBroker.
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	if cl2, err := Dial(cctx, []string{deadPort(t)}, quietLog()); err == nil || !errors.Is(err, ErrNoBroker) {
		if cl2 != nil {
			cl2.Close()
		}
		t.Errorf("Dial with canceled ctx = %v, want ErrNoBroker", err)
	}
}

func TestTopicsEmbedded(t *testing.T) {
	t.Parallel()
	brokers := startBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := Dial(ctx, brokers, quietLog())
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	// The embedded broker's bound (EmbeddedRetention) lowers the reply
	// topic's hour; TestEmbeddedBoundsTopicsAtCreation covers the rest.
	tests := []struct {
		spec       TopicSpec
		partitions int
		configs    map[string]string
	}{
		{TopicSpec{Name: "sluice.app.t.in", Partitions: 3}, 3, nil},
		{CompactedTopic("sluice.control.apps"), 1, map[string]string{"cleanup.policy": "compact"}},
		{ReplyTopic("sluice.reply.x"), 1, map[string]string{"retention.ms": "600000"}},
	}
	specs := make([]TopicSpec, 0, len(tests))
	for _, tc := range tests {
		specs = append(specs, tc.spec)
	}
	for round := 0; round < 2; round++ { // the second round finds every topic there
		if err := CreateTopics(ctx, adm, specs...); err != nil {
			t.Fatalf("CreateTopics round %d: %v", round, err)
		}
	}
	if err := CreateTopics(ctx, adm); err != nil {
		t.Errorf("CreateTopics of nothing: %v", err)
	}
	names := make([]string, 0, len(tests))
	for _, tc := range tests {
		names = append(names, tc.spec.Name)
	}
	td := listTopics(t, ctx, brokers)
	for _, tc := range tests {
		d, ok := td[tc.spec.Name]
		if !ok {
			t.Errorf("topic %s not created", tc.spec.Name)
			continue
		}
		if len(d.Partitions) != tc.partitions {
			t.Errorf("topic %s has %d partitions, want %d", tc.spec.Name, len(d.Partitions), tc.partitions)
		}
	}
	rc, err := adm.DescribeTopicConfigs(ctx, names...)
	if err != nil {
		t.Fatalf("DescribeTopicConfigs: %v", err)
	}
	for _, tc := range tests {
		c, err := rc.On(tc.spec.Name, nil)
		if err != nil {
			t.Errorf("configs of %s: %v", tc.spec.Name, err)
			continue
		}
		for k, want := range tc.configs {
			found := false
			for _, kv := range c.Configs {
				if kv.Key == k {
					found = true
					if kv.MaybeValue() != want {
						t.Errorf("%s %s = %q, want %q", tc.spec.Name, k, kv.MaybeValue(), want)
					}
				}
			}
			if !found {
				t.Errorf("%s has no config %s", tc.spec.Name, k)
			}
		}
	}

	if err := DeleteTopics(ctx, adm, names...); err != nil {
		t.Fatalf("DeleteTopics: %v", err)
	}
	if err := DeleteTopics(ctx, adm, names...); err != nil {
		t.Errorf("DeleteTopics of deleted topics: %v", err)
	}
	if err := DeleteTopics(ctx, adm, "sluice.never.existed"); err != nil {
		t.Errorf("DeleteTopics of a missing topic: %v", err)
	}
	td = listTopics(t, ctx, brokers)
	for _, n := range names {
		if td.Has(n) {
			t.Errorf("topic %s still listed after DeleteTopics", n)
		}
	}
}

func TestOptions(t *testing.T) {
	t.Parallel()
	opts := Options([]string{"a:9092", "b:9092"}, quietLog())
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatalf("NewClient(Options): %v", err)
	}
	defer cl.Close()
	if got := cl.OptValue(kgo.SeedBrokers); !equalStrings(got, []string{"a:9092", "b:9092"}) {
		t.Errorf("seed brokers = %v", got)
	}
	if got := cl.OptValue(kgo.ProducerLinger); got != time.Duration(0) {
		t.Errorf("linger = %v, want 0", got)
	}
	if got := cl.OptValue(kgo.DialTimeout); got != 3*time.Second {
		t.Errorf("dial timeout = %v, want 3s", got)
	}
	lg, ok := cl.OptValue(kgo.WithLogger).(*clientLog)
	if !ok {
		t.Fatalf("logger = %T, want *clientLog", cl.OptValue(kgo.WithLogger))
	}
	// The same clientLog is the connection hook (franz-go's hooks type is
	// a slice it does not export).
	if got := fmt.Sprint(cl.OptValue(kgo.WithHooks)); got != fmt.Sprint([]kgo.Hook{lg}) {
		t.Errorf("hooks = %s, want [the logger %p]", got, lg)
	}
}

func equalStrings(v any, want []string) bool {
	got, ok := v.([]string)
	if !ok || len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}
