package e2e

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-serve/sluice/streams"
)

// The Python model pipeline example (examples/python/pipeline), run by
// the platform as a python-project bundle: an HTTP ingress whose
// endpoints /predict/{model}/{version} follow the model registry. The
// pipeline is the model name's; a version is loaded from the registry
// by the replica (`sluice models fetch`, which the platform gives it the
// means to run) the first time it is asked for, and a version published
// after the deploy answers at once, with no redeploy.
func TestPythonPipelineDev(t *testing.T) {
	needPython(t)
	t.Parallel()
	envs := "SLUICE_PYTHON_ENVS=" + t.TempDir()
	p := startDevProcessWith(t, nil, []string{envs})
	cli := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(p.bin, append(args, "--addr", p.addr)...)
		cmd.Env = append(os.Environ(), envs)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("sluice %s: %v\n%s\nlogs:\n%s", strings.Join(args, " "), err, out, p.logs())
		}
		return string(out)
	}
	// The example's pipelines serve the models "line" and "grade"; the
	// platform's registry is this dev process's own.
	cli("models", "push", "line", "../examples/models/affine-v1")
	app := "pp" + streams.Instance()[:6]
	cli("deploy", "--python", "../examples/python/pipeline", "--import-path", "app:app", "--name", app, "--route-prefix", "/predict", "--timeout", "4m")
	defer cli("delete", app)

	post := func(path, body string) (int, string) { return postTo(t, p.addr, path, body) }
	if code, body := post("/predict/line/1", `{"inputs":[[3],[0]]}`); code != 200 || body != `{"model":"line","version":"1","outputs":[{"y":7},{"y":1}]}` {
		t.Fatalf("line 1: %d %s\nlogs:\n%s", code, body, p.logs())
	}
	if code, body := post("/predict/line/2", `{"inputs":[[3]]}`); code != 404 || !strings.Contains(body, `model line has no version \"2\"`) {
		t.Fatalf("line 2 before it is published: %d %s, want 404 naming the version", code, body)
	}
	if code, body := getFrom(t, p.addr, "/predict/line"); code != 200 || !strings.Contains(body, `"versions":[{"version":"1","endpoint":"/predict/line/1"}]`) {
		t.Fatalf("GET /predict/line: %d %s", code, body)
	}

	// Version 2 published: its endpoint answers, with no redeploy.
	cli("models", "push", "line", "../examples/models/affine-v2")
	if code, body := post("/predict/line/2", `{"inputs":[[3]]}`); code != 200 || body != `{"model":"line","version":"2","outputs":[{"y":10}]}` {
		t.Fatalf("line 2 once published: %d %s\nlogs:\n%s", code, body, p.logs())
	}
	if code, body := getFrom(t, p.addr, "/predict/line"); code != 200 || !strings.Contains(body, `{"version":"2","endpoint":"/predict/line/2"}`) {
		t.Fatalf("GET /predict/line after version 2: %d %s", code, body)
	}
	// Version 1 still answers as itself beside version 2.
	if code, body := post("/predict/line/1", `{"inputs":[[3]]}`); code != 200 || body != `{"model":"line","version":"1","outputs":[{"y":7}]}` {
		t.Fatalf("line 1 after version 2: %d %s", code, body)
	}

	// Bad input: named, and the replica goes on.
	for _, c := range []struct {
		path, body string
		code       int
		says       string
	}{
		{"/predict/nope/1", `{"inputs":[[3]]}`, 404, "no pipeline for model nope"},
		{"/predict/grade/1", `{"inputs":[[3]]}`, 404, `no model \"grade\"`},
		{"/predict/line/1", `{"inputs":[[3,4]]}`, 400, "input 0 has 2 values, model line takes 1"},
		{"/predict/line/1", `not json`, 400, "the body is not"},
		{"/predict/line/-1", `{"inputs":[[3]]}`, 400, "model id 'line@-1'"},
	} {
		if code, body := post(c.path, c.body); code != c.code || !strings.Contains(body, c.says) {
			t.Errorf("POST %s %s: %d %s, want %d saying %s", c.path, c.body, code, body, c.code, c.says)
		}
	}
	if code, body := post("/predict/line/2", `{"inputs":[[1]]}`); code != 200 || !strings.Contains(body, `{"y":4}`) {
		t.Fatalf("after bad input: %d %s", code, body)
	}

	// kill -9 of the replica: the next request waits for the platform's
	// new replica, which loads the version again from the registry, and
	// is answered; none fails.
	out, err := exec.Command("pgrep", "-f", "--", "sluice.replica .*--app "+app+" ").Output()
	pids := strings.Fields(string(out))
	if err != nil || len(pids) != 1 {
		t.Fatalf("the replica's process: %q, %v", out, err)
	}
	pid, _ := strconv.Atoi(pids[0])
	start := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code, body := post("/predict/line/2", `{"inputs":[[2]]}`); code != 200 || !strings.Contains(body, `{"y":7}`) {
		t.Fatalf("the request after kill -9: %d %s\nlogs:\n%s", code, body, p.logs())
	}
	t.Logf("answered %s after kill -9 of the replica", time.Since(start).Round(100*time.Millisecond))
}

func getFrom(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A registry model is named by the OIP path; serve_multiplexed_model_id
// naming the same model is accepted, naming another is 400 naming both
// (the header is for applications that multiplex models).
func TestMultiplexHeaderOnRegistryModel(t *testing.T) {
	t.Parallel()
	pushLinear(t, "e2e-mux-affine", 2, 1, "--label", "suite=mux")
	deployModels(t, "m-mux", "mux", "")
	body := `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,1],"data":[3]}]}`
	send := func(model string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, url("/v2/models/e2e-mux-affine/infer"), strings.NewReader(body))
		req.Header.Set("serve_multiplexed_model_id", model)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, out := send("e2e-mux-affine"); code != 200 || !strings.Contains(out, `"data":[7]`) {
		t.Fatalf("the header naming the path's model: %d %s", code, out)
	}
	if code, out := send("other"); code != 400 || !strings.Contains(out, `serve_multiplexed_model_id \"other\"`) || !strings.Contains(out, "e2e-mux-affine is a registry model") {
		t.Fatalf("the header naming another model: %d %s", code, out)
	}
}
