package protocol

import (
	"errors"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// envEqual compares envelopes field by field, deadlines by instant.
func envEqual(a, b Envelope) bool {
	if !a.Deadline.Equal(b.Deadline) {
		return false
	}
	a.Deadline, b.Deadline = time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}

func hdr(k, v string) kgo.RecordHeader { return kgo.RecordHeader{Key: k, Value: []byte(v)} }

func TestEnvelopeRoundTrip(t *testing.T) {
	t.Parallel()
	deadline := time.Unix(1_700_000_000, 123_456_789)
	tests := []struct {
		name  string
		env   Envelope
		nhdrs int
	}{
		{"empty", Envelope{}, 0},
		{"id", Envelope{ID: "abc-1"}, 1},
		{"reply", Envelope{ReplyTo: "sluice.reply.gw"}, 1},
		{"deadline", Envelope{Deadline: deadline}, 1},
		{"deadline one ns", Envelope{Deadline: time.Unix(0, 1)}, 1},
		{"deadline far", Envelope{Deadline: time.Unix(0, 1<<62+7)}, 1},
		{"trace", Envelope{Trace: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, 1},
		{"trace state", Envelope{Trace: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", TraceState: "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"}, 2},
		{"content type", Envelope{ContentType: "application/json"}, 1},
		{"model", Envelope{Model: "resnet-50"}, 1},
		{"method", Envelope{Method: "say_hello"}, 1},
		{"one hop", Envelope{Cont: []Hop{{Topic: "t1", ID: "i1"}}}, 1},
		{"hops", Envelope{Cont: []Hop{{"sluice.app.a.in", "x-1"}, {"sluice.app.b.in", "x-2"}, {"sluice.app.c.in", "x-3"}}}, 1},
		{"id with slash in hop", Envelope{Cont: []Hop{{"t", "a/b"}}}, 1},
		{"every field", Envelope{
			ID:          "id-7",
			ReplyTo:     "sluice.reply.r",
			Deadline:    deadline,
			Trace:       "tp",
			TraceState:  "ts=1",
			ContentType: "text/plain",
			Model:       "m",
			Method:      "f",
			Cont:        []Hop{{"a", "1"}, {"b", "2"}},
		}, 9},
		{"unicode", Envelope{ID: "ïd\x00", Model: "模型"}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			hs := tc.env.AppendHeaders(nil)
			if len(hs) != tc.nhdrs {
				t.Fatalf("AppendHeaders wrote %d headers, want %d: %v", len(hs), tc.nhdrs, hs)
			}
			got, err := ParseEnvelope(hs)
			if err != nil {
				t.Fatalf("ParseEnvelope: %v", err)
			}
			if !envEqual(got, tc.env) {
				t.Errorf("round trip = %+v, want %+v", got, tc.env)
			}
			if !tc.env.Deadline.IsZero() && got.Deadline.UnixNano() != tc.env.Deadline.UnixNano() {
				t.Errorf("deadline %d ns, want %d ns", got.Deadline.UnixNano(), tc.env.Deadline.UnixNano())
			}
		})
	}
}

// Deadline.UnixNano() is undefined (in practice: wraps) after 2262-04-11;
// such a deadline must be clamped to the largest one the header can say,
// not arrive as a negative number or as a date in the past. A deadline at
// or before 1970 arrives as already passed.
func TestEnvelopeDeadlineBeyondInt64(t *testing.T) {
	t.Parallel()
	for _, year := range []int{2300, 2600, 3000, 9999} {
		t.Run(strconv.Itoa(year), func(t *testing.T) {
			t.Parallel()
			d := time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC)
			hs := (&Envelope{ID: "i", Deadline: d}).AppendHeaders(nil)
			got, err := ParseEnvelope(hs)
			now := time.Unix(1_700_000_000, 0)
			if err != nil || got.Expired(now) || got.Deadline.Before(time.Unix(0, math.MaxInt64)) {
				t.Fatalf("deadline %v is written as sl-deadline %q, which parses to %v (err %v); want it clamped to Unix nanosecond %d",
					d, Header(hs, HeaderDeadline), got.Deadline.UTC(), err, int64(math.MaxInt64))
			}
		})
	}
	for _, d := range []time.Time{time.Unix(0, 0), time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)} {
		got, err := ParseEnvelope((&Envelope{Deadline: d}).AppendHeaders(nil))
		if err != nil || !got.Expired(time.Unix(1, 0)) {
			t.Fatalf("deadline %v: parsed %v, %v; want a valid deadline already passed", d, got.Deadline, err)
		}
	}
}

func TestEnvelopeAppendHeadersKeepsExisting(t *testing.T) {
	t.Parallel()
	pre := []kgo.RecordHeader{hdr("x-own", "1")}
	hs := (&Envelope{ID: "i"}).AppendHeaders(pre)
	if len(hs) != 2 || hs[0].Key != "x-own" || hs[1].Key != HeaderID {
		t.Fatalf("AppendHeaders = %v", hs)
	}
	if got := string(Header(hs, HeaderDeadline)); got != "" {
		t.Errorf("deadline header %q written for zero deadline", got)
	}
	d := time.Unix(12, 34)
	hs = (&Envelope{Deadline: d}).AppendHeaders(nil)
	if got := string(Header(hs, HeaderDeadline)); got != "12000000034" {
		t.Errorf("deadline header = %q, want Unix nanoseconds 12000000034", got)
	}
}

func TestParseEnvelopeNoHeaders(t *testing.T) {
	t.Parallel()
	for _, hs := range [][]kgo.RecordHeader{nil, {}} {
		e, err := ParseEnvelope(hs)
		if err != nil {
			t.Fatalf("ParseEnvelope(%v): %v", hs, err)
		}
		if !envEqual(e, Envelope{}) || !e.Deadline.IsZero() || e.Cont != nil {
			t.Errorf("ParseEnvelope(%v) = %+v, want zero", hs, e)
		}
	}
}

func TestParseEnvelopeErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		key, value string
	}{
		{HeaderDeadline, "abc"},
		{HeaderDeadline, "0"},
		{HeaderDeadline, "-5"},
		{HeaderDeadline, ""},
		{HeaderDeadline, "1.5"},
		{HeaderDeadline, " 5"},
		{HeaderDeadline, "99999999999999999999"},
		{HeaderCont, "topic"},
		{HeaderCont, "/id"},
		{HeaderCont, "topic/"},
		{HeaderCont, "a/b,,c/d"},
		{HeaderCont, "a/b,"},
		{HeaderCont, ",a/b"},
		{HeaderCont, "/"},
		{HeaderCont, ","},
	}
	for _, tc := range tests {
		t.Run(tc.key+"="+tc.value, func(t *testing.T) {
			t.Parallel()
			hs := []kgo.RecordHeader{hdr(HeaderID, "i"), hdr(tc.key, tc.value)}
			_, err := ParseEnvelope(hs)
			if err == nil {
				t.Fatalf("ParseEnvelope(%s=%q) succeeded", tc.key, tc.value)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("error %v does not wrap ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tc.key) {
				t.Errorf("error %q does not name header %s", err, tc.key)
			}
		})
	}
}

