package protocol

import (
	"bytes"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Every parser has a fuzz target that checks two things on whatever the
// fuzzer makes of its input:
//
//   - arbitrary headers never panic the parser, and a failure is a
//     *ParseError that wraps ErrMalformed and names a header;
//   - a record that parses encodes back to one that parses to the same
//     value (decode(encode(x)) == x for every x a parser yields), and a
//     value built field by field from the input does too.
//
// Headers come from a blob: lines "key=value"; a key of one hex digit
// stands for fuzzKeys[digit] (g-l for the HTTP ingress headers), so the
// fuzzer reaches every known header.

var fuzzKeys = []string{
	HeaderID, HeaderReplyTo, HeaderDeadline, HeaderTrace, HeaderContentType, HeaderModel, HeaderVersion,
	HeaderCont, HeaderStatus, HeaderError, HeaderSeq, HeaderEOS, HeaderSource, HeaderDeployment,
	HeaderRequestPrefix + "x-tenant", "x-unknown",
	HeaderHTTPMethod, HeaderHTTPPath, HeaderHTTPQuery, HeaderHTTPStatus, HeaderHTTPPrefix + "x-a", HeaderHTTPPrefix + "Accept",
}

func fuzzHeaders(blob []byte) []kgo.RecordHeader {
	if len(blob) == 0 {
		return nil
	}
	var hs []kgo.RecordHeader
	for line := range bytes.SplitSeq(blob, []byte("\n")) {
		k, v, _ := bytes.Cut(line, []byte("="))
		key := string(k)
		if len(k) == 1 {
			if i := strings.IndexByte("0123456789abcdefghijkl", k[0]); i >= 0 {
				key = fuzzKeys[i]
			}
		}
		hs = append(hs, kgo.RecordHeader{Key: key, Value: v})
	}
	return hs
}

func fuzzBlob(hs []kgo.RecordHeader) []byte {
	var b []byte
	for i, h := range hs {
		if i > 0 {
			b = append(b, '\n')
		}
		b = append(append(append(b, h.Key...), '='), h.Value...)
	}
	return b
}

// checkParseError fails unless err is a *ParseError wrapping ErrMalformed
// whose message names its header.
func checkParseError(t *testing.T, err error, hs []kgo.RecordHeader) {
	t.Helper()
	var pe *ParseError
	if !errors.As(err, &pe) || !errors.Is(err, ErrMalformed) {
		t.Fatalf("headers %q: error %v (%T) is not a *ParseError wrapping ErrMalformed", hs, err, err)
	}
	if !slices.Contains(fuzzKeys, pe.Header) || !strings.Contains(err.Error(), "header "+pe.Header) {
		t.Fatalf("headers %q: error %q names no known header (%q)", hs, err, pe.Header)
	}
}

func FuzzParseEnvelope(f *testing.F) {
	d := time.Unix(1_700_000_000, 123)
	for _, env := range []Envelope{
		{}, {ID: "id-1", ReplyTo: "sluice.reply.gw", Deadline: d, Trace: "00-ab-cd-01", ContentType: "text/plain"},
		{ID: "a", Model: "m", Version: "@prod", Cont: []Hop{{"t1", "i1"}, {"t2", "i/2"}}, Request: []kgo.RecordHeader{hdr("h-x-a", "1")}},
	} {
		f.Add(fuzzBlob(env.AppendHeaders(nil)), "", "", int64(0))
	}
	f.Add([]byte("2=abc\n7=a/b,,c/d\n0=x"), "id", "t/x", int64(-5))
	f.Add([]byte("2=0\n2= 5\n2=+5\n7=/"), "", "a/b,c", int64(1<<62))
	f.Fuzz(func(t *testing.T, blob []byte, id, cont string, ns int64) {
		hs := fuzzHeaders(blob)
		e, err := ParseEnvelope(hs)
		if err != nil {
			checkParseError(t, err, hs)
		} else if again, err := ParseEnvelope(e.AppendHeaders(nil)); err != nil || !envEqual(again, e) {
			t.Fatalf("headers %q parse to %+v, which encodes to one that parses to %+v, %v", hs, e, again, err)
		}
		// Built field by field: every id and trace, hops as parseHops
		// takes them, any positive deadline.
		x := Envelope{ID: id, ReplyTo: id, Trace: cont, ContentType: id, Model: cont, Version: id}
		if hops, err := parseHops([]byte(cont)); err == nil {
			x.Cont = hops
		}
		if ns > 0 {
			x.Deadline = time.Unix(0, ns)
		}
		if id != "" {
			x.AddRequestHeader("x-"+id, cont)
		}
		if got, err := ParseEnvelope(x.AppendHeaders(nil)); err != nil || !envEqual(got, x) {
			t.Fatalf("envelope %+v round trips to %+v, %v", x, got, err)
		}
	})
}

func FuzzHops(f *testing.F) {
	for _, s := range []string{"", "a/b", "a/b,c/d", "topic", "/id", "topic/", "a/b,,c/d", "a/b/c", ",", "/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		hops, err := parseHops([]byte(s))
		if err != nil {
			checkParseError(t, err, []kgo.RecordHeader{hdr(HeaderCont, s)})
			return
		}
		for _, h := range hops {
			if h.Topic == "" || h.ID == "" {
				t.Fatalf("parseHops(%q) gave empty hop %+v", s, h)
			}
		}
		b := appendHops(nil, hops)
		if string(b) != s {
			t.Fatalf("appendHops(parseHops(%q)) = %q", s, b)
		}
		again, err := parseHops(b)
		if err != nil || !slices.Equal(again, hops) {
			t.Fatalf("re-parse = %+v, %v; want %+v", again, err, hops)
		}
	})
}

