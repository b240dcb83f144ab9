package load

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// server answers 200 with the request's body after sleeping delay (cut
// short when the client goes away), and counts the requests it served.
func server(t *testing.T, delay time.Duration) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var served atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		served.Add(1)
		w.Header().Set("Content-Type", r.Header.Get("Content-Type"))
		w.Write(b)
	}))
	t.Cleanup(s.Close)
	return s, &served
}

func TestClosedLoopRecordsOnlyAfterWarmup(t *testing.T) {
	t.Parallel()
	s, served := server(t, time.Millisecond)
	res, err := Run(t.Context(), Config{
		URL:         s.URL,
		Body:        []byte(`{"x":1}`),
		Concurrency: 4,
		Warmup:      300 * time.Millisecond,
		Duration:    300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.Errors != 0 || res.Dropped != 0 {
		t.Fatalf("got %+v, want requests and no errors", res)
	}
	// About as many requests were served in the warm-up as in the measured
	// phase; none of them is recorded.
	if n := served.Load(); n < res.Requests*3/2 {
		t.Errorf("served %d, recorded %d: warm-up requests recorded?", n, res.Requests)
	}
	if res.Hist.TotalCount() != res.Requests {
		t.Errorf("histogram holds %d, want %d", res.Hist.TotalCount(), res.Requests)
	}
	if res.Elapsed < 250*time.Millisecond || res.Elapsed > time.Second {
		t.Errorf("elapsed %s, want about 300ms", res.Elapsed)
	}
	if res.P50 < time.Millisecond || res.P50 > res.P99 || res.P99 > res.Max {
		t.Errorf("quantiles p50 %s p99 %s max %s out of order", res.P50, res.P99, res.Max)
	}
}

func TestMaxRequestsStopsEarly(t *testing.T) {
	t.Parallel()
	s, _ := server(t, 0)
	start := time.Now()
	res, err := Run(t.Context(), Config{URL: s.URL, Concurrency: 4, Duration: 10 * time.Second, MaxRequests: 50})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 50 || res.Errors != 0 {
		t.Errorf("got %d requests, %d errors; want 50, 0 (first error %q)", res.Requests, res.Errors, res.FirstError)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %s, want an early stop", d)
	}
}

func TestOpenLoopKeepsRate(t *testing.T) {
	t.Parallel()
	s, _ := server(t, 0)
	res, err := Run(t.Context(), Config{URL: s.URL, Method: http.MethodGet, Rate: 200, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests < 160 || res.Requests > 240 || res.Errors != 0 || res.Dropped != 0 {
		t.Errorf("got %+v, want about 200 requests, no errors or drops", res)
	}
	if res.RPS < 160 || res.RPS > 240 {
		t.Errorf("rps %.1f, want about 200", res.RPS)
	}
}

// A server slower than the schedule: latency counts from the scheduled
// time, and what exceeds MaxInFlight is dropped, not queued.
func TestOpenLoopDropsBeyondMaxInFlight(t *testing.T) {
	t.Parallel()
	s, _ := server(t, 50*time.Millisecond)
	res, err := Run(t.Context(), Config{URL: s.URL, Rate: 200, MaxInFlight: 2, Duration: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// Two outstanding at 50ms each: about 40 sent of 100 scheduled.
	if res.Dropped < 30 || res.Requests == 0 || res.Requests+res.Dropped > 100 {
		t.Errorf("got %+v, want about 60 dropped of 100", res)
	}
	if res.P50 < 50*time.Millisecond {
		t.Errorf("p50 %s, want >= 50ms", res.P50)
	}
}

func TestSlowServerLatency(t *testing.T) {
	t.Parallel()
	s, _ := server(t, 50*time.Millisecond)
	res, err := Run(t.Context(), Config{URL: s.URL, Concurrency: 2, Duration: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.P50 < 50*time.Millisecond || res.Max < res.P50 {
		t.Errorf("got %+v, want p50 >= 50ms", res)
	}
}

func TestErrorsCounted(t *testing.T) {
	t.Parallel()
	fail := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	}))
	t.Cleanup(fail.Close)
	ok, _ := server(t, 0)
	slow, _ := server(t, time.Second)

	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"status 500", Config{URL: fail.URL}, "500 Internal Server Error: boom"},
		{"expect mismatch", Config{URL: ok.URL, Body: []byte("a"), Expect: func(status int, body []byte) error {
			if string(body) != "b" {
				return fmt.Errorf("body %q, want %q", body, "b")
			}
			return nil
		}}, `body "a", want "b"`},
		{"timeout", Config{URL: slow.URL, Timeout: 50 * time.Millisecond}, "timeout after 50ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.cfg.Concurrency = 2
			tc.cfg.Duration = 200 * time.Millisecond
			res, err := Run(t.Context(), tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if res.Requests == 0 || res.Errors != res.Requests {
				t.Errorf("got %d requests, %d errors; want all failed", res.Requests, res.Errors)
			}
			if !strings.Contains(res.FirstError, tc.wantErr) {
				t.Errorf("first error %q, want it to contain %q", res.FirstError, tc.wantErr)
			}
			if res.Hist.TotalCount() != 0 || res.P50 != 0 {
				t.Errorf("failed requests in the histogram: %d, p50 %s", res.Hist.TotalCount(), res.P50)
			}
		})
	}
}

func TestRefusesBadConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg   Config
		field string
	}{
		{Config{URL: "http://example.com/x", Concurrency: 1, Duration: time.Second}, "URL"},
		{Config{URL: "http://10.0.0.1:8000/", Concurrency: 1, Duration: time.Second}, "URL"},
		{Config{URL: "http://[2001:db8::1]:8000/", Concurrency: 1, Duration: time.Second}, "URL"},
		{Config{URL: "ftp://127.0.0.1/", Concurrency: 1, Duration: time.Second}, "URL"},
		{Config{URL: "http://127.0.0.1:1/", Duration: time.Second}, "Concurrency"},
		{Config{URL: "http://127.0.0.1:1/", Concurrency: 1, Rate: 10, Duration: time.Second}, "Concurrency"},
		{Config{URL: "http://localhost:1/", Concurrency: 1}, "Duration"},
		{Config{URL: "http://[::1]:1/", Rate: 1, Duration: time.Second, Warmup: -1}, "Warmup"},
	} {
		_, err := Run(t.Context(), tc.cfg)
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field {
			t.Errorf("%+v: got %v, want a ConfigError on %s", tc.cfg, err, tc.field)
		}
	}
	_, err := Run(t.Context(), Config{URL: "http://example.com/", Concurrency: 1, Duration: time.Second})
	if !errors.Is(err, ErrNotLoopback) || !strings.Contains(err.Error(), `"example.com"`) {
		t.Errorf("got %v, want ErrNotLoopback naming the host", err)
	}
}

func TestCancelStopsPromptly(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{{Concurrency: 4}, {Rate: 100}} {
		s, _ := server(t, time.Hour)
		cfg.URL = s.URL
		cfg.Duration = 10 * time.Second
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		start := time.Now()
		res, err := Run(ctx, cfg)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%+v: got %v, want the context's error", cfg, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%+v: returned after %s, want promptly", cfg, d)
		}
		if res.Errors != 0 {
			t.Errorf("%+v: aborted requests counted as errors: %q", cfg, res.FirstError)
		}
	}
}

