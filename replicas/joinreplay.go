package replicas

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A join's commits say what is done past the commit point. A partition's
// commit point stays at the first input of a join that has not fired (and
// of a fired one whose other inputs are not completed yet), while the
// records after it go on: many are done, their joins fired and answered.
// Each commit's metadata lists those offsets ("sluice-done:" and ranges),
// and the next owner of the partition, reading them back at assignment,
// does not fire a join again for a replayed input that was done: it
// remembers the request as fired (its other inputs, replayed or late, are
// then dropped as late) and completes the record. What the metadata does
// not say (a commit that failed, a list cut at the size limit, a final
// commit overwritten) is processed again: a duplicate, never a loss.

const (
	doneMetaPrefix = "sluice-done:"
	doneMetaMax    = 4000 // the broker's offset.metadata.max.bytes is 4096 by default
	commitEvery    = 250 * time.Millisecond
)

// commitCtx is ctx with the join's metadata hook for a commit.
func (r *Replica) commitCtx(ctx context.Context) context.Context {
	if r.join == nil {
		return ctx
	}
	return kgo.PreCommitFnContext(ctx, r.join.annotate)
}

// commitLoop commits the marked offsets with their metadata every
// commitEvery until ctx ends (a join's replica does not autocommit: an
// autocommit would carry no metadata).
func (j *joiner) commitLoop(ctx context.Context) {
	t := time.NewTicker(commitEvery)
	defer t.Stop()
	failing := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := j.commit(ctx)
		switch {
		case ctx.Err() != nil:
		case err != nil && err.Error() != failing:
			failing = err.Error()
			j.r.cfg.Log.Warn("join: commit failed; retried every tick", "group", j.r.cfg.Group, "err", err)
		case err == nil && failing != "":
			failing = ""
			j.r.cfg.Log.Info("join: commits succeed again", "group", j.r.cfg.Group)
		}
	}
}

// commit commits every owned partition at its commit point, with the
// metadata annotate adds. Every partition goes in every commit, marked
// anew or not: a partition whose commit point is held by a waiting input
// has nothing new to mark while the records past it finish, and what
// they are must reach the broker all the same.
func (j *joiner) commit(ctx context.Context) error {
	offsets := map[string]map[int32]kgo.EpochOffset{}
	j.r.mu.Lock()
	for k, part := range j.r.parts {
		off, epoch := part.commitPoint()
		if part.revoked || off < 0 {
			continue
		}
		if offsets[k.topic] == nil {
			offsets[k.topic] = map[int32]kgo.EpochOffset{}
		}
		offsets[k.topic][k.partition] = kgo.EpochOffset{Epoch: epoch, Offset: off}
	}
	j.r.mu.Unlock()
	if len(offsets) == 0 {
		return nil
	}
	var err error
	j.r.cl.CommitOffsetsSync(j.r.commitCtx(ctx), offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, e error) {
		if e != nil {
			err = e
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if e := kerr.ErrorForCode(p.ErrorCode); e != nil && err == nil {
					err = e
				}
			}
		}
	})
	return err
}

// annotate sets each committed partition's metadata to the offsets past
// its commit point that are done, and adds the owned partitions that have
// such offsets but no new mark (a partition whose first record waits for
// its join has never been marked), at their commit point.
func (j *joiner) annotate(req *kmsg.OffsetCommitRequest) error {
	j.r.mu.Lock()
	defer j.r.mu.Unlock()
	in := map[tp]bool{}
	for ti := range req.Topics {
		t := &req.Topics[ti]
		for pi := range t.Partitions {
			p := &t.Partitions[pi]
			k := tp{t.Topic, p.Partition}
			in[k] = true
			part := j.r.parts[k]
			if part == nil { // forgotten (a stop, a revoke): what its last commit said still holds
				if m, ok := j.meta[k]; ok && m.at == p.Offset {
					p.Metadata = &m.done
				}
				continue
			}
			j.annotateLocked(k, part, p)
		}
	}
	for k, part := range j.r.parts {
		if in[k] || part.revoked || !part.anyDone() {
			continue
		}
		p := kmsg.NewOffsetCommitRequestTopicPartition()
		p.Partition = k.partition
		p.Offset, p.LeaderEpoch = part.commitPoint()
		if p.Offset < 0 {
			continue
		}
		j.annotateLocked(k, part, &p)
		ti := slices.IndexFunc(req.Topics, func(t kmsg.OffsetCommitRequestTopic) bool { return t.Topic == k.topic })
		if ti < 0 {
			t := kmsg.NewOffsetCommitRequestTopic()
			t.Topic = k.topic
			req.Topics = append(req.Topics, t)
			ti = len(req.Topics) - 1
		}
		req.Topics[ti].Partitions = append(req.Topics[ti].Partitions, p)
	}
	return nil
}

func (j *joiner) annotateLocked(k tp, part *partition, p *kmsg.OffsetCommitRequestTopicPartition) {
	var offs []int64
	for _, s := range part.tail {
		if s.rec.Offset >= p.Offset {
			offs = append(offs, s.rec.Offset)
		}
	}
	for _, s := range part.queue {
		if s.done && s.rec.Offset >= p.Offset {
			offs = append(offs, s.rec.Offset)
		}
	}
	if len(offs) > 0 {
		m := encodeDone(offs)
		p.Metadata = &m
		j.meta[k] = committedMeta{p.Offset, m}
	}
}

