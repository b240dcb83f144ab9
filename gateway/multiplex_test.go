package gateway

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sluice-serve/sluice/platform/spec"
	inference "github.com/sluice-serve/sluice/protos/gen/inference"
	sluicev1 "github.com/sluice-serve/sluice/protos/gen/sluice/v1"
	"github.com/sluice-serve/sluice/replicas/models"
	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/protocol"
)

// A call naming a multiplexed model (serve_multiplexed_model_id, as an
// HTTP header or gRPC metadata, on every transport) is produced to the
// application's ingress with sl-model = the id and key = the id, so all
// calls for one model land on one partition; a call naming none keeps
// its request-id key; an id unsafe as a key is 400 / INVALID_ARGUMENT
// and produces nothing.
func TestMultiplexedModelKeysTheCall(t *testing.T) {
	t.Parallel()
	namer, err := streams.NewNamer("")
	if err != nil {
		t.Fatal(err)
	}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, namer.Ingress("mux")))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	caller, err := streams.NewCaller(ctx, cluster.ListenAddrs(), namer, "gw-mux", log)
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close(ctx)
	s := &Server{cfg: Config{Caller: caller, Namer: namer, Limits: Limits{}.WithDefaults(), Log: log}, metrics: newMetrics(), spread: newSpreader()}
	s.apps.Store(&appTable{byName: map[string]route{}})
	s.setApps([]*spec.App{{Name: "mux", RoutePrefix: "/mux", Ingress: "M", Deployments: []spec.Deployment{{Name: "M"}}}})
	srv := httptest.NewServer(s.Handler(http.NotFoundHandler()))
	defer srv.Close()

	rest := func(path, model, body string, hdr ...string) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Timeout", "500ms") // nothing answers: the produce is what is looked at
		if model != "" {
			req.Header.Set(MultiplexHeader, model)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	infer := `{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]}`
	grpcCtx := func(md ...string) (context.Context, context.CancelFunc) {
		c, cancel := context.WithTimeout(metadata.NewIncomingContext(ctx, metadata.Pairs(md...)), 500*time.Millisecond)
		return c, cancel
	}

	// Each sends one request; want is its key ("" for the request id) and sl-model.
	sent := []struct {
		what, key, model string
		send             func()
	}{
		{"REST route", "iris-a", "iris-a", func() { rest("/mux", "iris-a", `{}`) }},
		{"REST route, Sluice-Model without the header", "", "other", func() { rest("/mux", "", `{}`, "Sluice-Model", "other") }},
		{"OIP REST", "iris-b@2", "iris-b@2", func() { rest("/v2/models/mux/infer", "iris-b@2", infer) }},
		{"OIP REST without the header", "", "mux", func() { rest("/v2/models/mux/infer", "", infer) }},
		{"OIP gRPC", "iris-c", "iris-c", func() {
			c, cancel := grpcCtx(MultiplexHeader, "iris-c")
			defer cancel()
			_, _ = (&inferenceService{s: s}).ModelInfer(c, &inference.ModelInferRequest{ModelName: "mux",
				Inputs: []*inference.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "FP32", Shape: []int64{1}, Contents: &inference.InferTensorContents{Fp32Contents: []float32{1}}}}})
		}},
		{"Predict headers", "iris-d", "iris-d", func() {
			c, cancel := grpcCtx()
			defer cancel()
			_, _ = (&predictService{s: s}).Predict(c, &sluicev1.PredictRequest{App: "mux", Payload: []byte(`{}`), ContentType: "application/json",
				Headers: map[string]string{"Serve_Multiplexed_Model_Id": "iris-d"}})
		}},
	}
	for _, c := range sent {
		c.send()
	}

	// Unsafe ids: refused before a record is produced.
	for _, bad := range []string{"a/b", "../x", "a b", "-a", "a@b@c", "a@", strings.Repeat("x", 129)} {
		if code := rest("/mux", bad, `{}`); code != http.StatusBadRequest {
			t.Errorf("REST route, model id %q: %d, want 400", bad, code)
		}
		if code := rest("/v2/models/mux/infer", bad, infer); code != http.StatusBadRequest {
			t.Errorf("OIP REST, model id %q: %d, want 400", bad, code)
		}
	}
	c, cancelBad := grpcCtx(MultiplexHeader, "a/b")
	_, err = (&inferenceService{s: s}).ModelInfer(c, &inference.ModelInferRequest{ModelName: "mux",
		Inputs: []*inference.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "FP32", Shape: []int64{1}, Contents: &inference.InferTensorContents{Fp32Contents: []float32{1}}}}})
	cancelBad()
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `"a/b"`) {
		t.Errorf("OIP gRPC, model id a/b: %v, want INVALID_ARGUMENT naming it", err)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics(namer.Ingress("mux")),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for len(recs) < len(sent) && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
	}
	if len(recs) != len(sent) {
		t.Fatalf("%d records on the ingress, want %d (the refused ones must not be produced)", len(recs), len(sent))
	}
	byModel := map[string]*kgo.Record{} // the partitions' records interleave: each case names its own model
	for _, r := range recs {
		for _, h := range r.Headers {
			if h.Key == protocol.HeaderModel {
				byModel[string(h.Value)] = r
			}
		}
	}
	for _, want := range sent {
		r, ok := byModel[want.model]
		if !ok {
			t.Errorf("%s: no record with sl-model %q", want.what, want.model)
			continue
		}
		key := want.key
		if key == "" {
			for _, h := range r.Headers {
				if h.Key == protocol.HeaderID {
					key = string(h.Value)
				}
			}
		}
		if string(r.Key) != key {
			t.Errorf("%s: key %q, want %q", want.what, r.Key, key)
		}
	}
	more, cancelMore := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelMore()
	if n := len(cl.PollRecords(more, 100).Records()); n != 0 {
		t.Errorf("%d more records after the %d sent: a refused call was produced", n, len(sent))
	}
}

