package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-serve/sluice/registry/blob"
	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/claim"
)

// Ray Serve's API on the platform, with the Python deployments as
// replica processes of `sluice dev`: deployment options flow through the
// manifest into the deployed spec, an option Sluice has no meaning for
// is refused at deploy (exit 2), methods and streams go through handles
// (sl-method), reconfigure gets the spec's user_config, @serve.batch
// forms batches under concurrent load, an exception reaches the caller
// and the replica goes on. Then one graph mixes Go and Python: a Go
// deployment calls a Python one through a handle, which calls a Go one
// by name, and a YAML edge runs from Go to Python; a class no graph
// binds is constructed with the spec's args.
func TestPythonServeAPIDev(t *testing.T) {
	needPython(t)
	t.Parallel()
	envs := "SLUICE_PYTHON_ENVS=" + t.TempDir()
	blobs := t.TempDir()
	p := startDevProcessWith(t, []string{"--blob-dir", blobs}, []string{envs}) // the last --blob-dir counts
	testPythonServeAPI(t, p, envs, dirClaims(blobs))
}

// The same on the production topology: `sluice gateway` + `sluice node`
// with the replicas as processes the node places, the bundles in the
// real tier's MinIO.
func TestPythonServeAPINode(t *testing.T) {
	needPython(t)
	s3 := nodeS3(t)
	t.Parallel()
	envs := "SLUICE_PYTHON_ENVS=" + t.TempDir()
	prefix := "pyapi-" + streams.Instance()
	n := startS3Node(t, s3, prefix, envs)
	store, err := blob.NewS3(context.Background(), s3Config(prefix), testLog)
	if err != nil {
		t.Fatal(err)
	}
	testPythonServeAPI(t, platformUnderTest{bin: n.bin, addr: n.addr, logs: n.stderr.String}, envs, func() []string {
		infos, err := store.List(context.Background(), claim.DefaultPrefix)
		if err != nil {
			return []string{err.Error()}
		}
		keys := make([]string, len(infos))
		for i, in := range infos {
			keys[i] = in.Key
		}
		return keys
	})
}

