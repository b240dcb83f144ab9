package e2e

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-serve/sluice/streams"
)

// pyPlatform is a platform under test with the environment its commands
// and processes share (SLUICE_PYTHON_ENVS).
type pyPlatform struct {
	platformUnderTest
	envs, prefix string
}

func (p pyPlatform) run(t *testing.T, dir string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SLUICE_PYTHON_ENVS="+p.envs, "SLUICE_ADDR="+p.addr, "SLUICE_BIN="+p.bin,
		"MODERATE_GPUS=0") // fastapi_offline's models on CPUs: this machine may have no GPU
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (p pyPlatform) deploy(t *testing.T, dir, importPath, name, prefix string) {
	t.Helper()
	if out, err := p.run(t, ".", p.bin, "deploy", "--python", dir, "--import-path", importPath, "--name", name,
		"--route-prefix", prefix, "--timeout", "4m", "--addr", p.addr); err != nil {
		t.Fatalf("deploy --python %s %s: %v\n%s\nlogs:\n%s", dir, importPath, err, out, p.logs())
	}
}

// The Python ports of the composition examples (examples/python) and a
// FastAPI ingress, deployed as python-project bundles, answer over the
// gateway: on a `sluice dev` process, and on `sluice node` + `sluice
// gateway` (replicas as processes, the registry in the real tier's MinIO).
func TestPythonExamples(t *testing.T) {
	if pythonForTests() == "" {
		t.Skip("needs python3 >= 3.10 (or SLUICE_PYTHON) with pip and an index for confluent-kafka and fastapi")
	}
	t.Parallel()
	t.Run("dev", func(t *testing.T) {
		t.Parallel()
		envs, prefix := t.TempDir(), "d"+streams.Instance()
		// --prefix again: the last one counts, and the offline check needs it.
		p := startDevProcessWith(t, []string{"--prefix", prefix}, []string{"SLUICE_PYTHON_ENVS=" + envs})
		testPythonExamples(t, pyPlatform{p, envs, prefix})
	})
	t.Run("node", func(t *testing.T) {
		s3 := nodeS3(t)
		t.Parallel()
		envs := t.TempDir()
		n := startS3Node(t, s3, "pyex-"+streams.Instance(), "SLUICE_PYTHON_ENVS="+envs)
		testPythonExamples(t, pyPlatform{platformUnderTest{bin: n.bin, addr: n.addr, logs: n.stderr.String}, envs, n.prefix})
	})
}

func testPythonExamples(t *testing.T, p pyPlatform) {
	id := streams.Instance()[:6]
	examples := "../examples/python"

	// A FastAPI app as the ingress: routes, methods, path and query
	// parameters, JSON, status codes, headers, a handle call, a stream.
	shop := "/shop" + id
	p.deploy(t, "testdata/pyfastapi", "shop:app", "shop"+id, shop)
	base := "http://" + p.addr + shop
	if resp, body := do(t, "GET", base+"/items/7?detail=true", "", nil); resp.StatusCode != 200 ||
		resp.Header.Get("Content-Type") != "application/json" || body != `{"id":7,"detail":true,"currency":"EUR"}` {
		t.Fatalf("GET /items/7: %d %q %q\nlogs:\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body, p.logs())
	}
	if resp, body := do(t, "GET", base+"/items/0", "", nil); resp.StatusCode != 404 || body != `{"detail":"no item 0"}` {
		t.Fatalf("GET /items/0: %d %q", resp.StatusCode, body)
	}
	if resp, body := do(t, "POST", base+"/items", `{"name":"pen","price":2.5}`, http.Header{"Content-Type": {"application/json"}}); resp.StatusCode != 201 ||
		resp.Header.Get("X-Item") != "pen" || body != `{"name":"pen","gross":3.0,"currency":"EUR"}` {
		t.Fatalf("POST /items: %d %v %q\nlogs:\n%s", resp.StatusCode, resp.Header, body, p.logs())
	}
	if resp, body := do(t, "POST", base+"/items", `{"name":"pen"}`, http.Header{"Content-Type": {"application/json"}}); resp.StatusCode != 422 ||
		!strings.Contains(body, "price") {
		t.Fatalf("POST /items without a price: %d %q", resp.StatusCode, body)
	}
	if resp, _ := do(t, "DELETE", base+"/items/7", "", nil); resp.StatusCode != 405 {
		t.Fatalf("DELETE /items/7: %d", resp.StatusCode)
	}
	first, total, body := streamTimes(t, base+"/count?n=4&pause=0.4")
	if body != "0\n1\n2\n3\n" || total-first < time.Second {
		t.Fatalf("GET /count: %q, first part after %s, end after %s (the parts were not sent as they came)\nlogs:\n%s", body, first, total, p.logs())
	}

	// hello.py: an HTTP ingress calling a greeter's method.
	p.deploy(t, examples, "hello:app", "pyhello"+id, "/py"+id+"/hello")
	for _, c := range []struct{ body, want string }{
		{`{"language":"spanish","name":"Dora"}`, "Hola Dora"},
		{`{"language":"english","name":"Dora"}`, "Hello Dora"},
	} {
		if code, got := postTo(t, p.addr, "/py"+id+"/hello", c.body); code != 200 || got != c.want {
			t.Errorf("hello %s: %d %q, want %q\nlogs:\n%s", c.body, code, got, c.want, p.logs())
		}
	}

	// chain.py over the gateway, and its own driver code: serve.run(app)
	// deploys it to the platform at SLUICE_ADDR, .result() calls it there.
	p.deploy(t, examples, "chain:app", "pychain"+id, "/py"+id+"/chain")
	if code, got := postTo(t, p.addr, "/py"+id+"/chain", "5"); code != 200 || got != "12" {
		t.Errorf("chain: %d %q, want 12\nlogs:\n%s", code, got, p.logs())
	}
	// As `curl -d 5` sends it (a form's content type): JSON text is JSON.
	if resp, got := do(t, "POST", "http://"+p.addr+"/py"+id+"/chain", "5", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}); resp.StatusCode != 200 || got != "12" {
		t.Errorf("chain, a form body: %d %q, want 12", resp.StatusCode, got)
	}
	py := examplesPython(t, p.envs)
	if out, err := p.run(t, examples, py, "chain.py"); err != nil || strings.TrimSpace(out) != "12" {
		t.Errorf("python chain.py against the platform: %v\n%s\nlogs:\n%s", err, out, p.logs())
	}

	// stream.py: the caller's items reach the HTTP client as they come.
	p.deploy(t, examples, "stream:app", "pystream"+id, "/py"+id+"/stream")
	first, total, body = streamTimes(t, "http://"+p.addr+"/py"+id+"/stream")
	var items []int
	for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
		var v int
		if json.Unmarshal([]byte(line), &v) == nil {
			items = append(items, v)
		}
	}
	if len(items) != 5 || items[0] != 0 || items[4] != 4 || total-first < 500*time.Millisecond {
		t.Errorf("stream: %q, first item after %s, end after %s\nlogs:\n%s", body, first, total, p.logs())
	}
	// Its driver: serve.run(app).options(stream=True), each item printed.
	if out, err := p.run(t, examples, py, "stream.py"); err != nil || strings.Join(strings.Fields(out), " ") != "0 1 2 3 4" {
		t.Errorf("python stream.py against the platform: %v\n%s\nlogs:\n%s", err, out, p.logs())
	}

	testFastAPIOffline(t, p, id)
}

