package protocol

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func recordOf(topic string, kv ...string) *kgo.Record {
	r := &kgo.Record{Topic: topic, Value: []byte("payload")}
	for i := 0; i+1 < len(kv); i += 2 {
		r.Headers = append(r.Headers, hdr(kv[i], kv[i+1]))
	}
	return r
}

// headersOf is a record's headers as "key=value" in order.
func headersOf(r *kgo.Record) string {
	var b strings.Builder
	for i, h := range r.Headers {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(h.Key + "=" + string(h.Value))
	}
	return b.String()
}

// wantParseError fails unless err is a *ParseError naming header.
func wantParseError(t *testing.T, err error, header string) {
	t.Helper()
	var pe *ParseError
	if !errors.As(err, &pe) || !errors.Is(err, ErrMalformed) || pe.Header != header || !strings.Contains(err.Error(), header) {
		t.Fatalf("error %v (%T): want a *ParseError naming %s", err, err, header)
	}
}

func TestParseReply(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		hs      []string
		want    Reply // Topic and Value are the record's
		kind    ReplyKind
		errName string // non-empty: ParseReply must fail naming this header
	}{
		{name: "unary", hs: []string{HeaderID, "r1"}, want: Reply{ID: "r1", Seq: -1, EOS: -1}, kind: ReplyUnary},
		{name: "content type", hs: []string{HeaderID, "r1", HeaderContentType, "application/json"}, want: Reply{ID: "r1", ContentType: "application/json", Seq: -1, EOS: -1}},
		{name: "seq", hs: []string{HeaderID, "r1", HeaderSeq, "7"}, want: Reply{ID: "r1", Seq: 7, EOS: -1}, kind: ReplyItem},
		{name: "seq zero", hs: []string{HeaderID, "r1", HeaderSeq, "0"}, want: Reply{ID: "r1", Seq: 0, EOS: -1}, kind: ReplyItem},
		{name: "eos", hs: []string{HeaderID, "r1", HeaderEOS, "5"}, want: Reply{ID: "r1", Seq: -1, EOS: 5}, kind: ReplyEnd},
		{name: "eos zero", hs: []string{HeaderID, "r1", HeaderEOS, "0"}, want: Reply{ID: "r1", Seq: -1, EOS: 0}, kind: ReplyEnd},
		{name: "status and error", hs: []string{HeaderID, "r1", HeaderStatus, "not_found", HeaderError, "no model m"}, want: Reply{ID: "r1", Seq: -1, EOS: -1, Status: CodeNotFound, Error: "no model m"}, kind: ReplyError},
		{name: "error before status", hs: []string{HeaderError, "busy", HeaderStatus, "resource_exhausted", HeaderID, "r1"}, want: Reply{ID: "r1", Seq: -1, EOS: -1, Status: CodeResourceExhausted, Error: "busy"}, kind: ReplyError},
		{name: "status only", hs: []string{HeaderID, "r1", HeaderStatus, "internal"}, want: Reply{ID: "r1", Seq: -1, EOS: -1, Status: CodeInternal}, kind: ReplyError},
		{name: "status ends a stream", hs: []string{HeaderID, "r1", HeaderSeq, "2", HeaderStatus, "internal"}, want: Reply{ID: "r1", Seq: 2, EOS: -1, Status: CodeInternal}, kind: ReplyError},
		{name: "unknown status kept", hs: []string{HeaderID, "r1", HeaderStatus, "new_code"}, want: Reply{ID: "r1", Seq: -1, EOS: -1, Status: "new_code"}, kind: ReplyError},
		{name: "empty status is success", hs: []string{HeaderID, "r1", HeaderStatus, "", HeaderError, "ignored"}, want: Reply{ID: "r1", Seq: -1, EOS: -1}},
		{name: "error without status is success", hs: []string{HeaderID, "r1", HeaderError, "ignored"}, want: Reply{ID: "r1", Seq: -1, EOS: -1}},
		{name: "unknown headers", hs: []string{"x", "y", HeaderID, "r1", HeaderDeadline, "junk"}, want: Reply{ID: "r1", Seq: -1, EOS: -1}},
		{name: "last of repeated", hs: []string{HeaderID, "r0", HeaderID, "r1"}, want: Reply{ID: "r1", Seq: -1, EOS: -1}},
		{name: "missing id", hs: nil, errName: HeaderID},
		{name: "empty id", hs: []string{HeaderID, ""}, errName: HeaderID},
		{name: "missing id with seq", hs: []string{HeaderSeq, "1"}, errName: HeaderID},
		{name: "bad seq", hs: []string{HeaderID, "r1", HeaderSeq, "x"}, errName: HeaderSeq},
		{name: "negative seq", hs: []string{HeaderID, "r1", HeaderSeq, "-1"}, errName: HeaderSeq},
		{name: "signed seq", hs: []string{HeaderID, "r1", HeaderSeq, "+1"}, errName: HeaderSeq},
		{name: "empty seq", hs: []string{HeaderID, "r1", HeaderSeq, ""}, errName: HeaderSeq},
		{name: "float seq", hs: []string{HeaderID, "r1", HeaderSeq, "1.0"}, errName: HeaderSeq},
		{name: "huge seq", hs: []string{HeaderID, "r1", HeaderSeq, "99999999999999999999"}, errName: HeaderSeq},
		{name: "bad eos", hs: []string{HeaderID, "r1", HeaderEOS, "many"}, errName: HeaderEOS},
		{name: "negative eos", hs: []string{HeaderID, "r1", HeaderEOS, "-2"}, errName: HeaderEOS},
		{name: "seq and eos", hs: []string{HeaderID, "r1", HeaderSeq, "1", HeaderEOS, "2"}, errName: HeaderEOS},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseReply(recordOf("reply", tc.hs...))
			if tc.errName != "" {
				if err == nil {
					t.Fatalf("ParseReply succeeded: %+v", got)
				}
				wantParseError(t, err, tc.errName)
				return
			}
			if err != nil {
				t.Fatalf("ParseReply: %v", err)
			}
			tc.want.Topic, tc.want.Value = "reply", []byte("payload")
			if !replyEqual(got, tc.want) {
				t.Errorf("ParseReply = %+v, want %+v", got, tc.want)
			}
			if got.Kind() != tc.kind {
				t.Errorf("Kind = %d, want %d", got.Kind(), tc.kind)
			}
		})
	}
}

