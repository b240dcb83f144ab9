package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-serve/sluice/platform/bundle"
	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/replicas"
	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/protocol"
)

// httpOut records what an HTTP ingress answers, as a replica would send it.
type httpOut struct {
	resp     *protocol.HTTPResponse
	streamed bool
	items    []string
	cts      []string
}

func (o *httpOut) Respond(resp *protocol.HTTPResponse, streamed bool) {
	if o.resp != nil {
		panic("Respond called twice")
	}
	o.resp, o.streamed = resp, streamed
}

func (o *httpOut) Emit(v []byte, ct string) error {
	if o.resp == nil {
		panic("Emit before Respond")
	}
	o.items, o.cts = append(o.items, string(v)), append(o.cts, ct)
	return nil
}

// webMux is a front door of several routes: path values, methods, status
// codes, response headers and a stream.
func webMux(deadline chan<- time.Time) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /predict/{model}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Add("X-Model", r.PathValue("model"))
		w.Header().Add("X-Model", "again")
		_ = json.NewEncoder(w).Encode(map[string]string{"model": r.PathValue("model"), "q": r.URL.Query().Get("q"), "host": r.Host, "accept": r.Header.Get("Accept")})
	})
	mux.HandleFunc("POST /predict/{model}/{version}", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Location", "/predict/"+r.PathValue("model")+"/"+r.PathValue("version"))
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, "%s %s", r.Header.Get("Content-Type"), body)
	})
	mux.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			fmt.Fprintf(w, "data: %d\n\n", i)
			if err := http.NewResponseController(w).Flush(); err != nil {
				return
			}
		}
		fmt.Fprint(w, "data: end\n\n") // after the last flush: sent when the handler returns
	})
	mux.HandleFunc("GET /deadline", func(w http.ResponseWriter, r *http.Request) {
		d, _ := r.Context().Deadline()
		deadline <- d
	})
	mux.HandleFunc("/panic", func(http.ResponseWriter, *http.Request) { panic("the front door broke") })
	return mux
}

