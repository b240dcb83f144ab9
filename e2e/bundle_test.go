package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-serve/sluice/streams"
)

var (
	greeterOnce sync.Once
	greeterBins map[string]string // greeting → binary
	greeterErr  error
)

// greeterBinaries builds examples/greeter, a module of its own that links
// the SDK, twice: greetings "Hello" and "Howdy" are two versions.
func greeterBinaries(t testing.TB) map[string]string {
	t.Helper()
	greeterOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sluice-e2e-greeter-")
		if err != nil {
			greeterErr = err
			return
		}
		greeterBins = map[string]string{}
		crasher := filepath.Join(dir, "crasher")
		if out, err := exec.Command("go", "build", "-o", crasher, "./testdata/crasher").CombinedOutput(); err != nil {
			greeterErr = fmt.Errorf("build testdata/crasher: %v\n%s", err, out)
			return
		}
		greeterBins["crasher"] = crasher
		for _, g := range []string{"Hello", "Howdy"} {
			bin := filepath.Join(dir, "greeter-"+g)
			cmd := exec.Command("go", "build", "-ldflags", "-X main.greeting="+g, "-o", bin, ".")
			cmd.Dir = "../examples/greeter"
			if out, err := cmd.CombinedOutput(); err != nil {
				greeterErr = fmt.Errorf("build examples/greeter: %v\n%s", err, out)
				return
			}
			greeterBins[g] = bin
		}
	})
	if greeterErr != nil {
		t.Fatal(greeterErr)
	}
	return greeterBins
}

// platformUnderTest is where a bundle test pushes, deploys and calls.
type platformUnderTest struct {
	bin, addr string
	logs      func() string
}

func (p platformUnderTest) cli(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(p.bin, append(args, "--addr", p.addr)...).CombinedOutput()
	if err != nil {
		t.Fatalf("sluice %s: %v\n%s\nlogs:\n%s", strings.Join(args, " "), err, out, p.logs())
	}
	return string(out)
}

// startDevProcess runs `sluice dev` as a process on the suite's brokers
// (embedded, or the real tier's Kafka) under a prefix of its own, with
// its registry in a local directory: bundle replicas are processes.
func startDevProcess(t *testing.T) platformUnderTest {
	t.Helper()
	return startDevProcessWith(t, nil, nil)
}

