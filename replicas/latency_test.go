package replicas

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/protocol"
)

// A report's handler p99 is the bucket bound of the 99th percentile of
// the runs of the last five to ten seconds: older runs leave it.
func TestLatencyWindow(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1000, 0)
	var w latencyWindow
	if got := w.p99(t0); got != 0 {
		t.Errorf("no runs: p99 %v, want 0", got)
	}
	for range 98 {
		w.observe(t0, 3*time.Millisecond)
	}
	w.observe(t0, 40*time.Millisecond)
	w.observe(t0, 45*time.Millisecond)
	for _, tc := range []struct {
		at   time.Duration
		want float64
	}{
		{0, 0.05},                         // 2 of 100 runs above 5 ms: the 99th is in (0.025, 0.05]
		{ReportEvery + time.Second, 0.05}, // the runs' period is the previous one: still counted
		{2*ReportEvery + time.Second, 0},  // gone
	} {
		if got := w.p99(t0.Add(tc.at)); got != tc.want {
			t.Errorf("at +%v: p99 %v, want %v", tc.at, got, tc.want)
		}
	}
	t1 := t0.Add(time.Minute)
	for range 200 {
		w.observe(t1, time.Millisecond/2)
	}
	if got := w.p99(t1); got != 0.0005 {
		t.Errorf("fast runs: p99 %v, want 0.0005", got)
	}
	w.observe(t1.Add(time.Second), time.Minute)
	w.observe(t1.Add(time.Second), time.Minute)
	w.observe(t1.Add(time.Second), time.Minute)
	if got := w.p99(t1.Add(time.Second)); got != -1 {
		t.Errorf("3 of 203 runs past 30 s: p99 %v, want -1", got)
	}
	// Periods stay adjacent: runs at +4.9 s are still counted at +9.9 s
	// (in the previous period), gone at +10.1 s.
	t2 := t1.Add(time.Hour)
	w.observe(t2, time.Second)
	w.observe(t2.Add(4900*time.Millisecond), 2*time.Second)
	if got := w.p99(t2.Add(9900 * time.Millisecond)); got != 2.5 {
		t.Errorf("at +9.9 s: p99 %v, want 2.5", got)
	}
	if got := w.p99(t2.Add(10100 * time.Millisecond)); got != 0 {
		t.Errorf("at +10.1 s: p99 %v, want 0", got)
	}
}

// A replica's report carries the p99 of its handler's runs: a handler
// that takes at least 30 ms reports no less than the 50 ms bound.
func TestReportHandlerP99(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	r := start(t, f.config(), handlerFunc(func(ctx context.Context, in *Input, out Output) error {
		time.Sleep(30 * time.Millisecond)
		return upper(ctx, in, out)
	}))
	if got := r.Report().HandlerP99; got != 0 {
		t.Errorf("before any record: handler p99 %v, want 0", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := streams.NewCaller(ctx, brokers, streams.Namer{}, streams.Instance(), testLog)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	for i := range 5 {
		if _, err := c.Call(ctx, &protocol.Request{Topic: f.in, Value: fmt.Appendf(nil, "r%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := r.Report().HandlerP99; got < 0.05 || got > 2.5 {
		t.Errorf("after five runs of 30 ms or more: handler p99 %v s, want 0.05 to 2.5", got)
	}
}
