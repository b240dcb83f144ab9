package serve

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strconv"

	"github.com/sluice-serve/sluice/replicas"
	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/protocol"
)

// HTTP is an HTTP ingress deployment: the front door of an application
// written as a web app. ctor builds an http.Handler, such as a
// net/http ServeMux with Go 1.22 patterns ("GET /predict/{model}"), that
// serves the application's route: every method, the path below the route
// prefix, the query, the headers and the body reach it; the status,
// headers and body it writes are the answer. A handler that flushes
// (http.Flusher, http.ResponseController) streams: each flush reaches the
// caller as it happens, for NDJSON or server-sent events.
//
// ctor's parameters are bound by Bind as Type's are: a *Handle parameter
// takes a bound deployment the handler calls with the request's context,
// any other takes a value that travels as JSON. It returns the handler,
// and may return an error as its second result. The request's context
// carries the caller's deadline: a response finished after it is a
// deadline_exceeded failure (504), not the response. A panic answers 500
// naming it. Informational statuses (1xx: 100 Continue, 103 Early Hints)
// are not sent, and 101 Switching Protocols answers 500 naming it:
// nothing here can be upgraded (no WebSocket). A code outside 100-999
// panics, as with net/http.
//
// An HTTP ingress can only be its application's ingress deployment,
// nothing in the graph sends to it, and it sends along no edge: its
// response answers the HTTP caller, and it calls the next deployment
// through a handle (bundle.Check refuses the rest).
func HTTP(name string, ctor any, opts ...Option) *Deployment {
	d := newDeployment[[]byte, []byte](name, false, opts)
	d.http = true
	d.ctor = reflect.ValueOf(ctor)
	d.wrap = func(v any, rt *runtime) (replicas.Handler, error) {
		h, ok := v.(http.Handler)
		if !ok {
			return nil, fmt.Errorf("deployment %s: constructor result %T is not an http.Handler", name, v)
		}
		return &httpIngress{h: h, rt: rt}, nil
	}
	return d
}

// httpIngress adapts an http.Handler to replicas.Handler.
type httpIngress struct {
	h  http.Handler
	rt *runtime
}

func (h *httpIngress) HTTPIngress() bool { return true }

func (h *httpIngress) value() any { return h.h }

func (h *httpIngress) Handle(ctx context.Context, in *replicas.Input, out replicas.Output) error {
	hout, ok := out.(replicas.HTTPOutput)
	if !ok {
		return streams.Errorf(streams.CodeInternal, "the replica does not answer HTTP (its output is %T)", out)
	}
	hr, err := in.Env.HTTPRequest()
	if err != nil {
		return streams.Errorf(streams.CodeInvalidArgument, "%w", err)
	}
	req, err := newHTTPRequest(hr, in)
	if err != nil {
		return err
	}
	w := &responseWriter{out: hout, header: http.Header{}}
	err = invoke(ctx, h.rt, in, func(ctx context.Context) error {
		h.h.ServeHTTP(w, req.WithContext(ctx))
		return w.err
	})
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil && !w.streamed {
		return streams.Errorf(streams.CodeDeadlineExceeded, "the request's deadline passed before the HTTP handler answered") // nobody waits for the answer
	}
	return w.finish()
}

// newHTTPRequest rebuilds the server-side request a handler expects.
func newHTTPRequest(hr *protocol.HTTPRequest, in *replicas.Input) (*http.Request, error) {
	u, err := url.ParseRequestURI(hr.Path)
	if err != nil {
		return nil, streams.Errorf(streams.CodeInvalidArgument, "%s %q: %v", protocol.HeaderHTTPPath, hr.Path, err)
	}
	u.RawQuery = hr.Query
	header := hr.Header.Clone()
	if header == nil {
		header = http.Header{}
	}
	if in.Env.ContentType != "" {
		header.Set("Content-Type", in.Env.ContentType)
	}
	host := header.Get("Host")
	header.Del("Host") // net/http keeps it in Request.Host
	return &http.Request{
		Method: hr.Method, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: header, Body: io.NopCloser(bytes.NewReader(in.Value)), ContentLength: int64(len(in.Value)),
		Host: host, RequestURI: u.RequestURI(),
	}, nil
}

// responseWriter collects a handler's response: the whole body as one
// answer, or, once the handler flushes, a stream of what it wrote
// between flushes. Handlers write from one goroutine, as net/http's own
// writer requires.
type responseWriter struct {
	out      replicas.HTTPOutput
	header   http.Header
	status   int // 0: not written yet
	body     bytes.Buffer
	streamed bool // flushed at least once: the status and headers are sent
	ct       string
	err      error // the first emit's failure; later writes return it
}

func (w *responseWriter) Header() http.Header { return w.header }

// WriteHeader sets the response's final status. A code outside 100-999
// panics, as net/http's does, checked first, so even after the status
// was written. Once written, or refused, the status stands (net/http
// logs such a superfluous call; this ignores it). An informational code
// (1xx) other than 101 is not a final status and is ignored: the answer
// carries one status, so 100 Continue and 103 Early Hints are not sent
// ahead of it, and the final status is still to come (200 if none is
// written). 101 Switching Protocols is refused: a record answer cannot
// switch to another protocol, so the request fails as internal (500)
// naming it.
func (w *responseWriter) WriteHeader(status int) {
	if status < 100 || status > 999 {
		panic("serve: invalid WriteHeader code " + strconv.Itoa(status)) // as net/http does
	}
	switch {
	case w.status != 0 || w.err != nil:
		// written already, or refused
	case status == http.StatusSwitchingProtocols:
		w.err = streams.Errorf(streams.CodeInternal, "the HTTP handler wrote status 101 Switching Protocols: an HTTP ingress answers with records and cannot switch protocols (no upgrade, no WebSocket)")
	case status < 200:
		// informational: not carried, the final status is still to come
	default:
		w.status = status
	}
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	w.WriteHeader(http.StatusOK)
	return w.body.Write(b)
}

// Flush sends what was written so far as an item of a stream, the first
// one with the status and headers.
func (w *responseWriter) Flush() { _ = w.FlushError() }

// FlushError is Flush for http.ResponseController.
func (w *responseWriter) FlushError() error {
	if w.err != nil {
		return w.err
	}
	w.WriteHeader(http.StatusOK)
	if !w.streamed {
		w.streamed = true
		w.respond(true)
	} else if w.body.Len() == 0 {
		return nil
	}
	return w.emit()
}

// respond hands the status and headers to the replica, once.
func (w *responseWriter) respond(streamed bool) {
	h := w.header.Clone()
	w.ct = h.Get("Content-Type")
	if _, set := h["Content-Type"]; !set && w.body.Len() > 0 {
		w.ct = http.DetectContentType(w.body.Bytes()) // as net/http does
	}
	h.Del("Content-Type") // it travels as the answer's content-type
	w.out.Respond(&protocol.HTTPResponse{Status: w.status, Header: h}, streamed)
}

func (w *responseWriter) emit() error {
	b := bytes.Clone(w.body.Bytes())
	w.body.Reset()
	if err := w.out.Emit(b, w.ct); err != nil {
		w.err = err
	}
	return w.err
}

// finish sends the answer after the handler returned: the whole response,
// or the rest of a stream.
func (w *responseWriter) finish() error {
	if w.streamed {
		if w.body.Len() == 0 {
			return nil
		}
		return w.emit()
	}
	w.WriteHeader(http.StatusOK)
	w.respond(false)
	return w.emit()
}
