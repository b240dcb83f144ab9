package replicas

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/streams"
)

// Exactly-once delivery (Config.ExactlyOnce): a replica's outputs (edge
// records, answers, dead letters) and the offsets of the inputs that
// caused them commit in one Kafka transaction, so a replica killed at any
// point leaves either all of a record's effects or none.
//
// A transaction spans a window: it begins before the poll, the window
// opens with the first record polled and closes when no record is in
// flight any more (a quiet replica commits each record at once, so a sync
// request is not held), TxnInterval after it opened at the latest (a busy
// one commits that often), or at the soft stop; polling stops, every record in flight finishes (its
// outputs acknowledged), and the transaction commits with the offsets of
// everything polled in it. Records run concurrently inside a window as
// they do without transactions (MaxOngoing, Ordered). A rebalance that
// takes a partition during a window aborts the window's transaction
// (kgo.GroupTransactSession): its records are read again by their owners.
//
// The transactional ID is the group and the static instance ID, so a
// replica slot restarted after a kill -9 fences its predecessor at once
// and aborts the transaction it left open; a dynamic member gets a random
// one, and the broker aborts what it left after TransactionTimeout. Either
// way a zombie cannot commit: its offset commit names a generation the
// group has left behind (KIP-447).
const (
	// TxnInterval is how long a transaction's window stays open after its
	// first record at most, while records keep coming: what a
	// read-committed reader of a busy replica waits for at most, on top of
	// the records' own time and the commit.
	TxnInterval = 100 * time.Millisecond
	// TransactionTimeout is the default of Config.TransactionTimeout: how
	// long the broker keeps a transaction of a replica that went silent (killed, not restarted) open before
	// aborting it: read-committed readers of its output partitions wait
	// that long. A window whose records run longer than this aborts, and
	// its records run again.
	TransactionTimeout = 30 * time.Second
)

// transactionalOpts are the client options of an exactly-once replica.
func transactionalOpts(cfg *Config) []kgo.Opt {
	id := cfg.Group + "/" + cfg.InstanceID
	if cfg.InstanceID == "" {
		id = cfg.Group + "/" + streams.Instance()
	}
	return []kgo.Opt{
		kgo.TransactionalID(id),
		kgo.TransactionTimeout(cfg.TransactionTimeout),
		kgo.DisableAutoCommit(), // offsets commit in the transaction
	}
}

// dialSession dials the replica's transactional session and takes its
// transactional ID over.
func (r *Replica) dialSession(ctx context.Context) error {
	s, err := streams.DialTransactSession(ctx, r.cfg.Brokers, r.cfg.Log, r.opts...)
	if err != nil {
		return err
	}
	if err := fence(ctx, s.Client()); err != nil {
		s.Close()
		return err
	}
	r.txn, r.cl = s, s.Client()
	return nil
}

// renew replaces a session whose transaction could not end (the broker
// aborted it after TransactionTimeout and fenced the producer epoch, or a
// commit failed for good): the old client closes (its partitions are
// forgotten; a static member keeps its place), and a new one with the same
// transactional ID and instance ID takes over and rejoins from the
// committed offsets, so the window's records run again. No record is in
// flight.
func (r *Replica) renew(ctx context.Context, cause error) error {
	r.cfg.Log.Warn("transaction failed; starting a new transactional session, its records are read again", "group", r.cfg.Group, "err", cause)
	r.cl.Close()
	if r.join != nil {
		r.join.reset()
	}
	r.mu.Lock()
	for k := range r.parts {
		r.forgetPartition(k)
	}
	r.tellAssignedLocked()
	r.mu.Unlock()
	dctx, cancel := context.WithTimeout(ctx, streams.DialTimeout+r.cfg.SessionTimeout)
	defer cancel()
	for {
		err := r.dialSession(dctx)
		if err == nil {
			return nil
		}
		if dctx.Err() != nil {
			return fmt.Errorf("%w; a new session: %w", cause, err)
		}
		time.Sleep(time.Second)
	}
}

// fence takes the transactional ID over now, not at the first produce:
// the broker aborts the transaction a killed predecessor of this slot left
// open. Waiting for a first produce could wait for ever: the open
// transaction holds back the last stable offset of the partitions it
// wrote, and a replica that reads its own deployment's topic (a future
// forwarded from one replica to the next) would get no record to produce.
func fence(ctx context.Context, cl *kgo.Client) error {
	if _, _, err := cl.ProducerID(ctx); err != nil {
		return fmt.Errorf("take over the transactional id: %w", err)
	}
	return nil
}

