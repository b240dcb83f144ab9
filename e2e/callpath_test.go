package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sluice-serve/sluice/gateway/oip"
	"github.com/sluice-serve/sluice/platform/serve"
	inference "github.com/sluice-serve/sluice/protos/gen/inference"
	sluicev1 "github.com/sluice-serve/sluice/protos/gen/sluice/v1"
)

// seen is what a call-path probe saw of its request.
type seen struct {
	Trace    string `json:"trace"`
	State    string `json:"state"`
	Tenant   string `json:"tenant"`
	LeftSecs int    `json:"left_secs"` // time left to its deadline
}

func see(ctx context.Context) seen {
	s := seen{Trace: serve.TraceParent(ctx), State: serve.TraceState(ctx), Tenant: serve.RequestHeader(ctx, "X-Tenant")}
	if at, ok := ctx.Deadline(); ok {
		s.LeftSecs = int(time.Until(at).Round(time.Second).Seconds())
	}
	return s
}

// The call-path probes: one answers JSON on an application route and
// Predict, the other an OIP inference, both with what they saw.
var (
	traceJSON = serve.Func("TraceJSON", func(ctx context.Context, _ json.RawMessage) (seen, error) { return see(ctx), nil })
	traceOIP  = serve.Func("TraceOIP", func(ctx context.Context, _ *oip.InferRequest) (*oip.InferResponse, error) {
		b, err := json.Marshal(see(ctx))
		return &oip.InferResponse{Outputs: []oip.Tensor{oip.NewBytes("SEEN", []int64{1}, [][]byte{b})}}, err
	})
)

func callPathApps() []*serve.Application {
	return []*serve.Application{
		serve.MustApp("tracejson", "/tracejson", traceJSON.Bind()),
		serve.MustApp("traceoip", "/traceoip", traceOIP.Bind()),
	}
}

const (
	testTrace      = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	testTraceState = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
)

