package gateway

import (
	"context"
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"slices"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/sluice-serve/sluice/platform/controller"
	"github.com/sluice-serve/sluice/streams"
)

// The dashboard: a page at /ui (plain HTML, an ES module and SVG, all
// embedded) that polls GET /sluice/v1/ui/state and draws each
// application's graph with its deployments' counters. The page's files
// are the same for every installation, so they are open like the OpenAPI
// document; the state needs read, and the page asks for a token when the
// state answers 401.

//go:embed ui
var uiFiles embed.FS

// uiRoutes registers the page, its files and its state.
func (s *Server) uiRoutes(mux *http.ServeMux) {
	files, _ := fs.Sub(uiFiles, "ui") // a literal embedded directory: cannot fail
	static := http.StripPrefix("/ui/", http.FileServerFS(files))
	s.handle(mux, "GET /ui", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/", http.StatusMovedPermanently)
	})
	s.handle(mux, "GET /ui/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; img-src 'self' data:")
		static.ServeHTTP(w, r)
	})
	s.handle(mux, "GET /sluice/v1/ui/state", s.uiState)
}

// uiState is what the dashboard draws: every application's graph and
// status, the nodes, and the gateway's own counters. Counters are
// totals; the page turns them into rates from one poll to the next.
type uiState struct {
	// Time is when the state was read, in Unix milliseconds: the page
	// divides counter deltas by its deltas.
	Time         int64              `json:"time_ms"`
	Applications []uiApp            `json:"applications"`
	Nodes        []json.RawMessage  `json:"nodes"` // sluice.v1.NodeStatus, as /sluice/v1/apps writes them
	Gateway      uiGateway          `json:"gateway"`
	Latency      []float64          `json:"latency_bounds"` // seconds, the upper bounds of the buckets
	Requests     map[string]uiCalls `json:"requests"`       // by application (or OIP model) name
}

type uiApp struct {
	controller.AppStatus
	Graph uiGraph `json:"graph"`
}

// uiGraph is an application's dataflow: the ingress topic feeds Ingress,
// edges carry records (or calls, Handle) between deployments, and
// Outputs answer on the output topic.
type uiGraph struct {
	IngressTopic string   `json:"ingress_topic"`
	OutputTopic  string   `json:"output_topic"`
	Edges        []uiEdge `json:"edges"`
	Outputs      []string `json:"outputs"`
}

type uiEdge struct {
	From   string `json:"from"`
	To     string `json:"to"`
	Topic  string `json:"topic"`
	Handle bool   `json:"handle,omitempty"`
	When   string `json:"when,omitempty"`
	Mirror bool   `json:"mirror,omitempty"`
}

type uiGateway struct {
	InFlight int64 `json:"in_flight"`
}

// uiCalls are the calls of one application through this gateway:
// totals by outcome and the latency histogram (per bucket, the last
// +Inf), so the page computes a p99 over the calls between two polls.
type uiCalls struct {
	OK      uint64   `json:"ok"`
	Failed  uint64   `json:"failed"`
	Buckets []uint64 `json:"buckets"`
}

func (s *Server) uiState(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	st := uiState{Time: time.Now().UnixMilli(), Applications: []uiApp{}, Nodes: []json.RawMessage{},
		Latency: latencyBuckets, Requests: s.metrics.uiCalls()}
	st.Gateway.InFlight = s.inFlight.Load()
	specs := map[string]uiGraph{}
	for _, a := range s.cfg.Control.Store().Apps() {
		specs[a.Spec.Name] = s.graph(a.Spec.Name)
	}
	for _, a := range s.cfg.Control.Apps(ctx) {
		st.Applications = append(st.Applications, uiApp{AppStatus: a, Graph: specs[a.Name]})
	}
	if f := s.cfg.Nodes; f != nil {
		placed := f.Placed()
		for _, n := range f.Nodes() {
			b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(nodeStatus(n, placed))
			if err == nil {
				st.Nodes = append(st.Nodes, b)
			}
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, st)
}

// graph compiles the applied spec of app to its topics and edges.
func (s *Server) graph(app string) uiGraph {
	a, ok := s.cfg.Control.Store().App(app)
	if !ok {
		return uiGraph{Edges: []uiEdge{}, Outputs: []string{}}
	}
	topo := controller.Compile(s.cfg.Namer, a.Spec)
	g := uiGraph{IngressTopic: topo.Ingress, OutputTopic: topo.Output, Edges: []uiEdge{}, Outputs: []string{}}
	called := map[string]bool{} // reached by a handle edge only
	for _, e := range topo.Edges {
		ue := uiEdge{From: e.From, To: e.To, Topic: e.Topic, Handle: e.Handle}
		for _, re := range topo.Deployments[e.From].Routes {
			if re.Topic == e.Topic {
				ue.When, ue.Mirror = re.When, re.Mirror
			}
		}
		g.Edges = append(g.Edges, ue)
		if e.Handle {
			called[e.To] = true
		}
	}
	for _, e := range topo.Edges {
		if !e.Handle {
			called[e.To] = false
		}
	}
	for _, d := range a.Spec.Deployments {
		if len(topo.Deployments[d.Name].Successors) == 0 && (d.Name == a.Spec.Ingress || !called[d.Name]) {
			g.Outputs = append(g.Outputs, d.Name)
		}
	}
	slices.Sort(g.Outputs)
	return g
}

// uiCalls copies the gateway's per-application counters.
func (m *metrics) uiCalls() map[string]uiCalls {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]uiCalls, len(m.latency))
	for k, n := range m.requests {
		c := out[k.app]
		if k.code == streams.CodeOK {
			c.OK += n
		} else {
			c.Failed += n
		}
		out[k.app] = c
	}
	for app, h := range m.latency {
		c := out[app]
		c.Buckets = slices.Clone(h.counts)
		out[app] = c
	}
	return out
}
