package autoscaler

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Lag is counted where KEDA's Kafka scaler miscounts it:
//
//   - From max(committed, log start), never from a committed offset that
//     retention or DeleteRecords has moved the log past: those records are
//     gone and no replica will ever process them.
//   - Transaction markers (commit and abort) and the records of aborted
//     transactions are not work. A marker takes an offset, so "end minus
//     committed" reads 1 forever behind a group that has done everything,
//     and a deployment would never scale to zero. When the raw lag of a
//     partition is small, a read_committed fetch of it (a probe) counts
//     the records a consumer would really be given.
const (
	// probeMaxLag is the largest raw lag a probe verifies. Above it the
	// markers are noise next to the real work.
	probeMaxLag = 64
	// probePartitionBytes bounds what a probe reads of one partition.
	// Records too large for it leave the raw lag, which is then real work.
	probePartitionBytes = 256 << 10
	// probeMaxBytes bounds what one probe fetch reads in all.
	probeMaxBytes = 1 << 20
	// verdictTTL is how long a probe's verdict is kept unused: a partition
	// no longer asked about is forgotten after it.
	verdictTTL = time.Minute
)

// Record batches (Kafka's DefaultRecordBatch): the size of the header
// and the attribute bits read here.
const (
	batchHeader       = 61
	attrTransactional = 0x10
	attrControl       = 0x20
)

// PartitionLag is one input partition of a group.
type PartitionLag struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Start     int64  `json:"start"`     // log start offset
	End       int64  `json:"end"`       // log end offset (high watermark)
	Committed int64  `json:"committed"` // -1: the group has committed nothing here
	Lag       int64  `json:"lag"`       // records not yet done, markers and deleted records excluded
}

// from is the offset a replica of the group resumes at: its commit, or the
// log start when it committed nothing (replicas reset to the start) or
// committed below it.
func (p *PartitionLag) from() int64 { return max(p.Committed, p.Start) }

// GroupLag is what a consumer group has not done on its input topics.
type GroupLag struct {
	Partitions []PartitionLag // sorted by topic, then partition
	Total      int64
	Members    int // members of the group that hold partitions (replicas consuming)
}

// LagReader reads group lag through a franz-go client it does not own.
// Each Read is a handful of admin requests (log start and end offsets,
// committed offsets, the group's members) and, for partitions with a small
// lag that changed since the last Read, one fetch per leader. It joins no
// group. It is safe for concurrent use, and one reader serves any number
// of groups.
type LagReader struct {
	cl  *kgo.Client
	adm *kadm.Client
	now func() time.Time

	mu       sync.Mutex // guards verdicts and swept
	verdicts map[tp]*verdict
	swept    time.Time

	probes atomic.Int64 // partitions probed, for tests
}

// NewLagReader returns a reader on cl. Closing cl is the caller's.
func NewLagReader(cl *kgo.Client) *LagReader {
	return &LagReader{cl: cl, adm: kadm.NewClient(cl), now: time.Now, verdicts: make(map[tp]*verdict)}
}

// Read returns the lag of group on topics. An error means the lag is
// unknown (never "zero"): a topic that does not exist, a partition or
// broker that does not answer, a group coordinator error. A group that
// does not exist yet is no error: it has no members and its lag counts
// from the log start. ctx bounds every request Read sends.
func (r *LagReader) Read(ctx context.Context, group string, topics []string) (GroupLag, error) {
	if group == "" {
		return GroupLag{}, errors.New("group lag: no group given")
	}
	topics = slices.Compact(slices.Sorted(slices.Values(topics)))
	if len(topics) == 0 || topics[0] == "" {
		return GroupLag{}, fmt.Errorf("lag of group %s: no topic given", group)
	}

	var (
		wg                     sync.WaitGroup
		starts, ends           kadm.ListedOffsets
		committed              kadm.OffsetResponses
		members                int
		startErr, endErr       error
		commitErr, describeErr error
	)
	wg.Go(func() { starts, startErr = r.adm.ListStartOffsets(ctx, topics...) })
	wg.Go(func() { ends, endErr = r.adm.ListEndOffsets(ctx, topics...) })
	wg.Go(func() { committed, commitErr = r.committed(ctx, group) })
	wg.Go(func() { members, describeErr = r.members(ctx, group) })
	wg.Wait()
	on := strings.Join(topics, ",")
	switch {
	case startErr != nil:
		return GroupLag{}, fmt.Errorf("lag of group %s: log start offsets of %s: %w", group, on, startErr)
	case endErr != nil:
		return GroupLag{}, fmt.Errorf("lag of group %s: log end offsets of %s: %w", group, on, endErr)
	case commitErr != nil:
		return GroupLag{}, fmt.Errorf("lag of group %s: committed offsets: %w", group, commitErr)
	case describeErr != nil:
		return GroupLag{}, fmt.Errorf("lag of group %s: members: %w", group, describeErr)
	}

	var parts []PartitionLag
	for _, t := range topics {
		ps, err := partitionsOf(t, starts, ends, committed)
		if err != nil {
			return GroupLag{}, fmt.Errorf("lag of group %s: %w", group, err)
		}
		parts = append(parts, ps...)
	}
	r.verify(ctx, parts)

	gl := GroupLag{Partitions: parts, Members: members}
	for _, p := range parts {
		gl.Total += p.Lag
	}
	return gl, nil
}

