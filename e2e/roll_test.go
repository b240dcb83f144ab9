package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/streams"
)

// rollYAML is a two-deployment pipeline of built-in handlers at a fixed
// two replicas each: (x + add) * 2 through the deployment named times.
func rollYAML(app string, add int, times string) string {
	return fmt.Sprintf(`name: %[1]s
route_prefix: /%[1]s
ingress: Add
partitions: 4
deployments:
  - {name: Add, handler: Adder, args: [%[2]d], replicas: {min: 2, initial: 2, max: 2}}
  - {name: %[3]s, handler: Multiplier, args: [2], replicas: {min: 2, initial: 2, max: 2}}
edges:
  - {from: Add, to: %[3]s}
`, app, add, times)
}

// answer is one request of a load run.
type answer struct {
	start, end time.Time
	code       int
	body       string
}

// loadRun posts body to path from c workers until stop is closed, and
// returns every answer.
func loadRun(t *testing.T, addr, path, body string, c int, stop <-chan struct{}) func() []answer {
	t.Helper()
	var (
		mu  sync.Mutex
		all []answer
		wg  sync.WaitGroup
	)
	client := &http.Client{Timeout: 60 * time.Second}
	for range c {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				a := answer{start: time.Now()}
				resp, err := client.Post("http://"+addr+path, "text/plain", strings.NewReader(body))
				if err != nil {
					a.body = err.Error()
				} else {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					a.code, a.body = resp.StatusCode, string(b)
				}
				a.end = time.Now()
				mu.Lock()
				all = append(all, a)
				mu.Unlock()
			}
		})
	}
	return func() []answer {
		wg.Wait()
		return all
	}
}

