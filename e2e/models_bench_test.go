package e2e

import (
	"container/list"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkMultiplex serves 50 registry models with a Zipf(1.1) request mix
// from 4 replicas that hold 5 models each (16 partitions), through the
// gateway, twice in the same run over the same request sequence:
// model-aware routing (records keyed by model, hot models spread by their
// share) and random routing (each model's requests spread over every
// partition, as records keyed by request id would be). It reports each
// one's cache hit rate, loads and p50/p99 latency, next to an ideal LRU
// of 20 models that sees the whole stream.
//
//	go test ./e2e -run '^$' -bench Multiplex -benchtime 1x
func BenchmarkMultiplex(b *testing.B) {
	const (
		models    = 50
		requests  = 4000
		replicas  = 4
		perRep    = 5
		width     = 256
		outWidth  = 64
		workers   = 4
		zipfS     = 1.1
		partition = 16
	)
	t := &testing.T{} // the CLI helpers take a *testing.T; failures go through b
	label := "mux" + strconv.FormatInt(time.Now().UnixNano()%1e6, 10)
	// Each application serves its own copy of the 50 models.
	for _, name := range []string{"aware", "random"} {
		for i := range models {
			if err := pushWeights(b, fmt.Sprintf("%s-%s-%02d", label, name, i), width, outWidth, "--label", "suite="+label+"-"+name); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, app := range []struct{ name, spread string }{{label + "-aware", "0"}, {label + "-random", strconv.Itoa(partition)}} {
		y := fmt.Sprintf(`name: %s
route_prefix: /%s
ingress: serve
partitions: %d
deployments:
  - name: serve
    kind: model
    max_models_per_replica: %d
    replicas: {min: %d, initial: %d, max: %d}
    model: {selector: {suite: %s}, spread: %s}
`, app.name, app.name, partition, perRep, replicas, replicas, replicas, app.name, app.spread)
		if code, out := run(t, "deploy", "-f", writeFileB(b, app.name+".yaml", y)); code != 0 {
			b.Fatalf("deploy: %s", out)
		}
		defer run(t, "delete", app.name)
	}

	z := rand.NewZipf(rand.New(rand.NewPCG(3, 4)), zipfS, 1, models-1)
	seq := make([]int, requests)
	for i := range seq {
		seq[i] = int(z.Uint64())
	}
	idealHits := idealLRU(seq, replicas*perRep)

	type result struct {
		name                string
		hits, misses, loads int64
		p50, p99            time.Duration
		failed              int
		elapsed             time.Duration
		perReplicaLoaded    []int
	}
	var results []result
	body := func() string {
		xs := make([]string, width)
		for i := range xs {
			xs[i] = "1"
		}
		return fmt.Sprintf(`{"inputs":[{"name":"x","datatype":"FP32","shape":[1,%d],"data":[%s]}]}`, width, strings.Join(xs, ","))
	}()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	for _, name := range []string{"aware", "random"} {
		app := label + "-" + name
		waitAssigned(b, app, replicas, partition)
		lat := make([]time.Duration, len(seq))
		var failed int
		var mu sync.Mutex
		next := 0
		start := time.Now()
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for {
					mu.Lock()
					i := next
					next++
					mu.Unlock()
					if i >= len(seq) {
						return
					}
					t0 := time.Now()
					resp, err := client.Post(url(fmt.Sprintf("/v2/models/%s-%02d/infer", app, seq[i])), "application/json", strings.NewReader(body))
					ok := err == nil && resp.StatusCode == 200
					if resp != nil {
						resp.Body.Close()
					}
					lat[i] = time.Since(t0)
					if !ok {
						mu.Lock()
						failed++
						mu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		r := result{name: name + " routing", failed: failed, elapsed: time.Since(start)}
		slices.Sort(lat)
		r.p50, r.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
		time.Sleep(300 * time.Millisecond) // the replicas' reports settle
		for _, rep := range modelReplicas(b, app) {
			r.hits += rep.hits
			r.misses += rep.misses
			r.loads += rep.loads
		}
		results = append(results, r)
	}
	b.Logf("%d models, Zipf(%.1f), %d requests from %d workers, %d replicas × %d models, %d partitions, same sequence for each",
		models, zipfS, requests, workers, replicas, perRep, partition)
	b.Logf("%-22s %9s %7s %9s %9s %7s", "routing", "hit rate", "loads", "p50", "p99", "failed")
	b.Logf("%-22s %8.1f%% %7d %9s %9s %7s", fmt.Sprintf("ideal LRU of %d", replicas*perRep), 100*float64(idealHits)/float64(requests), requests-idealHits, "-", "-", "-")
	for _, r := range results {
		rate := 100 * float64(r.hits) / float64(r.hits+r.misses)
		b.Logf("%-22s %8.1f%% %7d %9s %9s %7d", r.name, rate, r.loads, r.p50.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond), r.failed)
		b.ReportMetric(rate, strings.Fields(r.name)[0]+"-hit-%")
		b.ReportMetric(float64(r.loads), strings.Fields(r.name)[0]+"-loads")
		b.ReportMetric(float64(r.p99)/1e6, strings.Fields(r.name)[0]+"-p99-ms")
		if r.failed > 0 {
			b.Errorf("%s: %d requests failed", r.name, r.failed)
		}
	}
	b.ReportMetric(100*float64(idealHits)/float64(requests), "ideal-hit-%")
	if len(results) == 2 && results[0].loads > 0 {
		b.ReportMetric(float64(results[1].loads)/float64(results[0].loads), "random/aware-loads")
	}
}

// idealLRU counts the hits of one LRU cache of size that sees the whole stream.
func idealLRU(seq []int, size int) int {
	l := list.New()
	at := map[int]*list.Element{}
	hits := 0
	for _, m := range seq {
		if e, ok := at[m]; ok {
			hits++
			l.MoveToFront(e)
			continue
		}
		at[m] = l.PushFront(m)
		if l.Len() > size {
			old := l.Back()
			l.Remove(old)
			delete(at, old.Value.(int))
		}
	}
	return hits
}

// pushWeights pushes a linear model with a width×out weights file.
func pushWeights(b *testing.B, model string, width, out int, args ...string) error {
	dir := b.TempDir()
	w := make([]byte, width*out*4)
	for i := range width * out {
		binary.LittleEndian.PutUint32(w[4*i:], math.Float32bits(float32(i%5)))
	}
	bias := strings.TrimSuffix(strings.Repeat("0,", out), ",")
	manifest := fmt.Sprintf(`{"input":"x","output":"y","in":%d,"weights_file":"weights.bin","bias":[%s]}`, width, bias)
	if err := os.WriteFile(filepath.Join(dir, "model.json"), []byte(manifest), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "weights.bin"), w, 0o644); err != nil {
		return err
	}
	if code, outText := run(&testing.T{}, append([]string{"models", "push", model, dir}, args...)...); code != 0 {
		return fmt.Errorf("push %s: %s", model, outText)
	}
	return nil
}

func writeFileB(b *testing.B, name, content string) string {
	p := filepath.Join(b.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		b.Fatal(err)
	}
	return p
}

type replicaCounts struct{ hits, misses, loads int64 }

// modelReplicas reads the counters of an application's model replicas
// from `sluice status --json`.
func modelReplicas(b *testing.B, app string) []replicaCounts {
	_, st := run(&testing.T{}, "status", "--json", app)
	var out struct {
		Applications []struct {
			Deployments []struct {
				Replicas           int32 `json:"replicas"`
				PartitionsAssigned int32 `json:"partitions_assigned"`
				ModelReplicas      []struct {
					Hits   string `json:"hits"`
					Misses string `json:"misses"`
					Loads  string `json:"loads"`
				} `json:"model_replicas"`
			} `json:"deployments"`
		} `json:"applications"`
	}
	if err := json.Unmarshal([]byte(st), &out); err != nil || len(out.Applications) != 1 {
		b.Fatalf("status of %s: %v %s", app, err, st)
	}
	var rs []replicaCounts
	for _, r := range out.Applications[0].Deployments[0].ModelReplicas {
		n := func(s string) int64 { v, _ := strconv.ParseInt(s, 10, 64); return v }
		rs = append(rs, replicaCounts{n(r.Hits), n(r.Misses), n(r.Loads)})
	}
	return rs
}

// waitAssigned waits until the application's replicas own every partition
// and have reported it.
func waitAssigned(b *testing.B, app string, replicas, partitions int) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, st := run(&testing.T{}, "status", "--json", app)
		var out struct {
			Applications []struct {
				Deployments []struct {
					Replicas           int               `json:"replicas"`
					PartitionsAssigned int               `json:"partitions_assigned"`
					ModelReplicas      []json.RawMessage `json:"model_replicas"`
				} `json:"deployments"`
			} `json:"applications"`
		}
		if json.Unmarshal([]byte(st), &out) == nil && len(out.Applications) == 1 {
			d := out.Applications[0].Deployments[0]
			if d.Replicas == replicas && d.PartitionsAssigned == partitions && len(d.ModelReplicas) == replicas {
				time.Sleep(ReportSettle)
				return
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s: replicas did not take their partitions: %s", app, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ReportSettle is how long replicas' reports take to reach the gateway
// after a change (they are coalesced for 100 ms).
const ReportSettle = 500 * time.Millisecond
