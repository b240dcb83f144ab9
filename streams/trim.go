package streams

import (
	"context"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// TrimConsumed deletes, every interval until ctx ends, the records of
// each partition that every consumer group reading it has committed past
// (DeleteRecords up to the lowest committed offset): on the embedded
// broker of `sluice dev` a processed request is of no more use, and
// holding it costs memory. Partitions no group reads (output, dead
// letters, reply topics) are left to retention. An offline batch not yet
// processed is never trimmed: its group has not committed past it.
func (e *Embedded) TrimConsumed(ctx context.Context, interval time.Duration, log *slog.Logger) {
	cl, err := Dial(ctx, e.Brokers(), log)
	if err != nil {
		log.Warn("consumed records will not be trimmed", "err", err)
		return
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := trimOnce(ctx, adm); err != nil && ctx.Err() == nil {
			log.Debug("trim of consumed records failed", "err", err)
		}
	}
}

// trimOnce deletes what every group has committed past, once.
func trimOnce(ctx context.Context, adm *kadm.Client) error {
	groups, err := adm.ListGroups(ctx)
	if err != nil {
		return err
	}
	if len(groups) == 0 {
		return nil
	}
	fetched := adm.FetchManyOffsets(ctx, groups.Groups()...)
	low := kadm.Offsets{}
	for _, r := range fetched {
		if r.Err != nil {
			continue
		}
		r.Fetched.Each(func(o kadm.OffsetResponse) {
			if o.Err != nil || o.At < 0 {
				return
			}
			if cur, ok := low.Lookup(o.Topic, o.Partition); !ok || o.At < cur.At {
				if low[o.Topic] == nil {
					low[o.Topic] = map[int32]kadm.Offset{}
				}
				// Set, not Add: Add keeps the higher of two offsets.
				low[o.Topic][o.Partition] = kadm.Offset{Topic: o.Topic, Partition: o.Partition, At: o.At, LeaderEpoch: -1}
			}
		})
	}
	if len(low) == 0 {
		return nil
	}
	res, err := adm.DeleteRecords(ctx, low)
	if err != nil {
		return err
	}
	return res.Error()
}