func testPythonServeAPI(t *testing.T, p platformUnderTest, envs string, claimsLeft func() []string) {
	cli := func(args ...string) (string, error) {
		cmd := exec.Command(p.bin, append(args, "--addr", p.addr)...)
		cmd.Env = append(os.Environ(), envs)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	// A Ray option Sluice has no meaning for: refused at deploy, naming
	// it and what to use instead, exit 2.
	out, err := cli("deploy", "--python", "testdata/pyapi", "--import-path", "ray_only:app", "--name", "pq"+streams.Instance()[:6], "--timeout", "4m")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(out, "max_queued_requests is not supported") ||
		!strings.Contains(out, "autoscaling_config") || !strings.Contains(out, "ray_only.py:6") {
		t.Fatalf("deploy of a Ray-only option: %v\n%s", err, out)
	}

	app := "pa" + streams.Instance()[:6]
	if out, err := cli("deploy", "--python", "testdata/pyapi", "--import-path", "api:app", "--name", app, "--timeout", "4m"); err != nil {
		t.Fatalf("deploy --python api:app: %v\n%s\nlogs:\n%s", err, out, p.logs())
	}
	// The options are the deployed spec's: the autoscaler sizes Greeter
	// between its autoscaling_config's bounds.
	resp, err := http.Get("http://" + p.addr + "/sluice/v1/apps/" + app)
	if err != nil {
		t.Fatal(err)
	}
	status, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var st struct {
		Deployments []struct {
			Name       string `json:"name"`
			Autoscaler struct {
				Min int `json:"min_replicas"`
				Max int `json:"max_replicas"`
			} `json:"autoscaler"`
		} `json:"deployments"`
	}
	if err := json.Unmarshal(status, &st); err != nil {
		t.Fatalf("status: %v\n%s", err, status)
	}
	sized := false
	for _, d := range st.Deployments {
		sized = sized || d.Name == "Greeter" && d.Autoscaler.Min == 1 && d.Autoscaler.Max == 2
	}
	if !sized {
		t.Errorf("the deployed Greeter is not sized 1 to 2 replicas:\n%s", status)
	}

	call := func(body string) (int, string) {
		t.Helper()
		return postTo(t, p.addr, "/"+app, body)
	}
	for _, c := range []struct{ body, want string }{
		{`{"op":"call","name":"ada"}`, `howdy ada`}, // reconfigure took user_config
		{`{"op":"hello","name":"ada"}`, `howdy, ada, from say_hello`},
		{`{"op":"count","n":4}`, `[0,1,2,3]`},
		{`{"op":"chain","name":"ada"}`, `howdy howdy ada (forwarded)`},
		{`{"op":"args","first":"ada","last":"lovelace"}`, `howdy, ada howdy lovelace!`},
	} {
		if code, body := call(c.body); code != 200 || body != c.want {
			t.Fatalf("%s: %d %s, want %s\nlogs:\n%s", c.body, code, body, c.want, p.logs())
		}
	}
	// A tail call (`return await handle.remote(x)`) is handed over: the
	// callee answers the gateway's reply topic, not Front's (a Python
	// caller's, sluice.reply.py-...); a call whose answer Front keeps
	// in a variable first is answered to Front.
	if code, body := call(`{"op":"tail"}`); code != 200 || !strings.Contains(body, ".reply.") || strings.Contains(body, ".reply.py-") {
		t.Errorf("tail call: %d %q, want the gateway's reply topic", code, body)
	}
	if code, body := call(`{"op":"kept"}`); code != 200 || !strings.Contains(body, ".reply.py-") {
		t.Errorf("awaited call: %d %q, want Front's reply topic", code, body)
	}
	// Sixteen calls at once form batches; one bad item fails its whole
	// batch, and only it.
	xs := make([]int, 16)
	for i := range xs {
		xs[i] = i + 1
	}
	xsJSON, _ := json.Marshal(xs)
	code, body := call(`{"op":"double","xs":` + string(xsJSON) + `}`)
	var got struct {
		Doubled []any `json:"doubled"`
		Sizes   []int `json:"sizes"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &got) != nil || len(got.Doubled) != 16 {
		t.Fatalf("double: %d %s", code, body)
	}
	for i, v := range got.Doubled {
		if f, ok := v.(float64); !ok || int(f) != 2*(i+1) {
			t.Fatalf("double: item %d is %v, want %d: %s", i, v, 2*(i+1), body)
		}
	}
	if largest(got.Sizes) < 2 {
		t.Fatalf("no batch formed under 16 concurrent calls: sizes %v", got.Sizes)
	}
	code, body = call(`{"op":"double","xs":[1,2,-1]}`)
	if code != 200 || strings.Count(body, "a bad item among") != 3 {
		t.Fatalf("a batch with a bad item: %d %s, want each of its 3 callers failed", code, body)
	}
	// A handler that raises: the caller gets the exception's type and
	// message; the replica goes on.
	if code, body := call(`{"op":"boom"}`); code != 500 || !strings.Contains(body, "ValueError: no such greeting") {
		t.Fatalf("a raising method: %d %s", code, body)
	}
	if code, body := call(`{"op":"missing"}`); code != 400 || !strings.Contains(body, "has no method 'nope'") {
		t.Fatalf("a missing method: %d %s", code, body)
	}
	if code, body := call(`{"op":"call","name":"bo"}`); code != 200 || body != `howdy bo` {
		t.Fatalf("after the failures: %d %s", code, body)
	}

	// The spec's user_config is the one reconfigure gets; a new one
	// rolls the replica processes (a new revision).
	for _, greeting := range []string{"hi", "yo"} {
		yaml := "name: " + app + "u\nroute_prefix: /" + app + "u\ncode: " + app + "@1\ningress: Front\ndeployments:\n" +
			"  - {name: Front, handler: Front, args: [{handle: Greeter}]}\n" +
			"  - {name: Greeter, handler: Greeter, user_config: {greeting: " + greeting + "}}\n"
		if out, err := cli("deploy", "-f", writeFile(t, "u.yaml", yaml), "--timeout", "4m"); err != nil {
			t.Fatalf("deploy with user_config %s: %v\n%s\nlogs:\n%s", greeting, err, out, p.logs())
		}
		if code, body := postTo(t, p.addr, "/"+app+"u", `{"op":"call","name":"cy"}`); code != 200 || body != greeting+" cy" {
			t.Fatalf("user_config {greeting: %s}: %d %s", greeting, code, body)
		}
	}

	// A health check that fails: the replica process stops (not ready,
	// drained, exit 3 naming the failure) and the platform starts
	// another; a request sent meanwhile waits in Kafka and is answered.
	hb := "ph" + streams.Instance()[:6]
	if out, err := cli("code", "push", hb, "testdata/pyapi", "--import-path", "health:app"); err != nil {
		t.Fatalf("code push: %v\n%s", err, out)
	}
	marker := filepath.Join(t.TempDir(), "sick")
	hyaml := "name: " + hb + "\nroute_prefix: /" + hb + "\ncode: " + hb + "@1\ningress: Patient\ndeployments:\n" +
		"  - {name: Patient, handler: Patient, user_config: {marker: " + marker + "}}\n"
	if out, err := cli("deploy", "-f", writeFile(t, "h.yaml", hyaml), "--timeout", "4m"); err != nil {
		t.Fatalf("deploy health: %v\n%s\nlogs:\n%s", err, out, p.logs())
	}
	code, first := postTo(t, p.addr, "/"+hb, `0`)
	if code != 200 {
		t.Fatalf("health app: %d %s", code, first)
	}
	writeAt(t, marker, nil)
	sick := time.Now()
	deadline := time.Now().Add(90 * time.Second)
	var second string
	for time.Now().Before(deadline) {
		code, body := postTo(t, p.addr, "/"+hb, `0`)
		if code != 200 {
			t.Fatalf("while the replica restarts: %d %s\nlogs:\n%s", code, body, p.logs())
		}
		if body != first {
			second = body
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if second == "" || !strings.Contains(p.logs(), "check_health raised RuntimeError: the marker says sick") {
		t.Fatalf("no new replica process after a failed health check (pid %s, then %s)\nlogs:\n%s", first, second, p.logs())
	}
	t.Logf("a failed health check: a new replica process answered %s after the marker", time.Since(sick).Round(100*time.Millisecond))
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatalf("the marker is still there: %v", err)
	}

	// kill -9 of the replica process: the platform starts another, and a
	// request sent right after the kill is answered by it.
	pid, err := strconv.Atoi(second)
	if err != nil {
		t.Fatalf("health app answered %q, want its pid", second)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", pid, err)
	}
	killed := time.Now()
	if code, third := postTo(t, p.addr, "/"+hb, `0`); code != 200 || third == second {
		t.Fatalf("after kill -9 of %s: %d %s\nlogs:\n%s", second, code, third, p.logs())
	}
	t.Logf("kill -9 of a Python replica process: the request sent after it answered in %s", time.Since(killed).Round(100*time.Millisecond))

	// One graph, two languages.
	bundle := "pm" + streams.Instance()[:6]
	if out, err := cli("code", "push", bundle, "testdata/pyapi", "--import-path", "mix:app"); err != nil {
		t.Fatalf("code push: %v\n%s", err, out)
	}
	mixed := "mx" + streams.Instance()[:6]
	yaml := "name: " + mixed + "\nroute_prefix: /" + mixed + "\ningress: Ingress\ndeployments:\n" +
		"  - {name: Ingress, handler: Ingress, args: [{handle: AddOne}, {handle: Multiplier}]}\n" +
		"  - {name: AddOne, handler: AddOne, code: " + bundle + "@1, args: [{handle: Multiplier}]}\n" +
		"  - {name: Multiplier, handler: Multiplier, args: [3]}\n" +
		"  - {name: Tail, handler: Tail, code: " + bundle + "@1}\n" +
		"edges:\n  - {from: Ingress, to: Tail}\n"
	if out, err := cli("deploy", "-f", writeFile(t, "mixed.yaml", yaml), "--timeout", "4m"); err != nil {
		t.Fatalf("deploy the mixed graph: %v\n%s\nlogs:\n%s", err, out, p.logs())
	}
	// Ingress(1) = Multiplier(AddOne(1)), AddOne(x) = Multiplier(x+1):
	// 3 * (3 * 2) = 18, which the edge takes to Tail.
	if code, body := postTo(t, p.addr, "/"+mixed, `1`); code != 200 || body != `{"result":18,"by":"python"}` {
		t.Fatalf("the mixed graph: %d %s\nlogs:\n%s", code, body, p.logs())
	}
	// A class the module's graph does not bind, constructed with the
	// spec's args: a handle (to Python, then to Go) and a value, or the
	// default. Outer(2) = 5 * Inner(2) = 5 * 2 * Multiplier(2) = 60.
	scaled := "sc" + streams.Instance()[:6]
	yaml = "name: " + scaled + "\nroute_prefix: /" + scaled + "\ningress: Outer\ndeployments:\n" +
		"  - {name: Outer, handler: Scaled, code: " + bundle + "@1, args: [{handle: Inner}, 5]}\n" +
		"  - {name: Inner, handler: Scaled, code: " + bundle + "@1, args: [{handle: Multiplier}]}\n" +
		"  - {name: Multiplier, handler: Multiplier, args: [3]}\n"
	if out, err := cli("deploy", "-f", writeFile(t, "scaled.yaml", yaml), "--timeout", "4m"); err != nil {
		t.Fatalf("deploy the spec-bound graph: %v\n%s\nlogs:\n%s", err, out, p.logs())
	}
	if code, body := postTo(t, p.addr, "/"+scaled, `2`); code != 200 || body != "60" {
		t.Fatalf("the spec-bound graph: %d %s\nlogs:\n%s", code, body, p.logs())
	}
	bad := strings.Replace(yaml, "args: [{handle: Inner}, 5]", "args: [{handle: Inner}, 5, 6]", 1)
	if out, err := cli("deploy", "-f", writeFile(t, "scaled-bad.yaml", bad), "--timeout", "4m"); err == nil ||
		!strings.Contains(out, "/Scaled takes 1 to 2 arguments, got 3") {
		t.Fatalf("a spec-bound class given too many arguments: %v\n%s", err, out)
	}
	bad = strings.Replace(yaml, "args: [{handle: Inner}, 5]", `args: [{handle: Inner}, "five"]`, 1)
	if out, err := cli("deploy", "-f", writeFile(t, "scaled-str.yaml", bad), "--timeout", "4m"); err == nil ||
		!strings.Contains(out, `value "five" does not fit parameter type int`) {
		t.Fatalf("a string for Scaled's factor: int: %v\n%s", err, out)
	}

	// Values over the claim threshold through Python and Go: a 2 MiB
	// request to Python's Big (the gateway's claim), its handle call to
	// Go's Noop and the answer (the Python caller's claims), Big's
	// output down an edge to Go's Echo (a replica's claim), Echo's answer.
	large := "lg" + streams.Instance()[:6]
	if out, err := cli("code", "push", large, "testdata/pyapi", "--import-path", "large:app"); err != nil {
		t.Fatalf("code push: %v\n%s", err, out)
	}
	yaml = "name: " + large + "\nroute_prefix: /" + large + "\ningress: Big\ndeployments:\n" +
		"  - {name: Big, handler: Big, code: " + large + "@1, args: [{handle: Noop}]}\n" +
		"  - {name: Noop, handler: Noop}\n" +
		"  - {name: Echo, handler: Noop}\n" +
		"edges:\n  - {from: Big, to: Echo}\n"
	if out, err := cli("deploy", "-f", writeFile(t, "large.yaml", yaml), "--timeout", "4m"); err != nil {
		t.Fatalf("deploy the large graph: %v\n%s\nlogs:\n%s", err, out, p.logs())
	}
	payload := make([]byte, 2<<20)
	for i := range payload {
		payload[i] = 'a' + byte(i%26)
	}
	reversed := slices.Clone(payload)
	slices.Reverse(reversed)
	start := time.Now()
	code, body = postTo(t, p.addr, "/"+large, `"`+string(payload)+`"`)
	if want := `{"data":"` + string(reversed) + `"}`; code != 200 || body != want {
		t.Fatalf("2 MiB through Python and Go: %d, %d bytes (%.80q...), want the %d bytes reversed\nlogs:\n%s", code, len(body), body, len(want), tail(p.logs(), 4000))
	}
	t.Logf("2 MiB request and answer through Python and Go deployments: %s", time.Since(start).Round(time.Millisecond))
	if claimsLeft != nil {
		// Every claim of the call was answered: each deleted by its reader
		// or its caller (in the directory of sluice dev, or MinIO).
		deadline := time.Now().Add(30 * time.Second)
		for left := claimsLeft(); len(left) > 0; left = claimsLeft() {
			if time.Now().After(deadline) {
				t.Fatalf("claims left 30 s after the answer: %v", left)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// tail is the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// dirClaims lists the claim objects under a directory store's root.
func dirClaims(root string) func() []string {
	return func() []string {
		var keys []string
		_ = filepath.WalkDir(filepath.Join(root, "claims"), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && !strings.HasSuffix(p, ".sha256") && !strings.HasPrefix(d.Name(), ".") {
				keys = append(keys, p)
			}
			return nil
		})
		return keys
	}
}

func largest(xs []int) int {
	m := 0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}
