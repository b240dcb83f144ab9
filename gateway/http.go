package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/protocol"
)

// Handler is the gateway's REST side: the OIP endpoints under /v2, the
// applications and predict API under /sluice/v1 (api, from grpc-gateway),
// /metrics, and every application's route prefix.
func (s *Server) Handler(api http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/v2/", s.oipHandler())
	mux.HandleFunc("/v2", s.serverMetadataREST)
	mux.Handle("/sluice/v1/", api)
	mux.HandleFunc("GET /metrics", s.metrics.serve(s))
	mux.HandleFunc("/", s.callREST)
	return mux
}

// callREST sends the body to the application's ingress and writes the
// reply; a streamed reply goes out as NDJSON (or server-sent events when
// the client accepts text/event-stream), one item flushed at a time.
func (s *Server) callREST(w http.ResponseWriter, r *http.Request) {
	rt, ok := s.byPath(r.URL.Path)
	if !ok {
		writeError(w, streams.Errorf(streams.CodeNotFound, "no application serves %s", r.URL.Path))
		return
	}
	if r.Method != http.MethodPost && r.Method != http.MethodPut && !rt.http { // an HTTP ingress takes every method
		w.Header().Set("Allow", "POST, PUT")
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "use POST to call application " + rt.app})
		return
	}
	start := time.Now()
	code := streams.CodeOK
	defer func() { s.metrics.observe(rt.app, code, time.Since(start)) }()
	fail := func(err error) {
		code = streams.CodeOf(err)
		writeError(w, err)
	}
	if r.ContentLength > s.cfg.MaxBody { // refuse what cannot fit before taking a slot
		fail(errTooLarge(r.ContentLength, s.cfg.MaxBody))
		return
	}
	release, err := s.admit()
	if err != nil {
		fail(err)
		return
	}
	defer release()
	timeout, err := requestTimeout(r)
	if err != nil {
		fail(err)
		return
	}
	body, err := s.readBody(w, r)
	if err != nil {
		fail(err)
		return
	}
	ctx, cancel := s.deadline(r.Context(), rt, timeout)
	defer cancel()
	env := protocol.Envelope{ContentType: r.Header.Get("Content-Type"), Trace: r.Header.Get("traceparent"), Model: r.Header.Get("Sluice-Model")}
	forwardHeaders(&env, r.Header)
	if rt.http {
		env.HTTP = httpRequest(r, rt.prefix) // ingress.go
	}
	if rt, err = s.applyRules(ctx, rt, &env, body); err != nil {
		fail(err)
		return
	}
	p := s.send(ctx, rt, env, body)
	defer p.Close()
	first, err := p.Next(ctx)
	if err != nil {
		fail(err)
		return
	}
	if rt.http { // the status, headers and body the handler wrote (ingress.go)
		err := writeHTTPReply(ctx, w, p, first)
		code = streams.CodeOf(err)
		abortIfCut(err)
		return
	}
	if !first.Streamed() {
		if first.ContentType != "" {
			w.Header().Set("Content-Type", first.ContentType)
		}
		w.Header().Set("Sluice-Request-Id", p.ID())
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(first.Value)
		return
	}
	if err := s.stream(ctx, w, r, p, first); err != nil {
		code = streams.CodeOf(err)
	}
}

// readBody reads the body up to MaxBody; past it, 413 at once.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.ContentLength > s.cfg.MaxBody {
		return nil, errTooLarge(r.ContentLength, s.cfg.MaxBody)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, errTooLarge(-1, s.cfg.MaxBody)
		}
		return nil, streams.Errorf(streams.CodeInvalidArgument, "read body: %v", err)
	}
	return body, nil
}

// tooLarge marks a size-limit failure: 413 on REST, INVALID_ARGUMENT on
// gRPC (grpc-go itself answers RESOURCE_EXHAUSTED past its message limit).
type tooLarge struct{ err *streams.Error }

func (e tooLarge) Error() string { return e.err.Error() }
func (e tooLarge) Unwrap() error { return e.err }

func errTooLarge(n, limit int64) error {
	msg := fmt.Sprintf("request body exceeds the %d-byte limit", limit)
	if n > 0 {
		msg = fmt.Sprintf("request body of %d bytes exceeds the %d-byte limit", n, limit)
	}
	return tooLarge{err: &streams.Error{Code: streams.CodeInvalidArgument, Msg: msg}}
}

func (s *Server) stream(ctx context.Context, w http.ResponseWriter, r *http.Request, p *streams.Pending, first streams.Reply) error {
	sse := strings.Contains(r.Header.Get("Accept"), "text/event-stream")
	if sse {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
	} else {
		w.Header().Set("Content-Type", "application/x-ndjson")
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Sluice-Request-Id", p.ID())
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
		rep, err = p.Next(ctx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil { // the status is sent; the failure is the last line
			b, _ := json.Marshal(map[string]string{"error": err.Error(), "code": string(streams.CodeOf(err))})
			write(b, "error")
			return err
		}
	}
}

// writeError writes {"error": ..., "code": ...} with the code's status.
func writeError(w http.ResponseWriter, err error) {
	code := streams.CodeOf(err)
	status := HTTPStatus(code)
	var big tooLarge
	if errors.As(err, &big) {
		status = http.StatusRequestEntityTooLarge
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
