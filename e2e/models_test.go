package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	modelreg "github.com/sluice-serve/sluice/registry"
)

// Serving registry models through `kind: model` deployments, on the
// platform's store (a real MinIO in make test) and broker (a real Kafka in
// make test). The models are linear (y = a·x + b), which every build can
// load; the TensorFlow runtime is driven by clients/ in the TensorFlow tier.

// pushLinear writes a linear model y = a·x + b and pushes it with the CLI.
func pushLinear(t *testing.T, model string, a, b float32, args ...string) {
	t.Helper()
	dir := t.TempDir()
	body := fmt.Sprintf(`{"input":"x","output":"y","weights":[[%g]],"bias":[%g]}`, a, b)
	must(t, os.WriteFile(filepath.Join(dir, "model.json"), []byte(body), 0o644))
	if code, out := runModels(t, append([]string{"push", model, dir}, args...)...); code != 0 {
		t.Fatalf("push %s: %d %s", model, code, out)
	}
}

// inferX sends x to model (at version, when not empty) over OIP REST and
// returns the status, y (when 200) and the body.
func inferX(t *testing.T, model, version string, x float32) (int, float32, string) {
	t.Helper()
	path := "/v2/models/" + model
	if version != "" {
		path += "/versions/" + version
	}
	code, body := post(t, path+"/infer", fmt.Sprintf(`{"inputs":[{"name":"x","datatype":"FP32","shape":[1,1],"data":[%g]}]}`, x))
	if code != http.StatusOK {
		return code, 0, body
	}
	var resp struct {
		ModelVersion string `json:"model_version"`
		Outputs      []struct {
			Data []float32 `json:"data"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil || len(resp.Outputs) != 1 || len(resp.Outputs[0].Data) != 1 {
		t.Fatalf("infer %s: undecodable answer %s (%v)", path, body, err)
	}
	return code, resp.Outputs[0].Data[0], body
}

func get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(url(path))
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// deployModels deploys an application whose ingress serves the models
// labelled suite=label.
func deployModels(t *testing.T, app, label, extra string) {
	t.Helper()
	y := fmt.Sprintf(`name: %s
route_prefix: /%s
ingress: serve
deployments:
  - name: serve
    kind: model
    model:
      selector: {suite: %s}
%s`, app, app, label, extra)
	if code, out := run(t, "deploy", "-f", writeFile(t, app+".yaml", y)); code != 0 {
		t.Fatalf("deploy %s: %s", app, out)
	}
	t.Cleanup(func() { run(t, "delete", app) })
}

// eventually retries cond for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A model pushed with the CLI answers through the gateway with the right
// numbers; metadata and ready come from the registry and the replicas; bad
// requests get 400 naming the input and unknown names 404.
func TestModelServing(t *testing.T) {
	t.Parallel()
	pushLinear(t, "e2e-affine", 2, 1, "--label", "suite=serving")
	deployModels(t, "m-serving", "serving", "")

	if code, _, _ := inferX(t, "e2e-affine", "", 1); code != http.StatusOK {
		// The first request may race the new application's replicas
		// joining their group: the request waits in the topic, so only a
		// route miss could fail it.
		t.Logf("first infer: %d", code)
	}
	code, y, body := inferX(t, "e2e-affine", "", 3)
	if code != http.StatusOK || y != 7 || !strings.Contains(body, `"model_version":"1"`) {
		t.Fatalf("infer: %d y=%v %s", code, y, body)
	}
	code, md := get(t, "/v2/models/e2e-affine")
	if code != http.StatusOK || !strings.Contains(md, `"platform":"sluice-linear"`) || !strings.Contains(md, `{"name":"x","datatype":"FP32","shape":[-1,1]}`) {
		t.Fatalf("metadata: %d %s", code, md)
	}
	eventually(t, "the replica to report the model loaded", func() bool {
		code, _ := get(t, "/v2/models/e2e-affine/ready")
		return code == http.StatusOK
	})

	pushLinear(t, "e2e-cold", 1, 0, "--label", "suite=serving")
	if code, body := get(t, "/v2/models/e2e-cold/ready"); code != http.StatusServiceUnavailable || !strings.Contains(body, "not loaded on any replica") {
		t.Fatalf("ready of a model never loaded: %d %s", code, body)
	}

	for _, c := range []struct {
		name, path, body string
		code             int
		want             string
	}{
		{"wrong input name", "/v2/models/e2e-affine/infer", `{"inputs":[{"name":"z","datatype":"FP32","shape":[1,1],"data":[1]}]}`, 400, "input x is missing"},
		{"wrong datatype", "/v2/models/e2e-affine/infer", `{"inputs":[{"name":"x","datatype":"INT64","shape":[1,1],"data":[1]}]}`, 400, "input x: datatype INT64"},
		{"wrong shape", "/v2/models/e2e-affine/infer", `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,2],"data":[1,2]}]}`, 400, "input x: shape [1 2]"},
		{"unknown model", "/v2/models/e2e-nope/infer", `{"inputs":[]}`, 404, "unknown model"},
		{"unknown version", "/v2/models/e2e-affine/versions/9/infer", `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,1],"data":[1]}]}`, 404, `has no version`},
		{"unknown alias", "/v2/models/e2e-affine/versions/@nope/infer", `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,1],"data":[1]}]}`, 404, `has no alias`},
	} {
		code, body := post(t, c.path, c.body)
		if code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %s, want %d with %q", c.name, code, body, c.code, c.want)
		}
	}

	// A model the deployment's selector does not take is not served.
	pushLinear(t, "e2e-other", 1, 1, "--label", "suite=elsewhere")
	if code, body := post(t, "/v2/models/e2e-other/infer", `{"inputs":[]}`); code != 404 || !strings.Contains(body, "no model deployment serves it") {
		t.Errorf("unserved model: %d %s", code, body)
	}
}

// Moving the alias a deployment serves by default changes the answers
// under a concurrent load with no failed request: the new version loads
// beside the old, requests switch, and the old version is unloaded.
func TestModelAliasMove(t *testing.T) {
	t.Parallel()
	pushLinear(t, "e2e-moving", 2, 1, "--label", "suite=moving", "--alias", "production")
	deployModels(t, "m-moving", "moving", `    user_config: {default_version: "@production"}`)
	eventually(t, "version 1 to answer", func() bool {
		code, y, _ := inferX(t, "e2e-moving", "", 1)
		return code == 200 && y == 3
	})

	var failed, v1, v2 atomic.Int64
	var firstFailure atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, y, body := inferX(t, "e2e-moving", "", 1)
				switch {
				case code != 200:
					failed.Add(1)
					firstFailure.CompareAndSwap(nil, fmt.Sprintf("%d %s", code, body))
				case y == 3:
					v1.Add(1)
				case y == 4:
					v2.Add(1)
				default:
					failed.Add(1)
					firstFailure.CompareAndSwap(nil, fmt.Sprintf("y=%v", y))
				}
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	pushLinear(t, "e2e-moving", 3, 1, "--label", "suite=moving")
	if code, out := runModels(t, "alias", "e2e-moving", "production", "2"); code != 0 {
		t.Fatalf("alias: %s", out)
	}
	moved := time.Now()
	for v2.Load() < 200 && time.Since(moved) < 15*time.Second {
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	t.Logf("alias move under load: %d answers from version 1, %d from version 2, %d failed", v1.Load(), v2.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Fatalf("%d requests failed during the alias move; first: %v", failed.Load(), firstFailure.Load())
	}
	if v2.Load() < 200 {
		t.Fatalf("only %d answers from version 2 within 15 s of the move", v2.Load())
	}
	// The old version is unloaded once requests switched.
	eventually(t, "version 1 to be unloaded", func() bool {
		_, st := run(t, "status", "--json", "m-moving")
		return strings.Contains(st, `"e2e-moving/2"`) && !strings.Contains(st, `"e2e-moving/1"`)
	})
}

// Past max_models_per_replica the least recently used model is evicted,
// and loaded again when asked for; sluice status shows it.
func TestModelEviction(t *testing.T) {
	t.Parallel()
	for i := range 3 {
		pushLinear(t, fmt.Sprintf("e2e-lru-%d", i), float32(i+1), 0, "--label", "suite=lru")
	}
	deployModels(t, "m-lru", "lru", "    max_models_per_replica: 2\n")
	for _, i := range []int{0, 1, 2, 0} {
		eventually(t, "an answer", func() bool {
			code, y, _ := inferX(t, fmt.Sprintf("e2e-lru-%d", i), "", 2)
			return code == 200 && y == float32(2*(i+1))
		})
	}
	eventually(t, "status to show the evictions", func() bool {
		_, st := run(t, "status", "--json", "m-lru")
		var out struct {
			Applications []struct {
				Deployments []struct {
					ModelReplicas []struct {
						Loaded    []string `json:"loaded"`
						Loads     string   `json:"loads"`
						Evictions string   `json:"evictions"`
					} `json:"model_replicas"`
				} `json:"deployments"`
			} `json:"applications"`
		}
		if json.Unmarshal([]byte(st), &out) != nil || len(out.Applications) != 1 {
			return false
		}
		rs := out.Applications[0].Deployments[0].ModelReplicas
		return len(rs) == 1 && len(rs[0].Loaded) == 2 && rs[0].Loads == "4" && rs[0].Evictions == "2"
	})
	if _, st := run(t, "status", "m-lru"); !strings.Contains(st, "MODEL REPLICA") || !strings.Contains(st, "e2e-lru-0/1") {
		t.Errorf("status table lacks the model replica:\n%s", st)
	}
}

// Weights deleted from the store behind a version a replica has cached
// are still served from the cache (memory, then disk); a version never
// loaded fails with a clear error; a corrupt artifact fails alone.
func TestModelStoreLoss(t *testing.T) {
	t.Parallel()
	pushLinear(t, "e2e-lost", 5, 0, "--label", "suite=lost")
	pushLinear(t, "e2e-neighbour", 1, 1, "--label", "suite=lost")
	deployModels(t, "m-lost", "lost", "    max_models_per_replica: 1\n")
	eventually(t, "an answer", func() bool {
		code, y, _ := inferX(t, "e2e-lost", "1", 1)
		return code == 200 && y == 5
	})
	pushLinear(t, "e2e-lost", 6, 0)
	ctx := context.Background()
	for _, v := range []string{"1", "2"} {
		must(t, plat.Store().Delete(ctx, modelreg.ObjectKey("e2e-lost", v, "model.json")))
	}
	if code, y, body := inferX(t, "e2e-lost", "1", 2); code != 200 || y != 10 {
		t.Fatalf("cached version after its weights were deleted: %d %s", code, body)
	}
	// Evict it (one model per replica), then load it again from disk.
	if code, _, body := inferX(t, "e2e-neighbour", "", 1); code != 200 {
		t.Fatalf("neighbour: %s", body)
	}
	if code, y, body := inferX(t, "e2e-lost", "1", 3); code != 200 || y != 15 {
		t.Fatalf("version reloaded from the disk cache: %d %s", code, body)
	}
	code, _, body := inferX(t, "e2e-lost", "2", 1)
	if code != http.StatusPreconditionFailed || !strings.Contains(body, "missing from the store") {
		t.Fatalf("never-loaded version with its weights gone: %d %s", code, body)
	}

	// A corrupt artifact: marked failed with the reason; the rest serves.
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "model.json"), []byte(`{"input":"x",`), 0o644))
	if code, out := runModels(t, "push", "e2e-corrupt", dir, "--format", "sluice-linear", "--label", "suite=lost"); code != 0 {
		t.Fatalf("push corrupt: %s", out)
	}
	code, _, body = inferX(t, "e2e-corrupt", "", 1)
	if code != http.StatusPreconditionFailed || !strings.Contains(body, "failed to load") || !strings.Contains(body, "model.json") {
		t.Fatalf("corrupt artifact: %d %s", code, body)
	}
	if code, y, _ := inferX(t, "e2e-neighbour", "", 2); code != 200 || y != 3 {
		t.Fatalf("a good model after a corrupt one failed: %d", code)
	}
	eventually(t, "status to show the failed version", func() bool {
		_, st := run(t, "status", "--json", "m-lost")
		return strings.Contains(st, `"e2e-corrupt/1"`) && strings.Contains(st, "failed to load")
	})
	if code, body := get(t, "/v2/models/e2e-corrupt/ready"); code != http.StatusServiceUnavailable || !strings.Contains(body, "failed to load") {
		t.Fatalf("ready of a failed version: %d %s", code, body)
	}
}

// Code deployments call model deployments through handles, naming the
// model with serve.WithModel.
func TestModelThroughHandle(t *testing.T) {
	t.Parallel()
	pushLinear(t, "e2e-via-handle", 10, 2, "--label", "suite=handle")
	y := `name: m-handle
route_prefix: /m-handle
ingress: caller
deployments:
  - name: caller
    handler: ModelCaller
    args: [{handle: serve}]
  - name: serve
    kind: model
    model: {selector: {suite: handle}}
`
	if code, out := run(t, "deploy", "-f", writeFile(t, "h.yaml", y)); code != 0 {
		t.Fatalf("deploy: %s", out)
	}
	t.Cleanup(func() { run(t, "delete", "m-handle") })
	if code, got := post(t, "/m-handle", `{"model":"e2e-via-handle","x":3}`); code != 200 || got != "32" {
		t.Fatalf("through a handle: %d %s", code, got)
	}
	if code, got := post(t, "/m-handle", `{"model":"e2e-missing","x":3}`); code != 404 || !strings.Contains(got, "e2e-missing") {
		t.Fatalf("unknown model through a handle: %d %s", code, got)
	}
}

// The walkthrough in examples/models/models.yaml, as written there.
func TestModelsExample(t *testing.T) {
	t.Parallel()
	if code, out := runModels(t, "push", "affine", "../examples/models/affine-v1", "--label", "demo=models", "--alias", "production"); code != 0 {
		t.Fatalf("push: %s", out)
	}
	if code, out := run(t, "deploy", "-f", "../examples/models/models.yaml"); code != 0 {
		t.Fatalf("deploy: %s", out)
	}
	t.Cleanup(func() { run(t, "delete", "models") })
	eventually(t, "y = 2x + 1", func() bool {
		code, y, _ := inferX(t, "affine", "", 3)
		return code == 200 && y == 7
	})
	if code, out := runModels(t, "push", "affine", "../examples/models/affine-v2", "--label", "demo=models"); code != 0 {
		t.Fatalf("push v2: %s", out)
	}
	if code, out := runModels(t, "alias", "affine", "production", "2"); code != 0 {
		t.Fatalf("alias: %s", out)
	}
	eventually(t, "y = 3x + 1 after the alias move", func() bool {
		code, y, _ := inferX(t, "affine", "", 3)
		return code == 200 && y == 10
	})
}
