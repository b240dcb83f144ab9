package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-serve/sluice/streams"
)

// BenchmarkHTTPIngress compares an HTTP ingress route (the whole request
// in a record, the status and headers on the reply, a net/http ServeMux
// in the replica) with a plain application route (body in, body out) on
// the same platform in the same run: one small body echoed by each (the
// plain route's handler is the Echo function, a string in and out), p50 and
// p99 in milliseconds and requests per second, at concurrency 1 and 64,
// and the HTTP route's p50 as a multiple of the plain route's.
//
//	go test ./e2e -run '^$' -bench HTTPIngress -benchtime 2000x
func BenchmarkHTTPIngress(b *testing.B) {
	httpc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128}}
	post := func(path, body string) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url(path), strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := httpc.Do(req)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body) // drained, so the connection is reused
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("%s: status %d", path, resp.StatusCode)
			}
			return nil
		}
	}
	plain := "echo-" + streams.Instance()[:6]
	y := fmt.Sprintf("name: %[1]s\nroute_prefix: /%[1]s\ningress: Echo\ndeployments:\n  - {name: Echo, handler: Echo}\n", plain)
	if code, out := run(b, "deploy", "-f", writeFile(b, "echo.yaml", y)); code != 0 {
		b.Fatalf("deploy %s: %s", plain, out)
	}
	defer run(b, "delete", plain)
	workloads := []struct {
		name string
		fn   func(ctx context.Context) error
	}{
		{"plain", post("/"+plain, `{"echo":"x"}`)},
		{"http", post("/web/echo", `{"echo":"x"}`)},
	}
	// Both routes warmed up first: the plain application was just
	// deployed, the HTTP one at the suite's start.
	for _, w := range workloads {
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 100 {
					if err := w.fn(context.Background()); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	plainP50 := map[int]float64{}
	for _, conc := range []int{1, 64} {
		for _, w := range workloads {
			b.Run(fmt.Sprintf("%s/c%d", w.name, conc), func(b *testing.B) {
				p50, p99, rps := load(b, conc, w.fn)
				if w.name == "plain" {
					plainP50[conc] = p50
				} else if base := plainP50[conc]; base > 0 {
					b.ReportMetric(p50/base, "x_plain_p50")
				}
				b.ReportMetric(p50, "p50_ms")
				b.ReportMetric(p99, "p99_ms")
				b.ReportMetric(rps, "req/s")
			})
		}
	}
}
