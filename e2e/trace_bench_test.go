package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/sluice-serve/sluice/examples/chain"
	"github.com/sluice-serve/sluice/platform/cli"
	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/tracing"
)

// BenchmarkTraceOverhead measures the gateway's c64 throughput on the
// chain application (three deployments, a handle call and a forwarded
// continuation: nine spans a traced request) with tracing off, on at 1 %
// (parent-based ratio sampling at the gateway) and on at 100 %, in turns
// (the order turning each round) on one dev platform in this process. Spans go through the batching
// OTLP/HTTP exporter to a receiver in the test that reads and drops them,
// as they would to a collector. Each run also reports the process's CPU
// time per request (gateway, replicas and broker all run in it), which
// other work on a shared machine disturbs less than throughput. The log
// gives each mode's medians over the rounds, the traced ones as a
// fraction of the off one's.
//
//	go test ./e2e -run '^$' -bench TraceOverhead -benchtime 3000x
func BenchmarkTraceOverhead(b *testing.B) {
	var received atomic.Int64
	otlp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		received.Add(n)
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	defer otlp.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d, err := cli.StartDev(ctx, cli.DevConfig{
		HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0", Brokers: plat.Brokers, Prefix: "o" + streams.Instance(),
		Registry: registry, Apps: []*spec.App{chain.App().Spec()}, Log: testLog,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	provider := func(ratio float64) *sdktrace.TracerProvider {
		exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(otlp.URL), otlptracehttp.WithInsecure())
		if err != nil {
			b.Fatal(err)
		}
		return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))))
	}
	httpc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128}}
	call := func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+d.Addr+"/chain", strings.NewReader("5"))
		resp, err := httpc.Do(req)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "12" {
			return fmt.Errorf("status %d %q", resp.StatusCode, body)
		}
		return nil
	}
	modes := []struct {
		name  string
		ratio float64 // <0: off
	}{{"off", -1}, {"sampled1pct", 0.01}, {"sampled100pct", 1}}
	rps, cpu := map[string]float64{}, map[string]float64{}
	const rounds = 5
	for round := range rounds {
		// The order turns each round, so that no mode always runs first
		// (or last) on a machine whose load drifts.
		for i := range modes {
			m := modes[(i+round)%len(modes)]
			b.Run(fmt.Sprintf("%s/c64/round%d", m.name, round), func(b *testing.B) {
				var tp *sdktrace.TracerProvider
				if m.ratio >= 0 {
					tp = provider(m.ratio)
					tracing.Set(tp)
				}
				cpu0 := cpuTime()
				p50, p99, r := load(b, 64, call)
				tracing.Set(nil)
				if tp != nil {
					_ = tp.Shutdown(context.Background()) // flushes: the export is paid inside the round
				}
				perReq := float64(cpuTime()-cpu0) / float64(time.Microsecond) / float64(b.N+50) // load's warm-up too
				b.ReportMetric(perReq, "cpu_us/req")
				cpu[fmt.Sprint(m.name, round)] = perReq
				b.ReportMetric(p50, "p50_ms")
				b.ReportMetric(p99, "p99_ms")
				b.ReportMetric(r, "req/s")
				rps[fmt.Sprint(m.name, round)] = r
			})
		}
	}
	if received.Load() == 0 {
		b.Fatal("the OTLP receiver got no spans")
	}
	median := func(of map[string]float64, name string) float64 {
		var v []float64
		for round := range rounds {
			v = append(v, of[fmt.Sprint(name, round)])
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	off, offCPU := median(rps, "off"), median(cpu, "off")
	b.Logf("c64 req/s on /chain, median of %d rounds: off %.0f, 1%% %.0f (x%.3f), 100%% %.0f (x%.3f)",
		rounds, off, median(rps, "sampled1pct"), median(rps, "sampled1pct")/off, median(rps, "sampled100pct"), median(rps, "sampled100pct")/off)
	b.Logf("process CPU per request, median: off %.0fus, 1%% %.0fus (x%.3f), 100%% %.0fus (x%.3f); %d bytes of OTLP received",
		offCPU, median(cpu, "sampled1pct"), median(cpu, "sampled1pct")/offCPU, median(cpu, "sampled100pct"), median(cpu, "sampled100pct")/offCPU, received.Load())
}
