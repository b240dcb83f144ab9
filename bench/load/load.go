// Package load drives an HTTP endpoint on this machine with a closed or an
// open loop and records latencies in an HDR histogram. It is the client of
// the Sluice versus Ray Serve benchmark: the same generator, flags and
// figures for both servers.
//
// Every run has a warm-up phase, whose requests are sent but not recorded,
// then a measured phase. A request belongs to the phase in which it was
// started (closed loop) or scheduled (open loop); requests of the measured
// phase still outstanding at its end are awaited, up to their timeout.
package load

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// The histogram's range and precision, in microseconds.
const (
	histMin     = 1
	histMax     = int64(60 * time.Second / time.Microsecond)
	histSigFigs = 3
)

// maxIdleConns caps the open loop's idle connection pool.
const maxIdleConns = 1024

// mixSeed seeds the model mix: the same Config sends the same sequence of
// models (up to the interleaving of concurrent workers).
const mixSeed = 0x5eed

// Run drives cfg.URL until the measured phase ends, MaxRequests are
// recorded, or ctx is done. ctx bounds the whole run: cancelling it aborts
// the requests in flight and returns what was recorded so far with
// ctx's error. A Config that cannot run is a *ConfigError.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	cfg = cfg.withDefaults()

	conns := cfg.Concurrency
	if cfg.Rate > 0 {
		conns = min(cfg.MaxInFlight, maxIdleConns)
	}
	transport := &http.Transport{
		Proxy:               nil, // loopback only; never through a proxy
		DialContext:         (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
	}
	defer transport.CloseIdleConnections()

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	start := time.Now()
	r := &run{
		cfg:     cfg,
		client:  &http.Client{Transport: transport},
		start:   start,
		warmEnd: start.Add(cfg.Warmup),
		end:     start.Add(cfg.Warmup + cfg.Duration),
		stop:    stop,
		hist:    hdrhistogram.New(histMin, histMax, histSigFigs),
	}
	r.targets, r.pick = targets(cfg)
	if cfg.Rate > 0 {
		r.open(runCtx)
	} else {
		r.closed(runCtx)
	}
	return r.result(time.Now()), ctx.Err()
}

// run is the state of one Run.
type run struct {
	cfg                 Config
	client              *http.Client
	start, warmEnd, end time.Time
	stop                context.CancelFunc // ends the run early (MaxRequests)
	targets             []target           // one per model, or one
	pick                func() int         // index into targets; safe for concurrent use

	mu       sync.Mutex // guards the fields below
	hist     *hdrhistogram.Histogram
	requests int64
	errors   int64
	dropped  int64
	firstErr string
	last     time.Time // when the last recorded request completed
}

// target is what one model's requests are sent to.
type target struct {
	url    string
	header http.Header
}

// targets expands the model placeholder for each of cfg.Models models (or
// once, when there are none) and returns the picker of the mix.
func targets(cfg Config) ([]target, func() int) {
	n := max(cfg.Models, 1)
	ts := make([]target, n)
	for i := range ts {
		sub := func(s string) string { return s }
		if cfg.Models > 0 {
			name := cfg.ModelName(i)
			sub = func(s string) string { return strings.ReplaceAll(s, ModelPlaceholder, name) }
		}
		h := make(http.Header, len(cfg.Headers))
		for k, v := range cfg.Headers {
			h.Set(k, sub(v))
		}
		ts[i] = target{url: sub(cfg.URL), header: h}
	}
	if n == 1 {
		return ts, func() int { return 0 }
	}
	var mu sync.Mutex // rand.Rand and rand.Zipf are not safe for concurrent use
	rng := rand.New(rand.NewPCG(mixSeed, mixSeed))
	next := func() int { return rng.IntN(n) }
	if cfg.Zipf > 0 {
		z := rand.NewZipf(rng, cfg.Zipf, 1, uint64(n-1))
		next = func() int { return int(z.Uint64()) }
	}
	return ts, func() int {
		mu.Lock()
		defer mu.Unlock()
		return next()
	}
}

