package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluice-serve/sluice/protos"
	"github.com/sluice-serve/sluice/streams"
)

// Handler is the gateway's REST side: the OIP endpoints under /v2, the
// applications and predict API under /sluice/v1 (api, from grpc-gateway)
// with its OpenAPI document at /sluice/v1/openapi.json, /metrics, and
// every application's route prefix.
func (s *Server) Handler(api http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/v2/", s.oipHandler()) // its routes are checked there
	mux.Handle("/sluice/v1/", api)     // checked on the gRPC side (access.go)
	s.handle(mux, "GET /sluice/v1/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(protos.OpenAPI)
	})
	s.handle(mux, "/v2", s.serverMetadataREST)
	s.handle(mux, "GET /sluice/v1/audit", s.auditREST)
	s.handle(mux, "GET /metrics/targets", s.targets)
	s.handle(mux, "GET /metrics", promhttp.HandlerFor(s.cfg.Metrics, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}).ServeHTTP)
	s.uiRoutes(mux) // the dashboard at /ui (ui.go)
	s.handle(mux, "/", s.callREST)
	return mux
}

// callREST sends the body to the application's ingress and writes the
// reply; a streamed reply goes out as NDJSON (or server-sent events when
// the client accepts text/event-stream), one item flushed at a time.
func (s *Server) callREST(w http.ResponseWriter, r *http.Request) {
	rt, ok := s.byPath(r.URL.Path)
	if !ok {
		s.refuse(w, streams.Errorf(streams.CodeNotFound, "no application serves %s", r.URL.Path))
		return
	}
	if r.Method != http.MethodPost && r.Method != http.MethodPut && !rt.http { // an HTTP ingress takes every method
		w.Header().Set("Allow", "POST, PUT")
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "use POST to call application " + rt.app})
		return
	}
	x, timeout, err := s.openREST(r, rt.app)
	defer x.close()
	if err != nil {
		writeError(w, err)
		return
	}
	c := &call{rt: rt, timeout: timeout, env: httpEnvelope(r.Header), model: httpModel(r.Header)}
	if c.body, err = s.readBody(w, r); err != nil {
		writeError(w, x.fail(err))
		return
	}
	c.env.ContentType, c.env.Model = r.Header.Get("Content-Type"), r.Header.Get("Sluice-Model")
	if rt.http {
		c.env.HTTP = httpRequest(r, rt.prefix) // ingress.go
	}
	if err := x.send(c); err != nil {
		writeError(w, err)
		return
	}
	first, err := x.next()
	if err != nil {
		w.Header().Set("Sluice-Request-Id", x.id()) // to find the request's log lines by
		writeError(w, err)
		return
	}
	if rt.http { // the status, headers and body the handler wrote (ingress.go)
		abortIfCut(x.fail(writeHTTPReply(w, x, first)))
		return
	}
	if !first.Streamed() {
		if first.ContentType != "" {
			w.Header().Set("Content-Type", first.ContentType)
		}
		w.Header().Set("Sluice-Request-Id", x.id())
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(first.Value)
		return
	}
	s.stream(w, r, x, first)
}

// refuse answers a request that names nothing the gateway serves; it is
// counted under no application.
func (s *Server) refuse(w http.ResponseWriter, err error) {
	s.metrics.observe("", streams.CodeOf(err), 0)
	writeError(w, err)
}

// openREST opens a REST call counted under name and reads its timeout.
// The exchange needs close whatever the error.
func (s *Server) openREST(r *http.Request, name string) (*exchange, time.Duration, error) {
	x, err := s.open(r.Context(), name, s.declaredTooLarge(r))
	if err != nil {
		return x, 0, err
	}
	timeout, err := requestTimeout(r)
	return x, timeout, x.fail(err)
}

// declaredTooLarge refuses a body whose declared length is past MaxBody,
// before a byte of it is read; nil otherwise.
func (s *Server) declaredTooLarge(r *http.Request) error {
	if r.ContentLength > s.cfg.MaxBody {
		return errTooLarge(r.ContentLength, s.cfg.MaxBody)
	}
	return nil
}

