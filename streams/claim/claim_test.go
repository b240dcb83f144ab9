package claim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/streams/protocol"
)

func newClaims(t testing.TB, store Store, opts ...Option) *Claims {
	t.Helper()
	c, err := New(store, append([]Option{WithThreshold(16), WithLimit(1 << 10)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPutFetchRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := NewMemory()
	c := newClaims(t, m)
	value := bytes.Repeat([]byte("abc"), 100)
	rec := &kgo.Record{Topic: "t", Value: bytes.Clone(value), Headers: []kgo.RecordHeader{{Key: "sl-id", Value: []byte("r1")}}}
	ref, err := c.Put(ctx, rec, KindRequest)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Value != nil || len(rec.Headers) != 2 || rec.Headers[1].Key != protocol.HeaderClaim {
		t.Fatalf("claimed record: value %q headers %v", rec.Value, rec.Headers)
	}
	if ref.Size != int64(len(value)) || ref.Kind() != KindRequest || !strings.HasPrefix(ref.Key, DefaultPrefix) {
		t.Fatalf("ref = %+v (kind %q)", ref, ref.Kind())
	}
	got, ref2, err := c.Fetch(ctx, rec.Headers, rec.Value)
	if err != nil || !bytes.Equal(got, value) || ref2 != ref {
		t.Fatalf("fetch = %d bytes, %+v, %v", len(got), ref2, err)
	}
	if err := c.Delete(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if keys, _ := m.List(ctx, DefaultPrefix); len(keys) != 0 {
		t.Fatalf("left after delete: %v", keys)
	}
	// Deleting again, or a zero ref, is no error.
	if err := c.Delete(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, Ref{}); err != nil {
		t.Fatal(err)
	}
}

// At or under the threshold nothing is stored, nothing allocated.
func TestThresholdSmallValuesUntouched(t *testing.T) {
	ctx := context.Background()
	m := NewMemory()
	c := newClaims(t, m)
	small := []byte("sixteen bytes!!!")
	rec := &kgo.Record{Value: small, Headers: []kgo.RecordHeader{{Key: "sl-id", Value: []byte("x")}}}
	allocs := testing.AllocsPerRun(100, func() {
		ref, err := c.Put(ctx, rec, KindRecord)
		if err != nil || !ref.IsZero() {
			t.Fatalf("put small: %+v %v", ref, err)
		}
		v, _, err := c.Fetch(ctx, rec.Headers, rec.Value)
		if err != nil || &v[0] != &small[0] {
			t.Fatalf("fetch small: %v", err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations for a value under the threshold, want 0", allocs)
	}
	if keys, _ := m.List(ctx, ""); len(keys) != 0 || m.Gets() != 0 || len(rec.Headers) != 1 {
		t.Fatalf("store touched: %v, %d gets, headers %v", keys, m.Gets(), rec.Headers)
	}
	// One byte over is claimed.
	rec.Value = append(bytes.Clone(small), '!')
	if ref, err := c.Put(ctx, rec, KindRecord); err != nil || ref.IsZero() {
		t.Fatalf("17 bytes over a 16-byte threshold: %+v %v", ref, err)
	}
	// Without a store nothing is claimed, whatever the size.
	var none *Claims
	big := &kgo.Record{Value: make([]byte, 4<<20)}
	if ref, err := none.Put(ctx, big, KindRecord); err != nil || !ref.IsZero() || len(big.Value) != 4<<20 {
		t.Fatalf("nil claims put: %+v %v", ref, err)
	}
}

func TestPutOverLimit(t *testing.T) {
	t.Parallel()
	c := newClaims(t, NewMemory())
	rec := &kgo.Record{Value: make([]byte, 1<<10+1)}
	_, err := c.Put(context.Background(), rec, KindReply)
	var tl *TooLargeError
	if !errors.As(err, &tl) || !errors.Is(err, ErrTooLarge) || tl.Size != 1025 || tl.Limit != 1024 || len(rec.Value) != 1025 {
		t.Fatalf("over the limit: %v", err)
	}
	if !strings.Contains(err.Error(), "1025") || !strings.Contains(err.Error(), "1024") {
		t.Fatalf("message %q does not name the size and the limit", err)
	}
}

func TestPutStoreDown(t *testing.T) {
	t.Parallel()
	m := NewMemory()
	m.SetFail(fmt.Errorf("%w: connection refused", ErrUnavailable))
	c := newClaims(t, m)
	rec := &kgo.Record{Value: make([]byte, 100)}
	_, err := c.Put(context.Background(), rec, KindRecord)
	var ce *Error
	if !errors.As(err, &ce) || !errors.Is(err, ErrUnavailable) || !strings.HasPrefix(ce.Key, DefaultPrefix) || len(rec.Value) != 100 {
		t.Fatalf("store down: %v", err)
	}
}

// Every way a fetch fails names the key and the cause.
func TestFetchFailures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	value := bytes.Repeat([]byte{7}, 64)
	setup := func(t *testing.T) (*Memory, *Claims, []kgo.RecordHeader, Ref) {
		m := NewMemory()
		c := newClaims(t, m)
		rec := &kgo.Record{Value: bytes.Clone(value)}
		ref, err := c.Put(ctx, rec, KindRecord)
		if err != nil {
			t.Fatal(err)
		}
		return m, c, rec.Headers, ref
	}
	for _, tc := range []struct {
		name  string
		spoil func(m *Memory, c *Claims, hs []kgo.RecordHeader, ref Ref) (*Claims, []kgo.RecordHeader)
		want  error
		says  string
	}{
		{"deleted", func(m *Memory, c *Claims, hs []kgo.RecordHeader, ref Ref) (*Claims, []kgo.RecordHeader) {
			_ = m.Delete(ctx, ref.Key)
			return c, hs
		}, ErrNotFound, "not found"},
		{"store down", func(m *Memory, c *Claims, hs []kgo.RecordHeader, ref Ref) (*Claims, []kgo.RecordHeader) {
			m.SetFail(fmt.Errorf("%w: dial tcp: refused", ErrUnavailable))
			return c, hs
		}, ErrUnavailable, "refused"},
		{"altered", func(m *Memory, c *Claims, hs []kgo.RecordHeader, ref Ref) (*Claims, []kgo.RecordHeader) {
			b := bytes.Clone(value)
			b[3] = 8
			m.Set(ref.Key, b)
			return c, hs
		}, ErrMismatch, "SHA-256"},
		{"truncated", func(m *Memory, c *Claims, hs []kgo.RecordHeader, ref Ref) (*Claims, []kgo.RecordHeader) {
			m.Set(ref.Key, value[:10])
			return c, hs
		}, ErrMismatch, "10 bytes, the reference says 64"},
		{"outside the prefix", func(m *Memory, c *Claims, hs []kgo.RecordHeader, ref Ref) (*Claims, []kgo.RecordHeader) {
			r := ref
			r.Key = "models/m/1/weights"
			m.Set(r.Key, value)
			return c, []kgo.RecordHeader{{Key: protocol.HeaderClaim, Value: []byte(r.String())}}
		}, ErrMalformed, "outside the claims prefix"},
		{"unreadable header", func(m *Memory, c *Claims, hs []kgo.RecordHeader, ref Ref) (*Claims, []kgo.RecordHeader) {
			return c, []kgo.RecordHeader{{Key: protocol.HeaderClaim, Value: []byte("64 nothex " + ref.Key)}}
		}, ErrMalformed, "sha256"},
		{"no store", func(m *Memory, c *Claims, hs []kgo.RecordHeader, ref Ref) (*Claims, []kgo.RecordHeader) {
			return nil, hs
		}, ErrNoStore, "no claim store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, c, hs, ref := setup(t)
			c, hs = tc.spoil(m, c, hs, ref)
			got, _, err := c.Fetch(ctx, hs, nil)
			var ce *Error
			if got != nil || !errors.As(err, &ce) || !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("fetch = %d bytes, %v; want %v saying %q", len(got), err, tc.want, tc.says)
			}
			if tc.name != "unreadable header" && !strings.Contains(err.Error(), "claim claims/") && !strings.Contains(err.Error(), "claim models/") {
				t.Fatalf("%q does not name the key", err)
			}
		})
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	sum := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"12 " + sum + " claims/2026120607/q/abc", true},
		{"0 " + sum + " k", true},
		{"12 " + sum, false},
		{"12 " + sum + " ", false},
		{"-1 " + sum + " k", false},
		{"+1 " + sum + " k", false},
		{"012 " + sum + " k", false},
		{"99999999999999999999 " + sum + " k", false},
		{"12 " + strings.ToUpper(sum) + " k", false},
		{"12 " + sum[:62] + " k", false},
		{"12 " + sum + " a//b", false},
		{"12 " + sum + " /a", false},
		{"12 " + sum + " a/../b", false},
		{"12 " + sum + " a b", false},
		{"12 " + sum + " a\x00b", false},
		{"", false},
	} {
		r, err := Parse([]byte(tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("Parse(%q) = %+v, %v; ok want %v", tc.in, r, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse(%q): %v does not wrap ErrMalformed", tc.in, err)
		}
		if err == nil && r.String() != tc.in {
			t.Errorf("Parse(%q).String() = %q", tc.in, r.String())
		}
	}
}

// The sweeper deletes by the bucket in the key: a claim lives for its
// bucket's hour plus the TTL.
func TestSweepExpires(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2026, 12, 6, 7, 30, 0, 0, time.UTC)
	m := NewMemory()
	c := newClaims(t, m, WithClock(func() time.Time { return now }))
	put := func() Ref {
		rec := &kgo.Record{Value: make([]byte, 100)}
		ref, err := c.Put(ctx, rec, KindRecord)
		if err != nil {
			t.Fatal(err)
		}
		return ref
	}
	old := put() // bucket 07:00-08:00
	m.Set("claims/not-a-bucket/x", []byte("kept"))
	m.Set("other/2026010100/e/x", []byte("not ours"))
	now = now.Add(2 * time.Hour) // 09:30
	young := put()               // bucket 09:00
	const ttl = 91 * time.Minute
	// 09:30 < 08:00+1h31: both live.
	if n, err := c.Sweep(ctx, ttl); n != 0 || err != nil {
		t.Fatalf("early sweep deleted %d (%v)", n, err)
	}
	now = now.Add(time.Minute) // 09:31 ≥ 08:00+1h31: the old one expired
	if n, err := c.Sweep(ctx, ttl); n != 1 || err != nil {
		t.Fatalf("sweep deleted %d (%v), want 1", n, err)
	}
	keys, _ := m.List(ctx, "")
	if strings.Join(keys, ",") != young.Key+",claims/not-a-bucket/x,other/2026010100/e/x" {
		t.Fatalf("left %v (old %s)", keys, old.Key)
	}
	if _, _, err := c.Fetch(ctx, []kgo.RecordHeader{{Key: protocol.HeaderClaim, Value: []byte(old.String())}}, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("expired claim fetched: %v", err)
	}
}

func TestNewRefusesContradictions(t *testing.T) {
	t.Parallel()
	for _, opts := range [][]Option{
		{WithThreshold(2 << 20), WithLimit(1 << 20)},
		{WithThreshold(0)},
		{WithPrefix("claims")},
		{WithPrefix("/claims/")},
		{WithPrefix("a//")},
	} {
		if _, err := New(NewMemory(), opts...); err == nil {
			t.Errorf("New accepted %d options that contradict", len(opts))
		}
	}
	if _, err := New(nil); err == nil {
		t.Error("New accepted no store")
	}
}

func TestTTL(t *testing.T) {
	t.Parallel()
	if got := TTL(5*time.Minute, 24*time.Hour); got != 24*time.Hour {
		t.Fatalf("TTL = %v", got)
	}
	if got := TTL(2*time.Hour, time.Hour); got != 2*time.Hour {
		t.Fatalf("TTL = %v", got)
	}
}

// The header parser never panics; what parses formats back to itself,
// and every failure wraps ErrMalformed.
func FuzzParse(f *testing.F) {
	sum := strings.Repeat("0f", 32)
	for _, s := range []string{"12 " + sum + " claims/2026120607/q/abc", "0 " + sum + " k", "1 2 3", "", " ", "9 " + sum + " a/./b"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		r, err := Parse(v)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse(%q): %v does not wrap ErrMalformed", v, err)
			}
			return
		}
		if r.String() != string(v) {
			t.Fatalf("Parse(%q).String() = %q", v, r.String())
		}
		r2, err := Parse([]byte(r.String()))
		if err != nil || r2 != r {
			t.Fatalf("round trip of %q: %+v %v", v, r2, err)
		}
	})
}

// listTimes is a store that records when it is listed.
type listTimes struct {
	*Memory
	mu    sync.Mutex
	times []time.Time
}

func (l *listTimes) List(ctx context.Context, prefix string) ([]string, error) {
	l.mu.Lock()
	l.times = append(l.times, time.Now())
	l.mu.Unlock()
	return l.Memory.List(ctx, prefix)
}

// The sweeper sweeps at once, then every interval give or take a
// quarter: several gateways sweeping one store spread their sweeps.
func TestRunSweeperJitter(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		store := &listTimes{Memory: NewMemory()}
		c := newClaims(t, store)
		ctx, cancel := context.WithCancel(context.Background())
		start := time.Now()
		done := make(chan struct{})
		go func() { defer close(done); c.RunSweeper(ctx, time.Hour, 10*time.Minute, slog.New(slog.DiscardHandler)) }()
		time.Sleep(200 * time.Minute)
		cancel()
		<-done
		store.mu.Lock()
		defer store.mu.Unlock()
		if len(store.times) < 10 || !store.times[0].Equal(start) {
			t.Fatalf("%d sweeps, the first at %s: want one at once and one about every 10 minutes", len(store.times), store.times[0].Sub(start))
		}
		gaps := map[time.Duration]bool{}
		for i := 1; i < len(store.times); i++ {
			gap := store.times[i].Sub(store.times[i-1])
			if gap < 7*time.Minute+30*time.Second || gap > 12*time.Minute+30*time.Second {
				t.Errorf("sweep %d came %s after the one before, want 7m30s to 12m30s", i, gap)
			}
			gaps[gap] = true
		}
		if len(gaps) < 2 {
			t.Errorf("every gap the same (%v): no jitter", gaps)
		}
	})
}