func deployFile(t *testing.T, n *testNode, name, yaml string, args ...string) (string, time.Duration) {
	t.Helper()
	start := time.Now()
	b, err := exec.Command(n.bin, append([]string{"deploy", "-f", writeFile(t, name, yaml), "--addr", n.addr}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("deploy %s: %v\n%s\nnode stderr:\n%s", name, err, b, n.stderr.String())
	}
	return string(b), time.Since(start)
}

// An upgrade under load on `sluice node` (replicas as processes) behind a
// standalone gateway: the new version's replicas start beside the old
// ones, which stop once the new are ready. No request fails, and once
// `sluice deploy` returns no answer comes from the old version.
func TestNodeUpgradeUnderLoad(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	app := "up" + streams.Instance()[:6]
	deployFile(t, n, "v1.yaml", rollYAML(app, 1, "Times"))
	if code, body := postTo(t, n.addr, "/"+app, "5"); code != 200 || body != "12" {
		t.Fatalf("v1: %d %q", code, body)
	}
	stop := make(chan struct{})
	wait := loadRun(t, n.addr, "/"+app, "5", 8, stop)
	time.Sleep(2 * time.Second)
	out, took := deployFile(t, n, "v2.yaml", rollYAML(app, 2, "Times"))
	returned := time.Now()
	time.Sleep(3 * time.Second)
	close(stop)
	all := wait()

	var failed, oldAfter, v1, v2 int
	var firstNew, lastOld time.Time
	for _, a := range all {
		switch {
		case a.code != 200:
			failed++
			if failed <= 5 {
				t.Errorf("failed request: %d %q", a.code, a.body)
			}
		case a.body == "12":
			v1++
			if a.end.After(lastOld) {
				lastOld = a.end
			}
			if a.start.After(returned) {
				oldAfter++
			}
		case a.body == "14":
			v2++
			if firstNew.IsZero() || a.end.Before(firstNew) {
				firstNew = a.end
			}
		default:
			t.Errorf("unexpected answer %q", a.body)
		}
	}
	mixed := lastOld.Sub(firstNew)
	t.Logf("upgrade under load (c=8): %d requests, %d failed, %d old and %d new answers; sluice deploy took %v; "+
		"mixed window (first new answer to last old) %v; old answers to requests sent after deploy returned: %d",
		len(all), failed, v1, v2, took.Round(time.Millisecond), mixed.Round(time.Millisecond), oldAfter)
	if failed > 0 || oldAfter > 0 || v2 == 0 {
		t.Fatalf("%d failed, %d old answers after deploy returned, %d new answers\ndeploy:\n%s", failed, oldAfter, v2, out)
	}
	if !strings.Contains(out, "rolled "+app) {
		t.Fatalf("deploy did not report the roll:\n%s", out)
	}
}

// A topology change under load: the second deployment is renamed (a new
// group and new edge topics) while requests flow. No request waits past
// its deadline: each is answered by the new graph, by the old one while
// it drains, or at once with an error naming the change.
func TestNodeTopologyChangeUnderLoad(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	app := "topo" + streams.Instance()[:6]
	deployFile(t, n, "v1.yaml", rollYAML(app, 1, "Times"))
	stop := make(chan struct{})
	wait := loadRun(t, n.addr, "/"+app+"?timeout=20s", "5", 16, stop)
	time.Sleep(2 * time.Second)
	_, took := deployFile(t, n, "v2.yaml", rollYAML(app, 1, "Double"))
	time.Sleep(3 * time.Second)
	close(stop)
	all := wait()
	var late, errs, ok int
	var slowest time.Duration
	for _, a := range all {
		if d := a.end.Sub(a.start); d > slowest {
			slowest = d
		}
		switch {
		case a.code == 200 && a.body == "12":
			ok++
		case a.code == http.StatusGatewayTimeout || a.end.Sub(a.start) >= 20*time.Second:
			late++
		default:
			errs++
			if errs <= 5 {
				t.Logf("answered with an error: %d %q", a.code, a.body)
			}
		}
	}
	t.Logf("rename under load (c=16): %d requests, %d answered, %d errors at once, %d past their deadline; slowest %v; deploy took %v",
		len(all), ok, errs, late, slowest.Round(time.Millisecond), took.Round(time.Millisecond))
	if late > 0 {
		t.Fatalf("%d requests waited past their deadline", late)
	}
	for _, a := range all {
		if a.code != 200 && !strings.Contains(a.body, "removed or rewired") {
			t.Fatalf("an error that does not name the change: %d %q", a.code, a.body)
		}
	}
}

// A spec produced straight to the apps topic is validated by every
// process that reads it: one taking another application's route prefix
// is refused, `sluice status` through the gateway says why, and the
// application keeps serving the spec it had.
func TestNodeRefusesSpecOnTopic(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	app := "guard" + streams.Instance()[:6]
	deployFile(t, n, "a.yaml", rollYAML(app, 1, "Times"))
	other := rollYAML(app+"x", 1, "Times")
	apps, err := spec.Parse("b.yaml", []byte(strings.Replace(other, "route_prefix: /"+app+"x", "route_prefix: /"+app, 1)))
	if err != nil {
		t.Fatal(err)
	}
	changed, err := spec.Parse("a2.yaml", []byte(strings.Replace(rollYAML(app, 2, "Times"), "Multiplier", "NoSuchHandler", 1)))
	if err != nil {
		t.Fatal(err)
	}
	namer, _ := streams.NewNamer(n.prefix)
	cl, err := kgo.NewClient(append(seed(), kgo.DefaultProduceTopic(namer.Apps()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, a := range []*spec.App{apps[0], changed[0]} {
		b, _ := json.Marshal(a)
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Key: []byte(a.Name), Value: b}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	var out []byte
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		out, err = exec.Command(n.bin, "status", "--addr", n.addr).CombinedOutput()
		if err == nil && strings.Contains(string(out), "route_prefix /"+app+" is taken by application "+app) &&
			strings.Contains(string(out), "NoSuchHandler") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status does not report both refusals: %v\n%s", err, out)
		}
	}
	if code, body := postTo(t, n.addr, "/"+app, "5"); code != 200 || body != "12" {
		t.Fatalf("after the refused specs: %d %q, want the first spec's 12", code, body)
	}
	t.Logf("status:\n%s", out)
}
