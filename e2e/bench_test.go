package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	inference "github.com/sluice-serve/sluice/protos/gen/inference"
	sluicev1 "github.com/sluice-serve/sluice/protos/gen/sluice/v1"
	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/protocol"
)

// BenchmarkSync measures synchronous calls through the platform next to a
// raw franz-go round trip (produce -> consume -> produce -> consume) on the
// same broker in the same run. Each sub-benchmark reports p50 and p99 in
// milliseconds, requests per second, and its p50 as a multiple of the raw
// round trip's p50 at the same concurrency.
//
//	go test ./e2e -run '^$' -bench Sync -benchtime 3000x
//	SLUICE_TEST_BROKERS=127.0.0.1:9092 go test ./e2e -run '^$' -bench Sync -benchtime 3000x
func BenchmarkSync(b *testing.B) {
	raw := newRawEcho(b)
	defer raw.close()
	c, err := streams.NewCaller(context.Background(), plat.Brokers, namer, "bench-"+streams.Instance(), testLog)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(context.Background())

	call := func(topic, body string) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			_, err := c.Call(ctx, &protocol.Request{Topic: topic, Value: []byte(body)})
			return err
		}
	}
	httpc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128}}
	viaHTTP := func(path, body string) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url(path), strings.NewReader(body))
			resp, err := httpc.Do(req)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body) // drained, so the connection is reused
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		}
	}
	conn, err := grpc.NewClient(plat.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	predict := sluicev1.NewPredictClient(conn)
	viaGRPC := func(app, body string) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			_, err := predict.Predict(ctx, &sluicev1.PredictRequest{App: app, Payload: []byte(body)})
			return err
		}
	}
	infer := inference.NewGRPCInferenceServiceClient(conn)
	raw4 := make([]byte, 16)
	viaOIPGRPC := func(ctx context.Context) error {
		_, err := infer.ModelInfer(ctx, &inference.ModelInferRequest{ModelName: "doubler",
			Inputs:           []*inference.ModelInferRequest_InferInputTensor{{Name: "INPUT0", Datatype: "FP32", Shape: []int64{4}}},
			RawInputContents: [][]byte{raw4}})
		return err
	}
	workloads := []struct {
		name string
		fn   func(ctx context.Context) error
	}{
		{"raw", raw.call},
		{"1hop", call(namer.Ingress("faults"), `{"echo":"x"}`)},
		{"1hop-rest", viaHTTP("/faults", `{"echo":"x"}`)},
		{"1hop-grpc", viaGRPC("faults", `{"echo":"x"}`)},
		{"oip-rest", viaHTTP("/v2/models/doubler/infer", `{"inputs":[{"name":"INPUT0","datatype":"FP32","shape":[4],"data":[1,2,3,4]}]}`)},
		{"oip-grpc", viaOIPGRPC},
		{"hello", call(namer.Ingress("hello"), `{"language":"spanish","name":"Dora"}`)},
		{"hello-cel", call(namer.Ingress("hello-cel"), `{"language":"spanish","name":"Dora"}`)},
		{"chain", call(namer.Ingress("chain"), `5`)},
	}
	// hello-cel is hello with the classifier as CEL rules: compared with
	// hello's p50 in the same run (x_hello_p50).
	if code, out := run(b, "deploy", "-f", "../examples/hello-cel/hello-cel.yaml"); code != 0 {
		b.Fatalf("deploy hello-cel: %s", out)
	}
	rawP50, helloP50 := map[int]float64{}, map[int]float64{}
	for _, conc := range []int{1, 64} {
		for _, w := range workloads {
			b.Run(fmt.Sprintf("%s/c%d", w.name, conc), func(b *testing.B) {
				p50, p99, rps := load(b, conc, w.fn)
				switch w.name {
				case "raw":
					rawP50[conc] = p50
				case "hello":
					helloP50[conc] = p50
				case "hello-cel":
					if base := helloP50[conc]; base > 0 {
						b.ReportMetric(p50/base, "x_hello_p50")
					}
				}
				b.ReportMetric(p50, "p50_ms")
				b.ReportMetric(p99, "p99_ms")
				b.ReportMetric(rps, "req/s")
				if base := rawP50[conc]; base > 0 {
					b.ReportMetric(p50/base, "x_raw_p50")
				}
				if conc > 1 { // the whole platform's memory under this load
					var ms runtime.MemStats
					runtime.ReadMemStats(&ms)
					b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap_MiB")
					if rss, err := rssKiB(os.Getpid()); err == nil {
						b.ReportMetric(float64(rss)/1024, "rss_MiB")
					}
				}
			})
		}
	}
}