// annotateTxn makes an exactly-once join's transactional offset commit
// say what annotate says in an at-least-once one: every owned partition
// at its commit point (not at the records polled, some of which wait for
// their joins), with the offsets done past it. A partition no longer
// owned is left out: its transaction aborts.
func (j *joiner) annotateTxn(req *kmsg.TxnOffsetCommitRequest) error {
	j.r.mu.Lock()
	defer j.r.mu.Unlock()
	ids := map[string][16]byte{}
	for _, t := range req.Topics {
		ids[t.Topic] = t.TopicID
	}
	byTopic := map[string][]kmsg.TxnOffsetCommitRequestTopicPartition{}
	for k, part := range j.r.parts {
		off, epoch := part.commitPoint()
		if part.revoked || off < 0 {
			continue
		}
		c := kmsg.NewOffsetCommitRequestTopicPartition()
		c.Offset, c.LeaderEpoch = off, epoch
		j.annotateLocked(k, part, &c)
		p := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		p.Partition, p.Offset, p.LeaderEpoch, p.Metadata = k.partition, off, epoch, c.Metadata
		byTopic[k.topic] = append(byTopic[k.topic], p)
	}
	req.Topics = req.Topics[:0]
	for _, t := range slices.Sorted(maps.Keys(byTopic)) {
		rt := kmsg.NewTxnOffsetCommitRequestTopic()
		rt.Topic, rt.TopicID, rt.Partitions = t, ids[t], byTopic[t]
		req.Topics = append(req.Topics, rt)
	}
	return nil
}

// anyDone reports whether a record past the partition's commit point is
// done; r.mu is held.
func (part *partition) anyDone() bool {
	if len(part.tail) > 0 {
		return true
	}
	for _, s := range part.queue {
		if s.done {
			return true
		}
	}
	return false
}

// commitPoint is where the partition's commit stands as markLocked sets
// it, or, before any mark, its first record in flight; -1 when neither
// is known. r.mu is held.
func (part *partition) commitPoint() (int64, int32) {
	switch {
	case len(part.held) > 0:
		return part.held[0].rec.Offset, part.held[0].rec.LeaderEpoch
	case part.last != nil:
		return part.last.Offset + 1, part.last.LeaderEpoch
	case len(part.queue) > 0:
		return part.queue[0].rec.Offset, part.queue[0].rec.LeaderEpoch
	}
	return -1, -1
}

// committedMeta is the metadata last written with a partition's offset.
type committedMeta struct {
	at   int64
	done string
}

// encodeDone writes offsets as "sluice-done:a-b,c,...", ascending, cut
// before doneMetaMax bytes.
func encodeDone(offs []int64) string {
	slices.Sort(offs)
	offs = slices.Compact(offs)
	var b strings.Builder
	b.WriteString(doneMetaPrefix)
	for i := 0; i < len(offs); {
		k := i
		for k+1 < len(offs) && offs[k+1] == offs[k]+1 {
			k++
		}
		part := strconv.FormatInt(offs[i], 10)
		if k > i {
			part += "-" + strconv.FormatInt(offs[k], 10)
		}
		if b.Len()+len(part)+1 > doneMetaMax {
			break
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(part)
		i = k + 1
	}
	return b.String()
}

// doneSet is what a commit's metadata says is done: ranges [from, to].
type doneSet [][2]int64

func parseDone(meta string) doneSet {
	rest, ok := strings.CutPrefix(meta, doneMetaPrefix)
	if !ok || rest == "" {
		return nil
	}
	var d doneSet
	for _, r := range strings.Split(rest, ",") {
		a, b, isRange := strings.Cut(r, "-")
		from, err := strconv.ParseInt(a, 10, 64)
		if err != nil {
			return nil
		}
		to := from
		if isRange {
			if to, err = strconv.ParseInt(b, 10, 64); err != nil {
				return nil
			}
		}
		d = append(d, [2]int64{from, to})
	}
	return d
}

func (d doneSet) has(off int64) bool {
	for _, r := range d {
		if r[0] <= off && off <= r[1] {
			return true
		}
	}
	return false
}

// fetchDone reads the done offsets the group's last commits recorded for
// the partitions just assigned. A failure reads nothing: the replay then
// fires again what was done (duplicates, no loss).
func (r *Replica) fetchDone(ctx context.Context, cl *kgo.Client, got map[string][]int32) map[tp]doneSet {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	offs, err := kadm.NewClient(cl).FetchOffsets(ctx, r.cfg.Group)
	if err != nil {
		r.cfg.Log.Warn("join: committed metadata not read; done inputs of the assigned partitions may fire again", "group", r.cfg.Group, "err", err)
		return nil
	}
	out := map[tp]doneSet{}
	n := 0
	for t, ps := range got {
		for _, p := range ps {
			if o, ok := offs.Lookup(t, p); ok && o.Err == nil {
				if d := parseDone(o.Metadata); d != nil {
					out[tp{t, p}] = d
					n += len(d)
				}
			}
		}
	}
	if n > 0 {
		r.cfg.Log.Info("join: committed done offsets read", "group", r.cfg.Group, "partitions", len(out), "ranges", n)
	}
	return out
}

// wasDone handles an input the partition's last commit recorded as done:
// its join fired before (or it was late). The request is remembered as
// fired, a pending join of it is given up (its inputs complete), and the
// record completes without output. It reports whether x was such an
// input.
func (j *joiner) wasDone(x *run, key string, byID bool) bool {
	if !x.s.part.done.has(x.rec.Offset) {
		return false
	}
	j.stats.replayed.Add(1)
	if !byID {
		return true
	}
	now := time.Now()
	j.mu.Lock()
	var held []*run
	for _, g := range slices.Clone(j.open[key]) {
		g.timer.Stop()
		held = append(held, g.runs...)
		j.closeLocked(g, now)
	}
	if _, ok := j.fired[key]; !ok {
		j.fired[key] = now
		j.order = append(j.order, firedKey{key, now})
	}
	j.mu.Unlock()
	for _, y := range held {
		y.unhold()
	}
	return true
}
