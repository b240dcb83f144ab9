package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sluice-serve/sluice/platform/cli"
	inference "github.com/sluice-serve/sluice/protos/gen/inference"
	sluicev1 "github.com/sluice-serve/sluice/protos/gen/sluice/v1"
)

func getJSON(t *testing.T, path string, out any) int {
	t.Helper()
	resp, err := http.Get(url(path))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode
}

func TestOIPRESTHealthAndMetadata(t *testing.T) {
	t.Parallel()
	var live, rdy map[string]bool
	if code := getJSON(t, "/v2/health/live", &live); code != 200 || !live["live"] {
		t.Fatalf("live: %d %v", code, live)
	}
	if code := getJSON(t, "/v2/health/ready", &rdy); code != 200 || !rdy["ready"] {
		t.Fatalf("ready: %d %v", code, rdy)
	}
	var server map[string]any
	if code := getJSON(t, "/v2", &server); code != 200 || server["name"] != "sluice" {
		t.Fatalf("server metadata: %d %v", code, server)
	}
	var md struct {
		Name     string   `json:"name"`
		Versions []string `json:"versions"`
		Platform string   `json:"platform"`
		Inputs   []struct {
			Name, Datatype string
			Shape          []int64
		} `json:"inputs"`
	}
	if code := getJSON(t, "/v2/models/doubler", &md); code != 200 || md.Name != "doubler" || len(md.Inputs) != 1 || md.Inputs[0].Datatype != "FP32" || md.Versions[0] != "1" {
		t.Fatalf("model metadata: %d %+v", code, md)
	}
	var mr map[string]any
	if code := getJSON(t, "/v2/models/doubler/versions/1/ready", &mr); code != 200 || mr["ready"] != true {
		t.Fatalf("model ready: %d %v", code, mr)
	}
	var e map[string]string
	if code := getJSON(t, "/v2/models/nope", &e); code != 404 || !strings.Contains(e["error"], `unknown model "nope"`) {
		t.Fatalf("unknown model: %d %v", code, e)
	}
	if code := getJSON(t, "/v2/models/doubler/versions/9", &e); code != 404 || !strings.Contains(e["error"], `no version "9"`) {
		t.Fatalf("unknown version: %d %v", code, e)
	}
}

func TestOIPRESTInfer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, path, body string
		code             int
		contains         string
	}{
		{"json", "/v2/models/doubler/infer", `{"id":"r1","inputs":[{"name":"INPUT0","datatype":"FP32","shape":[2,2],"data":[[1,2],[3,4.5]]}]}`, 200, `"data":[2,4,6,9]`},
		{"pinned version", "/v2/models/doubler/versions/1/infer", `{"inputs":[{"name":"INPUT0","datatype":"FP32","shape":[1],"data":[1]}]}`, 200, `"model_version":"1"`},
		{"int64", "/v2/models/adder64/infer", `{"inputs":[{"name":"A","datatype":"INT64","shape":[2],"data":[1,9007199254740993]},{"name":"B","datatype":"INT64","shape":[2],"data":[2,1]}]}`, 200, `"data":[3,9007199254740994]`},
		{"bytes", "/v2/models/upper/infer", `{"inputs":[{"name":"TEXT","datatype":"BYTES","shape":[2],"data":["ab",""]}]}`, 200, `"data":["AB",""]`},
		{"unknown model", "/v2/models/nope/infer", `{"inputs":[]}`, 404, `unknown model`},
		{"unknown version", "/v2/models/doubler/versions/9/infer", `{"inputs":[]}`, 404, `has no version`},
		{"malformed", "/v2/models/doubler/infer", `{"inputs":[`, 400, `error`},
		{"shape mismatch", "/v2/models/doubler/infer", `{"inputs":[{"name":"INPUT0","datatype":"FP32","shape":[2,3],"data":[1,2,3,4,5]}]}`, 400, `INPUT0`},
		{"unknown datatype", "/v2/models/doubler/infer", `{"inputs":[{"name":"INPUT0","datatype":"FP33","shape":[1],"data":[1]}]}`, 400, `FP33`},
		{"negative dim", "/v2/models/doubler/infer", `{"inputs":[{"name":"INPUT0","datatype":"FP32","shape":[-1],"data":[1]}]}`, 400, `INPUT0`},
		{"duplicate input", "/v2/models/doubler/infer", `{"inputs":[{"name":"INPUT0","datatype":"FP32","shape":[1],"data":[1]},{"name":"INPUT0","datatype":"FP32","shape":[1],"data":[1]}]}`, 400, `INPUT0`},
		{"missing input", "/v2/models/doubler/infer", `{"inputs":[{"name":"X","datatype":"FP32","shape":[1],"data":[1]}]}`, 400, `input INPUT0 is missing`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, got := post(t, tc.path, tc.body)
			if code != tc.code || !strings.Contains(got, tc.contains) {
				t.Fatalf("POST %s = %d %s, want %d containing %q", tc.path, code, got, tc.code, tc.contains)
			}
			if code == 200 && !strings.Contains(got, `"model_name":"`) {
				t.Fatalf("response lacks model_name: %s", got)
			}
		})
	}
}

