package load

import (
	"encoding/json"
	"math"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Result is what a run recorded in its measured phase.
type Result struct {
	Requests int64 // answered or failed, dropped excluded
	Errors   int64 // of Requests, those that failed
	Dropped  int64 // open loop: scheduled while MaxInFlight were outstanding
	// Elapsed runs from the start of the measured phase to the answer of
	// its last recorded request.
	Elapsed time.Duration
	RPS     float64 // Requests / Elapsed
	// Latency quantiles of the successful requests, from the start (closed
	// loop) or the scheduled time (open loop) to the whole answer read.
	P50, P90, P99, P999, Max time.Duration
	FirstError               string
	Hist                     *hdrhistogram.Histogram // microseconds, successes only
}

// MarshalJSON writes the result as one flat object in snake_case, with
// durations as floats: elapsed_s in seconds, the quantiles in milliseconds
// (to the microsecond). Hist is left out.
func (r Result) MarshalJSON() ([]byte, error) {
	return json.Marshal(resultJSON{
		Requests:   r.Requests,
		Errors:     r.Errors,
		Dropped:    r.Dropped,
		ElapsedS:   r.Elapsed.Seconds(),
		RPS:        math.Round(r.RPS*100) / 100,
		P50:        millis(r.P50),
		P90:        millis(r.P90),
		P99:        millis(r.P99),
		P999:       millis(r.P999),
		Max:        millis(r.Max),
		FirstError: r.FirstError,
	})
}

type resultJSON struct {
	Requests   int64   `json:"requests"`
	Errors     int64   `json:"errors"`
	Dropped    int64   `json:"dropped"`
	ElapsedS   float64 `json:"elapsed_s"`
	RPS        float64 `json:"rps"`
	P50        float64 `json:"p50_ms"`
	P90        float64 `json:"p90_ms"`
	P99        float64 `json:"p99_ms"`
	P999       float64 `json:"p999_ms"`
	Max        float64 `json:"max_ms"`
	FirstError string  `json:"first_error"`
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