// partitionsOf returns the partitions of topic t with their raw lag, or
// the first error listed for any of them.
func partitionsOf(t string, starts, ends kadm.ListedOffsets, committed kadm.OffsetResponses) ([]PartitionLag, error) {
	// kadm lists a missing topic as partition -1 with the topic's error.
	if o, ok := starts.Lookup(t, -1); ok && o.Err != nil {
		return nil, fmt.Errorf("topic %s: %w", t, o.Err)
	}
	if o, ok := ends.Lookup(t, -1); ok && o.Err != nil {
		return nil, fmt.Errorf("topic %s: %w", t, o.Err)
	}
	if len(starts[t]) == 0 {
		return nil, fmt.Errorf("topic %s: no partitions listed", t)
	}
	if len(starts[t]) != len(ends[t]) {
		return nil, fmt.Errorf("topic %s: start offsets listed for %d partitions, end offsets for %d", t, len(starts[t]), len(ends[t]))
	}
	ids := slices.Sorted(func(yield func(int32) bool) {
		for p := range starts[t] {
			if !yield(p) {
				return
			}
		}
	})
	parts := make([]PartitionLag, 0, len(ids))
	for _, id := range ids {
		s := starts[t][id]
		e, ok := ends.Lookup(t, id)
		switch {
		case s.Err != nil:
			return nil, fmt.Errorf("topic %s partition %d: log start offset: %w", t, id, s.Err)
		case !ok:
			return nil, fmt.Errorf("topic %s partition %d: no log end offset listed", t, id)
		case e.Err != nil:
			return nil, fmt.Errorf("topic %s partition %d: log end offset: %w", t, id, e.Err)
		}
		p := PartitionLag{Topic: t, Partition: id, Start: s.Offset, End: e.Offset, Committed: -1}
		if c, ok := committed.Lookup(t, id); ok {
			if c.Err != nil {
				return nil, fmt.Errorf("topic %s partition %d: committed offset: %w", t, id, c.Err)
			}
			p.Committed = max(c.At, -1)
		}
		// A commit past the end is one read after the end was listed (the
		// lists are concurrent): nothing is left.
		p.Lag = max(p.End-p.from(), 0)
		parts = append(parts, p)
	}
	return parts, nil
}

// committed returns the group's committed offsets; a group that does not
// exist has committed nothing.
func (r *LagReader) committed(ctx context.Context, group string) (kadm.OffsetResponses, error) {
	os, err := r.adm.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return nil, nil
	}
	return os, err
}

// members returns how many members of the group hold partitions; a group
// that does not exist has none.
func (r *LagReader) members(ctx context.Context, group string) (int, error) {
	gs, err := r.adm.DescribeGroups(ctx, group)
	if err != nil {
		return 0, err
	}
	g, ok := gs[group]
	if !ok {
		return 0, errors.New("group missing from the describe response")
	}
	if errors.Is(g.Err, kerr.GroupIDNotFound) {
		// Kafka 4 answers so for a group that does not exist and for a
		// group of the next-gen protocol (KIP-848), which only
		// ConsumerGroupDescribe describes. Older brokers answer a group
		// that does not exist with the state Dead, and have no next-gen
		// groups.
		return r.consumerMembers(ctx, group)
	}
	if g.Err != nil {
		return 0, g.Err
	}
	n := 0
	for _, m := range g.Members {
		if holdsPartitions(m.Assigned) {
			n++
		}
	}
	return n, nil
}

