// Package ui tests the gateway's dashboard (/ui) in a real headless
// Chromium, driven over the Chrome DevTools Protocol, against the
// platform `make run` starts (scripts/run.sh: sluice dev with its
// built-in examples, hello-cel, and the greeter and predict bundles),
// and against `sluice gateway` + `sluice node` on SLUICE_TEST_BROKERS.
// It needs a Chromium: scripts/chromium.sh finds or installs one
// (SLUICE_CHROMIUM overrides). `scripts/test.sh ui` runs it.
package ui

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// root is the repository's root directory.
func root(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// freeAddr is a loopback address nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// chromium is the browser's path, from scripts/chromium.sh.
func chromium(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(root(t), "scripts/chromium.sh")).Output()
	if err != nil {
		t.Fatalf("scripts/chromium.sh: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// start runs a command in its own process group until the test ends,
// and waits for a line of its output that contains ready (none when
// ready is ""), which it returns.
func start(t *testing.T, ready string, timeout time.Duration, cmd *exec.Cmd) string {
	t.Helper()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		pw.Close()
		close(done)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	found := make(chan string, 1)
	if ready == "" {
		go func() { _, _ = io.Copy(io.Discard, pr) }()
		return ""
	}
	var log strings.Builder
	var mu sync.Mutex
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<16), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			mu.Lock()
			log.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if strings.Contains(sc.Text(), ready) {
				once.Do(func() { found <- sc.Text() })
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case line := <-found:
		return line
	case <-done:
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("%s exited before %q:\n%s", cmd.Path, ready, log.String())
	case <-time.After(timeout):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("%s: no %q within %v:\n%s", cmd.Path, ready, timeout, log.String())
	}
	return ""
}

// browser is a headless Chromium tab, closed when the test ends.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(chromium(t)), chromedp.NoSandbox, chromedp.WindowSize(1400, 1000),
		chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Run(ctx); err != nil { // starts the browser
		t.Fatalf("chromium: %v", err)
	}
	return ctx
}

// drawn is what the page shows of one application.
type drawn struct {
	Nodes []string `json:"nodes"`
	Edges []string `json:"edges"` // "from->to"; ingress and output by those names
}

const readGraphs = `Object.fromEntries([...document.querySelectorAll("section.app")].map((s) => [s.dataset.app, {
  nodes: [...s.querySelectorAll("svg g.node")].map((g) => g.dataset.deployment).sort(),
  edges: [...s.querySelectorAll("svg path.edge")].map((p) => p.dataset.from + "->" + p.dataset.to).sort(),
}]))`

// cell is the text of a deployment's metric in its table row.
func cell(app, dep, metric string) string {
	return fmt.Sprintf(`(document.querySelector('tr[data-app=%q][data-deployment=%q] td[data-metric=%q]') || {}).textContent || ""`, app, dep, metric)
}

// nodeStat is the text of a deployment's metric on its graph node.
func nodeStat(app, dep, metric string) string {
	return fmt.Sprintf(`(document.querySelector('section.app[data-app=%q] svg g.node[data-deployment=%q] [data-metric=%q]') || {}).textContent || ""`, app, dep, metric)
}

func appStat(app, metric string) string {
	return fmt.Sprintf(`(document.querySelector('section.app[data-app=%q] [data-metric=%q]') || {}).textContent || ""`, app, metric)
}

// depMillis is the milliseconds of a node's "p99 ≤ 2.5 ms" (or "≤ 1 s");
// -1 when it shows no number.
func depMillis(s string) float64 {
	v, ok := strings.CutPrefix(s, "p99 ≤ ")
	if !ok {
		return -1
	}
	if n, ok := strings.CutSuffix(v, " ms"); ok {
		return number(n)
	}
	if n, ok := strings.CutSuffix(v, " s"); ok && number(n) >= 0 {
		return 1000 * number(n)
	}
	return -1
}

func number(s string) float64 {
	f, err := strconv.ParseFloat(strings.ReplaceAll(s, ",", ""), 64)
	if err != nil {
		return -1
	}
	return f
}

// The dashboard draws every application `make run` deploys as its
// graph, and its numbers move under load: a deployment's processed
// count, rate and handler p99 (on its graph node), and its
// application's call rate and p99.
func TestDashboard(t *testing.T) {
	addr := freeAddr(t)
	run := exec.Command(filepath.Join(root(t), "scripts/run.sh"))
	run.Dir = root(t)
	run.Env = append(os.Environ(), "HTTP_ADDR="+addr, "GRPC_ADDR="+freeAddr(t))
	start(t, "run: ready", 5*time.Minute, run)
	base := "http://" + addr

	// What the API says is deployed; the page must draw all of it.
	resp, err := http.Get(base + "/sluice/v1/ui/state")
	if err != nil {
		t.Fatal(err)
	}
	var state struct {
		Applications []struct {
			Name        string `json:"name"`
			Ingress     string `json:"ingress"`
			Deployments []struct {
				Name string `json:"name"`
			} `json:"deployments"`
			Graph struct {
				Edges []struct {
					From string `json:"from"`
					To   string `json:"to"`
				} `json:"edges"`
				Outputs []string `json:"outputs"`
			} `json:"graph"`
		} `json:"applications"`
	}
	err = json.NewDecoder(resp.Body).Decode(&state)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /sluice/v1/ui/state: %d %v", resp.StatusCode, err)
	}
	want := map[string]drawn{}
	for _, a := range state.Applications {
		d := drawn{Nodes: []string{}, Edges: []string{"ingress->" + a.Ingress}}
		for _, dep := range a.Deployments {
			d.Nodes = append(d.Nodes, dep.Name)
		}
		for _, e := range a.Graph.Edges {
			d.Edges = append(d.Edges, e.From+"->"+e.To)
		}
		for _, o := range a.Graph.Outputs {
			d.Edges = append(d.Edges, o+"->output")
		}
		slices.Sort(d.Nodes)
		slices.Sort(d.Edges)
		want[a.Name] = d
	}
	// The examples' graphs, known independently of the state above.
	for app, w := range map[string]drawn{
		"hello-cel": {Nodes: []string{"FrenchResponder", "LanguageClassifier", "SpanishResponder"}, Edges: []string{
			"FrenchResponder->output", "LanguageClassifier->FrenchResponder", "LanguageClassifier->SpanishResponder",
			"SpanishResponder->output", "ingress->LanguageClassifier"}},
		"greeter": {Nodes: []string{"Greeter", "Shouter"}, Edges: []string{"Shouter->Greeter", "Shouter->output", "ingress->Shouter"}},
		"predict": {Nodes: []string{"Predict", "models"}, Edges: []string{"Predict->models", "Predict->output", "ingress->Predict"}},
		"chain":   {Nodes: []string{"Adder", "Ingress", "Multiplier"}, Edges: []string{"Ingress->Adder", "Ingress->Multiplier", "Ingress->output", "ingress->Ingress"}},
	} {
		if !slices.Equal(want[app].Nodes, w.Nodes) || !slices.Equal(want[app].Edges, w.Edges) {
			t.Errorf("state of %s: %+v, want %+v", app, want[app], w)
		}
	}

	ctx := browser(t)
	tctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := chromedp.Run(tctx,
		chromedp.Navigate(base+"/ui"), // redirects to /ui/
		chromedp.WaitVisible(`section.app[data-app="hello-cel"] svg g.node`),
	); err != nil {
		t.Fatalf("open /ui: %v", err)
	}
	var got map[string]drawn
	if err := chromedp.Run(tctx, chromedp.Evaluate(readGraphs, &got)); err != nil {
		t.Fatal(err)
	}
	for app, w := range want {
		if g := got[app]; !slices.Equal(g.Nodes, w.Nodes) || !slices.Equal(g.Edges, w.Edges) {
			t.Errorf("page draws %s as %+v, want %+v", app, g, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("page draws %d applications, the state has %d", len(got), len(want))
	}

	// Load on five of the examples until the page shows it.
	var before string
	if err := chromedp.Run(tctx, chromedp.Evaluate(cell("greeter", "Shouter", "processed"), &before)); err != nil {
		t.Fatal(err)
	}
	loadCtx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var sent, failed sync.Map
	targets := []struct{ method, path, body string }{
		{"POST", "/greeter", "Dora"}, {"POST", "/hello-cel", `{"language":"spanish","name":"Ana"}`},
		{"POST", "/hello", `{"language":"french","name":"Luc"}`}, {"POST", "/chain", "5"}, {"GET", "/predict/line", ""},
	}
	for _, target := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, bad := 0, 0
			for loadCtx.Err() == nil {
				req, _ := http.NewRequest(target.method, base+target.path, strings.NewReader(target.body))
				r, err := http.DefaultClient.Do(req)
				if err != nil || r.StatusCode != http.StatusOK {
					bad++
				}
				if err == nil {
					_, _ = io.Copy(io.Discard, r.Body)
					r.Body.Close()
				}
				n++
				time.Sleep(50 * time.Millisecond)
			}
			sent.Store(target.path, n)
			failed.Store(target.path, bad)
		}()
	}
	var rate, processed, appRate, p99, depP99 string
	deadline := time.Now().Add(45 * time.Second)
	for {
		if err := chromedp.Run(tctx,
			chromedp.Evaluate(cell("greeter", "Shouter", "rate"), &rate),
			chromedp.Evaluate(cell("greeter", "Shouter", "processed"), &processed),
			chromedp.Evaluate(appStat("greeter", "app-rate"), &appRate),
			chromedp.Evaluate(appStat("greeter", "app-p99"), &p99),
			chromedp.Evaluate(nodeStat("greeter", "Shouter", "p99"), &depP99),
		); err != nil {
			t.Fatal(err)
		}
		if number(rate) > 0 && number(processed) > number(before) && number(appRate) > 0 && strings.HasPrefix(p99, "≤") && depMillis(depP99) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("under load the page shows greeter/Shouter rate %q processed %q (was %q) p99 %q, greeter calls/s %q p99 %q", rate, processed, before, depP99, appRate, p99)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("under load: greeter/Shouter %s req/s, processed %s (was %s), %s; greeter %s calls/s, p99 %s", rate, processed, before, depP99, appRate, p99)

	var shot []byte
	if err := chromedp.Run(tctx, chromedp.FullScreenshot(&shot, 100)); err != nil {
		t.Fatal(err)
	}
	stopLoad()
	wg.Wait()
	for _, target := range targets {
		p := target.path
		n, _ := sent.Load(p)
		bad, _ := failed.Load(p)
		if bad.(int) > 0 {
			t.Errorf("load on %s: %d of %d calls failed", p, bad, n)
		}
	}
	dir := os.Getenv("SLUICE_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(root(t), "bin", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "dashboard.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// With auth on, the page asks for a token once, keeps it for the tab
// and reads the state with it; a token without read is refused and the
// page says so.
func TestDashboardAuth(t *testing.T) {
	dir := t.TempDir()
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	tokens := filepath.Join(dir, "tokens.yaml")
	if err := os.WriteFile(tokens, []byte("tokens:\n"+
		"  - name: viewer\n    token_sha256: "+sum("tok-viewer")+"\n    scopes: [read]\n"+
		"  - name: caller\n    token_sha256: "+sum("tok-caller")+"\n    scopes: [infer]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := buildSluice(t)
	addr := freeAddr(t)
	start(t, "", 0, exec.Command(bin, "dev", "--http", addr, "--grpc", freeAddr(t), "--auth-file", tokens, "--data-dir", dir))
	waitHTTP(t, "http://"+addr+"/v2/health/ready")
	resp, err := http.Get("http://" + addr + "/sluice/v1/ui/state")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /sluice/v1/ui/state without a token: %d, want 401", resp.StatusCode)
	}

	ctx := browser(t)
	tctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var problem, live string
	if err := chromedp.Run(tctx,
		chromedp.Navigate("http://"+addr+"/ui/"),
		chromedp.WaitVisible(`#login`),
		chromedp.SendKeys(`#token`, "tok-caller"),
		chromedp.Click(`#login button`),
		chromedp.WaitVisible(`#login`),
		chromedp.Poll(`document.getElementById("login-error").textContent`, &problem),
	); err != nil {
		t.Fatalf("token form: %v", err)
	}
	if !strings.Contains(problem, "lacks scope read") {
		t.Errorf("with an infer token the page says %q, want the missing scope", problem)
	}
	if err := chromedp.Run(tctx,
		chromedp.SendKeys(`#token`, "tok-viewer"),
		chromedp.Click(`#login button`),
		chromedp.WaitNotVisible(`#login`),
		chromedp.Poll(`Number(document.body.dataset.polls || 0) >= 2`, nil),
		chromedp.Reload(), // the token is kept for the tab: no form again
		chromedp.Poll(`Number(document.body.dataset.polls || 0) >= 1`, nil),
		chromedp.Text(`#live`, &live),
	); err != nil {
		t.Fatalf("with a read token: %v", err)
	}
	var hidden bool
	if err := chromedp.Run(tctx, chromedp.Evaluate(`document.getElementById("login").hidden`, &hidden)); err != nil {
		t.Fatal(err)
	}
	if !hidden || !strings.HasPrefix(live, "live") {
		t.Errorf("after a reload with the kept token: form hidden %v, status %q", hidden, live)
	}
}

// waitHTTP waits until url answers 200.
func waitHTTP(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not ready within a minute (%v)", url, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// buildSluice builds the sluice binary of this checkout.
func buildSluice(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sluice")
	build := exec.Command("go", "build", "-o", bin, "./cmd/sluice")
	build.Dir = root(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// The production topology: `sluice gateway` and `sluice node` (replicas
// as processes) on one broker, SLUICE_TEST_BROKERS when set, else the
// embedded broker of a `sluice dev` that serves nothing itself. The page
// draws hello-cel deployed there, the node reporting, and the
// deployment's numbers moving under load.
func TestDashboardNode(t *testing.T) {
	bin := buildSluice(t)
	dir := t.TempDir()
	brokers := os.Getenv("SLUICE_TEST_BROKERS")
	if brokers == "" {
		devAddr := freeAddr(t)
		dev := exec.Command(bin, "dev", "--builtin=false", "--http", devAddr, "--grpc", freeAddr(t), "--data-dir", filepath.Join(dir, "dev"))
		line := start(t, "sluice dev: REST on", time.Minute, dev)
		_, list, _ := strings.Cut(line, "(brokers [")
		brokers = strings.ReplaceAll(strings.TrimSuffix(strings.TrimSpace(list), "])"), " ", ",")
	}
	prefix := fmt.Sprintf("ui%d", time.Now().UnixNano()%1e9)
	addr := freeAddr(t)
	start(t, "sluice gateway: REST on", time.Minute, exec.Command(bin, "gateway", "--brokers", brokers, "--prefix", prefix, "--http", addr, "--grpc", freeAddr(t)))
	start(t, "", 0, exec.Command(bin, "node", "--brokers", brokers, "--prefix", prefix, "--model-cache", filepath.Join(dir, "models")))
	base := "http://" + addr
	deploy := exec.Command(bin, "deploy", "-f", filepath.Join(root(t), "examples/hello-cel/hello-cel.yaml"), "--addr", addr)
	if out, err := deploy.CombinedOutput(); err != nil {
		t.Fatalf("sluice deploy: %v\n%s", err, out)
	}

	ctx := browser(t)
	tctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := chromedp.Run(tctx,
		chromedp.Navigate(base+"/ui/"),
		chromedp.WaitVisible(`section.app[data-app="hello-cel"] svg g.node`),
		chromedp.WaitVisible(`.node-card[data-node]`), // the node's report
	); err != nil {
		t.Fatalf("open /ui: %v", err)
	}
	var got map[string]drawn
	if err := chromedp.Run(tctx, chromedp.Evaluate(readGraphs, &got)); err != nil {
		t.Fatal(err)
	}
	want := drawn{Nodes: []string{"FrenchResponder", "LanguageClassifier", "SpanishResponder"}, Edges: []string{
		"FrenchResponder->output", "LanguageClassifier->FrenchResponder", "LanguageClassifier->SpanishResponder",
		"SpanishResponder->output", "ingress->LanguageClassifier"}}
	if g := got["hello-cel"]; len(got) != 1 || !slices.Equal(g.Nodes, want.Nodes) || !slices.Equal(g.Edges, want.Edges) {
		t.Errorf("page draws %+v, want hello-cel alone as %+v", got, want)
	}

	loadCtx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	var bad, sent int
	loaded := make(chan struct{})
	go func() {
		defer close(loaded)
		for loadCtx.Err() == nil {
			r, err := http.Post(base+"/hello-cel", "application/json", strings.NewReader(`{"language":"french","name":"Luc"}`))
			sent++
			if err != nil || r.StatusCode != http.StatusOK {
				bad++ // the replicas may still be starting: counted, reported below
			}
			if err == nil {
				_, _ = io.Copy(io.Discard, r.Body)
				r.Body.Close()
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	var rate, processed, replicas string
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if err := chromedp.Run(tctx,
			chromedp.Evaluate(cell("hello-cel", "FrenchResponder", "rate"), &rate),
			chromedp.Evaluate(cell("hello-cel", "FrenchResponder", "processed"), &processed),
			chromedp.Evaluate(`(document.querySelector('tr[data-app="hello-cel"][data-deployment="FrenchResponder"] td:nth-child(2)') || {}).textContent || ""`, &replicas),
		); err != nil {
			t.Fatal(err)
		}
		if number(rate) > 0 && number(processed) > 0 && replicas == "1/1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("under load the page shows hello-cel/FrenchResponder rate %q processed %q replicas %q", rate, processed, replicas)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("on sluice gateway + sluice node: FrenchResponder %s req/s, processed %s, replicas %s", rate, processed, replicas)

	// kill -9 of FrenchResponder's replica process under load: the node
	// starts another, whose counters begin at zero again; the page never
	// shows a negative rate, and shows the new process's traffic.
	started := replicaStarted(t, base, "hello-cel", "FrenchResponder")
	pid := replicaPID(t, prefix, "hello-cel", "FrenchResponder")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	var replaced time.Time
	deadline = killed.Add(2 * time.Minute)
	for {
		if err := chromedp.Run(tctx, chromedp.Evaluate(cell("hello-cel", "FrenchResponder", "rate"), &rate)); err != nil {
			t.Fatal(err)
		}
		if rate != "—" && number(rate) < 0 {
			t.Fatalf("after kill -9 the page shows FrenchResponder's rate %q", rate)
		}
		if replaced.IsZero() && replicaStarted(t, base, "hello-cel", "FrenchResponder") != started {
			replaced = time.Now() // the new process reports
		}
		// Two polls later the page has the new process's reports, and
		// rates only from them.
		if !replaced.IsZero() && time.Since(replaced) > 2500*time.Millisecond && number(rate) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("2 minutes after kill -9 of the replica process the page shows rate %q, its report started %s", rate, started)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("kill -9 of FrenchResponder's process: its successor reports %v after, the page shows its traffic (%s req/s) %v after", replaced.Sub(killed).Round(100*time.Millisecond), rate, time.Since(killed).Round(100*time.Millisecond))
	stopLoad()
	<-loaded
	t.Logf("%d of %d calls failed while replicas started and one was killed", bad, sent)
}

// replicaStarted is when the replica of app's deployment that reports
// now started, from the state.
func replicaStarted(t *testing.T, base, app, dep string) string {
	t.Helper()
	resp, err := http.Get(base + "/sluice/v1/ui/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Applications []struct {
			Name        string `json:"name"`
			Deployments []struct {
				Name    string `json:"name"`
				Reports []struct {
					Started string `json:"started"`
				} `json:"replica_reports"`
			} `json:"deployments"`
		} `json:"applications"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range st.Applications {
		for _, d := range a.Deployments {
			if a.Name == app && d.Name == dep {
				for _, r := range d.Reports {
					out = append(out, r.Started)
				}
			}
		}
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

// replicaPID is the process id of the one `sluice replica` process of
// app's deployment under prefix.
func replicaPID(t *testing.T, prefix, app, dep string) int {
	t.Helper()
	want := []string{"replica", "--prefix", prefix, "--app", app, "--deployment", dep}
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range dirs {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) > 1 && hasInOrder(args[1:], want) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
			return pid
		}
	}
	t.Fatalf("no process runs %v", want)
	return 0
}

// hasInOrder reports whether args hold each of want's flag-value pairs,
// and want[0] first.
func hasInOrder(args, want []string) bool {
	if len(args) == 0 || args[0] != want[0] {
		return false
	}
	joined := " " + strings.Join(args, " ") + " "
	for i := 1; i+1 < len(want); i += 2 {
		if !strings.Contains(joined, " "+want[i]+" "+want[i+1]+" ") {
			return false
		}
	}
	return true
}