// readBody reads the body up to MaxBody; past it, 413 at once. A body
// that sends nothing for BodyIdleTimeout, or is not in by BodyTimeout, is
// cut off with 408 and the connection closed.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if err := s.declaredTooLarge(r); err != nil {
		return nil, err
	}
	if r.ContentLength == 0 {
		return nil, nil
	}
	start, rc := time.Now(), http.NewResponseController(w)
	body := &deadlineReader{r: http.MaxBytesReader(w, r.Body, s.cfg.MaxBody), rc: rc, idle: s.cfg.BodyIdleTimeout, end: start.Add(s.cfg.BodyTimeout)}
	// The declared length sizes the buffer up to a bound: a client that
	// declares 64 MiB and sends nothing holds no 64 MiB.
	buf := bytes.NewBuffer(make([]byte, 0, min(max(r.ContentLength, 0), maxPrealloc)+bytes.MinRead))
	_, err := buf.ReadFrom(body)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		// Past deadlines stay: net/http then closes the connection at
		// once instead of waiting to read what the client never sends.
		_ = rc.SetReadDeadline(time.Time{})
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			return nil, errTooLarge(-1, s.cfg.MaxBody)
		case errors.Is(err, os.ErrDeadlineExceeded):
			if r.ProtoMajor == 1 { // HTTP/2: the stream ends, the connection (and gRPC calls on it) stays
				w.Header().Set("Connection", "close")
			}
			return nil, statusError{status: http.StatusRequestTimeout, err: &streams.Error{Code: streams.CodeInvalidArgument,
				Msg: fmt.Sprintf("request body not received in time (%d bytes in %v; the gateway waits %v for each part and %v for all of it)",
					buf.Len(), time.Since(start).Round(time.Millisecond), s.cfg.BodyIdleTimeout, s.cfg.BodyTimeout)}}
		}
		return nil, streams.Errorf(streams.CodeInvalidArgument, "read body: %v", err)
	}
	return buf.Bytes(), nil
}

// maxPrealloc bounds the buffer a body's declared length reserves.
const maxPrealloc = 4 << 20

// deadlineReader moves the connection's read deadline before each read:
// idle from now, never past end.
type deadlineReader struct {
	r    io.Reader
	rc   *http.ResponseController
	idle time.Duration
	end  time.Time
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	at := time.Now().Add(d.idle)
	if at.After(d.end) {
		at = d.end
	}
	_ = d.rc.SetReadDeadline(at)
	return d.r.Read(p)
}

// statusError is a failure HTTP has its own status for (413 for a body
// past the size limit, 408 for one that does not arrive); other
// transports see its code (INVALID_ARGUMENT: grpc-go itself answers
// RESOURCE_EXHAUSTED past its message limit).
type statusError struct {
	status int
	err    *streams.Error
}

func (e statusError) Error() string { return e.err.Error() }
func (e statusError) Unwrap() error { return e.err }

func errTooLarge(n, limit int64) error {
	msg := fmt.Sprintf("request body exceeds the %d-byte limit", limit)
	if n > 0 {
		msg = fmt.Sprintf("request body of %d bytes exceeds the %d-byte limit", n, limit)
	}
	return statusError{status: http.StatusRequestEntityTooLarge, err: &streams.Error{Code: streams.CodeInvalidArgument, Msg: msg}}
}

// stream writes a streamed reply, one item a line (or an event), each
// flushed; a failure after the status is the last line.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, x *exchange, first streams.Reply) {
	sse := strings.Contains(r.Header.Get("Accept"), "text/event-stream")
	if sse {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
	} else {
		w.Header().Set("Content-Type", "application/x-ndjson")
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Sluice-Request-Id", x.id())
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	write := func(line []byte, event string) {
		if sse {
			if event != "" {
				fmt.Fprintf(w, "event: %s\n", event)
			}
			fmt.Fprintf(w, "data: %s\n\n", line)
		} else {
			_, _ = w.Write(append(line, '\n'))
		}
		if flusher != nil {
			flusher.Flush()
		}
	}
	rep := first
	for {
		line := rep.Value
		if rep.ContentType != "" && !strings.HasPrefix(rep.ContentType, "application/json") {
			line, _ = json.Marshal(string(rep.Value)) // one JSON value per line
		}
		write(line, "")
		var err error
		rep, err = x.next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil { // the status is sent; the failure is the last line
			b, _ := json.Marshal(map[string]string{"error": err.Error(), "code": string(streams.CodeOf(err))})
			write(b, "error")
			return
		}
	}
}

// writeError writes {"error": ..., "code": ...} with the code's status.
func writeError(w http.ResponseWriter, err error) {
	code := streams.CodeOf(err)
	status := HTTPStatus(code)
	var se statusError
	if errors.As(err, &se) {
		status = se.status
	}
	if code == streams.CodeUnauthenticated {
		w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
	}
	if code == streams.CodeResourceExhausted && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, status, map[string]string{"error": err.Error(), "code": string(code)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