// Every transport carries the caller's trace context (traceparent and
// tracestate, untouched with tracing off) and x-* headers to the
// deployment: REST headers on an application route and on the OIP,
// gRPC metadata on Predict, PredictStream and ModelInfer, and Predict's
// own headers field.
func TestTraceOnEveryPath(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	check := func(path string, got seen) {
		t.Helper()
		if got.Trace != testTrace || got.State != testTraceState || got.Tenant != "acme" {
			t.Errorf("%s: the deployment saw trace %q, state %q and x-tenant %q; want the caller's", path, got.Trace, got.State, got.Tenant)
		}
	}
	restCall := func(path, body string, hdr map[string]string) []byte {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url(path), strings.NewReader(body))
		req.Header.Set("traceparent", testTrace)
		req.Header.Set("tracestate", testTraceState)
		req.Header.Set("X-Tenant", "acme")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
		}
		return b
	}
	var got seen
	if err := json.Unmarshal(restCall("/tracejson", `{}`, nil), &got); err != nil {
		t.Fatal(err)
	}
	check("REST route", got)

	var resp struct {
		Outputs []struct {
			Data []string `json:"data"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal(restCall("/v2/models/traceoip/infer", `{"inputs":[{"name":"X","datatype":"FP32","shape":[1],"data":[1]}]}`, nil), &resp); err != nil || len(resp.Outputs) != 1 {
		t.Fatalf("OIP REST: %v %+v", err, resp)
	}
	got = seen{}
	_ = json.Unmarshal([]byte(resp.Outputs[0].Data[0]), &got)
	check("OIP REST", got)

	conn := grpcConn(t, plat.GRPCAddr)
	mdCtx := metadata.AppendToOutgoingContext(ctx, "traceparent", testTrace, "tracestate", testTraceState, "x-tenant", "acme")
	predict := sluicev1.NewPredictClient(conn)
	pr, err := predict.Predict(mdCtx, &sluicev1.PredictRequest{App: "tracejson", Payload: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	got = seen{}
	_ = json.Unmarshal(pr.GetPayload(), &got)
	check("Predict (metadata)", got)

	pr, err = predict.Predict(ctx, &sluicev1.PredictRequest{App: "tracejson", Payload: []byte(`{}`), Headers: map[string]string{"traceparent": testTrace, "tracestate": testTraceState, "x-tenant": "acme"}})
	if err != nil {
		t.Fatal(err)
	}
	got = seen{}
	_ = json.Unmarshal(pr.GetPayload(), &got)
	check("Predict (headers field)", got)

	st, err := predict.PredictStream(mdCtx, &sluicev1.PredictRequest{App: "tracejson", Payload: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	item, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	got = seen{}
	_ = json.Unmarshal(item.GetPayload(), &got)
	check("PredictStream (metadata)", got)

	ir, err := inference.NewGRPCInferenceServiceClient(conn).ModelInfer(mdCtx, &inference.ModelInferRequest{ModelName: "traceoip",
		Inputs:           []*inference.ModelInferRequest_InferInputTensor{{Name: "X", Datatype: "FP32", Shape: []int64{1}}},
		RawInputContents: [][]byte{make([]byte, 4)}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := oip.ResponseFromProto(ir)
	if err != nil {
		t.Fatal(err)
	}
	ss, err := out.Outputs[0].ByteStrings()
	if err != nil {
		t.Fatal(err)
	}
	got = seen{}
	_ = json.Unmarshal(ss[0], &got)
	check("ModelInfer (metadata)", got)
}

// A caller's timeout past the gateway's cap is cut to it (5m by default),
// not taken as "for ever".
func TestTimeoutCapped(t *testing.T) {
	t.Parallel()
	code, body := post(t, fmt.Sprintf("/tracejson?timeout=%dns", int64(1<<63-1)), `{}`)
	var got seen
	if err := json.Unmarshal([]byte(body), &got); code != 200 || err != nil {
		t.Fatalf("%d %s", code, body)
	}
	if got.LeftSecs > 300 || got.LeftSecs < 280 {
		t.Fatalf("the deployment had %ds left; want the 5m cap", got.LeftSecs)
	}
}

// The OIP's repository index, statistics and model configuration, over
// REST and gRPC, and a requested output the model does not have.
func TestOIPExtensions(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const body = `{"inputs":[{"name":"INPUT0","datatype":"FP32","shape":[2],"data":[1,2]}]}`
	if code, b := post(t, "/v2/models/doubler/infer", body); code != 200 {
		t.Fatalf("infer: %d %s", code, b)
	}

	code, b := post(t, "/v2/repository/index", `{"ready":true}`)
	var index []struct{ Name, Version, State string }
	if err := json.Unmarshal([]byte(b), &index); code != 200 || err != nil {
		t.Fatalf("index: %d %s", code, b)
	}
	found := false
	for _, e := range index {
		found = found || e.Name == "doubler" && e.Version == "1" && e.State == "READY"
		if e.State != "READY" {
			t.Errorf("ready-only index lists %+v", e)
		}
	}
	if !found {
		t.Errorf("index %s has no ready doubler version 1", b)
	}

	statsOf := func() (success, fail uint64) {
		var st struct {
			ModelStats []struct {
				Name           string `json:"name"`
				InferenceCount uint64 `json:"inference_count"`
				InferenceStats struct {
					Success, Fail struct{ Count, NS uint64 }
				} `json:"inference_stats"`
			} `json:"model_stats"`
		}
		if code := getJSON(t, "/v2/models/doubler/stats", &st); code != 200 || len(st.ModelStats) == 0 {
			t.Fatalf("stats: %d %+v", code, st)
		}
		for _, m := range st.ModelStats {
			if m.Name != "doubler" || m.InferenceCount != m.InferenceStats.Success.Count || (m.InferenceStats.Success.Count > 0 && m.InferenceStats.Success.NS == 0) {
				t.Errorf("stats entry %+v", m)
			}
			success += m.InferenceStats.Success.Count
			fail += m.InferenceStats.Fail.Count
		}
		return success, fail
	}
	s0, f0 := statsOf()
	for range 3 {
		post(t, "/v2/models/doubler/infer", body)
	}
	code, b = post(t, "/v2/models/doubler/infer", `{"inputs":[{"name":"INPUT0","datatype":"FP32","shape":[1],"data":[1]}],"outputs":[{"name":"NOPE"}]}`)
	if code != 400 || !strings.Contains(b, `no output \"NOPE\" (its outputs: OUTPUT0)`) {
		t.Errorf("unknown output: %d %s; want 400 naming it and the model's outputs", code, b)
	}
	if s1, f1 := statsOf(); s1 < s0+3 || f1 < f0+1 {
		t.Errorf("stats went from %d ok, %d failed to %d, %d; want 3 more successes and a failure", s0, f0, s1, f1)
	}

	var cfg struct {
		Name  string `json:"name"`
		Input []struct {
			Name     string  `json:"name"`
			DataType string  `json:"data_type"`
			Dims     []int64 `json:"dims"`
		} `json:"input"`
		Output []struct{ Name string } `json:"output"`
	}
	if code := getJSON(t, "/v2/models/doubler/config", &cfg); code != 200 || cfg.Name != "doubler" || len(cfg.Input) != 1 ||
		cfg.Input[0].Name != "INPUT0" || cfg.Input[0].DataType != "TYPE_FP32" || len(cfg.Input[0].Dims) != 1 || cfg.Input[0].Dims[0] != -1 ||
		len(cfg.Output) != 1 || cfg.Output[0].Name != "OUTPUT0" {
		t.Errorf("config: %d %+v", code, cfg)
	}
	if code, b := get(t, "/v2/models/no-such-model/config"); code != 404 {
		t.Errorf("unknown model's config: %d %s", code, b)
	}

	c := inference.NewGRPCInferenceServiceClient(grpcConn(t, plat.GRPCAddr))
	ri, err := c.RepositoryIndex(ctx, &inference.RepositoryIndexRequest{})
	if err != nil || len(ri.GetModels()) < len(index) {
		t.Errorf("gRPC index: %v, %d models; want at least the %d ready ones", err, len(ri.GetModels()), len(index))
	}
	ms, err := c.ModelStatistics(ctx, &inference.ModelStatisticsRequest{Name: "doubler"})
	if err != nil || len(ms.GetModelStats()) == 0 || ms.GetModelStats()[0].GetInferenceStats().GetSuccess().GetCount() < s0+3 {
		t.Errorf("gRPC stats: %v %v", ms, err)
	}
	mc, err := c.ModelConfig(ctx, &inference.ModelConfigRequest{Name: "doubler"})
	if err != nil || mc.GetConfig().GetInput()[0].GetDataType() != inference.DataType_TYPE_FP32 || mc.GetConfig().GetOutput()[0].GetName() != "OUTPUT0" {
		t.Errorf("gRPC config: %v %v", mc, err)
	}
	_, err = c.ModelInfer(ctx, &inference.ModelInferRequest{ModelName: "doubler",
		Inputs:           []*inference.ModelInferRequest_InferInputTensor{{Name: "INPUT0", Datatype: "FP32", Shape: []int64{1}}},
		Outputs:          []*inference.ModelInferRequest_InferRequestedOutputTensor{{Name: "NOPE"}},
		RawInputContents: [][]byte{make([]byte, 4)}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `"NOPE"`) {
		t.Errorf("gRPC unknown output: %v", err)
	}
}

// Methods an endpoint does not take are 405, never 404 or 500.
func TestMethodNotAllowed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ method, path string }{
		{http.MethodPut, "/sluice/v1/apps"},
		{http.MethodPatch, "/sluice/v1/apps/hello"},
		{http.MethodPost, "/v2"},
		{http.MethodGet, "/v2/models/doubler/infer"},
		{http.MethodGet, "/hello"},
	} {
		req, _ := http.NewRequest(tc.method, url(tc.path), strings.NewReader(`{}`))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || !json.Valid(b) {
			t.Errorf("%s %s: %d %s; want 405 with a JSON error", tc.method, tc.path, resp.StatusCode, b)
		}
	}
}
