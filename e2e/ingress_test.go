package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluice-serve/sluice/platform/serve"
	"github.com/sluice-serve/sluice/streams"
)

// web is an HTTP ingress of the suite's registry: a net/http ServeMux
// with path values, methods, status codes, headers, a handle call,
// streams (NDJSON and server-sent events, flushed line by line), a panic
// and a handler that outlives its deadline.
var webD = serve.HTTP("Web", func(tag *serve.Handle[string, string]) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Item", r.PathValue("id"))
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		status := http.StatusOK
		if r.URL.Query().Get("teapot") != "" {
			status = http.StatusTeapot
		}
		writeJSONTo(w, status, map[string]any{"id": r.PathValue("id"), "query": r.URL.RawQuery, "tenant": r.Header.Get("X-Tenant"),
			"accept": r.Header.Values("Accept"), "connection": r.Header.Get("Connection"), "private": r.Header.Get("X-Private")})
	})
	mux.HandleFunc("POST /items", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Location", "/web/items/7")
		writeJSONTo(w, http.StatusCreated, map[string]string{"body": string(body), "content_type": r.Header.Get("Content-Type")})
	})
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", r.Header.Get("Content-Type"))
		_, _ = io.Copy(w, r.Body)
	})
	mux.HandleFunc("GET /tag/{word}", func(w http.ResponseWriter, r *http.Request) {
		s, err := tag.Remote(r.Context(), r.PathValue("word")).Result(r.Context())
		if err != nil {
			writeJSONTo(w, http.StatusBadGateway, map[string]string{"error": err.Error()})
			return
		}
		fmt.Fprint(w, s)
	})
	mux.HandleFunc("GET /ndjson", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		for i := range 3 {
			fmt.Fprintf(w, "{\"n\":%d}\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(300 * time.Millisecond)
		}
	})
	mux.HandleFunc("GET /sse", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 2 {
			fmt.Fprintf(w, "event: tick\ndata: %d\n\n", i)
			_ = http.NewResponseController(w).Flush()
		}
	})
	mux.HandleFunc("/panic", func(http.ResponseWriter, *http.Request) { panic("the web front door broke") })
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // the deadline the caller set
		w.WriteHeader(http.StatusOK)
	})
	return mux
})

func webApp() *serve.Application {
	return serve.MustApp("web", "/web", webD.Bind(upper.Bind("t")))
}

func writeJSONTo(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func do(t *testing.T, method, target string, body string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// An application whose ingress is an HTTP ingress gets the whole request
// and answers the whole response; the others keep the plain call.
func TestHTTPIngress(t *testing.T) {
	t.Parallel()
	base := url("/web")
	resp, body := do(t, "GET", base+"/items/42?x=1&x=2&teapot=1", "", http.Header{
		"X-Tenant": {"acme"}, "Accept": {"a/b", "c/d"}, "Connection": {"X-Private"}, "X-Private": {"hop"},
	})
	var got struct {
		ID, Query, Tenant, Connection, Private string
		Accept                                 []string
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("GET item: %d %s", resp.StatusCode, body)
	}
	if resp.StatusCode != http.StatusTeapot || got.ID != "42" || got.Query != "x=1&x=2&teapot=1" || got.Tenant != "acme" ||
		strings.Join(got.Accept, ",") != "a/b,c/d" || got.Connection != "" || got.Private != "" {
		t.Fatalf("GET item: %d %+v", resp.StatusCode, got)
	}
	if resp.Header.Get("X-Item") != "42" || strings.Join(resp.Header.Values("Set-Cookie"), ";") != "a=1;b=2" || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET item headers: %v", resp.Header)
	}

	resp, body = do(t, "POST", base+"/items", "hello", http.Header{"Content-Type": {"text/plain"}})
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Location") != "/web/items/7" || !strings.Contains(body, `"body":"hello"`) || !strings.Contains(body, `"content_type":"text/plain"`) {
		t.Fatalf("POST: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	if resp, body = do(t, "DELETE", base+"/items", "", nil); resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(resp.Header.Get("Allow"), "POST") {
		t.Fatalf("DELETE (the mux's own 405): %d %v %s", resp.StatusCode, resp.Header, body)
	}
	if resp, _ = do(t, "GET", base+"/nowhere", "", nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown path: %d", resp.StatusCode)
	}
	if resp, body = do(t, "GET", base+"/tag/dora", "", nil); resp.StatusCode != 200 || body != "t[dora]" {
		t.Fatalf("a handle call: %d %s", resp.StatusCode, body)
	}

	// Streams: raw, as written, each flush reaching the client at once.
	start := time.Now()
	r, err := http.Get(base + "/ndjson")
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(r.Body).ReadString('\n')
	first := time.Since(start)
	rest, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil || line != "{\"n\":0}\n" || string(rest) != "{\"n\":1}\n{\"n\":2}\n" || r.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("ndjson: %q %q %v %v", line, rest, r.Header, err)
	}
	if total := time.Since(start); first > total/2 {
		t.Fatalf("the first line came after %v of %v: not flushed as written", first, total)
	}
	if resp, body = do(t, "GET", base+"/sse", "", nil); resp.Header.Get("Content-Type") != "text/event-stream" || body != "event: tick\ndata: 0\n\nevent: tick\ndata: 1\n\n" {
		t.Fatalf("sse: %v %q", resp.Header, body)
	}

	// Platform errors are the gateway's JSON errors, as on every route.
	if resp, body = do(t, "GET", base+"/panic", "", nil); resp.StatusCode != 500 || !strings.Contains(body, "the web front door broke") || !strings.Contains(body, `"code":"internal"`) {
		t.Fatalf("panic: %d %s", resp.StatusCode, body)
	}
	if resp, body = do(t, "GET", base+"/slow?timeout=300ms", "", nil); resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(body, "deadline_exceeded") {
		t.Fatalf("past the deadline: %d %s", resp.StatusCode, body)
	}
	// A caller that does not speak HTTP (Predict) is told what is missing.
	if code, body := postTo(t, plat.Addr, "/sluice/v1/predict/web", `{"payload":"eA=="}`); code != 400 || !strings.Contains(body, "sl-http-method") {
		t.Fatalf("Predict to an HTTP ingress: %d %s", code, body)
	}
	// A plain application keeps today's behaviour.
	if resp, body = do(t, "GET", url("/hello"), "", nil); resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST, PUT" {
		t.Fatalf("GET on a plain application: %d %s", resp.StatusCode, body)
	}
}

