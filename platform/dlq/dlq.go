// Package dlq reads an application's dead-letter topic and replays its
// dead letters to where they failed.
//
// A replay re-produces each chosen dead letter to the topic it was read
// from (its sl-source: the failing deployment's input), with its key,
// value and headers less the failure's, and writes a replay marker (a
// record with sl-replayed naming the dead letter's partition and offset)
// to the dead-letter topic in the same Kafka transaction. Readers read
// committed and skip dead letters that have a marker, so a replay run
// again, with the same filters or others, never replays a dead letter
// twice, and a replay cut off midway leaves each dead letter replayed with
// its marker or neither. A dead letter that fails again is a new dead
// letter, and can be replayed after the next fix.
package dlq

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/cel"
	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/protocol"
)

// Letter is one dead letter as read from the topic.
type Letter struct {
	protocol.DeadLetter
	Partition int32
	Offset    int64
	Time      time.Time // when it was dead-lettered (the record's timestamp)
	Replayed  bool      // a replay marker names it
	raw       []kgo.RecordHeader
}

// Log is what a dead-letter topic holds.
type Log struct {
	Topic      string
	Letters    []Letter // in partition, then offset order
	Unreadable int      // records that are neither dead letters nor markers
}

// ReadTimeout bounds reading a dead-letter topic to its end.
const ReadTimeout = 2 * time.Minute

// Read reads topic from its log start to its last stable offset (as of
// the call), read committed: dead letters of transactions still open or
// aborted are not there, and nor are markers of a replay that did not
// commit.
func Read(ctx context.Context, brokers []string, log *slog.Logger, topic string) (*Log, error) {
	ctx, cancel := context.WithTimeout(ctx, ReadTimeout)
	defer cancel()
	adm, err := streams.Dial(ctx, brokers, log)
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	ends, err := kadm.NewClient(adm).ListCommittedOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("dead-letter topic %s: %w", topic, err)
	}
	starts, err := kadm.NewClient(adm).ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("dead-letter topic %s: %w", topic, err)
	}
	next := map[int32]int64{} // the next offset to read, per partition not yet read to its end
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		start, _ := starts.Lookup(topic, o.Partition)
		if o.Offset > start.Offset {
			next[o.Partition], want[o.Partition] = start.Offset, o.Offset
		}
	})
	l := &Log{Topic: topic}
	if len(next) == 0 {
		return l, nil
	}
	cl, err := streams.Dial(ctx, brokers, log,
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Transaction markers come too, so that a partition whose last
		// offsets are markers or aborted records is known to be read.
		kgo.KeepControlRecords(),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	replayed := map[[2]int64]bool{}
	for len(next) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("dead-letter topic %s: not read to its end within %v: %w", topic, ReadTimeout, err)
		}
		fs.EachError(func(t string, p int32, e error) {
			if err == nil {
				err = fmt.Errorf("read %s/%d: %w", t, p, e)
			}
		})
		if err != nil {
			return nil, err
		}
		fs.EachRecord(func(r *kgo.Record) {
			if n, ok := next[r.Partition]; ok && r.Offset+1 > n {
				next[r.Partition] = r.Offset + 1
			}
			if r.Offset >= want[r.Partition] || r.Attrs.IsControl() {
				return
			}
			if v := protocol.Header(r.Headers, protocol.HeaderReplayed); v != nil {
				if pos, ok := parsePosition(string(v)); ok {
					replayed[pos] = true
				} else {
					l.Unreadable++
				}
				return
			}
			d, err := protocol.ParseDeadLetter(r)
			if err != nil {
				l.Unreadable++
				return
			}
			l.Letters = append(l.Letters, Letter{DeadLetter: d, Partition: r.Partition, Offset: r.Offset, Time: r.Timestamp, raw: r.Headers})
		})
		for p, n := range next {
			if n >= want[p] {
				delete(next, p)
			}
		}
	}
	for i := range l.Letters {
		x := &l.Letters[i]
		x.Replayed = replayed[[2]int64{int64(x.Partition), x.Offset}]
	}
	slices.SortFunc(l.Letters, func(a, b Letter) int {
		return cmp.Or(cmp.Compare(a.Partition, b.Partition), cmp.Compare(a.Offset, b.Offset))
	})
	return l, nil
}

// position is a marker's sl-replayed value: "partition/offset".
func position(p int32, off int64) string {
	return strconv.FormatInt(int64(p), 10) + "/" + strconv.FormatInt(off, 10)
}

func parsePosition(s string) ([2]int64, bool) {
	ps, os, ok := strings.Cut(s, "/")
	p, err1 := strconv.ParseInt(ps, 10, 32)
	o, err2 := strconv.ParseInt(os, 10, 64)
	return [2]int64{p, o}, ok && err1 == nil && err2 == nil && p >= 0 && o >= 0
}