func TestResultJSON(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(Result{
		Requests: 10, Errors: 1, Elapsed: 1500 * time.Millisecond, RPS: 6.666666,
		P50: 1234 * time.Microsecond, P90: 2 * time.Millisecond, P99: 3 * time.Millisecond,
		P999: 4 * time.Millisecond, Max: 5 * time.Millisecond, FirstError: "boom",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"requests":10,"errors":1,"dropped":0,"elapsed_s":1.5,"rps":6.67,"p50_ms":1.234,"p90_ms":2,"p99_ms":3,"p999_ms":4,"max_ms":5,"first_error":"boom"}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
}

// The model mix: {model} is substituted in the URL and in header values,
// every name is one of the N, and the Zipf mix makes m0 the most frequent.
func TestModelMix(t *testing.T) {
	t.Parallel()
	var (
		mu   sync.Mutex
		seen = map[string]int{}
		bad  []string
	)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path, _ := strings.CutPrefix(r.URL.Path, "/v2/models/")
		path, _ = strings.CutSuffix(path, "/infer")
		hdr := r.Header.Get("Serve_multiplexed_model_id")
		mu.Lock()
		defer mu.Unlock()
		if hdr != path || r.Header.Get("X-Fixed") != "same" {
			bad = append(bad, fmt.Sprintf("path %q header %q x-fixed %q", r.URL.Path, hdr, r.Header.Get("X-Fixed")))
		}
		seen[path]++
	}))
	t.Cleanup(s.Close)
	const models = 20
	res, err := Run(t.Context(), Config{
		URL:         s.URL + "/v2/models/{model}/infer",
		Body:        []byte(`{}`),
		Headers:     map[string]string{"serve_multiplexed_model_id": "{model}", "X-Fixed": "same"},
		Models:      models,
		Zipf:        1.1,
		Concurrency: 4,
		Duration:    10 * time.Second,
		MaxRequests: 4000,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Requests != 4000 {
		t.Fatalf("got %+v, want 4000 requests without errors", res)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 {
		t.Fatalf("%d requests without {model} substituted alike in path and header, first: %s", len(bad), bad[0])
	}
	valid := map[string]bool{}
	for i := range models {
		valid[DefaultModelName(i)] = true
	}
	for name, n := range seen {
		if !valid[name] {
			t.Errorf("model %q (%d requests) is not one of m0..m%d", name, n, models-1)
		}
		if name != "m0" && n >= seen["m0"] {
			t.Errorf("%s got %d requests, m0 %d: want m0 the most frequent", name, n, seen["m0"])
		}
	}
	// Zipf(1.1) over 20: m0 is about 1/H ≈ 0.2 of the requests, m1 about
	// half of that; more than one model is used.
	if seen["m0"] < 4000/10 || seen["m1"] < seen["m0"]/4 || len(seen) < models/2 {
		t.Errorf("mix %v does not look like Zipf(1.1) over %d models", seen, models)
	}
}

func TestModelMixValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		cfg   Config
		field string
	}{
		{"negative models", Config{Models: -1}, "Models"},
		{"zipf at most 1", Config{Models: 5, Zipf: 1}, "Zipf"},
		{"zipf without models", Config{Zipf: 1.5}, "Zipf"},
		{"bad header name", Config{Headers: map[string]string{"a b": "x"}}, "Headers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := tc.cfg
			cfg.URL, cfg.Concurrency, cfg.Duration = "http://127.0.0.1:1/", 1, time.Second
			var ce *ConfigError
			if err := cfg.Validate(); !errors.As(err, &ce) || ce.Field != tc.field {
				t.Errorf("Validate() = %v, want a *ConfigError on %s", err, tc.field)
			}
		})
	}
}