// consumerMembers counts the members holding partitions of a next-gen
// consumer group; a group that does not exist has none.
func (r *LagReader) consumerMembers(ctx context.Context, group string) (int, error) {
	gs, err := r.adm.DescribeConsumerGroups(ctx, group)
	if err != nil {
		return 0, err
	}
	g, ok := gs[group]
	if !ok {
		return 0, errors.New("group missing from the consumer group describe response")
	}
	if errors.Is(g.Err, kerr.GroupIDNotFound) {
		return 0, nil
	}
	if g.Err != nil {
		return 0, g.Err
	}
	n := 0
	for _, m := range g.Members {
		for _, ps := range m.Assignment {
			if len(ps) > 0 {
				n++
				break
			}
		}
	}
	return n, nil
}

func holdsPartitions(a kadm.GroupMemberAssignment) bool {
	if c, ok := a.AsConsumer(); ok {
		for _, t := range c.Topics {
			if len(t.Partitions) > 0 {
				return true
			}
		}
		return false
	}
	raw, _ := a.Raw()
	return len(raw) > 0
}

// ---- probes: what a read_committed consumer would be given ----

type tp struct {
	topic     string
	partition int32
}

// verdict is what a probe found in [from, end) of one partition. The log
// below a given end never changes (retention only moves the start), so a
// verdict holds for as long as the partition's end stays where it was.
type verdict struct {
	from, end int64
	exact     bool   // the probe read up to end; else the lag stays raw
	kept      []span // the data batches a read_committed consumer is given
	used      time.Time
}

// span is one delivered record batch: n records with offsets in first..last
// (n < last-first+1 only in a compacted batch).
type span struct {
	first, last int64
	n           int64
}

// lag returns the lag from offset from (up to v.end) and whether v answers
// for it: a probe from some offset answers for any later one.
func (v *verdict) lag(from, end int64) (int64, bool) {
	if end != v.end || from < v.from {
		return 0, false
	}
	if !v.exact {
		if from != v.from {
			return 0, false // a probe from further on may read to the end
		}
		return end - from, true
	}
	var n int64
	for _, s := range v.kept {
		lo, hi := max(s.first, from), min(s.last, end-1)
		if lo > hi {
			continue
		}
		if s.n == s.last-s.first+1 {
			n += hi - lo + 1
		} else {
			n += min(s.n, hi-lo+1) // compacted: at most this many are left
		}
	}
	return min(n, end-from), true
}

