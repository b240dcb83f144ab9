package streams

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Log is a one-partition compacted topic read from its start: the system of
// record of the controller (applications) and the registry (models). Run
// hands every record to Apply in order; Write produces records and waits
// until Run has applied them, so a writer sees its own change.
type Log struct {
	cl    *kgo.Client
	topic string
	apply func(context.Context, *kgo.Record)
	log   *slog.Logger

	mu       sync.Mutex
	applied  int64         // offset of the last record applied
	progress chan struct{} // closed and replaced on each apply
}

// LogConfig configures a Log.
type LogConfig struct {
	Brokers []string
	Topic   string
	Also    []TopicSpec // more topics to create beside it
	Apply   func(context.Context, *kgo.Record)
	Log     *slog.Logger
	Opts    []kgo.Opt
}

// OpenLog connects, creates the topic (compacted) and Also if missing.
func OpenLog(ctx context.Context, cfg LogConfig) (*Log, error) {
	opts := append([]kgo.Opt{
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{cfg.Topic: {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchMaxWait(500 * time.Millisecond),
	}, cfg.Opts...)
	cl, err := Dial(ctx, cfg.Brokers, cfg.Log, opts...)
	if err != nil {
		return nil, err
	}
	if err := CreateTopics(ctx, kadm.NewClient(cl), append([]TopicSpec{CompactedTopic(cfg.Topic)}, cfg.Also...)...); err != nil {
		cl.Close()
		return nil, err
	}
	return &Log{cl: cl, topic: cfg.Topic, apply: cfg.Apply, log: cfg.Log, applied: -1, progress: make(chan struct{})}, nil
}

// Client is the log's franz-go client, for admin requests beside it.
func (l *Log) Client() *kgo.Client { return l.cl }

// Run applies records until ctx ends, then closes the client.
func (l *Log) Run(ctx context.Context) {
	defer l.cl.Close()
	fetchErrs := FetchErrors{Log: l.log, Msg: "control log fetch failed"}
	for {
		fs := l.cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return
		}
		fetchErrs.Observe(fs)
		fs.EachRecord(func(r *kgo.Record) {
			l.apply(ctx, r)
			l.mu.Lock()
			l.applied = r.Offset
			close(l.progress)
			l.progress = make(chan struct{})
			l.mu.Unlock()
		})
	}
}

// Write produces records to the log (their Topic is set) and waits,
// bounded by ctx, until the last is applied.
func (l *Log) Write(ctx context.Context, recs ...*kgo.Record) error {
	for _, r := range recs {
		r.Topic = l.topic
	}
	if err := l.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return Errorf(CodeUnavailable, "write %s: %v", l.topic, err)
	}
	return l.waitApplied(ctx, recs[len(recs)-1].Offset, "waiting for %s to be applied")
}

// waitApplied waits until Run has applied offset; what names the wait
// ("... %s ..." with the topic) in the error when ctx ends first.
func (l *Log) waitApplied(ctx context.Context, offset int64, what string) error {
	for {
		l.mu.Lock()
		done, wait := l.applied >= offset, l.progress
		l.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return fmt.Errorf(what+": %w", l.topic, ContextError(ctx.Err()))
		}
	}
}

// Sync waits, bounded by ctx, until Run has applied every record written
// before the call: a follower that syncs before serving has the state.
func (l *Log) Sync(ctx context.Context) error {
	ends, err := kadm.NewClient(l.cl).ListEndOffsets(ctx, l.topic)
	if err != nil {
		return Errorf(CodeUnavailable, "read the end of %s: %v", l.topic, err)
	}
	end, ok := ends.Lookup(l.topic, 0)
	if !ok || end.Err != nil {
		return Errorf(CodeUnavailable, "read the end of %s: %v", l.topic, end.Err)
	}
	return l.waitApplied(ctx, end.Offset-1, "catching up with %s")
}