// pythonReport is a models report as a Python replica that multiplexes
// models writes it (python/src/sluice/replica/report.py): model ids in
// loaded and failed, and Go's time format.
func pythonReport(app, replica string, loaded []string, failed map[string]string, parts map[string][]int32, at time.Time) *kgo.Record {
	doc := map[string]any{"app": app, "deployment": "M", "replica": replica, "loaded": loaded, "memory_bytes": 0,
		"hits": 3, "misses": len(loaded), "loads": len(loaded), "evictions": 0, "failures": len(failed),
		"at": at.UTC().Format("2006-01-02T15:04:05.000000000Z")}
	if len(failed) > 0 {
		doc["failed"] = failed
	}
	if len(parts) > 0 {
		doc["partitions"] = parts
	}
	b, _ := json.Marshal(doc)
	return &kgo.Record{Key: []byte(models.ReportKey(app, "M", replica)), Value: b}
}

// OIP model ready for a multiplexed id: /v2/models/{app}/ready (or
// versions/{v}/ready, or gRPC ModelReady) with serve_multiplexed_model_id,
// as the infer call names it, is ready when a live replica of the
// application reports the id loaded; a failed load says why; an unsafe
// id is 400; a replica's tombstone or a report older than three periods
// does not count.
func TestMultiplexedModelReady(t *testing.T) {
	t.Parallel()
	namer, err := streams.NewNamer("")
	if err != nil {
		t.Fatal(err)
	}
	rs := models.NewReports()
	ctx := context.Background()
	rs.Apply(ctx, pythonReport("mux", "r0", []string{"iris-a", "iris-b@2"}, map[string]string{"bad": "Classifier.get_model: loading model bad raised KeyError: 7"}, nil, time.Now()))
	rs.Apply(ctx, pythonReport("mux", "r1", []string{"gone"}, nil, nil, time.Now()))
	rs.Apply(ctx, &kgo.Record{Key: []byte(models.ReportKey("mux", "M", "r1"))}) // r1 stopped
	rs.Apply(ctx, pythonReport("mux", "r2", []string{"stale"}, nil, nil, time.Now().Add(-3*models.ReportEvery-time.Second)))
	rs.Apply(ctx, pythonReport("other", "r0", []string{"iris-c"}, nil, nil, time.Now()))
	s := &Server{cfg: Config{Namer: namer, Reports: rs, Limits: Limits{}.WithDefaults(), Log: slog.New(slog.DiscardHandler)}, metrics: newMetrics(), spread: newSpreader()}
	s.apps.Store(&appTable{byName: map[string]route{}})
	s.setApps([]*spec.App{{Name: "mux", RoutePrefix: "/mux", Ingress: "M", Partitions: 8, Deployments: []spec.Deployment{{Name: "M"}}}})
	srv := httptest.NewServer(s.Handler(http.NotFoundHandler()))
	defer srv.Close()

	for _, c := range []struct {
		path, id string
		code     int
		says     string
	}{
		{"/v2/models/mux/ready", "iris-a", 200, `"ready":true`},
		{"/v2/models/mux/versions/1/ready", "iris-b@2", 200, `"model_id":"iris-b@2"`},
		{"/v2/models/mux/ready", "iris-c", 503, "model iris-c is not loaded on any replica of mux"}, // another app's
		{"/v2/models/mux/ready", "gone", 503, "not loaded"},
		{"/v2/models/mux/ready", "stale", 503, "not loaded"},
		{"/v2/models/mux/ready", "bad", 503, "raised KeyError: 7"},
		{"/v2/models/mux/ready", "a/b", 400, `\"a/b\"`},
		{"/v2/models/mux/versions/9/ready", "iris-a", 404, `no version \"9\"`},
	} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+c.path, nil)
		req.Header.Set(MultiplexHeader, c.id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.code || !strings.Contains(string(body), c.says) {
			t.Errorf("GET %s, %s: %s: %d %s, want %d saying %s", c.path, MultiplexHeader, c.id, resp.StatusCode, body, c.code, c.says)
		}
	}
	for id, want := range map[string]bool{"iris-a": true, "iris-c": false} {
		c := metadata.NewIncomingContext(ctx, metadata.Pairs(MultiplexHeader, id))
		resp, err := (&inferenceService{s: s}).ModelReady(c, &inference.ModelReadyRequest{Name: "mux"})
		if err != nil || resp.GetReady() != want {
			t.Errorf("gRPC ModelReady mux, %s %s: %v %v, want ready %v", MultiplexHeader, id, resp, err, want)
		}
	}
}