func TestReplyRecords(t *testing.T) {
	t.Parallel()
	env := Envelope{ID: "a", ReplyTo: "sluice.reply.gw", Cont: []Hop{{"t1", "b"}, {"t2", "c"}}, Trace: "tp", Request: []kgo.RecordHeader{hdr("h-x-a", "1")}}
	plain := Envelope{ID: "a", ReplyTo: "sluice.reply.gw"}
	tests := []struct {
		name  string
		reply Reply
		want  string // headers in order
		kind  ReplyKind
	}{
		{"unary", UnaryReply(&plain, []byte("v"), "text/plain"), "sl-id=a content-type=text/plain", ReplyUnary},
		{"unary under the final id", UnaryReply(&env, []byte("v"), "text/plain"), "sl-id=c content-type=text/plain", ReplyUnary},
		{"unary without content type", UnaryReply(&plain, []byte("v"), ""), "sl-id=a", ReplyUnary},
		{"item", ItemReply(&plain, 0, []byte("v"), "text/plain"), "sl-id=a content-type=text/plain sl-seq=0", ReplyItem},
		{"end", EndReply(&plain, 3), "sl-id=a sl-eos=3", ReplyEnd},
		{"error", ErrorReply(&env, CodeNotFound, "no m"), "sl-id=c sl-status=not_found sl-error=no m", ReplyError},
		{"error without code", ErrorReply(&plain, CodeOK, "boom"), "sl-id=a sl-status=internal sl-error=boom", ReplyError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := tc.reply.Record()
			if rec.Topic != "sluice.reply.gw" || rec.Key != nil {
				t.Errorf("record to %q key %q, want the reply topic and no key", rec.Topic, rec.Key)
			}
			if got := headersOf(rec); got != tc.want {
				t.Errorf("headers %q, want %q", got, tc.want)
			}
			got, err := ParseReply(rec)
			if err != nil || !replyEqual(got, tc.reply) || got.Kind() != tc.kind {
				t.Errorf("round trip = %+v (kind %d), %v; want %+v (kind %d)", got, got.Kind(), err, tc.reply, tc.kind)
			}
		})
	}
}

func TestOutputRecords(t *testing.T) {
	t.Parallel()
	in := Request{Topic: "in", Key: []byte("k"), Env: Envelope{ID: "a", Trace: "tp", Model: "m", Request: []kgo.RecordHeader{hdr("h-x-a", "1")}}}
	anon := Request{Topic: "in", Key: []byte("k2")}
	tests := []struct {
		name string
		out  Output
		key  string
		want string
	}{
		{"unary", UnaryOutput(&in, "out", []byte("v"), "text/plain"), "k", "sl-id=a content-type=text/plain"},
		{"unary without id", UnaryOutput(&anon, "out", []byte("v"), "text/plain"), "k2", "content-type=text/plain"},
		{"item", ItemOutput(&in, "out", 4, []byte("v"), "text/plain"), "k", "sl-id=a content-type=text/plain sl-seq=4"},
		{"end", EndOutput(&in, "out", 5), "k", "sl-id=a sl-eos=5"},
		{"end without id", EndOutput(&anon, "out", 0), "k2", "sl-eos=0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := tc.out.Record()
			if rec.Topic != "out" || string(rec.Key) != tc.key {
				t.Errorf("record to %q key %q, want out key %q", rec.Topic, rec.Key, tc.key)
			}
			if got := headersOf(rec); got != tc.want {
				t.Errorf("headers %q, want %q", got, tc.want)
			}
			got, err := ParseOutput(rec)
			if err != nil || !outputEqual(got, tc.out) {
				t.Errorf("round trip = %+v, %v; want %+v", got, err, tc.out)
			}
		})
	}
	for _, hs := range [][]string{{HeaderSeq, "x"}, {HeaderEOS, "-1"}, {HeaderSeq, "1", HeaderEOS, "1"}} {
		_, err := ParseOutput(recordOf("out", hs...))
		if err == nil {
			t.Fatalf("ParseOutput(%q) succeeded", hs)
		}
		var pe *ParseError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), pe.Header) || (pe.Header != HeaderSeq && pe.Header != HeaderEOS) {
			t.Errorf("ParseOutput(%q) error %v does not name sl-seq or sl-eos", hs, err)
		}
	}
}