func FuzzParseReply(f *testing.F) {
	env := Envelope{ID: "r1", ReplyTo: "sluice.reply.gw"}
	for _, r := range []Reply{
		UnaryReply(&env, []byte("v"), "text/plain"), ItemReply(&env, 3, []byte("i"), ""),
		EndReply(&env, 4), ErrorReply(&env, CodeNotFound, "no model m"),
	} {
		f.Add(fuzzBlob(r.Record().Headers), "r1", "", int64(-1), int64(-1))
	}
	f.Add([]byte("a=1\nb=2\n8=internal"), "", "internal", int64(1), int64(1))
	f.Add([]byte("0=\na=-1\nb=x"), "id", "", int64(0), int64(-3))
	f.Fuzz(func(t *testing.T, blob []byte, id, status string, seq, eos int64) {
		hs := fuzzHeaders(blob)
		r, err := ParseReply(&kgo.Record{Topic: "t", Value: []byte("v"), Headers: hs})
		if err != nil {
			checkParseError(t, err, hs)
		} else {
			again, err := ParseReply(r.Record())
			if err != nil || !replyEqual(again, r) {
				t.Fatalf("headers %q parse to %+v, which encodes to one that parses to %+v, %v", hs, r, again, err)
			}
		}
		if id == "" {
			return // a reply answers an id
		}
		x := Reply{Topic: "t", ID: id, ContentType: status, Value: []byte(id), Seq: max(seq, -1), EOS: max(eos, -1), Status: Code(status), Error: id}
		if x.Seq >= 0 {
			x.EOS = -1
		}
		if x.Status == CodeOK {
			x.Error = ""
		}
		if got, err := ParseReply(x.Record()); err != nil || !replyEqual(got, x) {
			t.Fatalf("reply %+v round trips to %+v, %v", x, got, err)
		}
	})
}

func FuzzParseOutput(f *testing.F) {
	in := Request{Key: []byte("k"), Env: Envelope{ID: "o1"}}
	for _, o := range []Output{
		UnaryOutput(&in, "out", []byte("v"), "text/plain"), ItemOutput(&in, "out", 0, []byte("i"), ""), EndOutput(&in, "out", 2),
	} {
		f.Add(fuzzBlob(o.Record().Headers), "o1", int64(-1), int64(-1))
	}
	f.Add([]byte("a=1\nb=1"), "", int64(5), int64(5))
	f.Fuzz(func(t *testing.T, blob []byte, id string, seq, eos int64) {
		hs := fuzzHeaders(blob)
		o, err := ParseOutput(&kgo.Record{Topic: "out", Key: []byte("k"), Headers: hs})
		if err != nil {
			checkParseError(t, err, hs)
		} else if again, err := ParseOutput(o.Record()); err != nil || !outputEqual(again, o) {
			t.Fatalf("headers %q parse to %+v, which encodes to one that parses to %+v, %v", hs, o, again, err)
		}
		x := Output{Topic: "out", Key: []byte(id), ID: id, ContentType: id, Value: blob, Seq: max(seq, -1), EOS: max(eos, -1)}
		if x.EOS >= 0 {
			x.Seq = -1
		}
		if got, err := ParseOutput(x.Record()); err != nil || !outputEqual(got, x) {
			t.Fatalf("output %+v round trips to %+v, %v", x, got, err)
		}
	})
}

