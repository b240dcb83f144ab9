package streams

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kslog"
)

// LogRepeatWindow is how long clientLog keeps quiet about a franz-go
// warning it has just written: repeats within it are counted, and the next
// line after it says how many there were ("suppressed").
const LogRepeatWindow = 30 * time.Second

// Messages of franz-go that clientLog treats apart. They are constants in
// franz-go (pkg/kgo/broker.go and source.go), pinned in go.mod;
// TestClientLogFranzMessages checks them against its source.
const (
	// Written on every failed dial, several times a second per client
	// while a broker is down; OnBrokerConnect reports reachability
	// instead. A prefix: a variant adds a TLS hint.
	kgoMsgDialFailed = "unable to open connection to broker"
	// Written at info level when a partition's first fetch is below the
	// log start (retention deleted records before this group consumed
	// them): records are lost, which must not pass silently.
	kgoMsgFirstFetchOutOfRange = "received OFFSET_OUT_OF_RANGE on the first fetch, resetting to the configured ConsumeResetOffset"
	// Written at warn level when a consumer falls below the log start
	// while consuming: never folded into a count.
	kgoMsgOutOfRange = "received OFFSET_OUT_OF_RANGE while consuming"
)

// clientLog is one franz-go client's logger and connection hook, bridged
// to slog with kslog. franz-go narrates every retry: a 19 s broker outage
// wrote 987 lines, 778 of them failed dials. clientLog writes
//
//   - one "broker unreachable" (warn, with the error) when a dial to a
//     broker fails that was reachable, and one "broker reachable again"
//     (info, with how long it was down) on the next successful dial, from
//     the OnBrokerConnect hook; franz-go's own failed-dial lines are
//     dropped;
//   - franz-go's warnings and errors, each message at most once per
//     LogRepeatWindow, the next line saying how many it suppressed;
//   - records lost to retention, as a warning, every time (franz-go says
//     so at info level when a group's committed offset is below the log
//     start, and resumes there);
//
// and nothing of franz-go's info and debug lines, which narrate every
// connection and rebalance.
type clientLog struct {
	log *slog.Logger
	kgo kgo.Logger

	mu     sync.Mutex
	down   map[string]time.Time // unreachable brokers by address, and since when
	recent map[string]*repeat   // warnings by message, while in their window
}

type repeat struct {
	at time.Time // when it was last written
	n  int       // repeats suppressed since
}

func newClientLog(log *slog.Logger) *clientLog {
	return &clientLog{log: log, kgo: kslog.New(log), down: map[string]time.Time{}, recent: map[string]*repeat{}}
}

var (
	_ kgo.Logger            = (*clientLog)(nil)
	_ kgo.HookBrokerConnect = (*clientLog)(nil)
)

// Level lets info lines through to Log, which keeps only the one about
// lost records.
func (*clientLog) Level() kgo.LogLevel { return kgo.LogLevelInfo }

// Log implements kgo.Logger.
func (l *clientLog) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	switch {
	case msg == kgoMsgFirstFetchOutOfRange:
		l.log.Warn("records deleted by retention before they were consumed; resuming at the log start", pick(keyvals, "topic", "partition", "prior_offset")...)
		return
	case level > kgo.LogLevelWarn || level == kgo.LogLevelNone:
		return
	case strings.HasPrefix(msg, kgoMsgDialFailed):
		return
	case strings.HasPrefix(msg, kgoMsgOutOfRange):
		l.kgo.Log(level, msg, keyvals...)
		return
	}
	now := time.Now()
	l.mu.Lock()
	r, ok := l.recent[msg]
	if ok && now.Sub(r.at) < LogRepeatWindow {
		r.n++
		l.mu.Unlock()
		return
	}
	suppressed := 0
	if ok {
		suppressed = r.n
	}
	l.recent[msg] = &repeat{at: now}
	if len(l.recent) > 64 { // franz-go's messages are constants; this is a backstop
		for m, r := range l.recent {
			if now.Sub(r.at) >= LogRepeatWindow {
				delete(l.recent, m)
			}
		}
	}
	l.mu.Unlock()
	if suppressed > 0 {
		keyvals = append(keyvals[:len(keyvals):len(keyvals)], "suppressed", suppressed)
	}
	l.kgo.Log(level, msg, keyvals...)
}

// OnBrokerConnect implements kgo.HookBrokerConnect: a failed dial to a
// broker that was reachable, and a successful one to a broker that was
// not, are each one line.
func (l *clientLog) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err != nil && (errors.Is(err, context.Canceled) || errors.Is(err, kgo.ErrClientClosed)) {
		return // the client is closing
	}
	addr := net.JoinHostPort(meta.Host, strconv.Itoa(int(meta.Port)))
	now := time.Now()
	l.mu.Lock()
	since, wasDown := l.down[addr]
	switch {
	case err != nil && !wasDown:
		l.down[addr] = now
	case err == nil && wasDown:
		delete(l.down, addr)
	default:
		l.mu.Unlock()
		return
	}
	l.mu.Unlock()
	if err != nil {
		l.log.Warn("broker unreachable", "addr", addr, "err", err)
		return
	}
	l.log.Info("broker reachable again", "addr", addr, "down_for", now.Sub(since).Round(time.Millisecond))
}

// pick returns the named key-value pairs of keyvals, in keyvals' order.
func pick(keyvals []any, keys ...string) []any {
	var out []any
	for i := 0; i+1 < len(keyvals); i += 2 {
		for _, k := range keys {
			if keyvals[i] == k {
				out = append(out, keyvals[i], keyvals[i+1])
			}
		}
	}
	return out
}

// FetchErrors writes a consumer's fetch errors as changes of state, as
// clientLog does for dials: the first error after polls that worked (warn,
// Msg, with the error), nothing while polls keep failing, then one
// "fetching again" (info, with how long and how many polls failed) on the
// first poll without an error. Errors of a closing client are no failure.
// The zero value needs Log and Msg; it belongs to the one goroutine that
// polls.
type FetchErrors struct {
	Log *slog.Logger
	Msg string

	failing bool
	since   time.Time
	failed  int
}

// Observe takes the fetches of one poll.
func (f *FetchErrors) Observe(fs kgo.Fetches) {
	var first error
	var topic string
	var part int32
	fs.EachError(func(t string, p int32, err error) {
		if first == nil && !errors.Is(err, context.Canceled) && !errors.Is(err, kgo.ErrClientClosed) {
			first, topic, part = err, t, p
		}
	})
	switch {
	case first != nil && !f.failing:
		f.failing, f.since, f.failed = true, time.Now(), 1
		f.Log.Warn(f.Msg, "topic", topic, "partition", part, "err", first)
	case first != nil:
		f.failed++
	case f.failing && !fs.IsClientClosed():
		f.failing = false
		f.Log.Info("fetching again", "after", time.Since(f.since).Round(time.Millisecond), "failed_polls", f.failed)
	}
}