// runTransactions is Run's loop for an exactly-once replica: window after
// window until ctx ends, then the last window ends (committed when all its
// records finished within DrainTimeout, aborted otherwise).
func (r *Replica) runTransactions(ctx context.Context) error {
	fetchErrs := streams.FetchErrors{Log: r.cfg.Log, Msg: "fetch failed"}
	var renewed time.Time
	if err := r.txn.Begin(); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	for {
		closed := r.fillWindow(ctx, &fetchErrs)
		// A join's window timers wait at the gate while the window ends,
		// and do their work in the next transaction.
		r.gate.Lock()
		committed, err := r.endWindow(ctx)
		if err != nil {
			// Two live replicas with one slot's ID would fence each
			// other at every commit: a second failure within
			// TransactionTimeout of the last ends the replica instead.
			if ctx.Err() != nil || closed || r.ongoing.Load() != 0 || time.Since(renewed) < r.cfg.TransactionTimeout {
				r.gate.Unlock()
				return err
			}
			renewed = time.Now()
			err = r.renew(ctx, err)
		} else if !committed && r.join != nil && !closed && ctx.Err() == nil {
			// The window's joins fired in memory, and their outputs
			// are gone: a new session reads again from the commit.
			err = r.renew(ctx, errors.New("join transaction aborted"))
		}
		if err != nil {
			r.gate.Unlock()
			return err
		}
		if closed || ctx.Err() != nil {
			r.gate.Unlock()
			return nil
		}
		err = r.txn.Begin()
		r.gate.Unlock()
		if err != nil {
			return fmt.Errorf("begin transaction: %w", err)
		}
	}
}

// fillWindow polls and dispatches records until the window closes: when
// no record of it is in flight any more, TxnInterval after its first
// record, or when ctx ends. It reports whether the client closed.
func (r *Replica) fillWindow(ctx context.Context, fetchErrs *streams.FetchErrors) bool {
	max := int64(r.cfg.MaxOngoing)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var once sync.Once
	open := func() {
		once.Do(func() {
			time.AfterFunc(TxnInterval, cancel)
			go func() {
				select {
				case <-r.drained:
					cancel()
				case <-wctx.Done():
				}
			}()
		})
	}
	select { // a signal left by the previous window's last record
	case <-r.drained:
	default:
	}
	go func() { // a join's window timer working in this transaction
		select {
		case <-r.kick:
			open()
		case <-wctx.Done():
		}
	}()
	for wctx.Err() == nil {
		if free := max - r.ongoing.Load(); free <= 0 { // full: stop fetching until a slot frees
			select {
			case <-r.freed:
			case <-wctx.Done():
			}
			continue
		}
		fs := r.txn.PollRecords(wctx, int(max-r.ongoing.Load()))
		if fs.IsClientClosed() {
			return true
		}
		fetchErrs.Observe(fs) // a closing window's cancel is no failure
		r.obs.fetched(fs)
		if fs.NumRecords() > 0 {
			open()
		}
		fs.EachRecord(r.dispatch)
	}
	return false
}

// endWindow waits for the window's records, then ends its transaction:
// committed with the offsets polled when every record finished, aborted
// when some did not (the soft stop's bound passed) or one was abandoned.
// An error means the session cannot go on: the broker aborted the
// transaction (it outlasted TransactionTimeout) and fenced its epoch, a
// newer replica of the slot took the transactional ID over, or a commit
// failed for good; runTransactions then dials a new session (renew), and
// a replica that was really replaced is fenced again at its next commit.
//
// A join's commit carries its commit points and what is done past them
// (joiner.annotateTxn) in place of the polled offsets: a fired join's
// outputs and the record of its inputs as done commit together, so a
// replica killed after the commit replays no fired join, and one killed
// before it replays the join whose outputs were aborted. It reports
// whether the transaction committed.
func (r *Replica) endWindow(ctx context.Context) (bool, error) {
	r.mu.Lock()
	for {
		r.waitLocked(func() bool { return r.ongoing.Load() == 0 })
		if r.ongoing.Load() == 0 || ctx.Err() != nil {
			break
		}
	}
	finished := r.ongoing.Load() == 0
	r.mu.Unlock()
	spoiled := r.spoiled.Swap(false)
	commit := kgo.TransactionEndTry(finished && !spoiled)
	if !finished {
		r.cfg.Log.Warn("records still running at the stop; aborting their transaction", "group", r.cfg.Group, "ongoing", r.ongoing.Load())
	}
	ectx, cancel := context.WithTimeout(context.Background(), r.cfg.DrainTimeout)
	defer cancel()
	if r.join != nil {
		ectx = kgo.PreTxnCommitFnContext(ectx, r.join.annotateTxn)
	}
	committed, err := r.txn.End(ectx, commit)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w within %v", err, r.cfg.DrainTimeout)
		}
		return false, fmt.Errorf("end transaction: %w", err)
	}
	if bool(commit) && !committed {
		r.cfg.Log.Info("transaction aborted (a rebalance, or a commit the broker refused); its records are read again", "group", r.cfg.Group)
	}
	return committed, nil
}