// verify replaces the raw lag of partitions with a small one by what a
// read_committed consumer would be given, from a cached verdict or a
// probe. A probe that fails leaves the raw lag: an error errs on the side
// of work.
func (r *LagReader) verify(ctx context.Context, parts []PartitionLag) {
	now := r.now()
	var ask []*PartitionLag
	r.mu.Lock()
	for i := range parts {
		p := &parts[i]
		if p.Lag <= 0 || p.Lag > probeMaxLag {
			continue
		}
		if v, ok := r.verdicts[tp{p.Topic, p.Partition}]; ok {
			if lag, ok := v.lag(p.from(), p.End); ok {
				v.used = now
				p.Lag = lag
				continue
			}
		}
		ask = append(ask, p)
	}
	r.mu.Unlock()

	var found map[tp]*verdict
	if len(ask) > 0 {
		found = r.probe(ctx, ask)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range ask {
		k := tp{p.Topic, p.Partition}
		v, ok := found[k]
		if !ok {
			continue
		}
		v.used = now
		r.verdicts[k] = v // one verdict a partition: the one it had is stale
		p.Lag, _ = v.lag(p.from(), p.End)
	}
	if now.Sub(r.swept) >= verdictTTL {
		for k, v := range r.verdicts {
			if now.Sub(v.used) >= verdictTTL {
				delete(r.verdicts, k)
			}
		}
		r.swept = now
	}
}

// probe fetches ask from their leaders, read_committed, and returns a
// verdict for each partition that answered.
func (r *LagReader) probe(ctx context.Context, ask []*PartitionLag) map[tp]*verdict {
	var topics []string
	for _, p := range ask {
		topics = append(topics, p.Topic)
	}
	md, err := r.adm.Metadata(ctx, slices.Compact(slices.Sorted(slices.Values(topics)))...)
	if err != nil {
		return nil
	}
	byLeader := make(map[int32][]*PartitionLag)
	for _, p := range ask {
		td, ok := md.Topics[p.Topic]
		if !ok || td.Err != nil {
			continue
		}
		pd, ok := td.Partitions[p.Partition]
		if !ok || pd.Err != nil || pd.Leader < 0 {
			continue
		}
		byLeader[pd.Leader] = append(byLeader[pd.Leader], p)
	}
	found := make(map[tp]*verdict)
	for leader, ps := range byLeader {
		r.fetch(ctx, leader, ps, md.Topics, found)
	}
	return found
}

// fetch sends one read_committed fetch of ps to their leader, without
// waiting for data, and adds a verdict to found for each partition that
// answered without error.
func (r *LagReader) fetch(ctx context.Context, leader int32, ps []*PartitionLag, tds kadm.TopicDetails, found map[tp]*verdict) {
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis = 0
	req.MinBytes = 0
	req.MaxBytes = min(int32(len(ps))*probePartitionBytes, probeMaxBytes)
	req.IsolationLevel = 1 // read_committed
	names := make(map[[16]byte]string)
	asked := make(map[tp]*PartitionLag, len(ps))
	for _, p := range ps {
		asked[tp{p.Topic, p.Partition}] = p
		i := slices.IndexFunc(req.Topics, func(t kmsg.FetchRequestTopic) bool { return t.Topic == p.Topic })
		if i < 0 {
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic = p.Topic
			rt.TopicID = tds[p.Topic].ID // fetch v13+ names topics by ID
			names[rt.TopicID] = p.Topic
			req.Topics = append(req.Topics, rt)
			i = len(req.Topics) - 1
		}
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = p.Partition
		rp.FetchOffset = p.from()
		rp.PartitionMaxBytes = probePartitionBytes
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
	}
	r.probes.Add(int64(len(ps)))
	resp, err := req.RequestWith(ctx, r.cl.Broker(int(leader)))
	if err != nil || resp.ErrorCode != 0 {
		return
	}
	for _, rt := range resp.Topics {
		topic := rt.Topic
		if topic == "" {
			topic = names[rt.TopicID]
		}
		for _, rp := range rt.Partitions {
			k := tp{topic, rp.Partition}
			p, ok := asked[k]
			if !ok || rp.ErrorCode != 0 {
				continue
			}
			kept, next := delivered(rp.RecordBatches, rp.AbortedTransactions, p.from(), p.End)
			found[k] = &verdict{from: p.from(), end: p.End, exact: next >= p.End, kept: kept}
		}
	}
}

// delivered walks the record batches of a read_committed fetch the way a
// read_committed consumer does (Kafka's CompletedFetch): control batches
// are never delivered, and a transactional batch is dropped while its
// producer has an aborted transaction open, from the aborted
// transaction's first offset to the producer's next marker. It returns the
// delivered batches that overlap [from, end), and the offset after the last
// whole batch in raw (a batch cut short by the byte limit ends the walk).
func delivered(raw []byte, aborted []kmsg.FetchResponseTopicPartitionAbortedTransaction, from, end int64) (kept []span, next int64) {
	aborted = slices.Clone(aborted)
	slices.SortFunc(aborted, func(a, b kmsg.FetchResponseTopicPartitionAbortedTransaction) int {
		return cmp.Compare(a.FirstOffset, b.FirstOffset)
	})
	aborting := make(map[int64]bool)
	next = from
	for len(raw) >= batchHeader {
		size := 12 + int(int32(binary.BigEndian.Uint32(raw[8:12])))
		if size < batchHeader || size > len(raw) || raw[16] != 2 { // cut short, or not a v2 batch
			break
		}
		var b kmsg.RecordBatch
		if err := b.ReadFrom(raw[:size]); err != nil || b.LastOffsetDelta < 0 || b.NumRecords < 0 {
			break
		}
		raw = raw[size:]
		last := b.FirstOffset + int64(b.LastOffsetDelta)
		next = last + 1
		if b.ProducerID >= 0 {
			for len(aborted) > 0 && aborted[0].FirstOffset <= last {
				aborting[aborted[0].ProducerID] = true
				aborted = aborted[1:]
			}
		}
		if b.Attributes&attrControl != 0 {
			// A producer's next marker after an aborted transaction's first
			// offset is that transaction's abort marker: a producer has one
			// transaction open at a time, so its commit markers never meet
			// an open aborted one.
			delete(aborting, b.ProducerID)
			continue
		}
		if b.Attributes&attrTransactional != 0 && aborting[b.ProducerID] {
			continue
		}
		if last < from || b.FirstOffset >= end {
			continue
		}
		kept = append(kept, span{first: b.FirstOffset, last: last, n: int64(b.NumRecords)})
	}
	return kept, next
}