// predict is examples/predict, a module of its own.
var predict = &goProgram{name: "predict", pkg: ".", dir: "../examples/predict"}

// examples/predict on `sluice dev` (bundle replicas as processes).
func TestPredictExampleDev(t *testing.T) {
	t.Parallel()
	testPredictExample(t, startDevProcess(t))
}

// examples/predict on `sluice node` + `sluice gateway`, replicas as
// processes; nodes fetch bundles and weights from S3.
func TestPredictExampleNode(t *testing.T) {
	s3 := nodeS3(t)
	t.Parallel()
	n := startS3Node(t, s3, "predict-"+streams.Instance())
	testPredictExample(t, platformUnderTest{bin: n.bin, addr: n.addr, logs: n.stderr.String})
}

// testPredictExample pushes examples/predict as a bundle and a model, and
// deploys examples/predict/app.yaml as written (its names made unique):
// GET describes the model, POST infers, a version published afterwards
// answers without a redeploy, unknown models and versions are 404 JSON,
// and a plain application beside it still refuses GET with 405.
func testPredictExample(t *testing.T, p platformUnderTest) {
	id := streams.Instance()[:6]
	app, model, label := "pr"+id, "line"+id, "p"+id
	p.cli(t, "code", "push", "predict", predict.binary(t), "--alias", "production")
	p.cli(t, "models", "push", model, "../examples/models/affine-v1", "--label", "demo="+label)
	b, err := os.ReadFile("../examples/predict/app.yaml")
	if err != nil {
		t.Fatal(err)
	}
	yaml := strings.NewReplacer("name: predict", "name: "+app, "route_prefix: /predict", "route_prefix: /"+app,
		"http://127.0.0.1:8000", "http://"+p.addr, "demo: predict", "demo: "+label).Replace(string(b))
	p.cli(t, "deploy", "-f", writeFile(t, "predict.yaml", yaml))
	base := "http://" + p.addr + "/" + app

	resp, body := do(t, "GET", base+"/"+model, "", nil)
	var described struct {
		Model    string `json:"model"`
		Versions []struct {
			Version string `json:"version"`
			Inputs  []struct {
				Name  string  `json:"name"`
				Shape []int64 `json:"shape"` // numbers, not protobuf JSON's strings
			} `json:"inputs"`
			Outputs []json.RawMessage `json:"outputs"`
		} `json:"versions"`
	}
	if err := json.Unmarshal([]byte(body), &described); err != nil || resp.StatusCode != 200 || described.Model != model ||
		len(described.Versions) != 1 || len(described.Versions[0].Inputs) != 1 || len(described.Versions[0].Outputs) != 1 ||
		described.Versions[0].Inputs[0].Name != "x" || len(described.Versions[0].Inputs[0].Shape) != 2 {
		t.Fatalf("describe: %d %s\nlogs:\n%s", resp.StatusCode, body, p.logs())
	}
	infer := func(version string) (int, float32, string) {
		resp, body := do(t, "POST", base+"/"+model+"/"+version, `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,1],"data":[3]}]}`, nil)
		var out struct {
			Outputs []struct {
				Data []float32 `json:"data"`
			} `json:"outputs"`
		}
		if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &out) != nil || len(out.Outputs) != 1 || len(out.Outputs[0].Data) != 1 {
			return resp.StatusCode, 0, body
		}
		return resp.StatusCode, out.Outputs[0].Data[0], body
	}
	if code, y, body := infer("1"); code != 200 || y != 7 {
		t.Fatalf("infer v1: %d %s\nlogs:\n%s", code, body, p.logs())
	}
	p.cli(t, "models", "push", model, "../examples/models/affine-v2", "--label", "demo="+label)
	eventually(t, "version 2 answering without a redeploy", func() bool {
		code, y, _ := infer("2")
		return code == 200 && y == 10
	})
	for _, target := range []string{"/nope" + id, "/" + model + "/9"} {
		method := map[bool]string{true: "GET", false: "POST"}[strings.HasPrefix(target, "/nope")]
		resp, body := do(t, method, base+target, `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,1],"data":[3]}]}`, nil)
		var e struct{ Error string }
		if resp.StatusCode != 404 || resp.Header.Get("Content-Type") != "application/json" || json.Unmarshal([]byte(body), &e) != nil || e.Error == "" {
			t.Fatalf("%s %s: %d %s", method, target, resp.StatusCode, body)
		}
	}
	plain := "pl" + id
	p.cli(t, "deploy", "-f", writeFile(t, "plain.yaml", rollYAML(plain, 1, "Times")))
	if resp, body := do(t, "GET", "http://"+p.addr+"/"+plain, "", nil); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET on a plain application: %d %s", resp.StatusCode, body)
	}
	if code, body := postTo(t, p.addr, "/"+plain, "5"); code != 200 || body != "12" {
		t.Fatalf("POST on a plain application: %d %s", code, body)
	}
}