// startDevProcessWith is startDevProcess with more flags and environment.
func startDevProcessWith(t testing.TB, args, environ []string) platformUnderTest {
	t.Helper()
	bin := sluiceBinary(t)
	logs := &syncWriter{w: &strings.Builder{}}
	cmd := exec.Command(bin, append([]string{"dev", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0", "--brokers", strings.Join(plat.Brokers, ","),
		"--prefix", "d" + streams.Instance(), "--blob-dir", t.TempDir(), "--builtin"}, args...)...)
	cmd.Env = append(os.Environ(), environ...)
	cmd.Stderr = logs
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(40 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("sluice dev did not start: %v\n%s", err, logs.String())
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	addr := strings.TrimSuffix(strings.Fields(strings.SplitN(line, "http://", 2)[1])[0], ",")
	return platformUnderTest{bin: bin, addr: addr, logs: logs.String}
}

// User code as a published bundle, on `sluice dev` (bundle replicas as
// processes), and on `sluice node` + `sluice gateway` with the registry
// in the real tier's MinIO: the platform's own binary has no Greeter.
func TestCodeBundleDev(t *testing.T) {
	t.Parallel()
	p := startDevProcess(t)
	testCodeBundle(t, p)
	testRenderBundles(t, p)
	testLocalBinary(t, p)
}

// The dev loop: `code: ./path` runs a local binary without publishing
// it; rebuilding it and deploying again rolls to the new build.
func testLocalBinary(t *testing.T, p platformUnderTest) {
	bins := greeterBinaries(t)
	dir := t.TempDir()
	local := filepath.Join(dir, "greeter")
	copyBin := func(from string) {
		t.Helper()
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(local+".new", b, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(local+".new", local); err != nil {
			t.Fatal(err)
		}
	}
	app := "loc" + streams.Instance()[:6]
	b, err := os.ReadFile("../examples/greeter/app.yaml")
	if err != nil {
		t.Fatal(err)
	}
	yaml := strings.NewReplacer("name: greeter", "name: "+app, "route_prefix: /greeter", "route_prefix: /"+app, "code: greeter@production", "code: "+local).Replace(string(b))
	copyBin(bins["Hello"])
	p.cli(t, "deploy", "-f", writeFile(t, "l.yaml", yaml))
	if code, body := postTo(t, p.addr, "/"+app, "Lee"); code != 200 || body != "Hello, Lee!" {
		t.Fatalf("a local binary: %d %q", code, body)
	}
	copyBin(bins["Howdy"]) // rebuilt
	p.cli(t, "deploy", "-f", writeFile(t, "l2.yaml", yaml))
	if code, body := postTo(t, p.addr, "/"+app, "Lee"); code != 200 || body != "Howdy, Lee!" {
		t.Fatalf("the rebuilt local binary after deploy: %d %q", code, body)
	}
}

// sluice render --workloads resolves code: references through the
// platform: an image bundle's pods run its image with the replica
// command as arguments (its entrypoint is the bundle's binary), a
// go-binary bundle's run the stock image, which fetches the binary; each
// carries the revision its pin makes.
func testRenderBundles(t *testing.T, p platformUnderTest) {
	bins := greeterBinaries(t)
	manifest, err := exec.Command(bins["Hello"], "describe", "--json").Output()
	if err != nil {
		t.Fatal(err)
	}
	p.cli(t, "code", "push", "greeterimg", "ghcr.io/acme/greeter:1.2", "--format", "image", "--manifest", writeFile(t, "m.json", string(manifest)))
	b, err := os.ReadFile("../examples/greeter/app.yaml")
	if err != nil {
		t.Fatal(err)
	}
	yaml := strings.Replace(string(b), "code: greeter@production", "code: greeterimg", 1) + "    code: greeter@production\n"
	out := p.cli(t, "render", "--workloads", "-f", writeFile(t, "r.yaml", yaml), "--brokers", "b:9092")
	for _, want := range []string{"image: ghcr.io/acme/greeter:1.2", "args: [replica, --app, greeter, --deployment, Shouter", "--code-cache, /tmp/sluice/code]",
		"sluice.dev/revision:", "Code: bundle greeterimg@1, the image ghcr.io/acme/greeter:1.2"} {
		if !strings.Contains(out, want) {
			t.Fatalf("render lacks %q:\n%s", want, out)
		}
	}
	b2, err := exec.Command(p.bin, "render", "--workloads", "-f", writeFile(t, "r2.yaml", yaml), "--brokers", "b:9092").CombinedOutput()
	if err == nil || !strings.Contains(string(b2), "give --addr") {
		t.Fatalf("render of bundles without --addr: %v\n%s", err, b2)
	}
}

func TestCodeBundleNode(t *testing.T) {
	s3 := nodeS3(t)
	t.Parallel()
	n := startS3Node(t, s3, "bundles-"+streams.Instance())
	testCodeBundle(t, platformUnderTest{bin: n.bin, addr: n.addr, logs: n.stderr.String})
}

// testCodeBundle publishes greeter v1 as `greeter@production`, deploys
// two applications of it (the second starts from the node's cache) and
// the built-in-handler application beside them; then, under load on the
// first and on the neighbour, publishes v2, moves the alias and deploys
// again: the first rolls to v2 with no failed request and no v1 answer
// once deploy returned; the neighbour is untouched.
func testCodeBundle(t *testing.T, p platformUnderTest) {
	bins := greeterBinaries(t)
	app := "gr" + streams.Instance()[:6]
	spec := func(name string) string {
		b, err := os.ReadFile("../examples/greeter/app.yaml")
		if err != nil {
			t.Fatal(err)
		}
		return strings.NewReplacer("name: greeter", "name: "+name, "route_prefix: /greeter", "route_prefix: /"+name).Replace(string(b))
	}
	p.cli(t, "code", "push", "greeter", bins["Hello"], "--alias", "production")
	start := time.Now()
	p.cli(t, "deploy", "-f", writeFile(t, "a.yaml", spec(app)))
	cold := time.Since(start)
	if code, body := postTo(t, p.addr, "/"+app, "Dora"); code != 200 || body != "Hello, Dora!" {
		t.Fatalf("v1: %d %q\nlogs:\n%s", code, body, p.logs())
	}
	start = time.Now()
	p.cli(t, "deploy", "-f", writeFile(t, "b.yaml", spec(app+"b")))
	warm := time.Since(start)
	neighbour := "nb" + streams.Instance()[:6]
	p.cli(t, "deploy", "-f", writeFile(t, "n.yaml", rollYAML(neighbour, 1, "Times")))

	stop := make(chan struct{})
	waitApp := loadRun(t, p.addr, "/"+app, "Dora", 4, stop)
	waitNeighbour := loadRun(t, p.addr, "/"+neighbour, "5", 4, stop)
	time.Sleep(time.Second)
	p.cli(t, "code", "push", "greeter", bins["Howdy"], "--alias", "production")
	rollStart := time.Now()
	out := p.cli(t, "deploy", "-f", writeFile(t, "a2.yaml", spec(app)))
	returned := time.Now()
	time.Sleep(2 * time.Second)
	close(stop)
	answers, neighbours := waitApp(), waitNeighbour()

	var failed, oldAfter, v2 int
	var lastOld time.Time
	for _, a := range answers {
		switch {
		case a.code != 200:
			failed++
			t.Errorf("%s failed: %d %q", app, a.code, a.body)
		case a.body == "Hello, Dora!":
			if a.end.After(lastOld) {
				lastOld = a.end
			}
			if a.start.After(returned) {
				oldAfter++
			}
		case a.body == "Howdy, Dora!":
			v2++
		default:
			t.Errorf("unexpected answer %q", a.body)
		}
	}
	nfailed := 0
	for _, a := range neighbours {
		if a.code != 200 || a.body != "12" {
			nfailed++
		}
	}
	t.Logf("bundle roll under load: %d requests to %s (%d failed, %d new, last old answer %v after push+deploy began, %d old after deploy returned after %v); "+
		"%d to the neighbour (%d failed); deploy of a bundle not cached %v, cached %v",
		len(answers), app, failed, v2, lastOld.Sub(rollStart).Round(time.Millisecond), oldAfter, returned.Sub(rollStart).Round(time.Millisecond),
		len(neighbours), nfailed, cold.Round(time.Millisecond), warm.Round(time.Millisecond))
	// Each replica process logs how long getting its binary took: the
	// first of each version downloads it, the others find it cached.
	var fetches []string
	for _, line := range strings.Split(p.logs(), "\n") {
		if strings.Contains(line, `msg="running code bundle"`) {
			fetches = append(fetches, logField(line, "fetched_in"))
		}
	}
	t.Logf("bundle binary ready in each replica process, in start order (download when not cached, then cache hits): %v", fetches)
	if failed > 0 || oldAfter > 0 || v2 == 0 || nfailed > 0 {
		t.Fatalf("%d failed, %d old answers after deploy returned, %d new, %d neighbour failures\ndeploy:\n%s", failed, oldAfter, v2, nfailed, out)
	}
	if code, body := postTo(t, p.addr, "/"+app+"b", "Ann"); code != 200 || body != "Hello, Ann!" {
		t.Fatalf("the second application, not redeployed, still runs v1: %d %q", code, body)
	}

	// Bad input. A graph naming a handler the bundle does not have:
	// exit 2 with file:line, naming the bundle's handlers.
	bad := writeFile(t, "bad.yaml", strings.Replace(spec(app), "  - name: Greeter", "  - name: Greeter\n    handler: Nope", 1))
	b, err := exec.Command(p.bin, "deploy", "-f", bad, "--addr", p.addr).CombinedOutput()
	if code := exitCode(err); code != 2 || !strings.Contains(string(b), "bad.yaml:") || !strings.Contains(string(b), `unknown handler "Nope"`) ||
		!strings.Contains(string(b), "Greeter") {
		t.Fatalf("a handler the bundle lacks: exit %d\n%s", code, b)
	}
	// A version whose replicas die at start: the roll stops, v2 keeps
	// serving, and deploy exits non-zero with the replica's last words.
	p.cli(t, "code", "push", "greeter", bins["crasher"], "--alias", "production")
	b, err = exec.Command(p.bin, "deploy", "-f", writeFile(t, "a3.yaml", spec(app)), "--addr", p.addr, "--timeout", "90s").CombinedOutput()
	if err == nil || !strings.Contains(string(b), "out of memory") {
		t.Fatalf("deploy of a version whose replicas crash: %v\n%s\nlogs:\n%s", err, b, p.logs())
	}
	t.Logf("deploy of a crashing version: %s", strings.TrimSpace(string(b)[strings.LastIndex(strings.TrimSpace(string(b)), "\n")+1:]))
	if code, body := postTo(t, p.addr, "/"+app, "Dora"); code != 200 || body != "Howdy, Dora!" {
		t.Fatalf("after the failed roll: %d %q, want v2 still serving", code, body)
	}
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}
