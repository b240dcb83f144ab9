// Package gateway is Sluice's front door: it turns synchronous HTTP calls
// into Kafka request/reply on an application's ingress topic, with an
// absolute deadline on every request and bounded requests in flight, and
// serves the applications API that `sluice deploy/status/delete` use.
package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sluice-serve/sluice/platform/controller"
	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/streams"
)

// Config configures the HTTP front door.
type Config struct {
	Caller      *streams.Caller
	Namer       streams.Namer
	Controller  *controller.Controller
	MaxInFlight int           // requests waiting at once; past it 429. Default 10000.
	MaxBody     int64         // request body limit in bytes; default 64 MiB
	MaxTimeout  time.Duration // cap on a caller's timeout; default 5m
	Log         *slog.Logger
}

// Server routes requests to applications by route prefix.
type Server struct {
	cfg      Config
	routes   atomic.Pointer[[]route] // longest prefix first
	inFlight atomic.Int64
	mux      *http.ServeMux
}

type route struct {
	prefix  string
	app     string
	ingress string // topic
	timeout time.Duration
}

// New builds the server and subscribes it to application changes.
func New(cfg Config) *Server {
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 10000
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 64 << 20
	}
	if cfg.MaxTimeout <= 0 {
		cfg.MaxTimeout = 5 * time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux()}
	s.routes.Store(&[]route{})
	s.mux.HandleFunc("GET /sluice/v1/health", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"live": true})
	})
	s.mux.HandleFunc("GET /sluice/v1/apps", s.listApps)
	s.mux.HandleFunc("GET /sluice/v1/apps/{name}", s.getApp)
	s.mux.HandleFunc("POST /sluice/v1/apps", s.deploy)
	s.mux.HandleFunc("DELETE /sluice/v1/apps/{name}", s.deleteApp)
	s.mux.HandleFunc("/", s.call)
	cfg.Controller.OnChange(s.setApps)
	s.setApps(cfg.Controller.Apps())
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Server) setApps(apps []*spec.App) {
	rs := make([]route, 0, len(apps))
	for _, a := range apps {
		rs = append(rs, route{prefix: a.RoutePrefix, app: a.Name, ingress: s.cfg.Namer.Ingress(a.Name), timeout: time.Duration(a.RequestTimeout)})
	}
	// Longest prefix first so /a/b wins over /a.
	for i := 1; i < len(rs); i++ {
		for j := i; j > 0 && len(rs[j].prefix) > len(rs[j-1].prefix); j-- {
			rs[j], rs[j-1] = rs[j-1], rs[j]
		}
	}
	s.routes.Store(&rs)
}

func (s *Server) match(path string) (route, bool) {
	for _, r := range *s.routes.Load() {
		if r.prefix == "/" || path == r.prefix || strings.HasPrefix(path, r.prefix+"/") {
			return r, true
		}
	}
	return route{}, false
}

// call sends the body to the application's ingress and writes the reply;
// a streamed reply goes out as NDJSON, one line flushed per item.
func (s *Server) call(w http.ResponseWriter, r *http.Request) {
	rt, ok := s.match(r.URL.Path)
	if !ok {
		writeError(w, streams.Errorf(streams.CodeNotFound, "no application serves %s", r.URL.Path))
		return
	}
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		w.Header().Set("Allow", "POST, PUT")
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "use POST to call application " + rt.app})
		return
	}
	if n := s.inFlight.Add(1); n > int64(s.cfg.MaxInFlight) {
		s.inFlight.Add(-1)
		w.Header().Set("Retry-After", "1")
		writeError(w, streams.Errorf(streams.CodeResourceExhausted, "gateway has %d requests in flight", s.cfg.MaxInFlight))
		return
	}
	defer s.inFlight.Add(-1)

	timeout, err := s.timeout(r, rt)
	if err != nil {
		writeError(w, err)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": fmt.Sprintf("request body exceeds %d bytes", tooBig.Limit)})
			return
		}
		writeError(w, streams.Errorf(streams.CodeInvalidArgument, "read body: %v", err))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	env := streams.Envelope{ContentType: r.Header.Get("Content-Type"), Trace: r.Header.Get("traceparent"), Model: r.Header.Get("Sluice-Model")}
	p := s.cfg.Caller.Start(ctx, &streams.Request{Topic: rt.ingress, Env: env, Value: body})
	defer p.Close()
	first, err := p.Next(ctx)
	if err != nil {
		writeError(w, err)
		return
	}
	if !first.Streamed() {
		if first.ContentType != "" {
			w.Header().Set("Content-Type", first.ContentType)
		}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(first.Value)
		return
	}
	s.stream(ctx, w, p, first)
}

