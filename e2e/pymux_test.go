package e2e

import (
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-serve/sluice/streams"
)

// A Python deployment that multiplexes models (@serve.multiplexed), two
// replica processes placed by `sluice node` behind `sluice gateway`, the
// bundle in the real tier's MinIO: each replica publishes a models
// report, which `sluice status` shows once a model is loaded; OIP model
// ready for a multiplexed id (GET /v2/models/{app}/ready with
// serve_multiplexed_model_id, as the infer call names it) says ready for
// a loaded id and why not for one that failed to load; and a hot id is
// spread by the gateway over both replicas, each loading it (spread keys
// id#n still reach the replica with the id in sl-model).
func TestPythonMultiplexedReportsNode(t *testing.T) {
	needPython(t)
	s3 := nodeS3(t)
	t.Parallel()
	envs := "SLUICE_PYTHON_ENVS=" + t.TempDir()
	n := startS3Node(t, s3, "pymux-"+streams.Instance(), envs)
	testPythonMultiplexedReports(t, platformUnderTest{bin: n.bin, addr: n.addr, logs: n.stderr.String}, envs)
}

// The same on `sluice dev`, whose Python replicas are processes too.
func TestPythonMultiplexedReportsDev(t *testing.T) {
	needPython(t)
	t.Parallel()
	envs := "SLUICE_PYTHON_ENVS=" + t.TempDir()
	p := startDevProcessWith(t, nil, []string{envs})
	testPythonMultiplexedReports(t, p, envs)
}

// modelReplica is one replica's models report as `sluice status --json`
// shows it (int64s are strings in protobuf's JSON).
type modelReplica struct {
	Replica      string            `json:"replica"`
	Loaded       []string          `json:"loaded"`
	Failed       map[string]string `json:"failed"`
	Hits         string            `json:"hits"`
	Misses       string            `json:"misses"`
	Loads        string            `json:"loads"`
	LoadFailures string            `json:"load_failures"`
}

