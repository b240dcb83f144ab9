package replicas

import (
	"sync"
	"time"
)

// latencyWindow counts the handler's runs by duration in the buckets of
// LatencyBuckets (the last one +Inf) over two adjacent periods of
// ReportEvery, so the p99 a report carries covers the runs of the last
// five to ten seconds, whoever reads the report and how often.
type latencyWindow struct {
	mu        sync.Mutex
	start     time.Time // of cur; zero before the first run
	cur, prev []int64
}

// observe counts one run of d that ended at now.
func (w *latencyWindow) observe(now time.Time, d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(LatencyBuckets) && s > LatencyBuckets[i] {
		i++
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rotate(now)
	w.cur[i]++
}

// rotate starts the next period once the current one is over; both
// are dropped when the current one ended more than a period ago.
func (w *latencyWindow) rotate(now time.Time) {
	if w.cur == nil {
		w.cur, w.prev = make([]int64, len(LatencyBuckets)+1), make([]int64, len(LatencyBuckets)+1)
		w.start = now
		return
	}
	age := now.Sub(w.start)
	if age < ReportEvery {
		return
	}
	w.cur, w.prev = w.prev, w.cur
	clear(w.cur)
	w.start = w.start.Add(ReportEvery) // periods stay adjacent
	if age >= 2*ReportEvery {
		clear(w.prev)
		w.start = now
	}
}

// p99 is the upper bound, in seconds, of the bucket that holds the 99th
// percentile of the runs in the window as of now: 0 when there were
// none, -1 when it lies past the last bound.
func (w *latencyWindow) p99(now time.Time) float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cur == nil {
		return 0
	}
	w.rotate(now)
	var total int64
	for i := range w.cur {
		total += w.cur[i] + w.prev[i]
	}
	if total == 0 {
		return 0
	}
	var cum int64
	for i := range w.cur {
		cum += w.cur[i] + w.prev[i]
		if float64(cum) >= 0.99*float64(total) && i < len(LatencyBuckets) {
			return LatencyBuckets[i]
		}
	}
	return -1
}