// Group is the dead letters of one deployment with one code.
type Group struct {
	Deployment  string    `json:"deployment"`
	Code        string    `json:"code"`
	Count       int       `json:"count"`
	First       time.Time `json:"first"`
	Last        time.Time `json:"last"`
	LatestError string    `json:"latest_error"`
}

// Summary is what `sluice dlq ls` shows.
type Summary struct {
	App        string  `json:"app"`
	Topic      string  `json:"topic"`
	Pending    int     `json:"pending"`  // dead letters not replayed
	Replayed   int     `json:"replayed"` // dead letters a replay marker names
	Unreadable int     `json:"unreadable"`
	Groups     []Group `json:"groups"` // of the pending ones, by deployment then code
}

// Summarize groups l's pending dead letters by failing deployment and code.
func Summarize(app string, l *Log) Summary {
	s := Summary{App: app, Topic: l.Topic, Unreadable: l.Unreadable, Groups: []Group{}}
	at := map[[2]string]int{}
	for _, x := range l.Letters {
		if x.Replayed {
			s.Replayed++
			continue
		}
		s.Pending++
		k := [2]string{x.Deployment, string(x.Status)}
		i, ok := at[k]
		if !ok {
			i = len(s.Groups)
			at[k] = i
			s.Groups = append(s.Groups, Group{Deployment: x.Deployment, Code: string(x.Status), First: x.Time, Last: x.Time, LatestError: x.Error})
		}
		g := &s.Groups[i]
		g.Count++
		if x.Time.Before(g.First) {
			g.First = x.Time
		}
		if !x.Time.Before(g.Last) {
			g.Last, g.LatestError = x.Time, x.Error
		}
	}
	slices.SortFunc(s.Groups, func(a, b Group) int {
		return cmp.Or(strings.Compare(a.Deployment, b.Deployment), strings.Compare(a.Code, b.Code))
	})
	return s
}

// Filter chooses the dead letters a replay takes.
type Filter struct {
	Since time.Time    // dead-lettered at or after (zero: any)
	Where *cel.Program // a condition over the dead letter (nil: any)
}

// Skip reasons.
const (
	SkipReplayed   = "already replayed"
	SkipSince      = "dead-lettered before --since"
	SkipWhere      = "--where is false"
	SkipWhereError = "--where failed"
	SkipNoTopic    = "the topic it failed at no longer exists"
	SkipUnreadable = "not a dead letter (unreadable)"
)

// Result is what a replay did.
type Result struct {
	Replayed int            `json:"replayed"`
	Skipped  map[string]int `json:"skipped"` // by reason
	// WhereErrors are the first few --where failures, with the dead
	// letters' positions.
	WhereErrors []string `json:"where_errors,omitempty"`
}

// batch is how many dead letters one replay transaction carries at most.
const batch = 500

// Replay replays app's pending dead letters that f chooses (see the
// package comment). Its transactional ID is the dead-letter topic's, so
// of two replays of one application at once the later fences the
// earlier: the earlier commits nothing more.
func Replay(ctx context.Context, brokers []string, log *slog.Logger, app, topic string, f Filter) (Result, error) {
	prod, err := streams.Dial(ctx, brokers, log,
		kgo.TransactionalID("sluice-dlq-replay/"+topic),
		kgo.TransactionTimeout(time.Minute),
	)
	if err != nil {
		return Result{}, err
	}
	defer prod.Close()
	// Take the transactional ID over first, fencing a replay of the same
	// topic still running, before reading which dead letters are replayed.
	if _, _, err := prod.ProducerID(ctx); err != nil {
		return Result{}, fmt.Errorf("take over the transactional id: %w", err)
	}
	res, chosen, err := plan(ctx, brokers, log, prod, app, topic, f)
	if err != nil {
		return res, err
	}
	for len(chosen) > 0 {
		n := min(batch, len(chosen))
		if err := replayBatch(ctx, prod, topic, chosen[:n]); err != nil {
			return res, err
		}
		res.Replayed += n
		chosen = chosen[n:]
	}
	return res, nil
}

// Plan is Replay without replaying: Result.Replayed is how many dead
// letters a replay now would replay, the skips what it would skip. It
// writes nothing and fences no replay.
func Plan(ctx context.Context, brokers []string, log *slog.Logger, app, topic string, f Filter) (Result, error) {
	cl, err := streams.Dial(ctx, brokers, log)
	if err != nil {
		return Result{}, err
	}
	defer cl.Close()
	res, chosen, err := plan(ctx, brokers, log, cl, app, topic, f)
	res.Replayed = len(chosen)
	return res, err
}

