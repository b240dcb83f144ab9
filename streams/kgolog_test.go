package streams

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// lines is a slog handler that keeps "LEVEL msg k=v ..." per record,
// without the time.
type lines struct {
	mu    *sync.Mutex // guards out
	attrs []slog.Attr
	out   *[]string
}

func newLines() *lines { return &lines{mu: new(sync.Mutex), out: new([]string)} }

// String is every line so far, one per line.
func (h *lines) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(*h.out, "\n")
}

func (*lines) Enabled(context.Context, slog.Level) bool { return true }
func (h *lines) WithAttrs(as []slog.Attr) slog.Handler {
	return &lines{mu: h.mu, attrs: append(h.attrs[:len(h.attrs):len(h.attrs)], as...), out: h.out}
}
func (h *lines) WithGroup(string) slog.Handler { return h }
func (h *lines) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	for _, a := range h.attrs {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	h.mu.Lock()
	*h.out = append(*h.out, b.String())
	h.mu.Unlock()
	return nil
}

// logStep is one thing franz-go does to a client's log: a dial (Err nil: it
// connected), a log line, or time passing.
type logStep struct {
	dial  string // broker address dialled
	err   error  // of the dial
	level kgo.LogLevel
	msg   string
	kv    []any
	wait  time.Duration
}

func dialed(addr string, err error) logStep { return logStep{dial: addr, err: err} }
func logged(level kgo.LogLevel, msg string, kv ...any) logStep {
	return logStep{level: level, msg: msg, kv: kv}
}
func waited(d time.Duration) logStep { return logStep{wait: d} }

// times repeats s n times.
func times(n int, s ...logStep) []logStep {
	var out []logStep
	for range n {
		out = append(out, s...)
	}
	return out
}

func seq(parts ...any) []logStep {
	var out []logStep
	for _, p := range parts {
		switch p := p.(type) {
		case logStep:
			out = append(out, p)
		case []logStep:
			out = append(out, p...)
		}
	}
	return out
}

