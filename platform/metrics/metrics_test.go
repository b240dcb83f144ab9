package metrics

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A process's registry carries the Go runtime's and the process's
// series, and Listen serves them at /metrics on the port it chose.
func TestListen(t *testing.T) {
	t.Parallel()
	reg := NewRegistry()
	srv, err := Listen("127.0.0.1:0", reg)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + srv.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"go_goroutines ", "process_resident_memory_bytes "} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Close(ctx); err != nil {
		t.Errorf("close: %v", err)
	}
	if _, err := http.Get("http://" + srv.Addr() + "/metrics"); err == nil {
		t.Error("still serving after Close")
	}
	if _, err := Listen("256.0.0.1:0", reg); err == nil || !strings.Contains(err.Error(), "metrics listener") {
		t.Errorf("a bad address: %v", err)
	}
}

// Two clients of one process export their Kafka series side by side
// (one label apart), and a closed client's series leave the registry.
func TestKafka(t *testing.T) {
	t.Parallel()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	reg := NewRegistry()
	var cls []*kgo.Client
	for range 2 {
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("t"), Kafka(reg, "test"))
		if err != nil {
			t.Fatal(err)
		}
		cls = append(cls, cl)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	// A produce's promise may run before the client's hook counts its
	// batch: the series come within a moment, not with ProduceSync.
	if n, err := seriesWithin(reg, "sluice_kgo_produce_bytes_total", 2); err != nil || n != 2 {
		t.Errorf("produce_bytes series = %d (%v), want one per client", n, err)
	}
	cls[0].Close()
	if n, err := seriesWithin(reg, "sluice_kgo_produce_bytes_total", 1); err != nil || n != 1 {
		t.Errorf("after a client closed: %d series (%v), want 1", n, err)
	}
	cls[1].Close()
}

func TestAdvertised(t *testing.T) {
	t.Parallel()
	ifs := func(ips ...string) func() ([]net.Addr, error) {
		return func() ([]net.Addr, error) {
			var out []net.Addr
			for _, ip := range ips {
				out = append(out, &net.IPNet{IP: net.ParseIP(ip), Mask: net.CIDRMask(24, 32)})
			}
			return out, nil
		}
	}
	for _, tc := range []struct {
		bound string
		ifs   []string
		want  string
	}{
		{"127.0.0.1", []string{"10.0.0.5"}, "127.0.0.1:9464"},
		{"10.1.2.3", []string{"10.0.0.5"}, "10.1.2.3:9464"},
		{"0.0.0.0", []string{"127.0.0.1", "fe80::1", "2001:db8::5", "10.0.0.5"}, "10.0.0.5:9464"},
		{"::", []string{"127.0.0.1", "2001:db8::5"}, "[2001:db8::5]:9464"},
		{"0.0.0.0", []string{"127.0.0.1"}, "0.0.0.0:9464"},
	} {
		got := advertised(&net.TCPAddr{IP: net.ParseIP(tc.bound), Port: 9464}, ifs(tc.ifs...))
		if got != tc.want {
			t.Errorf("advertised(%s, %v) = %s, want %s", tc.bound, tc.ifs, got, tc.want)
		}
	}
}

// seriesWithin counts name's series in reg until there are want of them,
// for at most 5 s; the last count.
func seriesWithin(reg prometheus.Gatherer, name string, want int) (int, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := testutil.GatherAndCount(reg, name)
		if err != nil || n == want || time.Now().After(deadline) {
			return n, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}