// closed runs Concurrency workers, each starting its next request when the
// previous one is answered, until the measured phase ends.
func (r *run) closed(ctx context.Context) {
	var wg sync.WaitGroup
	for range r.cfg.Concurrency {
		wg.Go(func() {
			for ctx.Err() == nil {
				t := time.Now()
				if !t.Before(r.end) {
					return
				}
				r.do(ctx, t)
			}
		})
	}
	wg.Wait()
}

// open sends a request at each tick of a fixed schedule, whether or not
// the previous ones were answered, until the measured phase ends.
func (r *run) open(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	inflight := make(chan struct{}, r.cfg.MaxInFlight)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for i := 0; ; i++ {
		t := r.start.Add(time.Duration(float64(i) * float64(time.Second) / r.cfg.Rate))
		if !t.Before(r.end) {
			return
		}
		if d := time.Until(t); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		} else if ctx.Err() != nil {
			return
		}
		select {
		case inflight <- struct{}{}:
			wg.Go(func() {
				defer func() { <-inflight }()
				r.do(ctx, t)
			})
		default:
			r.drop(t)
		}
	}
}

// do sends one request started or scheduled at t and records it if it
// belongs to the measured phase.
func (r *run) do(ctx context.Context, t time.Time) {
	err := r.send(ctx)
	done := time.Now()
	if err != nil && ctx.Err() != nil {
		return // aborted by the run's end, not the server's doing
	}
	if t.Before(r.warmEnd) {
		return
	}
	r.record(t, done, err)
}

// send makes one request and checks its answer.
func (r *run) send(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	var body io.Reader
	if r.cfg.Body != nil {
		body = bytes.NewReader(r.cfg.Body)
	}
	t := r.targets[r.pick()]
	req, err := http.NewRequestWithContext(ctx, r.cfg.Method, t.url, body)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", r.cfg.ContentType)
	}
	for k, v := range t.header {
		req.Header[k] = v
	}
	resp, err := r.client.Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("timeout after %s", r.cfg.Timeout)
		}
		return err
	}
	defer resp.Body.Close()
	if r.cfg.Expect != nil {
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return fmt.Errorf("read body: %w", err)
		}
		return r.cfg.Expect(resp.StatusCode, b)
	}
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return fmt.Errorf("status %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	return nil
}

// record counts a request of the measured phase started or scheduled at t
// and answered at done; a failed request's latency is not recorded.
func (r *run) record(t, done time.Time, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cfg.MaxRequests > 0 && r.requests >= int64(r.cfg.MaxRequests) {
		return
	}
	r.requests++
	if done.After(r.last) {
		r.last = done
	}
	if err != nil {
		r.errors++
		if r.firstErr == "" {
			r.firstErr = err.Error()
		}
	} else {
		us := min(max(done.Sub(t).Microseconds(), histMin), histMax)
		_ = r.hist.RecordValue(us) // within range by the clamp above
	}
	if r.cfg.MaxRequests > 0 && r.requests == int64(r.cfg.MaxRequests) {
		r.stop()
	}
}

// drop counts an open-loop request scheduled at t and not sent.
func (r *run) drop(t time.Time) {
	if t.Before(r.warmEnd) {
		return
	}
	r.mu.Lock()
	r.dropped++
	r.mu.Unlock()
}

// result summarises the run, which stopped at now.
func (r *run) result(now time.Time) Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := Result{
		Requests:   r.requests,
		Errors:     r.errors,
		Dropped:    r.dropped,
		FirstError: r.firstErr,
		Hist:       r.hist,
	}
	if r.requests > 0 {
		res.Elapsed = r.last.Sub(r.warmEnd)
	} else {
		if now.After(r.end) {
			now = r.end
		}
		res.Elapsed = max(now.Sub(r.warmEnd), 0)
	}
	if res.Elapsed > 0 {
		res.RPS = float64(res.Requests) / res.Elapsed.Seconds()
	}
	if r.hist.TotalCount() > 0 {
		res.P50 = quantile(r.hist, 50)
		res.P90 = quantile(r.hist, 90)
		res.P99 = quantile(r.hist, 99)
		res.P999 = quantile(r.hist, 99.9)
		res.Max = time.Duration(r.hist.Max()) * time.Microsecond
	}
	return res
}

func quantile(h *hdrhistogram.Histogram, q float64) time.Duration {
	return time.Duration(h.ValueAtQuantile(q)) * time.Microsecond
}