func TestClientLog(t *testing.T) {
	t.Parallel()
	refused := &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}
	dialErr := fmt.Errorf("unable to dial: %w", refused)
	failedDial := func(addr string) []logStep {
		return []logStep{
			logged(kgo.LogLevelWarn, kgoMsgDialFailed, "addr", addr, "broker", "1", "err", dialErr),
			dialed(addr, dialErr),
		}
	}
	const a, b = "127.0.0.1:9092", "127.0.0.1:9093"
	tests := []struct {
		name  string
		steps []logStep
		want  []string
	}{
		{"an outage is two lines", seq(
			dialed(a, nil),
			times(50, seq(failedDial(a), waited(400*time.Millisecond))...),
			dialed(a, nil), dialed(a, nil),
		), []string{
			"WARN broker unreachable component=kgo addr=127.0.0.1:9092 err=unable to dial: connect: connection refused",
			"INFO broker reachable again component=kgo addr=127.0.0.1:9092 down_for=20s",
		}},
		{"each broker its own", seq(
			failedDial(a), failedDial(b), failedDial(a), dialed(b, nil), waited(time.Second), dialed(a, nil),
		), []string{
			"WARN broker unreachable component=kgo addr=127.0.0.1:9092 err=unable to dial: connect: connection refused",
			"WARN broker unreachable component=kgo addr=127.0.0.1:9093 err=unable to dial: connect: connection refused",
			"INFO broker reachable again component=kgo addr=127.0.0.1:9093 down_for=0s",
			"INFO broker reachable again component=kgo addr=127.0.0.1:9092 down_for=1s",
		}},
		{"a second outage is two more lines", seq(
			failedDial(a), dialed(a, nil), waited(time.Minute), failedDial(a), failedDial(a), waited(2*time.Second), dialed(a, nil),
		), []string{
			"WARN broker unreachable component=kgo addr=127.0.0.1:9092 err=unable to dial: connect: connection refused",
			"INFO broker reachable again component=kgo addr=127.0.0.1:9092 down_for=0s",
			"WARN broker unreachable component=kgo addr=127.0.0.1:9092 err=unable to dial: connect: connection refused",
			"INFO broker reachable again component=kgo addr=127.0.0.1:9092 down_for=2s",
		}},
		{"a closing client is no outage", seq(
			dialed(a, fmt.Errorf("unable to dial: %w", context.Canceled)),
			dialed(a, fmt.Errorf("unable to dial: %w", kgo.ErrClientClosed)),
			dialed(a, nil),
		), nil},
		{"a warning once per window, then with the count", seq(
			times(5, logged(kgo.LogLevelWarn, "unable to request metadata", "err", "x"), waited(time.Second)),
			waited(LogRepeatWindow),
			logged(kgo.LogLevelWarn, "unable to request metadata", "err", "y"),
			logged(kgo.LogLevelWarn, "unable to request metadata", "err", "z"),
		), []string{
			"WARN unable to request metadata component=kgo err=x",
			"WARN unable to request metadata component=kgo err=y suppressed=4",
		}},
		{"different warnings and errors each", seq(
			logged(kgo.LogLevelWarn, "heartbeat errored", "group", "g"),
			logged(kgo.LogLevelError, "join and sync loop errored", "group", "g"),
			logged(kgo.LogLevelWarn, "heartbeat errored", "group", "g"),
		), []string{
			"WARN heartbeat errored component=kgo group=g",
			"ERROR join and sync loop errored component=kgo group=g",
		}},
		{"info and debug dropped", seq(
			logged(kgo.LogLevelInfo, "assigning partitions", "why", "x"),
			logged(kgo.LogLevelDebug, "opening connection to broker", "addr", a),
		), nil},
		{"records lost to retention, every time", seq(
			times(2, logged(kgo.LogLevelInfo, kgoMsgFirstFetchOutOfRange, "broker", "1", "topic", "in", "partition", int32(3), "prior_offset", int64(17))),
			times(2, logged(kgo.LogLevelWarn, kgoMsgOutOfRange+"; either you were consuming too slowly", "topic", "in", "partition", int32(4))),
		), []string{
			"WARN records deleted by retention before they were consumed; resuming at the log start component=kgo topic=in partition=3 prior_offset=17",
			"WARN records deleted by retention before they were consumed; resuming at the log start component=kgo topic=in partition=3 prior_offset=17",
			"WARN " + kgoMsgOutOfRange + "; either you were consuming too slowly component=kgo topic=in partition=4",
			"WARN " + kgoMsgOutOfRange + "; either you were consuming too slowly component=kgo topic=in partition=4",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				h := newLines()
				l := newClientLog(slog.New(h).With("component", "kgo"))
				for _, s := range tc.steps {
					switch {
					case s.wait > 0:
						time.Sleep(s.wait)
					case s.dial != "":
						host, port, _ := strings.Cut(s.dial, ":")
						p, _ := strconv.Atoi(port)
						l.OnBrokerConnect(kgo.BrokerMetadata{NodeID: 1, Host: host, Port: int32(p)}, time.Millisecond, nil, s.err)
					default:
						if l.Level() >= s.level {
							l.Log(s.level, s.msg, s.kv...)
						}
					}
				}
				if got := h.String(); got != strings.Join(tc.want, "\n") {
					t.Errorf("lines:\n%s\nwant:\n%s", got, strings.Join(tc.want, "\n"))
				}
			})
		})
	}
}

// TestClientLogFranzMessages checks that the messages clientLog treats
// apart are still franz-go's, in the version go.mod pins.
func TestClientLogFranzMessages(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/twmb/franz-go").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v: %s", err, ee.Stderr)
		}
		t.Skipf("no go command: %v", err)
	}
	dir := strings.TrimSpace(string(out))
	var src strings.Builder
	for _, f := range []string{"broker.go", "source.go"} {
		b, err := os.ReadFile(filepath.Join(dir, "pkg", "kgo", f))
		if err != nil {
			t.Fatal(err)
		}
		src.Write(b)
	}
	for _, m := range []string{kgoMsgDialFailed, kgoMsgFirstFetchOutOfRange, kgoMsgOutOfRange} {
		if !strings.Contains(src.String(), `"`+m) {
			t.Errorf("franz-go in %s no longer writes %q", dir, m)
		}
	}
}