func TestHTTPIngress(t *testing.T) {
	t.Parallel()
	deadlines := make(chan time.Time, 1)
	web := HTTP("Web", func() http.Handler { return webMux(deadlines) })
	app, err := App("web", "/web", web.Bind())
	if err != nil {
		t.Fatal(err)
	}
	reg, err := NewRegistry([]*Application{app})
	if err != nil {
		t.Fatal(err)
	}
	if s := app.Spec(); !s.Deployments[0].HTTP {
		t.Fatalf("the spec does not mark the HTTP ingress: %+v", s.Deployments[0])
	}
	m := reg.Manifest()
	if h := m.Handler("Web"); h == nil || h.Kind != bundle.KindHTTP {
		t.Fatalf("manifest: %+v", h)
	}
	h, err := reg.Build(context.Background(), app.Spec(), "Web", nil, streams.Namer{})
	if err != nil {
		t.Fatal(err)
	}
	if hi, ok := h.(replicas.HTTPIngress); !ok || !hi.HTTPIngress() {
		t.Fatalf("handler %T is not an HTTP ingress", h)
	}
	serve := func(method, target, ct, body string, header http.Header) (*httpOut, error) {
		path, query, _ := strings.Cut(target, "?")
		env := protocol.Envelope{ContentType: ct, HTTP: &protocol.HTTPRequest{Method: method, Path: path, Query: query, Header: header}}
		out := &httpOut{}
		return out, h.Handle(context.Background(), &replicas.Input{Env: env, Value: []byte(body)}, out)
	}

	out, err := serve("GET", "/predict/affine?q=1", "", "", http.Header{"Accept": {"application/json"}, "Host": {"example.com"}})
	if err != nil || out.resp.Status != 200 || out.streamed || len(out.items) != 1 || out.cts[0] != "application/json" {
		t.Fatalf("GET: %+v, %v", out, err)
	}
	if got := out.resp.Header["X-Model"]; len(got) != 2 || got[0] != "affine" || out.resp.Header.Get("Content-Type") != "" {
		t.Fatalf("GET headers: %v", out.resp.Header)
	}
	if want := `{"accept":"application/json","host":"example.com","model":"affine","q":"1"}` + "\n"; out.items[0] != want {
		t.Fatalf("GET body %q, want %q", out.items[0], want)
	}

	out, err = serve("POST", "/predict/affine/2", "text/plain", "x=3", nil)
	if err != nil || out.resp.Status != 201 || out.resp.Header.Get("Location") != "/predict/affine/2" || out.items[0] != "text/plain x=3" {
		t.Fatalf("POST: %+v, %v", out, err)
	}
	if out.cts[0] != "text/plain; charset=utf-8" {
		t.Fatalf("POST sniffed content type %q", out.cts[0])
	}

	out, err = serve("DELETE", "/predict/affine/2", "", "", nil)
	if err != nil || out.resp.Status != http.StatusMethodNotAllowed || !strings.Contains(out.resp.Header.Get("Allow"), "POST") {
		t.Fatalf("DELETE: %+v, %v", out, err)
	}
	if out, err = serve("GET", "/nowhere", "", "", nil); err != nil || out.resp.Status != 404 {
		t.Fatalf("unknown path: %+v, %v", out, err)
	}

	out, err = serve("GET", "/events", "", "", nil)
	if err != nil || !out.streamed || out.resp.Status != 200 {
		t.Fatalf("stream: %+v, %v", out, err)
	}
	if want := []string{"data: 0\n\n", "data: 1\n\n", "data: 2\n\n", "data: end\n\n"}; strings.Join(out.items, "|") != strings.Join(want, "|") || out.cts[0] != "text/event-stream" {
		t.Fatalf("stream items %q (%q), want %q", out.items, out.cts, want)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	env := protocol.Envelope{HTTP: &protocol.HTTPRequest{Method: "GET", Path: "/deadline"}}
	if err := h.Handle(ctx, &replicas.Input{Env: env}, &httpOut{}); err != nil {
		t.Fatal(err)
	}
	if want, _ := ctx.Deadline(); !(<-deadlines).Equal(want) {
		t.Fatal("the request's context does not carry the deadline")
	}

	// Refused without an HTTP request; a panic is the replica's to catch
	// (it answers internal, 500 at the gateway, naming the panic).
	if err := h.Handle(context.Background(), &replicas.Input{}, &httpOut{}); streams.CodeOf(err) != streams.CodeInvalidArgument || !strings.Contains(err.Error(), "sl-http-method") {
		t.Fatalf("a plain record: %v", err)
	}
	func() {
		defer func() {
			if p := recover(); p != "the front door broke" {
				t.Fatalf("panic = %v", p)
			}
		}()
		_, _ = serve("POST", "/panic", "", "", nil)
	}()
}

// WriteHeader checks the code's range first (a panic, as net/http's),
// ignores informational codes before the final status, and refuses 101
// Switching Protocols, which a record answer cannot carry, as internal.
func TestHTTPIngressWriteHeader(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		codes  []int
		status int    // the answer's, when it answers
		err    string // the failure's message, internal
		panics string
	}{
		{"final", []int{201}, 201, "", ""},
		{"none", nil, 200, "", ""},
		{"informational, then final", []int{103, 100, 204}, 204, "", ""},
		{"informational only", []int{100}, 200, "", ""},
		{"superfluous", []int{202, 404}, 202, "", ""},
		{"999", []int{999}, 999, "", ""},
		{"switching protocols", []int{101}, 0, "101 Switching Protocols", ""},
		{"switching protocols after a final status", []int{200, 101}, 200, "", ""},
		{"final after switching protocols", []int{101, 200}, 0, "101 Switching Protocols", ""},
		{"below 100", []int{99}, 0, "", "serve: invalid WriteHeader code 99"},
		{"zero", []int{0}, 0, "", "serve: invalid WriteHeader code 0"},
		{"above 999", []int{1000}, 0, "", "serve: invalid WriteHeader code 1000"},
		{"out of range after a final status", []int{200, 42}, 0, "", "serve: invalid WriteHeader code 42"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			web := HTTP("Web", func() http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
					for _, c := range tc.codes {
						w.WriteHeader(c)
					}
					_, _ = io.WriteString(w, "body")
				})
			})
			app, err := App("web", "/web", web.Bind())
			if err != nil {
				t.Fatal(err)
			}
			reg, err := NewRegistry([]*Application{app})
			if err != nil {
				t.Fatal(err)
			}
			h, err := reg.Build(context.Background(), app.Spec(), "Web", nil, streams.Namer{})
			if err != nil {
				t.Fatal(err)
			}
			out := &httpOut{}
			defer func() {
				if p := recover(); fmt.Sprint(p) != tc.panics && (p != nil || tc.panics != "") {
					t.Fatalf("panic = %v, want %q", p, tc.panics)
				}
			}()
			err = h.Handle(context.Background(), &replicas.Input{Env: protocol.Envelope{HTTP: &protocol.HTTPRequest{Method: "GET", Path: "/"}}}, out)
			if tc.panics != "" {
				t.Fatalf("no panic: %+v, %v", out, err)
			}
			if tc.err != "" {
				if streams.CodeOf(err) != streams.CodeInternal || !strings.Contains(err.Error(), tc.err) || out.resp != nil {
					t.Fatalf("answered %+v, %v; want an internal failure naming %s", out.resp, err, tc.err)
				}
				return
			}
			if err != nil || out.resp == nil || out.resp.Status != tc.status || strings.Join(out.items, "") != "body" {
				t.Fatalf("answered %+v %q, %v; want status %d", out.resp, out.items, err, tc.status)
			}
		})
	}
}

func TestHTTPIngressChecks(t *testing.T) {
	t.Parallel()
	web := HTTP("Web", func(h *Handle[int, int]) http.Handler { return http.NotFoundHandler() })
	notHandler := HTTP("Bad", func() int { return 1 })
	if _, err := App("w", "/w", web.Bind(add.Bind(1))); err != nil {
		t.Fatal(err)
	}
	reg, err := NewRegistry(nil, web, add, frontD, notHandler)
	if err != nil {
		t.Fatal(err)
	}
	yaml := "name: a\nroute_prefix: /a\ningress: F\ndeployments:\n  - {name: F, handler: Front, args: [{handle: W}]}\n  - {name: W, handler: Web, args: [{handle: A}]}\n  - {name: A, handler: Add, args: [1]}\n"
	apps, err := spec.Parse("a.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Check(apps[0]); err == nil || !strings.Contains(err.Error(), "a.yaml:5:38: deployments[0]: args[0]: deployment W runs HTTP ingress handler Web") ||
		!strings.Contains(err.Error(), "it can only be the application's ingress deployment") {
		t.Fatalf("Check = %v", err)
	}
	a, _ := App("b", "/b", notHandler.Bind())
	if _, err := reg.Build(context.Background(), a.Spec(), "Bad", nil, streams.Namer{}); err == nil || !strings.Contains(err.Error(), "is not an http.Handler") {
		t.Fatalf("Build = %v", err)
	}
}
