package replicas

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/kafkaauth"
	"github.com/sluice-serve/sluice/streams/protocol"
)

// BenchmarkKafkaSecurity measures one hop (a Caller's request, a replica
// that answers it, the reply) over TLS with SCRAM-SHA-512 next to
// plaintext, each on its own embedded broker, in the same run: the calls
// alternate between the two in rounds, so that load from elsewhere on the
// machine weighs on both alike. It reports, at concurrency 1 and 64, the
// p50 and requests per second of each, and the secured figures as
// multiples of the plaintext ones (x_plain_p50, x_plain_rps).
//
//	go test ./replicas -run '^$' -bench KafkaSecurity -benchtime 8000x
func BenchmarkKafkaSecurity(b *testing.B) {
	plain, stopPlain := secBenchHop(b, false)
	defer stopPlain()
	secured, stopSecured := secBenchHop(b, true)
	defer stopSecured()
	const rounds = 8
	for _, conc := range []int{1, 64} {
		b.Run(fmt.Sprintf("1hop/c%d", conc), func(b *testing.B) {
			var lat [2][]time.Duration
			var took [2]time.Duration
			per := max(b.N/rounds, conc)
			for _, fn := range []func(context.Context) error{plain, secured} {
				secBenchLoad(b, conc, 100, fn) // warm-up, excluded
			}
			b.ResetTimer()
			for range rounds {
				for i, fn := range []func(context.Context) error{plain, secured} {
					l, d := secBenchLoad(b, conc, per, fn)
					lat[i], took[i] = append(lat[i], l...), took[i]+d
				}
			}
			b.StopTimer()
			p50 := func(l []time.Duration) float64 {
				slices.Sort(l)
				return float64(l[len(l)/2]) / float64(time.Millisecond)
			}
			pp, sp := p50(lat[0]), p50(lat[1])
			pr, sr := float64(len(lat[0]))/took[0].Seconds(), float64(len(lat[1]))/took[1].Seconds()
			b.ReportMetric(pp, "plain_p50_ms")
			b.ReportMetric(sp, "secure_p50_ms")
			b.ReportMetric(pr, "plain_req/s")
			b.ReportMetric(sr, "secure_req/s")
			b.ReportMetric(sp/pp, "x_plain_p50")
			b.ReportMetric(sr/pr, "x_plain_rps")
		})
	}
}

// secBenchHop starts an embedded broker (TLS and SCRAM-SHA-512 when
// secure), an echo replica on it and a Caller, and returns one call.
func secBenchHop(b *testing.B, secure bool) (hop func(ctx context.Context) error, stop func()) {
	b.Helper()
	var opts []streams.EmbeddedOpt
	var cfg kafkaauth.Config
	if secure {
		files, err := kafkaauth.SelfSigned(b.TempDir(), "127.0.0.1")
		if err != nil {
			b.Fatal(err)
		}
		tlsOpt, err := streams.WithTLS(files.Cert, files.Key, "")
		if err != nil {
			b.Fatal(err)
		}
		opts = append(opts, tlsOpt, streams.WithSASLUser(kafkaauth.ScramSHA512, "bench", "bench-pw"))
		cfg = kafkaauth.Config{TLS: kafkaauth.TLS{CAFile: files.CA}, SASL: kafkaauth.SASL{Mechanism: kafkaauth.ScramSHA512, Username: "bench", Password: "bench-pw"}}
	}
	emb, err := streams.StartEmbedded(0, "", opts...)
	if err != nil {
		b.Fatal(err)
	}
	bs := emb.Brokers()
	if err := streams.Secure(bs, cfg); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admCl, err := streams.Dial(ctx, bs, testLog)
	if err != nil {
		b.Fatal(err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	in, out, dlq := "sec-in", "sec-out", "sec-dlq"
	if err := streams.CreateTopics(ctx, adm, streams.TopicSpec{Name: in, Partitions: 8}, streams.TopicSpec{Name: out, Partitions: 1}, streams.TopicSpec{Name: dlq, Partitions: 1}); err != nil {
		b.Fatal(err)
	}
	r, err := New(ctx, Config{Brokers: bs, Group: "sec-group", Topics: []string{in}, Output: out, DeadLetter: dlq, Deployment: "echo", Log: testLog},
		handlerFunc(func(_ context.Context, in *Input, out Output) error { return out.Emit(in.Value, "") }))
	if err != nil {
		b.Fatal(err)
	}
	rctx, rcancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	namer, _ := streams.NewNamer("secbench")
	c, err := streams.NewCaller(ctx, bs, namer, "bench-"+streams.Instance(), testLog)
	if err != nil {
		b.Fatal(err)
	}
	hop = func(ctx context.Context) error {
		_, err := c.Call(ctx, &protocol.Request{Topic: in, Value: []byte(`{"echo":"x"}`)})
		return err
	}
	return hop, func() {
		c.Close(context.Background())
		rcancel()
		<-done
		emb.Close()
	}
}

// secBenchLoad makes n calls from conc goroutines and returns their
// latencies and the time they took together.
func secBenchLoad(b *testing.B, conc, n int, fn func(ctx context.Context) error) ([]time.Duration, time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				t := time.Now()
				if err := fn(ctx); err != nil {
					failed.Store(err)
					return
				}
				lat[i] = time.Since(t)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	return lat, elapsed
}