// A group whose committed offset retention has deleted resumes at the log
// start, and its client's log says records were lost.
func TestClientLogRecordsLostToRetention(t *testing.T) {
	t.Parallel()
	cl, adm := embedded(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := CreateTopics(ctx, adm, DataTopic("in", 1)); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "in", Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	commit := kadm.Offsets{}
	commit.Add(kadm.Offset{Topic: "in", Partition: 0, At: 2, LeaderEpoch: -1})
	if _, err := adm.CommitOffsets(ctx, "g", commit); err != nil {
		t.Fatal(err)
	}
	del := kadm.Offsets{}
	del.Add(kadm.Offset{Topic: "in", Partition: 0, At: 8, LeaderEpoch: -1})
	if _, err := adm.DeleteRecords(ctx, del); err != nil { // what retention does
		t.Fatal(err)
	}
	h := newLines()
	log := slog.New(h)
	c, err := Dial(ctx, cl.OptValue(kgo.SeedBrokers).([]string), log,
		kgo.ConsumerGroup("g"), kgo.ConsumeTopics("in"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fs := c.PollFetches(ctx)
	if err := ctx.Err(); err != nil {
		t.Fatal(err)
	}
	if recs := fs.Records(); len(recs) == 0 || recs[0].Offset != 8 {
		t.Fatalf("first records %v, want from offset 8", recs)
	}
	want := "WARN records deleted by retention before they were consumed; resuming at the log start component=kgo topic=in partition=0 prior_offset=2"
	if got := h.String(); !strings.Contains(got, want) {
		t.Errorf("log:\n%s\nwant a line %q", got, want)
	}
}

func TestFetchErrors(t *testing.T) {
	t.Parallel()
	refused := errors.New("unable to join group session: unable to dial: connection refused")
	bad, ok, wait := kgo.NewErrFetch(refused), kgo.Fetches{}, kgo.Fetches(nil)
	tests := []struct {
		name  string
		polls []kgo.Fetches // nil: a second passes
		want  []string
	}{
		{"an outage is two lines", []kgo.Fetches{ok, bad, wait, bad, wait, bad, wait, ok, ok}, []string{
			"WARN fetch failed topic= partition=-1 err=" + refused.Error(),
			"INFO fetching again after=3s failed_polls=3",
		}},
		{"two outages are four", []kgo.Fetches{bad, ok, bad, bad, ok}, []string{
			"WARN fetch failed topic= partition=-1 err=" + refused.Error(),
			"INFO fetching again after=0s failed_polls=1",
			"WARN fetch failed topic= partition=-1 err=" + refused.Error(),
			"INFO fetching again after=0s failed_polls=2",
		}},
		{"cancel and close are no failure", []kgo.Fetches{kgo.NewErrFetch(context.Canceled), kgo.NewErrFetch(kgo.ErrClientClosed), ok}, nil},
		{"closing while failing says nothing more", []kgo.Fetches{bad, kgo.NewErrFetch(kgo.ErrClientClosed)}, []string{
			"WARN fetch failed topic= partition=-1 err=" + refused.Error(),
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				h := newLines()
				f := FetchErrors{Log: slog.New(h), Msg: "fetch failed"}
				for _, fs := range tc.polls {
					if fs == nil {
						time.Sleep(time.Second)
						continue
					}
					f.Observe(fs)
				}
				if got := h.String(); got != strings.Join(tc.want, "\n") {
					t.Errorf("lines:\n%s\nwant:\n%s", got, strings.Join(tc.want, "\n"))
				}
			})
		})
	}
}
