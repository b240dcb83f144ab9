package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sluice-serve/sluice/examples/tensors"
	"github.com/sluice-serve/sluice/gateway/oip"
	"github.com/sluice-serve/sluice/platform/cli"
	"github.com/sluice-serve/sluice/platform/serve"
	"github.com/sluice-serve/sluice/platform/spec"
	inference "github.com/sluice-serve/sluice/protos/gen/inference"
	"github.com/sluice-serve/sluice/registry/blob"
	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/claim"
	"github.com/sluice-serve/sluice/streams/protocol"
)

// Payloads past the broker's record limit travel as claim checks: the
// apps of these tests.

// quad is a 2-deployment graph: Quad calls Doubler through a handle and
// doubles its answer, OUTPUT0 = 4 * INPUT0.
type quad struct {
	doubler *serve.Handle[*oip.InferRequest, *oip.InferResponse]
}

func (q *quad) Call(ctx context.Context, req *oip.InferRequest) (*oip.InferResponse, error) {
	resp, err := q.doubler.Remote(ctx, req).Result(ctx)
	if err != nil {
		return nil, err
	}
	out := &resp.Outputs[0]
	xs, err := out.Float32s()
	if err != nil {
		return nil, err
	}
	for i := range xs {
		xs[i] *= 2
	}
	return &oip.InferResponse{Outputs: []oip.Tensor{oip.NewFP32("OUTPUT0", out.Shape, xs)}}, nil
}

var quadD = serve.Type[*oip.InferRequest, *oip.InferResponse]("Quad", func(h *serve.Handle[*oip.InferRequest, *oip.InferResponse]) *quad {
	return &quad{doubler: h}
})

// bigReply answers n bytes of 'x' as a JSON string.
var bigReply = serve.Func("BigReply", func(_ context.Context, n int) (string, error) {
	return strings.Repeat("x", n), nil
})

func claimApps() []*serve.Application {
	return []*serve.Application{
		serve.MustApp("quad", "/quad", quadD.Bind(tensors.Doubler.Bind()), serve.InferenceSignature(spec.Inference{
			Platform: "sluice", Versions: []string{"1"},
			Inputs:  []spec.TensorSpec{{Name: "INPUT0", Datatype: "FP32", Shape: []int64{-1}}},
			Outputs: []spec.TensorSpec{{Name: "OUTPUT0", Datatype: "FP32", Shape: []int64{-1}}},
		})),
		serve.MustApp("bigreply", "/bigreply", bigReply.Bind()),
	}
}

// fp32Tensor is n FP32 values, little-endian, that survive x4 exactly.
func fp32Tensor(n int) []byte {
	b := make([]byte, 0, 4*n)
	for i := range n {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(i%4096)-2048.5))
	}
	return b
}

// checkQuadrupled fails unless out is 4 * in, element by element.
func checkQuadrupled(t testing.TB, in, out []byte) {
	t.Helper()
	if len(out) != len(in) {
		t.Fatalf("output of %d bytes, want %d", len(out), len(in))
	}
	for i := 0; i < len(in); i += 4 {
		x := math.Float32frombits(binary.LittleEndian.Uint32(in[i:]))
		if y := math.Float32frombits(binary.LittleEndian.Uint32(out[i:])); y != 4*x {
			t.Fatalf("output[%d] = %v, want %v", i/4, y, 4*x)
		}
	}
}

// inferBinary sends raw FP32 over OIP REST with the binary extension
// both ways, and returns the raw output.
func inferBinary(ctx context.Context, client *http.Client, model string, raw []byte) ([]byte, error) {
	header := fmt.Appendf(nil, `{"inputs":[{"name":"INPUT0","datatype":"FP32","shape":[%d],"parameters":{"binary_data_size":%d}}],"outputs":[{"name":"OUTPUT0","parameters":{"binary_data":true}}]}`, len(raw)/4, len(raw))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url("/v2/models/"+model+"/infer"), io.MultiReader(bytes.NewReader(header), bytes.NewReader(raw)))
	if err != nil {
		return nil, err
	}
	req.ContentLength = int64(len(header) + len(raw))
	req.Header.Set("Inference-Header-Content-Length", strconv.Itoa(len(header)))
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	all, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(resp.Header.Get("Inference-Header-Content-Length"))
	if resp.StatusCode != http.StatusOK || err != nil || n > len(all) {
		return nil, fmt.Errorf("binary infer: %d %s", resp.StatusCode, all[:min(len(all), 300)])
	}
	return all[n:], nil
}