// plan reads topic and returns the dead letters f chooses, with the
// skipped ones counted by reason.
func plan(ctx context.Context, brokers []string, log *slog.Logger, cl *kgo.Client, app, topic string, f Filter) (Result, []Letter, error) {
	res := Result{Skipped: map[string]int{}}
	l, err := Read(ctx, brokers, log, topic)
	if err != nil {
		return res, nil, err
	}
	if l.Unreadable > 0 {
		res.Skipped[SkipUnreadable] = l.Unreadable
	}
	topics, err := sources(ctx, cl, l)
	if err != nil {
		return res, nil, err
	}
	var chosen []Letter
	for _, x := range l.Letters {
		reason, err := choose(ctx, app, x, f, topics)
		if err != nil && len(res.WhereErrors) < 5 {
			res.WhereErrors = append(res.WhereErrors, fmt.Sprintf("%s: %v", position(x.Partition, x.Offset), err))
		}
		if reason != "" {
			res.Skipped[reason]++
			continue
		}
		chosen = append(chosen, x)
	}
	return res, chosen, nil
}

// choose says why x is skipped, "" when it is replayed.
func choose(ctx context.Context, app string, x Letter, f Filter, topics map[string]bool) (string, error) {
	switch {
	case x.Replayed:
		return SkipReplayed, nil
	case !f.Since.IsZero() && x.Time.Before(f.Since):
		return SkipSince, nil
	case !topics[x.Source.Topic]:
		return SkipNoTopic, nil
	}
	if f.Where == nil {
		return "", nil
	}
	ok, err := f.Where.Bool(ctx, RuleInput(app, x))
	switch {
	case err != nil:
		return SkipWhereError, err
	case !ok:
		return SkipWhere, nil
	}
	return "", nil
}

// RuleInput is what a --where rule sees of a dead letter: request.headers
// are its headers, the failure's included (sl-status, sl-error,
// sl-deployment, sl-source); body its value; deployment the deployment it
// failed at; request.id its request id; app the application.
func RuleInput(app string, x Letter) *cel.Input {
	hs := make(map[string]string, len(x.raw))
	for _, h := range x.raw {
		hs[strings.ToLower(h.Key)] = string(h.Value)
	}
	return &cel.Input{ID: hs[protocol.HeaderID], Model: hs[protocol.HeaderModel], App: app, Deployment: x.Deployment, Headers: hs,
		Body: x.Value, BodyText: strings.HasPrefix(hs[protocol.HeaderContentType], "text/plain")}
}

// sources reports which of the topics l's dead letters failed at exist.
func sources(ctx context.Context, cl *kgo.Client, l *Log) (map[string]bool, error) {
	var names []string
	for _, x := range l.Letters {
		if !slices.Contains(names, x.Source.Topic) {
			names = append(names, x.Source.Topic)
		}
	}
	out := map[string]bool{}
	if len(names) == 0 {
		return out, nil
	}
	md, err := kadm.NewClient(cl).Metadata(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	for _, n := range names {
		td, ok := md.Topics[n]
		out[n] = ok && td.Err == nil && len(td.Partitions) > 0
	}
	return out, nil
}

// replayBatch re-produces xs and their markers in one transaction.
func replayBatch(ctx context.Context, cl *kgo.Client, topic string, xs []Letter) error {
	if err := cl.BeginTransaction(); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	var firstErr error
	failed := func(_ *kgo.Record, err error) {
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	now := time.Now()
	for _, x := range xs {
		cl.Produce(ctx, &kgo.Record{Topic: x.Source.Topic, Key: x.Key, Value: x.Value, Headers: replayHeaders(x.Headers, now)}, failed)
		cl.Produce(ctx, &kgo.Record{Topic: topic, Key: x.Key, Headers: []kgo.RecordHeader{
			{Key: protocol.HeaderReplayed, Value: []byte(position(x.Partition, x.Offset))},
		}}, failed)
	}
	flushErr := cl.Flush(ctx)
	commit := kgo.TransactionEndTry(flushErr == nil && firstErr == nil)
	if err := cl.EndTransaction(ctx, commit); err != nil {
		return fmt.Errorf("end transaction: %w", err)
	}
	if err := cmp.Or(flushErr, firstErr); err != nil {
		return fmt.Errorf("replay aborted, nothing of this batch replayed: %w", err)
	}
	return nil
}

// replayHeaders are a dead letter's headers for its replay: the failed
// record's (the failure's are already gone), less a deadline that has
// passed (the record would fail again at once as deadline_exceeded).
func replayHeaders(hs []kgo.RecordHeader, now time.Time) []kgo.RecordHeader {
	out := make([]kgo.RecordHeader, 0, len(hs))
	for _, h := range hs {
		if h.Key == protocol.HeaderDeadline {
			if ns, err := strconv.ParseInt(string(h.Value), 10, 64); err == nil && time.Unix(0, ns).Before(now) {
				continue
			}
		}
		out = append(out, h)
	}
	return out
}