func TestParseEnvelopeUnknownAndRepeatedHeaders(t *testing.T) {
	t.Parallel()
	hs := []kgo.RecordHeader{
		hdr("x-custom", "anything"),
		hdr("SL-ID", "upper-case key is not sl-id"),
		hdr(HeaderID, "first"),
		hdr(HeaderStatus, "internal"), // reply headers mean nothing to the envelope
		hdr(HeaderSeq, "not a number"),
		hdr("", ""),
		hdr(HeaderModel, "m"),
		hdr(HeaderID, "second"),
	}
	e, err := ParseEnvelope(hs)
	if err != nil {
		t.Fatalf("ParseEnvelope: %v", err)
	}
	want := Envelope{ID: "second", Model: "m"}
	if !envEqual(e, want) {
		t.Errorf("ParseEnvelope = %+v, want %+v (unknown ignored, last repeated wins)", e, want)
	}
}

func TestEnvelopeExpired(t *testing.T) {
	t.Parallel()
	d := time.Unix(1_700_000_000, 500)
	tests := []struct {
		name     string
		deadline time.Time
		now      time.Time
		want     bool
	}{
		{"no deadline", time.Time{}, d, false},
		{"no deadline far future", time.Time{}, d.Add(1000 * time.Hour), false},
		{"1ns before", d, d.Add(-time.Nanosecond), false},
		{"at", d, d, true},
		{"1ns after", d, d.Add(time.Nanosecond), true},
		{"long before", d, d.Add(-time.Hour), false},
		{"long after", d, d.Add(time.Hour), true},
		{"at, other location", d, d.In(time.FixedZone("x", 3600)), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := Envelope{Deadline: tc.deadline}
			if got := e.Expired(tc.now); got != tc.want {
				t.Errorf("Expired(%v) with deadline %v = %v, want %v", tc.now, tc.deadline, got, tc.want)
			}
		})
	}
}

func TestEnvelopeFinalID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		env  Envelope
		want string
	}{
		{Envelope{}, ""},
		{Envelope{ID: "a"}, "a"},
		{Envelope{ID: "a", Cont: []Hop{{"t", "b"}}}, "b"},
		{Envelope{ID: "a", Cont: []Hop{{"t", "b"}, {"u", "c"}, {"v", "d"}}}, "d"},
		{Envelope{ID: "a", Cont: []Hop{}}, "a"},
	}
	for _, tc := range tests {
		if got := tc.env.FinalID(); got != tc.want {
			t.Errorf("FinalID(%+v) = %q, want %q", tc.env, got, tc.want)
		}
	}
}

func TestHeader(t *testing.T) {
	t.Parallel()
	hs := []kgo.RecordHeader{hdr("a", "1"), hdr("b", "2"), hdr("a", "3")}
	if got := string(Header(hs, "a")); got != "1" {
		t.Errorf("Header a = %q, want first value 1", got)
	}
	if got := Header(hs, "c"); got != nil {
		t.Errorf("Header c = %q, want nil", got)
	}
	if got := Header(nil, "a"); got != nil {
		t.Errorf("Header on nil = %q", got)
	}
}