// load runs b.N calls from conc goroutines after a short warm-up.
func load(b *testing.B, conc int, fn func(ctx context.Context) error) (p50, p99, rps float64) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for range 50 { // warm-up, excluded
		if err := fn(ctx); err != nil {
			b.Fatal(err)
		}
	}
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	b.ResetTimer()
	start := time.Now()
	for range conc {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
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
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return ms(lat[len(lat)/2]), ms(lat[len(lat)*99/100]), float64(b.N) / elapsed.Seconds()
}

// rawEcho is the baseline: the least franz-go code that does a sync call
// over Kafka. A group consumer echoes topic "in" to topic "out"; the caller
// reads "out" directly and matches replies by key.
type rawEcho struct {
	in, out string
	echo    *kgo.Client
	caller  *kgo.Client
	cancel  context.CancelFunc
	mu      sync.Mutex
	waits   map[string]chan struct{}
	n       atomic.Int64
	done    sync.WaitGroup
}

func newRawEcho(b *testing.B) *rawEcho {
	id := streams.Instance()
	r := &rawEcho{in: "raw-in-" + id, out: "raw-out-" + id, waits: map[string]chan struct{}{}}
	adm, err := kgo.NewClient(seed()...)
	if err != nil {
		b.Fatal(err)
	}
	defer adm.Close()
	if _, err := kadm.NewClient(adm).CreateTopics(context.Background(), 8, -1, nil, r.in); err != nil {
		b.Fatal(err)
	}
	if _, err := kadm.NewClient(adm).CreateTopics(context.Background(), 1, -1, nil, r.out); err != nil {
		b.Fatal(err)
	}
	r.echo, err = kgo.NewClient(append(seed(), kgo.ProducerLinger(0),
		kgo.ConsumerGroup("raw-"+id), kgo.ConsumeTopics(r.in), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		b.Fatal(err)
	}
	r.caller, err = kgo.NewClient(append(seed(), kgo.ProducerLinger(0),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{r.out: {0: kgo.NewOffset().AtStart()}}))...)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.done.Add(2)
	go func() {
		defer r.done.Done()
		for ctx.Err() == nil {
			r.echo.PollFetches(ctx).EachRecord(func(rec *kgo.Record) {
				r.echo.Produce(ctx, &kgo.Record{Topic: r.out, Key: rec.Key, Value: rec.Value}, nil)
			})
		}
	}()
	go func() {
		defer r.done.Done()
		for ctx.Err() == nil {
			r.caller.PollFetches(ctx).EachRecord(func(rec *kgo.Record) {
				r.mu.Lock()
				ch := r.waits[string(rec.Key)]
				delete(r.waits, string(rec.Key))
				r.mu.Unlock()
				if ch != nil {
					close(ch)
				}
			})
		}
	}()
	return r
}

func (r *rawEcho) call(ctx context.Context) error {
	key := fmt.Sprintf("k%d", r.n.Add(1))
	ch := make(chan struct{})
	r.mu.Lock()
	r.waits[key] = ch
	r.mu.Unlock()
	r.caller.Produce(ctx, &kgo.Record{Topic: r.in, Key: []byte(key), Value: []byte(`{"echo":"x"}`)}, nil)
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *rawEcho) close() {
	r.cancel()
	r.echo.Close()
	r.caller.Close()
	r.done.Wait()
}
