package protocol

import (
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestHTTPRequestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		req  HTTPRequest
		want []kgo.RecordHeader // the sl-http-* headers, in order
	}{
		{"get", HTTPRequest{Method: "GET", Path: "/predict/m"}, []kgo.RecordHeader{hdr(HeaderHTTPMethod, "GET"), hdr(HeaderHTTPPath, "/predict/m")}},
		{"query and repeated headers", HTTPRequest{Method: "POST", Path: "/a/b", Query: "x=1&x=2", Header: http.Header{"Accept": {"a", "b"}, "X-Tenant": {"t"}}},
			[]kgo.RecordHeader{hdr(HeaderHTTPMethod, "POST"), hdr(HeaderHTTPPath, "/a/b"), hdr(HeaderHTTPQuery, "x=1&x=2"),
				hdr("sl-http-h-accept", "a"), hdr("sl-http-h-accept", "b"), hdr("sl-http-h-x-tenant", "t")}},
		{"content-type travels as content-type", HTTPRequest{Method: "PUT", Path: "/", Header: http.Header{"Content-Type": {"text/plain"}}},
			[]kgo.RecordHeader{hdr(HeaderHTTPMethod, "PUT"), hdr(HeaderHTTPPath, "/")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := Envelope{ID: "r1", HTTP: &tc.req}
			hs := env.AppendHeaders(nil)
			if got := hs[1:]; !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("headers %q, want %q", got, tc.want)
			}
			back, err := ParseEnvelope(hs)
			if err != nil {
				t.Fatal(err)
			}
			got, err := back.HTTPRequest()
			if err != nil {
				t.Fatal(err)
			}
			want := tc.req
			delete(want.Header, "Content-Type")
			if len(want.Header) == 0 {
				want.Header = nil
			}
			if !reflect.DeepEqual(*got, want) {
				t.Fatalf("parsed %+v, want %+v", *got, want)
			}
		})
	}
}

func TestHTTPRequestMissing(t *testing.T) {
	t.Parallel()
	for _, hs := range [][]kgo.RecordHeader{
		{hdr(HeaderID, "r1")},
		{hdr(HeaderHTTPPath, "/x"), hdr("sl-http-h-accept", "a")},
	} {
		env, err := ParseEnvelope(hs)
		if err != nil {
			t.Fatal(err)
		}
		_, err = env.HTTPRequest()
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Header != HeaderHTTPMethod || !errors.Is(err, ErrMalformed) {
			t.Fatalf("headers %q: %v, want a ParseError naming %s", hs, err, HeaderHTTPMethod)
		}
	}
	env, err := ParseEnvelope([]kgo.RecordHeader{hdr(HeaderHTTPMethod, "GET")})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := env.HTTPRequest(); err != nil || r.Path != "/" {
		t.Fatalf("no path: %+v, %v; want /", r, err)
	}
	if _, err := ParseEnvelope([]kgo.RecordHeader{hdr(HeaderHTTPMethod, "GET"), hdr(HeaderHTTPPath, "x")}); err == nil || !strings.Contains(err.Error(), HeaderHTTPPath) {
		t.Fatalf("a path without /: %v", err)
	}
}

func TestHTTPResponseOnAnswers(t *testing.T) {
	t.Parallel()
	resp := &HTTPResponse{Status: 201, Header: http.Header{"Location": {"/m/1"}, "Set-Cookie": {"a=1", "b=2"}}}
	sync := Request{Key: []byte("k"), Env: Envelope{ID: "r1", ReplyTo: "reply"}}
	rec := HTTPAnswer(&sync, "out", 0, resp, []byte("{}"), "application/json")
	r, err := ParseReply(rec)
	if err != nil || r.Kind() != ReplyItem || !reflect.DeepEqual(r.HTTP, resp) || r.ContentType != "application/json" {
		t.Fatalf("reply %+v (%+v), %v", r, r.HTTP, err)
	}
	offline := Request{Key: []byte("k"), Env: Envelope{ID: "r1"}}
	o, err := ParseOutput(HTTPAnswer(&offline, "out", -1, resp, nil, ""))
	if err != nil || !reflect.DeepEqual(o.HTTP, resp) {
		t.Fatalf("output %+v, %v", o, err)
	}
	if r, _ := ParseReply(Answer(&sync, "out", 1, []byte("x"), "")); r.HTTP != nil {
		t.Fatalf("a plain answer carries %+v", r.HTTP)
	}
	// Headers without a status are a 200; a status that is not one fails.
	r, err = ParseReply(&kgo.Record{Headers: []kgo.RecordHeader{hdr(HeaderID, "r1"), hdr("sl-http-h-x-a", "1")}})
	if err != nil || r.HTTP.Status != 200 || r.HTTP.Header.Get("X-A") != "1" {
		t.Fatalf("headers alone: %+v, %v", r.HTTP, err)
	}
	for _, bad := range []string{"", "20", "2000", "099", "+20", "abc"} {
		if _, err := ParseReply(&kgo.Record{Headers: []kgo.RecordHeader{hdr(HeaderID, "r1"), hdr(HeaderHTTPStatus, bad)}}); err == nil || !strings.Contains(err.Error(), HeaderHTTPStatus) {
			t.Fatalf("status %q: %v", bad, err)
		}
	}
}

// The HTTP request and response built field by field round trip; what a
// parser makes of arbitrary headers is covered by the envelope, reply and
// output targets (fuzzKeys holds the sl-http-* keys).
func FuzzHTTP(f *testing.F) {
	f.Add("GET", "/predict/m/1", "a=1&b", "Accept", "text/plain", 200)
	f.Add("", "", "", "", "", 0)
	f.Add("POST", "x", "", "x_y", "\xff", 99)
	f.Fuzz(func(t *testing.T, method, path, query, name, value string, status int) {
		req := HTTPRequest{Method: method, Path: path, Query: query}
		if name != "" {
			req.Header = http.Header{}
			req.Header.Add(name, value)
		}
		env, err := ParseEnvelope((&Envelope{HTTP: &req}).AppendHeaders(nil))
		if err != nil {
			checkParseError(t, err, nil)
			if strings.HasPrefix(path, "/") {
				t.Fatalf("request %+v: %v", req, err)
			}
			return
		}
		if again, err := ParseEnvelope(env.AppendHeaders(nil)); err != nil || !envEqual(again, env) {
			t.Fatalf("request %+v: parsed %+v, again %+v, %v", req, env.HTTP, again.HTTP, err)
		}
		resp := HTTPResponse{Status: status, Header: req.Header}
		r, err := ParseReply(HTTPAnswer(&Request{Env: Envelope{ID: "i", ReplyTo: "t"}}, "out", -1, &resp, nil, ""))
		if status < 100 || status > 999 {
			if err == nil {
				t.Fatalf("status %d parsed", status)
			}
			return
		}
		if err != nil || r.HTTP.Status != status {
			t.Fatalf("response %+v: %+v, %v", resp, r.HTTP, err)
		}
		if again, err := ParseReply(r.Record()); err != nil || !replyEqual(again, r) {
			t.Fatalf("response %+v: parsed %+v, again %+v, %v", resp, r.HTTP, again.HTTP, err)
		}
	})
}