func (s *Server) stream(ctx context.Context, w http.ResponseWriter, p *streams.Pending, first streams.Reply) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	rep := first
	for {
		line := rep.Value
		if rep.ContentType != "" && !strings.HasPrefix(rep.ContentType, "application/json") {
			line, _ = json.Marshal(string(rep.Value)) // keep one JSON value per line
		}
		_, _ = w.Write(line)
		_, _ = w.Write([]byte{'\n'})
		if flusher != nil {
			flusher.Flush()
		}
		var err error
		rep, err = p.Next(ctx)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil { // the status is sent; report the failure as the last line
			b, _ := json.Marshal(map[string]string{"error": err.Error(), "code": string(streams.CodeOf(err))})
			_, _ = w.Write(append(b, '\n'))
			return
		}
	}
}

// timeout takes the caller's timeout from the `timeout` query parameter or
// the Sluice-Timeout header (Go duration), capped, or the app's default.
func (s *Server) timeout(r *http.Request, rt route) (time.Duration, error) {
	v := r.URL.Query().Get("timeout")
	if v == "" {
		v = r.Header.Get("Sluice-Timeout")
	}
	if v == "" {
		return rt.timeout, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, streams.Errorf(streams.CodeInvalidArgument, "timeout %q is not a positive Go duration like 500ms", v)
	}
	return min(d, s.cfg.MaxTimeout), nil
}

func (s *Server) listApps(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	writeJSON(w, http.StatusOK, s.cfg.Controller.Status(ctx))
}

func (s *Server) getApp(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	name := r.PathValue("name")
	for _, st := range s.cfg.Controller.Status(ctx) {
		if st.Name == name {
			writeJSON(w, http.StatusOK, st)
			return
		}
	}
	writeError(w, streams.Errorf(streams.CodeNotFound, "no application %s", name))
}

// deploy takes one YAML file (several documents allowed); the file name in
// the `file` query parameter makes error positions read file:line:column.
func (s *Server) deploy(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<20))
	if err != nil {
		writeError(w, streams.Errorf(streams.CodeInvalidArgument, "read spec: %v", err))
		return
	}
	file := r.URL.Query().Get("file")
	if file == "" {
		file = "app.yaml"
	}
	apps, err := spec.Parse(file, body)
	if err != nil {
		writeError(w, &streams.Error{Code: streams.CodeInvalidArgument, Msg: err.Error(), Err: err})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	if err := s.cfg.Controller.Deploy(ctx, apps...); err != nil {
		writeControlError(w, err)
		return
	}
	names := make([]string, len(apps))
	for i, a := range apps {
		names[i] = a.Name
	}
	writeJSON(w, http.StatusOK, map[string][]string{"deployed": names})
}

func (s *Server) deleteApp(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	name := r.PathValue("name")
	if err := s.cfg.Controller.Delete(ctx, name); err != nil {
		writeControlError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"deleted": name})
}

// HTTPStatus maps an error code to its HTTP status: the one place the
// platform speaks HTTP codes.
func HTTPStatus(c streams.Code) int {
	switch c {
	case streams.CodeOK:
		return http.StatusOK
	case streams.CodeInvalidArgument:
		return http.StatusBadRequest
	case streams.CodeNotFound:
		return http.StatusNotFound
	case streams.CodeDeadlineExceeded:
		return http.StatusGatewayTimeout
	case streams.CodeResourceExhausted:
		return http.StatusTooManyRequests
	case streams.CodeUnavailable:
		return http.StatusServiceUnavailable
	case streams.CodeCanceled:
		return 499 // client closed request
	}
	return http.StatusInternalServerError
}

// writeControlError classifies a controller error: the spec's fault, an
// unknown application, or the platform's (Kafka unreachable, say).
func writeControlError(w http.ResponseWriter, err error) {
	code := streams.CodeUnavailable
	switch {
	case errors.Is(err, controller.ErrInvalid):
		code = streams.CodeInvalidArgument
	case errors.Is(err, controller.ErrNotFound):
		code = streams.CodeNotFound
	}
	writeError(w, &streams.Error{Code: code, Msg: err.Error(), Err: err})
}

func writeError(w http.ResponseWriter, err error) {
	code := streams.CodeOf(err)
	writeJSON(w, HTTPStatus(code), map[string]string{"error": err.Error(), "code": string(code)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