func testPythonMultiplexedReports(t *testing.T, p platformUnderTest, envs string) {
	cli := func(args ...string) (string, error) {
		cmd := exec.Command(p.bin, append(args, "--addr", p.addr)...)
		cmd.Env = append(os.Environ(), envs)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	app := "px" + streams.Instance()[:6]
	if out, err := cli("deploy", "--python", "testdata/pymux", "--import-path", "mux:app", "--name", app, "--timeout", "4m"); err != nil {
		t.Fatalf("deploy --python mux:app: %v\n%s\nlogs:\n%s", err, out, p.logs())
	}
	defer func() { _, _ = cli("delete", app) }()

	// call posts to the application's route naming model id; it returns
	// the status and the pid of the replica that answered.
	call := func(id string) (int, int, string) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+p.addr+"/"+app, strings.NewReader(`{}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("serve_multiplexed_model_id", id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("POST /%s, model %s: %v", app, id, err)
			return 0, 0, ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var got struct {
			ID    string `json:"model_id"`
			Model string `json:"model"`
			Pid   int    `json:"pid"`
		}
		if resp.StatusCode == 200 && (json.Unmarshal(b, &got) != nil || got.ID != id || got.Model != strings.ToUpper(id)) {
			t.Errorf("POST /%s, model %s: %s: the replica was not given the id", app, id, b)
		}
		return resp.StatusCode, got.Pid, string(b)
	}
	reports := func() []modelReplica {
		out, err := cli("status", "--json", app)
		if err != nil {
			t.Fatalf("status: %v\n%s", err, out)
		}
		var st struct {
			Applications []struct {
				Deployments []struct {
					ModelReplicas []modelReplica `json:"model_replicas"`
				} `json:"deployments"`
			} `json:"applications"`
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.Applications) != 1 || len(st.Applications[0].Deployments) != 1 {
			t.Fatalf("status --json %s: %v\n%s", app, err, out)
		}
		return st.Applications[0].Deployments[0].ModelReplicas
	}
	waitFor := func(what string, limit time.Duration, cond func([]modelReplica) bool) []modelReplica {
		t.Helper()
		deadline := time.Now().Add(limit)
		for {
			rs := reports()
			if cond(rs) {
				return rs
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; model replicas: %+v\nlogs:\n%s", what, rs, p.logs())
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	holding := func(rs []modelReplica, id string) int {
		n := 0
		for _, r := range rs {
			if slices.Contains(r.Loaded, id) {
				n++
			}
		}
		return n
	}

	// Both replicas report, with nothing loaded yet.
	waitFor("both replicas' models reports", 60*time.Second, func(rs []modelReplica) bool { return len(rs) == 2 })

	// A model loaded: its replica's report says so, and OIP ready too.
	if code, _, body := call("m1"); code != 200 {
		t.Fatalf("m1: %d %s\nlogs:\n%s", code, body, p.logs())
	}
	waitFor("m1 in a report", 20*time.Second, func(rs []modelReplica) bool { return holding(rs, "m1") == 1 })
	if out, err := cli("status", app); err != nil || !strings.Contains(out, "MODEL REPLICA") || !strings.Contains(out, "m1") {
		t.Errorf("status table lacks the model replicas: %v\n%s", err, out)
	}
	ready := func(id string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+p.addr+"/v2/models/"+app+"/ready", nil)
		req.Header.Set("serve_multiplexed_model_id", id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := ready("m1"); code != 200 || !strings.Contains(body, `"ready":true`) {
		t.Errorf("OIP ready for m1, loaded: %d %s", code, body)
	}
	if code, body := ready("m2"); code != 503 || !strings.Contains(body, "model m2 is not loaded on any replica of "+app) {
		t.Errorf("OIP ready for m2, never called: %d %s", code, body)
	}
	if code, _, body := call("broken-1"); code != 500 || !strings.Contains(body, "FileNotFoundError: no weights for broken-1") {
		t.Errorf("broken-1: %d %s, want 500 naming the loader's exception", code, body)
	}
	waitFor("the failed load in a report", 20*time.Second, func(rs []modelReplica) bool {
		return slices.ContainsFunc(rs, func(r modelReplica) bool { return strings.Contains(r.Failed["broken-1"], "FileNotFoundError") })
	})
	if code, body := ready("broken-1"); code != 503 || !strings.Contains(body, "FileNotFoundError: no weights for broken-1") {
		t.Errorf("OIP ready for broken-1, whose load failed: %d %s, want 503 saying why", code, body)
	}

	// A hot id under load: once the gateway's window shows it with all
	// the calls, it spreads it over both replicas, and each loads it.
	var (
		mu   sync.Mutex
		pids = map[int]int{}
		fail []string
	)
	stop := time.Now().Add(60 * time.Second)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for time.Now().Before(stop) {
				code, pid, body := call("hot")
				mu.Lock()
				if code == 200 {
					pids[pid]++
				} else {
					fail = append(fail, strconv.Itoa(code)+" "+body)
				}
				spread := len(pids) == 2
				mu.Unlock()
				if spread {
					return
				}
			}
		})
	}
	wg.Wait()
	if len(fail) > 0 {
		t.Fatalf("%d calls for a hot id failed, the first: %s", len(fail), fail[0])
	}
	if len(pids) != 2 {
		t.Fatalf("a hot id was answered by %d replica processes in 60 s, want 2 (answers by pid: %v)\nlogs:\n%s", len(pids), pids, p.logs())
	}
	rs := waitFor("both replicas to report the hot id", 20*time.Second, func(rs []modelReplica) bool { return holding(rs, "hot") == 2 })
	for _, r := range rs {
		if loads, _ := strconv.Atoi(r.Loads); loads < 1 {
			t.Errorf("replica %s holds the hot id with %s loads", r.Replica, r.Loads)
		}
	}
	if code, body := ready("hot"); code != 200 {
		t.Errorf("OIP ready for the hot id: %d %s", code, body)
	}
	t.Logf("a hot id spread over two replica processes: answers by pid %v; model replicas %+v", pids, rs)

	// Each replica's /metrics has its cache's sluice_model_cache_* series,
	// the counts its models report has, under the Go replica's labels.
	deadline := time.Now().Add(20 * time.Second)
	for {
		cached, reported := map[string][5]float64{}, map[string][5]float64{}
		for _, addr := range replicaMetrics(t, p.bin, p.addr, app)["Mux"] {
			f := scrapeMetrics(t, addr, map[string]bool{})
			for i, name := range []string{"sluice_model_cache_hits_total", "sluice_model_cache_misses_total", "sluice_model_cache_loads_total", "sluice_model_cache_failures_total", "sluice_model_cache_loaded"} {
				for _, m := range f[name].GetMetric() {
					if label(m, "app") == app && label(m, "deployment") == "Mux" {
						c := cached[label(m, "replica")]
						c[i] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
						cached[label(m, "replica")] = c
					}
				}
			}
		}
		failures := 0.0
		for _, r := range reports() {
			hits, _ := strconv.Atoi(r.Hits)
			misses, _ := strconv.Atoi(r.Misses)
			loads, _ := strconv.Atoi(r.Loads)
			failed, _ := strconv.Atoi(r.LoadFailures)
			reported[r.Replica] = [5]float64{float64(hits), float64(misses), float64(loads), float64(failed), float64(len(r.Loaded))}
			failures += float64(failed)
		}
		if len(cached) == 2 && maps.Equal(cached, reported) && failures >= 1 {
			t.Logf("model caches scraped (hits, misses, loads, failures, loaded by replica): %v", cached)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("model caches scraped %v, reported %v (failures %v, want the broken load)", cached, reported, failures)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