func TestDeadLetterRecords(t *testing.T) {
	t.Parallel()
	rec := &kgo.Record{Topic: "sluice.app.a.in", Partition: 3, Offset: 17, Key: []byte("k"), Value: []byte("v"),
		Headers: []kgo.RecordHeader{hdr(HeaderID, "i"), hdr("x-own", "1"), hdr(HeaderStatus, "old"), hdr(HeaderError, "earlier"), hdr(HeaderSource, "x/0/0"), hdr(HeaderDeployment, "E")}}
	d := NewDeadLetter("sluice.app.a.dlq", rec, "D", CodeInvalidArgument, "decode int")
	out := d.Record()
	if out.Topic != "sluice.app.a.dlq" || string(out.Key) != "k" || string(out.Value) != "v" {
		t.Errorf("dead letter to %q key %q value %q", out.Topic, out.Key, out.Value)
	}
	want := "sl-id=i x-own=1 sl-status=invalid_argument sl-error=decode int sl-source=sluice.app.a.in/3/17 sl-deployment=D"
	if got := headersOf(out); got != want {
		t.Errorf("headers %q, want %q (the earlier failure's dropped)", got, want)
	}
	got, err := ParseDeadLetter(out)
	if err != nil || !deadLetterEqual(got, d) {
		t.Fatalf("round trip = %+v, %v; want %+v", got, err, d)
	}
	if rec.Headers[2].Key != HeaderStatus {
		t.Error("NewDeadLetter changed the failed record's headers")
	}
	if got := NewDeadLetter("q", rec, "D", CodeOK, "x"); got.Status != CodeInternal {
		t.Errorf("dead letter without a code has status %q, want internal", got.Status)
	}

	for _, tc := range []struct {
		hs     []string
		header string
	}{
		{[]string{HeaderSource, "t/0/1"}, HeaderStatus},
		{[]string{HeaderStatus, "", HeaderSource, "t/0/1"}, HeaderStatus},
		{[]string{HeaderStatus, "internal"}, HeaderSource},
		{[]string{HeaderStatus, "internal", HeaderSource, "t/0"}, HeaderSource},
		{[]string{HeaderStatus, "internal", HeaderSource, "/0/1"}, HeaderSource},
		{[]string{HeaderStatus, "internal", HeaderSource, "t/-1/1"}, HeaderSource},
		{[]string{HeaderStatus, "internal", HeaderSource, "t/0/x"}, HeaderSource},
		{[]string{HeaderStatus, "internal", HeaderSource, "t/2147483648/1"}, HeaderSource},
	} {
		_, err := ParseDeadLetter(recordOf("dlq", tc.hs...))
		if err == nil {
			t.Fatalf("ParseDeadLetter(%q) succeeded", tc.hs)
		}
		wantParseError(t, err, tc.header)
	}
	src, err := ParseSource([]byte("a/b/2/9"))
	if err != nil || src != (Source{"a/b", 2, 9}) {
		t.Errorf("ParseSource(a/b/2/9) = %+v, %v; the topic is all before the last two slashes", src, err)
	}
}

func TestRequestRecords(t *testing.T) {
	t.Parallel()
	env := Envelope{ID: "r1", ReplyTo: "reply", Deadline: time.Unix(5, 0), Model: "m"}
	r := NewRequest("in", nil, env, []byte("v"))
	if string(r.Key) != "r1" {
		t.Errorf("NewRequest without a key is keyed %q, want the id", r.Key)
	}
	if r := NewRequest("in", []byte("model-a"), env, nil); string(r.Key) != "model-a" {
		t.Errorf("NewRequest keyed %q, want model-a", r.Key)
	}
	if r := NewRequest("in", nil, Envelope{}, nil); r.Key != nil {
		t.Errorf("NewRequest with neither key nor id keyed %q", r.Key)
	}
	rec := r.Record()
	if got, want := headersOf(rec), "sl-id=r1 sl-reply=reply sl-deadline=5000000000 sl-model=m"; got != want {
		t.Errorf("headers %q, want %q", got, want)
	}
	got, err := ParseRequest(rec)
	if err != nil || got.Topic != "in" || string(got.Key) != "r1" || string(got.Value) != "v" || !envEqual(got.Env, env) {
		t.Errorf("round trip = %+v, %v", got, err)
	}
	// A malformed header still yields the rest: the failure can be answered.
	bad := recordOf("in", HeaderID, "r2", HeaderDeadline, "soon", HeaderReplyTo, "reply")
	got, err = ParseRequest(bad)
	wantParseError(t, err, HeaderDeadline)
	if got.Env.ID != "r2" || got.Env.ReplyTo != "reply" {
		t.Errorf("malformed request parsed to %+v; want its id and reply topic", got.Env)
	}
}