func FuzzParseDeadLetter(f *testing.F) {
	rec := &kgo.Record{Topic: "sluice.app.a.in", Partition: 2, Offset: 41, Key: []byte("k"), Value: []byte("v"),
		Headers: []kgo.RecordHeader{hdr(HeaderID, "i"), hdr("x-own", "1")}}
	d := NewDeadLetter("sluice.app.a.dlq", rec, "D", CodeInvalidArgument, "decode int")
	f.Add(fuzzBlob(d.Record().Headers), "sluice.app.a.in", "invalid_argument", int32(2), int64(41))
	f.Add([]byte("8=internal\nc=t/x/1"), "a/b", "", int32(-1), int64(-1))
	f.Add([]byte("8=\nc=t/1/2\nc=/1/2"), "", "x", int32(0), int64(0))
	f.Fuzz(func(t *testing.T, blob []byte, topic, status string, partition int32, offset int64) {
		hs := fuzzHeaders(blob)
		d, err := ParseDeadLetter(&kgo.Record{Topic: "dlq", Headers: hs})
		if err != nil {
			checkParseError(t, err, hs)
		} else if again, err := ParseDeadLetter(d.Record()); err != nil || !deadLetterEqual(again, d) {
			t.Fatalf("headers %q parse to %+v, which encodes to one that parses to %+v, %v", hs, d, again, err)
		}
		if topic == "" {
			return // a record was read from a topic
		}
		in := &kgo.Record{Topic: topic, Partition: max(partition, 0), Offset: max(offset, 0), Key: []byte(status), Value: blob, Headers: hs}
		x := NewDeadLetter("dlq", in, topic, Code(status), status)
		if got, err := ParseDeadLetter(x.Record()); err != nil || !deadLetterEqual(got, x) {
			t.Fatalf("dead letter %+v round trips to %+v, %v", x, got, err)
		}
	})
}

func FuzzParseSource(f *testing.F) {
	for _, s := range []string{"t/0/0", "sluice.app.a.in/3/17", "a/b/1/2", "t/1", "/1/2", "t/-1/2", "t/1/+2", "t/2147483648/0", "t//1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		src, err := ParseSource([]byte(s))
		if err != nil {
			checkParseError(t, err, []kgo.RecordHeader{hdr(HeaderSource, s)})
			return
		}
		if again, err := ParseSource([]byte(src.String())); err != nil || again != src {
			t.Fatalf("ParseSource(%q) = %+v, which prints as %q and parses to %+v, %v", s, src, src.String(), again, err)
		}
	})
}

func replyEqual(a, b Reply) bool {
	return a.Topic == b.Topic && a.ID == b.ID && a.ContentType == b.ContentType && bytes.Equal(a.Value, b.Value) &&
		a.Seq == b.Seq && a.EOS == b.EOS && a.Status == b.Status && a.Error == b.Error && reflect.DeepEqual(a.HTTP, b.HTTP)
}

func outputEqual(a, b Output) bool {
	return a.Topic == b.Topic && bytes.Equal(a.Key, b.Key) && a.ID == b.ID && a.ContentType == b.ContentType &&
		bytes.Equal(a.Value, b.Value) && a.Seq == b.Seq && a.EOS == b.EOS && reflect.DeepEqual(a.HTTP, b.HTTP)
}

func deadLetterEqual(a, b DeadLetter) bool {
	return a.Topic == b.Topic && bytes.Equal(a.Key, b.Key) && bytes.Equal(a.Value, b.Value) &&
		slices.EqualFunc(a.Headers, b.Headers, func(x, y kgo.RecordHeader) bool { return x.Key == y.Key && bytes.Equal(x.Value, y.Value) }) &&
		a.Status == b.Status && a.Error == b.Error && a.Source == b.Source && a.Deployment == b.Deployment
}
