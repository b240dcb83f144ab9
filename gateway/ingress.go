package gateway

import (
	"errors"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"

	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/protocol"
)

// An application whose ingress deployment is an HTTP ingress (a handler
// of kind http: spec.Deployment.HTTP, set when it was deployed) gets the
// whole HTTP request on its route and answers the whole response
// (docs/PROTOCOL.md, "HTTP ingress"). Other applications keep the plain
// call: POST or PUT, body in, body out.

// servesHTTP reports whether app's ingress deployment is an HTTP ingress.
func servesHTTP(app *spec.App) bool {
	for _, d := range app.Deployments {
		if d.Name == app.Ingress {
			return d.HTTP
		}
	}
	return false
}

// httpRequest is the HTTP request r as an HTTP ingress record carries it:
// the method, the path below the route's prefix (escaped, as sent), the
// raw query, and the headers less the hop-by-hop ones, with Host. The
// body's Content-Type travels as the envelope's content type.
func httpRequest(r *http.Request, prefix string) *protocol.HTTPRequest {
	h := endToEnd(r.Header)
	h.Del("Content-Type")
	if r.Host != "" {
		h.Set("Host", r.Host)
	}
	return &protocol.HTTPRequest{Method: r.Method, Path: pathBelow(r.URL, prefix), Query: r.URL.RawQuery, Header: h}
}

// pathBelow is u's path below the route prefix it was matched under,
// escaped as the client sent it, from "/". The route is matched on the
// decoded path (Server.byPath on u.Path), so the prefix is cut where the
// decoded path ends it, however the client escaped it (/%61pp/x under
// /app is /x); what follows keeps its escapes (%2F stays %2F), and
// always decodes to the decoded path less the prefix.
func pathBelow(u *url.URL, prefix string) string {
	esc := u.EscapedPath()
	if prefix == "/" {
		if esc == "" || esc[0] != '/' {
			return "/" + esc
		}
		return esc
	}
	want := strings.TrimPrefix(u.Path, prefix) // decoded, what the route left
	if want == "" {
		want = "/"
	}
	i := 0
	for n := 0; n < len(prefix) && i < len(esc); n++ { // one decoded byte each
		if esc[i] == '%' && i+2 < len(esc) {
			i += 3
		} else {
			i++
		}
	}
	below := esc[i:]
	if len(below) >= 3 && below[0] == '%' && below[1] == '2' && (below[2] == 'F' || below[2] == 'f') {
		below = "/" + below[3:] // the boundary itself, escaped: /app%2Fx is /app/x
	}
	if below == "" || below[0] != '/' {
		below = "/" + below
	}
	if got, err := url.PathUnescape(below); err != nil || got != want {
		return (&url.URL{Path: want}).EscapedPath() // not the form matched (no such path reaches here): the decoded rest, escaped
	}
	return below
}

// hopByHop are the headers of one connection (RFC 9110, 7.6.1), which a
// gateway does not pass on, besides those a Connection header names.
var hopByHop = []string{"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// endToEnd is a copy of h without its hop-by-hop headers.
func endToEnd(h http.Header) http.Header {
	out := h.Clone()
	if out == nil {
		out = http.Header{}
	}
	for _, v := range h.Values("Connection") {
		for name := range strings.SplitSeq(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				out.Del(name)
			}
		}
	}
	for _, name := range hopByHop {
		out.Del(name)
	}
	for name := range out {
		if strings.HasPrefix(name, "Proxy-") {
			delete(out, name)
		}
	}
	return out
}

// writeHTTPReply writes an HTTP ingress's answer: the status and headers
// it answered with (on its first reply), then the body; a streamed body
// as it was produced, each item flushed as it comes. A failure before the
// first reply is the gateway's JSON error, as on every route; one after
// the status was sent cuts the response short (the client sees it
// incomplete), as net/http does when a handler aborts.
func writeHTTPReply(w http.ResponseWriter, x *exchange, first streams.Reply) error {
	status := http.StatusOK
	if first.HTTP != nil {
		status = first.HTTP.Status
		for name, vs := range endToEnd(first.HTTP.Header) {
			w.Header()[name] = vs
		}
	}
	if first.ContentType != "" {
		w.Header().Set("Content-Type", first.ContentType)
	}
	w.Header().Set("Sluice-Request-Id", x.id())
	w.WriteHeader(status)
	_, _ = w.Write(first.Value)
	if !first.Streamed() {
		return nil
	}
	rc := http.NewResponseController(w)
	for {
		_ = rc.Flush()
		rep, err := x.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return cutShort{err}
		}
		if _, err := w.Write(rep.Value); err != nil {
			return streams.Errorf(streams.CodeCanceled, "write to the caller: %v", err)
		}
	}
}

// cutShort is a streamed answer that failed after its status was sent.
type cutShort struct{ error }

func (c cutShort) Unwrap() error { return c.error }

// abortIfCut aborts the response of a cutShort answer, as net/http does
// for a handler that panics with http.ErrAbortHandler: the connection
// closes without the body's end. Call it last: the caller's deferred
// calls still run.
func abortIfCut(err error) {
	if _, ok := err.(cutShort); ok {
		panic(http.ErrAbortHandler)
	}
}