// Inference takes POST: another method on an infer endpoint is 405 with
// Allow, not 404.
func TestOIPInferMethod(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"/v2/models/doubler/infer", "/v2/models/doubler/versions/1/infer"} {
		resp, err := http.Get("http://" + plat.Addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodPost {
			t.Fatalf("GET %s = %d (Allow %q), want 405 allowing POST", path, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
}

// The binary tensor extension both ways: raw FP32 in, raw FP32 out.
func TestOIPRESTBinary(t *testing.T) {
	t.Parallel()
	header := []byte(`{"inputs":[{"name":"INPUT0","datatype":"FP32","shape":[3],"parameters":{"binary_data_size":12}}],"outputs":[{"name":"OUTPUT0","parameters":{"binary_data":true}}]}`)
	body := append([]byte{}, header...)
	for _, f := range []float32{1.5, -2, 3} {
		body = binary.LittleEndian.AppendUint32(body, math.Float32bits(f))
	}
	req, _ := http.NewRequest("POST", url("/v2/models/doubler/infer"), bytes.NewReader(body))
	req.Header.Set("Inference-Header-Content-Length", strconv.Itoa(len(header)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	all, _ := io.ReadAll(resp.Body)
	n, err := strconv.Atoi(resp.Header.Get("Inference-Header-Content-Length"))
	if resp.StatusCode != 200 || err != nil || n > len(all) {
		t.Fatalf("binary infer: %d %q %s", resp.StatusCode, resp.Header.Get("Inference-Header-Content-Length"), all)
	}
	var js struct {
		ModelName string `json:"model_name"`
		Outputs   []struct {
			Name       string         `json:"name"`
			Parameters map[string]any `json:"parameters"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal(all[:n], &js); err != nil || js.ModelName != "doubler" || js.Outputs[0].Parameters["binary_data_size"] != float64(12) {
		t.Fatalf("binary response header: %v %s", err, all[:n])
	}
	raw := all[n:]
	for i, want := range []float32{3, -4, 6} {
		if got := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])); got != want {
			t.Fatalf("output[%d] = %v, want %v", i, got, want)
		}
	}
	// A header length beyond the body is a clear 400.
	req, _ = http.NewRequest("POST", url("/v2/models/doubler/infer"), bytes.NewReader(header))
	req.Header.Set("Inference-Header-Content-Length", "100000")
	resp2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp2.Body)
	resp2.Body.Close()
	if resp2.StatusCode != 400 || !strings.Contains(string(b), "beyond") {
		t.Fatalf("oversized header length: %d %s", resp2.StatusCode, b)
	}
}

func grpcConn(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestOIPGRPC(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := inference.NewGRPCInferenceServiceClient(grpcConn(t, plat.GRPCAddr))
	if r, err := c.ServerLive(ctx, &inference.ServerLiveRequest{}); err != nil || !r.GetLive() {
		t.Fatalf("live: %v %v", r, err)
	}
	if r, err := c.ModelReady(ctx, &inference.ModelReadyRequest{Name: "doubler"}); err != nil || !r.GetReady() {
		t.Fatalf("model ready: %v %v", r, err)
	}
	// An unknown model is not ready, as over REST (not NOT_FOUND).
	if r, err := c.ModelReady(ctx, &inference.ModelReadyRequest{Name: "nope"}); err != nil || r.GetReady() {
		t.Fatalf("unknown model ready: %v %v, want false and no error", r, err)
	}
	raw := []byte{}
	for _, f := range []float32{1, 2, 3, 4} {
		raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(f))
	}
	resp, err := c.ModelInfer(ctx, &inference.ModelInferRequest{
		ModelName: "doubler", ModelVersion: "1", Id: "g1",
		Inputs:           []*inference.ModelInferRequest_InferInputTensor{{Name: "INPUT0", Datatype: "FP32", Shape: []int64{2, 2}}},
		RawInputContents: [][]byte{raw},
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetModelName() != "doubler" || resp.GetId() != "g1" || len(resp.GetRawOutputContents()) != 1 {
		t.Fatalf("ModelInfer = %v", resp)
	}
	out := resp.GetRawOutputContents()[0]
	for i, want := range []float32{2, 4, 6, 8} {
		if got := math.Float32frombits(binary.LittleEndian.Uint32(out[4*i:])); got != want {
			t.Fatalf("output[%d] = %v, want %v", i, got, want)
		}
	}
	_, err = c.ModelInfer(ctx, &inference.ModelInferRequest{ModelName: "nope"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("unknown model: %v, want NOT_FOUND", err)
	}
	_, err = c.ModelInfer(ctx, &inference.ModelInferRequest{ModelName: "doubler",
		Inputs: []*inference.ModelInferRequest_InferInputTensor{{Name: "INPUT0", Datatype: "FP32", Shape: []int64{3}}}, RawInputContents: [][]byte{raw}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("shape/data mismatch: %v, want INVALID_ARGUMENT", err)
	}
}

func TestPredictGRPC(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := sluicev1.NewPredictClient(grpcConn(t, plat.GRPCAddr))
	r, err := c.Predict(ctx, &sluicev1.PredictRequest{App: "hello", Payload: []byte(`{"language":"spanish","name":"Dora"}`)})
	if err != nil || string(r.GetPayload()) != "Hola Dora" {
		t.Fatalf("Predict hello = %v %v", r, err)
	}
	st, err := c.PredictStream(ctx, &sluicev1.PredictRequest{App: "stream", Payload: []byte("4")})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		item, err := st.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(item.GetPayload()))
	}
	if strings.Join(got, ",") != "0,1,2,3" {
		t.Fatalf("PredictStream = %v", got)
	}
	start := time.Now()
	_, err = c.Predict(ctx, &sluicev1.PredictRequest{App: "faults", Payload: []byte(`{"sleep_ms":3000}`), Timeout: durationpb.New(200 * time.Millisecond)})
	if status.Code(err) != codes.DeadlineExceeded || time.Since(start) > 2*time.Second {
		t.Fatalf("timeout: %v after %s, want DEADLINE_EXCEEDED after about 200ms", err, time.Since(start))
	}
	tctx, tcancel := context.WithTimeout(ctx, 200*time.Millisecond) // grpc-timeout
	defer tcancel()
	_, err = c.Predict(tctx, &sluicev1.PredictRequest{App: "faults", Payload: []byte(`{"sleep_ms":3000}`)})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("grpc-timeout: %v, want DEADLINE_EXCEEDED", err)
	}
	_, err = c.Predict(ctx, &sluicev1.PredictRequest{App: "nope"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("unknown app: %v", err)
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	post(t, "/hello", `{"language":"french","name":"M"}`)
	resp, err := http.Get(url("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`sluice_gateway_requests_total{app="hello",code="ok"}`,
		`sluice_gateway_request_seconds_bucket{app="hello",le="+Inf"}`,
		`sluice_gateway_in_flight `,
		`sluice_kafka_errors_total{op="produce"}`,
		`sluice_deployment_processed_total{app="hello",deployment="LanguageClassifier"}`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// A second gateway instance against the same brokers gets its own replies,
// and its limits answer at once: 429 with Retry-After past max-in-flight,
// 413 past max-body.
func TestSecondGatewayInstance(t *testing.T) {
	t.Parallel()
	httpAddr, grpcAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		var out bytes.Buffer
		done <- cli.Run(ctx, []string{"gateway", "--http", httpAddr, "--grpc", grpcAddr,
			"--brokers", strings.Join(plat.Brokers, ","), "--prefix", namer.Prefix(), "--max-in-flight", "4", "--max-body", "1000"},
			cli.Env{Stdout: &out, Stderr: &out, Log: testLog, Registry: registry})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway exit: %v", err)
		}
	}()
	gw := "http://" + httpAddr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Post(gw+"/hello", "application/json", strings.NewReader(`{"language":"spanish","name":"Two"}`))
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && string(b) == "Hola Two" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("second gateway never served hello: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Both gateways at once: each answer matches its own request. At most
	// 4 at a time go to the second, within its limit.
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := range 40 {
		base := gw
		if i%2 == 0 {
			base = "http://" + plat.Addr
		}
		wg.Go(func() {
			if base == gw {
				sem <- struct{}{}
				defer func() { <-sem }()
			}
			name := fmt.Sprint("n", i)
			resp, err := http.Post(base+"/hello", "application/json", strings.NewReader(`{"language":"french","name":"`+name+`"}`))
			if err != nil {
				t.Error(err)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != "Bonjour "+name {
				t.Errorf("gateway %s answered %q for %s", base, b, name)
			}
		})
	}
	wg.Wait()
	// Four slow requests fill max-in-flight 4; the fifth is refused at once.
	for range 4 {
		go http.Post(gw+"/faults", "application/json", strings.NewReader(`{"sleep_ms":1500}`))
	}
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	resp, err := http.Post(gw+"/faults", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || time.Since(start) > 500*time.Millisecond {
		t.Fatalf("past max-in-flight: %d Retry-After %q after %s", resp.StatusCode, resp.Header.Get("Retry-After"), time.Since(start))
	}
	resp, err = http.Post(gw+"/faults", "application/json", strings.NewReader(strings.Repeat("x", 2000)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 413 || !strings.Contains(string(b), "1000-byte limit") {
		t.Fatalf("past max-body: %d %s", resp.StatusCode, b)
	}
}