// largeGRPC is a connection whose messages may be as large as the
// gateway's limit.
func largeGRPC(t testing.TB) inference.GRPCInferenceServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(plat.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(65<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return inference.NewGRPCInferenceServiceClient(conn)
}

func inferGRPC(ctx context.Context, c inference.GRPCInferenceServiceClient, model string, raw []byte) ([]byte, error) {
	resp, err := c.ModelInfer(ctx, &inference.ModelInferRequest{
		ModelName:        model,
		Inputs:           []*inference.ModelInferRequest_InferInputTensor{{Name: "INPUT0", Datatype: "FP32", Shape: []int64{int64(len(raw) / 4)}}},
		RawInputContents: [][]byte{raw},
	})
	if err != nil {
		return nil, err
	}
	if len(resp.GetRawOutputContents()) != 1 {
		return nil, fmt.Errorf("ModelInfer: %d raw outputs", len(resp.GetRawOutputContents()))
	}
	return resp.GetRawOutputContents()[0], nil
}

// claimsLeft lists the claims in the platform's store.
func claimsLeft(t testing.TB) []string {
	t.Helper()
	infos, err := plat.Store().List(context.Background(), claim.DefaultPrefix)
	if err != nil {
		t.Fatalf("list claims: %v", err)
	}
	keys := make([]string, len(infos))
	for i, in := range infos {
		keys[i] = in.Key
	}
	return keys
}

// Payloads from 1.2 MB to 16 MiB, far past the broker's 1 MB record
// limit, over every front door; each claim deleted once answered. Not
// parallel: it ends by finding the store's claims prefix empty.
func TestClaimChecks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	raw := fp32Tensor(4 << 20) // 16 MiB
	client := &http.Client{}

	t.Run("16MiB FP32 over REST binary through 2 deployments", func(t *testing.T) {
		out, err := inferBinary(ctx, client, "quad", raw)
		if err != nil {
			t.Fatal(err)
		}
		checkQuadrupled(t, raw, out)
		// The request crossed Kafka as a reference, not as 16 MiB.
		rec := findRecord(ctx, t, namer.Ingress("quad"), func(r *kgo.Record) bool { return protocol.Header(r.Headers, protocol.HeaderClaim) != nil })
		if ref, err := claim.Parse(protocol.Header(rec.Headers, protocol.HeaderClaim)); err != nil || len(rec.Value) != 0 || ref.Size < int64(len(raw)) || ref.Kind() != claim.KindRequest {
			t.Fatalf("ingress record: %d-byte value, claim %+v (%v)", len(rec.Value), ref, err)
		}
	})
	t.Run("16MiB FP32 over gRPC through 2 deployments", func(t *testing.T) {
		out, err := inferGRPC(ctx, largeGRPC(t), "quad", raw)
		if err != nil {
			t.Fatal(err)
		}
		checkQuadrupled(t, raw, out)
	})
	t.Run("3MiB body on an application route", func(t *testing.T) {
		echo := strings.Repeat("ab", 3<<19)
		body, _ := json.Marshal(Cmd{Echo: echo})
		code, got := post(t, "/faults", string(body))
		if code != http.StatusOK || got != echo { // a string answers as text
			t.Fatalf("POST /faults with %d bytes: %d, %d bytes back", len(body), code, len(got))
		}
	})
	t.Run("1.2MB answer reaches the caller", func(t *testing.T) {
		code, got := post(t, "/bigreply", "1200000")
		if code != http.StatusOK || len(got) != 1200000 || strings.Trim(got, "x") != "" {
			t.Fatalf("POST /bigreply: %d, %d bytes", code, len(got))
		}
	})
	t.Run("a body past MaxBody is 413 at once", func(t *testing.T) {
		began := time.Now()
		resp, err := http.Post(url("/faults"), "application/json", bytes.NewReader(make([]byte, 64<<20+1)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || time.Since(began) > 10*time.Second {
			t.Fatalf("64 MiB + 1: %d after %s: %s", resp.StatusCode, time.Since(began), b)
		}
	})
	// The request claims (the gateway's, Quad's handle call's), the edge
	// and reply claims: all deleted by whoever read them last.
	deadline := time.Now().Add(30 * time.Second)
	for left := claimsLeft(t); len(left) > 0; left = claimsLeft(t) {
		if time.Now().After(deadline) {
			t.Fatalf("claims left 30s after the answers: %v", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// `sluice gateway` and `sluice node` as processes, replicas as processes
// of their own: with the real tier's MinIO (--s3-endpoint) a 3 MiB name
// goes to hello's classifier and on to its Spanish responder through a
// handle call, and the 3 MiB greeting back, as claims, all deleted after; without a store, the gateway says what is too large and
// how to configure a store instead of the broker's MESSAGE_TOO_LARGE.
func TestClaimChecksNode(t *testing.T) {
	t.Parallel()
	s3 := s3Config("claims-" + streams.Instance())
	var both, env []string
	if s3.Endpoint != "" {
		both, env = s3Process(s3)
	}
	n := startNodeWith(t, both, env)
	spec := writeFile(t, "nodehello.yaml", nodeHelloYAML)
	if b, err := exec.Command(n.bin, "deploy", "-f", spec, "--addr", n.addr).CombinedOutput(); err != nil {
		t.Fatalf("deploy: %v\n%s", err, b)
	}
	name := strings.Repeat("Node", 3<<18) // 3 MiB
	code, got := postTo(t, n.addr, "/nodehello", `{"language":"spanish","name":"`+name+`"}`)
	if s3.Endpoint == "" {
		if code != http.StatusServiceUnavailable || !strings.Contains(got, "no claim store") || !strings.Contains(got, "--s3-endpoint") {
			t.Fatalf("without a store: %d %.300s", code, got)
		}
		return
	}
	if code != http.StatusOK || got != "Hola "+name {
		t.Fatalf("through two replica processes: %d %.300s\nlogs:\n%s", code, got, n.stderr.String())
	}
	store, err := blob.NewS3(context.Background(), s3, testLog)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		left, err := store.List(context.Background(), claim.DefaultPrefix)
		if err == nil && len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("claims left in S3 30s after the answer: %v %v", left, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// `sluice gateway` alone sweeps the claims that expired: on Kubernetes
// (gateway, replica pods, autoscaler) no `sluice node` or `sluice dev`
// runs to do it. A claim of this hour stays. The real tier's MinIO only:
// a gateway's store is S3.
func TestClaimSweepByGateway(t *testing.T) {
	t.Parallel()
	s3 := s3Config("sweep-" + streams.Instance())
	if s3.Endpoint == "" {
		t.Skip("a gateway keeps claims in S3 only: the real tier's MinIO (SLUICE_TEST_S3_*)")
	}
	store, err := blob.NewS3(context.Background(), s3, testLog)
	if err != nil {
		t.Fatal(err)
	}
	expired := claim.DefaultPrefix + "2020010100/e/0123456789abcdef0123456789abcdef"
	young := claim.DefaultPrefix + time.Now().UTC().Format("2006010215") + "/e/0123456789abcdef0123456789abcdef"
	for _, k := range []string{expired, young} {
		if _, err := store.Put(context.Background(), k, strings.NewReader("v"), 1); err != nil {
			t.Fatal(err)
		}
	}
	flags, keys := s3Process(s3)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out lockedBuffer
	go func() {
		done <- cli.Run(ctx, append([]string{"gateway", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0",
			"--brokers", strings.Join(plat.Brokers, ","), "--prefix", namer.Prefix()}, flags...),
			cli.Env{Stdout: &out, Stderr: &out, Log: testLog, Registry: registry, Getenv: environ(keys)})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway exit: %v", err)
		}
	}()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		keys, err := store.List(context.Background(), claim.DefaultPrefix)
		var left []string
		for _, k := range keys {
			left = append(left, k.Key)
		}
		// The sweeper starts with the gateway, before it serves: stop it
		// only once it serves, so that its exit says how it stops.
		if err == nil && len(left) == 1 && left[0] == young && strings.Contains(out.String(), "sluice gateway: REST on") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("30s after the gateway started, claims/ holds %v (%v); want only %s\ngateway output:\n%s", left, err, young, out.String())
		}
	}
}

// lockedBuffer is a bytes.Buffer written by a process's goroutine and read
// by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