// streamTimes POSTs 5 as `curl -d 5` does (GETs when the URL has a query) and returns when
// the first part of the body came, when the body ended, and the body.
func streamTimes(t *testing.T, url string) (first, total time.Duration, body string) {
	t.Helper()
	start := time.Now()
	var resp *http.Response
	var err error
	if strings.Contains(url, "?") {
		resp, err = http.Get(url)
	} else {
		resp, err = http.Post(url, "application/x-www-form-urlencoded", strings.NewReader("5")) // as curl -d 5
	}
	if err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		if n > 0 && first == 0 {
			first = time.Since(start)
		}
		b.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: read: %v", url, err)
		}
	}
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %d %q", url, resp.StatusCode, b.String())
	}
	return first, time.Since(start), b.String()
}

// examplesPython is the interpreter of the environment the platform
// prepared for examples/python: it has the SDK and its dependencies.
func examplesPython(t *testing.T, envs string) string {
	t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(envs, "python", "*", "project", "chain.py"))
	if len(dirs) == 0 {
		t.Fatalf("no environment of examples/python under %s", envs)
	}
	return filepath.Join(filepath.Dir(filepath.Dir(dirs[0])), "venv", "bin", "python")
}

// examples/python/fastapi_offline: the FastAPI ingress's /predict online,
// and offline.py producing the same HTTP requests to the application's
// ingress topic; both answer alike, through the same business logic.
func testFastAPIOffline(t *testing.T, p pyPlatform, id string) {
	dir := "../examples/python/fastapi_offline"
	app := "moderate" + id
	p.deploy(t, dir, "moderate:app", app, "/"+app)
	texts := map[string]string{"a lovely day": "publish", "what an awful sad film": "review", "you stupid idiot": "block"}
	online := map[string]string{}
	for text, action := range texts {
		resp, body := do(t, "POST", "http://"+p.addr+"/"+app+"/predict", `{"text":"`+text+`"}`, http.Header{"Content-Type": {"application/json"}})
		var got struct{ Action string }
		if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &got) != nil || got.Action != action {
			t.Fatalf("online %q: %d %s, want action %s\nlogs:\n%s", text, resp.StatusCode, body, action, p.logs())
		}
		online[text] = body
	}
	found, _ := filepath.Glob(filepath.Join(p.envs, "python", "*", "project", "moderate.py"))
	if len(found) == 0 {
		t.Fatalf("no environment of %s under %s", dir, p.envs)
	}
	py := filepath.Join(filepath.Dir(filepath.Dir(found[0])), "venv", "bin", "python")
	out, err := p.run(t, dir, py, "offline.py", "--brokers", strings.Join(plat.Brokers, ","), "--prefix", p.prefix, "--app", app, "texts.jsonl")
	if err != nil {
		t.Fatalf("offline.py: %v\n%s\nlogs:\n%s", err, out, p.logs())
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var rec struct {
			Status int
			Body   json.RawMessage
		}
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		var body struct{ Text string }
		if err := json.Unmarshal(rec.Body, &body); err != nil || rec.Status != 200 {
			t.Fatalf("offline answer %s", line)
		}
		if want := strings.TrimSpace(online[body.Text]); string(rec.Body) != want { // both compact JSON
			t.Errorf("offline %q: %s, online %s", body.Text, rec.Body, want)
		}
		n++
	}
	if n != len(texts) {
		t.Fatalf("offline.py: %d answers, want %d\n%s", n, len(texts), out)
	}
}
