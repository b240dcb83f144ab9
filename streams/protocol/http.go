package protocol

import (
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
)

// HTTP ingress headers: a request record for an HTTP ingress deployment
// carries the whole HTTP request, and its answer the HTTP response's
// status and headers (docs/PROTOCOL.md, "HTTP ingress").
const (
	HeaderHTTPMethod = "sl-http-method" // request: the HTTP method, as sent
	HeaderHTTPPath   = "sl-http-path"   // request: the path below the route prefix, from "/"
	HeaderHTTPQuery  = "sl-http-query"  // request: the raw query, without "?"
	HeaderHTTPStatus = "sl-http-status" // answer: the response's status, 100-999
	// HeaderHTTPPrefix starts a header of the HTTP request or response:
	// sl-http-h-<name in lower case>, once per value, in order.
	// Content-Type is not among them: it travels as content-type.
	HeaderHTTPPrefix = "sl-http-h-"
)

// HTTPRequest is the HTTP request an HTTP ingress record carries besides
// its envelope: the body is the record's value, its Content-Type the
// envelope's.
type HTTPRequest struct {
	Method string
	Path   string // below the route prefix, starting with "/"
	Query  string // raw, without "?"
	Header http.Header
}

// HTTPResponse is what an HTTP ingress answers besides its body: on a
// unary answer, or on the first item of a stream. The body's Content-Type
// is the answer's content-type.
type HTTPResponse struct {
	Status int
	Header http.Header
}

// appendHTTPHeaders appends h as sl-http-h-* headers, names sorted (a
// record's encoding does not depend on map order), one header per value.
// Content-Type is left out: it travels as content-type.
func appendHTTPHeaders(hs []kgo.RecordHeader, h http.Header) []kgo.RecordHeader {
	names := make([]string, 0, len(h))
	for name := range h {
		if !strings.EqualFold(name, "Content-Type") {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		key := HeaderHTTPPrefix + asciiLower(name)
		for _, v := range h[name] {
			hs = append(hs, header(key, v))
		}
	}
	return hs
}

// addHTTPHeader reads one sl-http-h-* header into h; it reports false for
// another header.
func addHTTPHeader(h *http.Header, rh kgo.RecordHeader) bool {
	name, ok := strings.CutPrefix(rh.Key, HeaderHTTPPrefix)
	if !ok || name == "" || strings.EqualFold(name, "content-type") {
		return false
	}
	if *h == nil {
		*h = http.Header{}
	}
	key := http.CanonicalHeaderKey(asciiLower(name))
	(*h)[key] = append((*h)[key], string(rh.Value))
	return true
}

func (r *HTTPRequest) zero() bool {
	return r.Method == "" && r.Path == "" && r.Query == "" && len(r.Header) == 0
}

// appendHeaders appends the request's sl-http-* headers.
func (r *HTTPRequest) appendHeaders(hs []kgo.RecordHeader) []kgo.RecordHeader {
	if r.Method != "" {
		hs = append(hs, header(HeaderHTTPMethod, r.Method))
	}
	if r.Path != "" {
		hs = append(hs, header(HeaderHTTPPath, r.Path))
	}
	if r.Query != "" {
		hs = append(hs, header(HeaderHTTPQuery, r.Query))
	}
	return appendHTTPHeaders(hs, r.Header)
}

// appendHeaders appends the response's sl-http-status and headers.
func (r *HTTPResponse) appendHeaders(hs []kgo.RecordHeader) []kgo.RecordHeader {
	hs = append(hs, kgo.RecordHeader{Key: HeaderHTTPStatus, Value: strconv.AppendInt(nil, int64(r.Status), 10)})
	return appendHTTPHeaders(hs, r.Header)
}

// parseHTTPStatus reads sl-http-status: three decimal digits, 100 to 999.
func parseHTTPStatus(v []byte) (int, error) {
	n, err := parseCount(HeaderHTTPStatus, v)
	if err != nil || len(v) != 3 || n < 100 {
		return 0, badHeader(HeaderHTTPStatus, v, "an HTTP status (100-999)")
	}
	return int(n), nil
}

// httpRequestField reads one request header that belongs to the HTTP
// request into *r, creating it; it reports false for another header.
func httpRequestField(r **HTTPRequest, h kgo.RecordHeader) (bool, error) {
	if !strings.HasPrefix(h.Key, "sl-http-") {
		return false, nil
	}
	if *r == nil {
		*r = &HTTPRequest{}
	}
	switch h.Key {
	case HeaderHTTPMethod:
		(*r).Method = string(h.Value)
	case HeaderHTTPPath:
		if len(h.Value) == 0 || h.Value[0] != '/' {
			return true, badHeader(HeaderHTTPPath, h.Value, "a path from /")
		}
		(*r).Path = string(h.Value)
	case HeaderHTTPQuery:
		(*r).Query = string(h.Value)
	default:
		return addHTTPHeader(&(*r).Header, h), nil
	}
	return true, nil
}

// HTTPRequest returns the HTTP request the envelope carries, or a *ParseError
// naming sl-http-method when it carries none: the record was not sent by
// an HTTP caller (a plain record produced to an HTTP ingress topic). A
// request with no sl-http-path is for "/".
func (e *Envelope) HTTPRequest() (*HTTPRequest, error) {
	if e.HTTP == nil || e.HTTP.Method == "" {
		return nil, &ParseError{Header: HeaderHTTPMethod, Reason: "missing: an HTTP ingress takes HTTP requests only (a gateway route, or a record with sl-http-method and sl-http-path)"}
	}
	r := *e.HTTP
	if r.Path == "" {
		r.Path = "/"
	}
	return &r, nil
}

// httpResponseField reads one answer header that belongs to the HTTP
// response into *r, creating it; it reports false for another header.
// Response headers without sl-http-status are a 200.
func httpResponseField(r **HTTPResponse, h kgo.RecordHeader) (bool, error) {
	if h.Key != HeaderHTTPStatus && !strings.HasPrefix(h.Key, HeaderHTTPPrefix) {
		return false, nil
	}
	if *r == nil {
		*r = &HTTPResponse{Status: http.StatusOK}
	}
	if h.Key == HeaderHTTPStatus {
		n, err := parseHTTPStatus(h.Value)
		if err != nil {
			return true, err
		}
		(*r).Status = n
		return true, nil
	}
	return addHTTPHeader(&(*r).Header, h), nil
}

// asciiLower lower-cases ASCII letters only, so every language writes and
// reads header names alike.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