// A hot multiplexed id is spread as a hot registry model is: after a
// window in which it had all of an application's calls, every other call
// is keyed "id#n" onto a partition of the replica that does not own the
// id's own partition, by the partitions the replicas' models reports say
// they own. An application whose replicas publish no models reports keys
// every call by the id.
func TestMultiplexedModelSpread(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		namer, err := streams.NewNamer("")
		if err != nil {
			t.Fatal(err)
		}
		topic := namer.Ingress("mux")
		rs := models.NewReports()
		ctx := context.Background()
		rs.Apply(ctx, pythonReport("mux", "r0", []string{"hot"}, nil, map[string][]int32{topic: {0, 1, 2, 3}}, time.Now()))
		rs.Apply(ctx, pythonReport("mux", "r1", nil, nil, map[string][]int32{topic: {4, 5, 6, 7}}, time.Now()))
		s := &Server{cfg: Config{Namer: namer, Reports: rs}}
		s.apps.Store(&appTable{byName: map[string]route{}})
		s.setApps([]*spec.App{
			{Name: "mux", Ingress: "M", Partitions: 8, Deployments: []spec.Deployment{{Name: "M"}}},
			{Name: "quiet", Ingress: "M", Partitions: 8, Deployments: []spec.Deployment{{Name: "M"}}},
		})
		mux, _ := s.byName("mux")
		quiet, _ := s.byName("quiet")
		for range 20 {
			if k := s.multiplexKey(mux, "hot"); string(k) != "hot" {
				t.Fatalf("first window: key %q, want the id", k)
			}
			if k := s.multiplexKey(quiet, "hot"); string(k) != "hot" {
				t.Fatalf("an application with no reports: key %q, want the id", k)
			}
		}
		time.Sleep(2100 * time.Millisecond) // the spreader's window
		owner := func(p int32) string {
			if p < 4 {
				return "r0"
			}
			return "r1"
		}
		owners := map[string]int{}
		for range 20 {
			k := s.multiplexKey(mux, "hot")
			if string(k) != "hot" && !strings.HasPrefix(string(k), "hot#") {
				t.Fatalf("spread key %q is not the id or id#n", k)
			}
			owners[owner(streams.KeyPartition(k, 8))]++
			if k := s.multiplexKey(quiet, "hot"); string(k) != "hot" {
				t.Fatalf("an application with no reports: key %q, want the id", k)
			}
		}
		if owners["r0"] != 10 || owners["r1"] != 10 {
			t.Errorf("a hot id's calls by the owner of their partition: %v, want 10 on each replica", owners)
		}
		// A deleted application's spreader goes; one still served stays.
		s.setApps([]*spec.App{{Name: "quiet", Ingress: "M", Partitions: 8, Deployments: []spec.Deployment{{Name: "M"}}}})
		if _, ok := s.muxes.Load("mux"); ok {
			t.Error("the deleted application's spreader is kept")
		}
		if _, ok := s.muxes.Load("quiet"); !ok {
			t.Error("the served application's spreader was dropped")
		}
	})
}
