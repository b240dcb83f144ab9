package autoscaler

import (
	"context"
	"log/slog"
	"maps"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/streams"
)

// watcher is the push path of a deployment at zero: it fetches the input
// topics of such deployments from what their groups have not done, and
// the first record it sees wakes the deployment's loop. A fetch returns as
// soon as a record is written, so a request at zero waits for a replica to
// start, not for the next poll; the record itself stays in its topic for
// the replica.
type watcher struct {
	brokers []string
	log     *slog.Logger
	wake    func(Target)

	mu      sync.Mutex
	from    map[Target]map[string]map[int32]int64 // offsets to watch from
	cl      *kgo.Client
	stopped chan struct{}
	closed  bool
}

func newWatcher(brokers []string, log *slog.Logger, wake func(Target)) *watcher {
	return &watcher{brokers: brokers, log: log, wake: wake, from: map[Target]map[string]map[int32]int64{}}
}

// set watches t's topics from the given offsets (nil: stops watching t).
// A target already watched keeps its first offsets, so a record written
// between two calls is not skipped.
func (w *watcher) set(t Target, from map[string]map[int32]int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	_, had := w.from[t]
	switch {
	case from == nil && !had:
		return
	case from == nil:
		delete(w.from, t)
	case had && sameTopics(w.from[t], from):
		return
	default:
		w.from[t] = from
	}
	w.restartLocked()
}

func sameTopics(a, b map[string]map[int32]int64) bool {
	return maps.EqualFunc(a, b, func(x, y map[int32]int64) bool { return len(x) == len(y) })
}

// restartLocked replaces the fetching client with one for the current set.
func (w *watcher) restartLocked() {
	if w.cl != nil {
		w.cl.Close()
		<-w.stopped
		w.cl = nil
	}
	if len(w.from) == 0 {
		return
	}
	parts := map[string]map[int32]kgo.Offset{}
	readers := map[string][]Target{}
	for t, topics := range w.from {
		for topic, ps := range topics {
			readers[topic] = append(readers[topic], t)
			if parts[topic] == nil {
				parts[topic] = map[int32]kgo.Offset{}
			}
			for p, off := range ps {
				if o, ok := parts[topic][p]; !ok || off < o.EpochOffset().Offset {
					parts[topic][p] = kgo.NewOffset().At(off)
				}
			}
		}
	}
	cl, err := kgo.NewClient(append(streams.Options(w.brokers, w.log), kgo.ConsumePartitions(parts),
		kgo.FetchMaxPartitionBytes(1<<10), kgo.FetchMaxBytes(1<<16))...)
	if err != nil {
		w.log.Warn("autoscaler: records at zero not watched; the lag poll will wake", "err", err)
		return
	}
	w.cl, w.stopped = cl, make(chan struct{})
	go w.fetch(cl, readers, w.stopped)
}

func (w *watcher) fetch(cl *kgo.Client, readers map[string][]Target, stopped chan struct{}) {
	defer close(stopped)
	for {
		fs := cl.PollFetches(context.Background())
		if fs.IsClientClosed() {
			return
		}
		woken := map[string]bool{}
		fs.EachRecord(func(r *kgo.Record) {
			if !woken[r.Topic] {
				woken[r.Topic] = true
				for _, t := range readers[r.Topic] {
					w.wake(t)
				}
			}
		})
	}
}

func (w *watcher) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	w.from = map[Target]map[string]map[int32]int64{}
	w.restartLocked()
}
