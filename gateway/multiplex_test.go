package gateway

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sluice-serve/sluice/platform/spec"
	inference "github.com/sluice-serve/sluice/protos/gen/inference"
	sluicev1 "github.com/sluice-serve/sluice/protos/gen/sluice/v1"
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
