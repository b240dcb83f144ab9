package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-serve/sluice/streams"
)

// pythonForTests is python3 when it is 3.10 or later, else "".
func pythonForTests() string {
	py := os.Getenv("SLUICE_PYTHON")
	if py == "" {
		py = "python3"
	}
	if exec.Command(py, "-c", "import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)").Run() != nil {
		return ""
	}
	return py
}

// Python code as a bundle, run by the platform: `sluice deploy --python`
// pushes a project directory and deploys the application its import path
// binds; each deployment runs as `python -m sluice.replica` in an
// environment prepared once per content and SDK. The first deploy
// builds it (cold), a second application of the same project finds it.
func TestPythonBundleDev(t *testing.T) {
	needPython(t)
	t.Parallel()
	envs := "SLUICE_PYTHON_ENVS=" + t.TempDir()
	p := startDevProcessWith(t, nil, []string{envs})
	cli := func(args ...string) (string, error) {
		cmd := exec.Command(p.bin, append(args, "--addr", p.addr)...)
		cmd.Env = append(os.Environ(), envs)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, c := range []struct{ what, app string }{{"cold: the environment is built", "py" + streams.Instance()[:6]}, {"cached", "pz" + streams.Instance()[:6]}} {
		start := time.Now()
		out, err := cli("deploy", "--python", "testdata/pygreet", "--import-path", "greet:app", "--name", c.app, "--route-prefix", "/"+c.app, "--timeout", "4m")
		if err != nil {
			t.Fatalf("deploy --python (%s): %v\n%s\nlogs:\n%s", c.what, err, out, p.logs())
		}
		code, body := postTo(t, p.addr, "/"+c.app, `{"name":"ada"}`)
		if code != 200 || body != `{"greeting":"hello ADA"}` {
			t.Fatalf("%s: %d %q\nlogs:\n%s", c.what, code, body, p.logs())
		}
		t.Logf("time to first answer, %s: %s", c.what, time.Since(start).Round(100*time.Millisecond))
	}

	// An HTTP ingress (its __call__ takes a Request) gets the whole HTTP
	// request: method, the path below the route prefix, the body.
	web := "pw" + streams.Instance()[:6]
	if out, err := cli("deploy", "--python", "testdata/pygreet", "--import-path", "web:app", "--name", web); err != nil {
		t.Fatalf("deploy --python web:app: %v\n%s\nlogs:\n%s", err, out, p.logs())
	}
	if code, body := postTo(t, p.addr, "/"+web+"/x", `{"name":"dora"}`); code != 200 || body != "POST /x: hola DORA" {
		t.Fatalf("HTTP ingress: %d %q\nlogs:\n%s", code, body, p.logs())
	}

	// A new version of the project rolls the application: the new
	// replicas (a new environment) tell they are ready on SLUICE_READY_FD,
	// the old ones stop.
	dir := t.TempDir()
	for _, f := range []string{"greet.py", "requirements.txt"} {
		b, err := os.ReadFile(filepath.Join("testdata/pygreet", f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "greet.py" {
			b = []byte(strings.Replace(string(b), `"hello")`, `"howdy")`, 1))
		}
		writeAt(t, filepath.Join(dir, f), b)
	}
	rolled := "pr" + streams.Instance()[:6]
	for i, want := range []string{`{"greeting":"hello ADA"}`, `{"greeting":"howdy ADA"}`} {
		src := "testdata/pygreet"
		if i == 1 {
			src = dir
		}
		if out, err := cli("deploy", "--python", src, "--import-path", "greet:app", "--name", rolled, "--timeout", "4m"); err != nil {
			t.Fatalf("deploy --python %s: %v\n%s\nlogs:\n%s", src, err, out, p.logs())
		}
		if code, body := postTo(t, p.addr, "/"+rolled, `{"name":"ada"}`); code != 200 || body != want {
			t.Fatalf("version %d: %d %q, want %s\nlogs:\n%s", i+1, code, body, want, p.logs())
		}
	}

	// An import path that does not resolve is refused at deploy, naming
	// the exception and the last frame.
	out, err := cli("deploy", "--python", "testdata/pygreet", "--import-path", "broken:app", "--name", "pb"+streams.Instance()[:6])
	if err == nil || !strings.Contains(out, "AttributeError") || !strings.Contains(out, "broken.py:3") {
		t.Fatalf("deploy of a broken import path: %v\n%s", err, out)
	}
}

func writeAt(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// needPython skips t where the machine has no Python for the SDK.
func needPython(t *testing.T) {
	t.Helper()
	if pythonForTests() == "" {
		t.Skip("needs python3 >= 3.10 (or SLUICE_PYTHON) with pip and an index for confluent-kafka")
	}
}
