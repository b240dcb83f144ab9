package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-serve/sluice/replicas/gpu"
)

// helloYAML is the hello application under another name, each
// responder with more fields (indented YAML lines).
func helloYAML(name, spanish, french string) string {
	return fmt.Sprintf(`name: %[1]s
route_prefix: /%[1]s
ingress: LanguageClassifier
deployments:
  - name: LanguageClassifier
    handler: LanguageClassifier
    args: [{handle: SpanishResponder}, {handle: FrenchResponder}]
  - name: SpanishResponder
%[2]s  - name: FrenchResponder
%[3]s`, name, spanish, french)
}

type gpuStatus struct {
	Applications []struct {
		Deployments []struct {
			Name       string `json:"name"`
			Autoscaler struct {
				Ready   int    `json:"ready"`
				Problem string `json:"problem"`
			} `json:"autoscaler"`
			Placements []struct {
				Node string `json:"node"`
				GPUs []struct {
					UUID     string  `json:"uuid"`
					Fraction float64 `json:"fraction"`
				} `json:"gpus"`
			} `json:"placements"`
		} `json:"deployments"`
	} `json:"applications"`
	Nodes []struct {
		Name       string `json:"name"`
		GPUProblem string `json:"gpu_problem"`
		GPUs       []struct {
			UUID           string  `json:"uuid"`
			PlacedFraction float64 `json:"placed_fraction"`
		} `json:"gpus"`
	} `json:"nodes"`
}

// A node places GPU replicas by what NVML finds on this machine. Without
// a driver (CI): the node reports no GPUs with the reason, the GPU
// deployments wait with it in `sluice status`, and the rest answers. With
// GPUs: two half-GPU replicas share one device, each process pinned to it
// by UUID with half its memory, and a deployment asking for more whole
// GPUs than the node has waits, saying so.
func TestNodePlacesGPUs(t *testing.T) {
	t.Parallel()
	d := gpu.Open()
	devices := d.Discover().Placeable()
	d.Close()
	n := startNode(t)
	spec := writeFile(t, "gpuhello.yaml", helloYAML("gpuhello",
		"    replicas: {min: 2, initial: 2, max: 2}\n    resources: {gpu: 0.5}\n",
		fmt.Sprintf("    resources: {gpu: %d}\n", len(devices)+1)))
	// A deploy that waits for the roll fails naming the deployment that
	// cannot get room and why; with --no-wait it returns once stored.
	b, err := exec.Command(n.bin, "deploy", "-f", spec, "--addr", n.addr, "--timeout", "60s").CombinedOutput()
	if len(devices) < 2 && (err == nil || !strings.Contains(string(b), "cannot roll") || !strings.Contains(string(b), "wait for room")) {
		t.Fatalf("deploy of what cannot be placed: %v\n%s", err, b)
	}
	if b, err := exec.Command(n.bin, "deploy", "--no-wait", "-f", spec, "--addr", n.addr).CombinedOutput(); err != nil {
		t.Fatalf("deploy --no-wait: %v\n%s", err, b)
	}
	wait := func(what string, ok func(gpuStatus) bool) gpuStatus { t.Helper(); return n.waitStatus(t, what, ok) }
	wantWhole := fmt.Sprintf("needs %d whole GPUs", len(devices)+1)
	if len(devices) == 0 {
		wantWhole = "needs 1 whole GPU"
	}
	st := wait("the whole-GPU deployment waits with the reason", func(st gpuStatus) bool {
		p, cur := placedOf(st, "FrenchResponder")
		return cur == 0 && strings.Contains(p, "1 of 1 replicas wait for room") && strings.Contains(p, wantWhole)
	})
	if code, body := postTo(t, n.addr, "/gpuhello", `{"language":"german","name":"x"}`); code != 200 || body != "Please try again." {
		t.Fatalf("the classifier (no GPU) answers: %d %q", code, body)
	}
	if len(devices) == 0 {
		p, _ := placedOf(st, "SpanishResponder")
		if !strings.Contains(p, "2 of 2 replicas wait for room: needs gpu 0.5: no node has a GPU") || !strings.Contains(p, "libnvidia-ml.so.1 not found") {
			t.Fatalf("SpanishResponder's problem: %q", p)
		}
		if len(st.Nodes) != 1 || !strings.Contains(st.Nodes[0].GPUProblem, "libnvidia-ml.so.1 not found") {
			t.Fatalf("the node reports why it has no GPUs: %+v", st.Nodes)
		}
		if !strings.Contains(n.stderr.String(), "node has no GPUs") {
			t.Fatalf("the node says why it has no GPUs in its log:\n%s", n.stderr.String())
		}
		out, _ := exec.Command(n.bin, "status", "--addr", n.addr).CombinedOutput()
		if !strings.Contains(string(out), "NODE") || !strings.Contains(string(out), "PROBLEM: 2 of 2 replicas wait for room") {
			t.Fatalf("sluice status shows the node and the waiting replicas:\n%s", out)
		}
		return
	}

	st = wait("two half-GPU replicas placed on one device and running", func(st gpuStatus) bool {
		_, placed := placedOf(st, "SpanishResponder")
		return placed == 2 && readyOf(st, "SpanishResponder") == 2
	})
	if code, body := postTo(t, n.addr, "/gpuhello", `{"language":"spanish","name":"GPU"}`); code != 200 || body != "Hola GPU" {
		t.Fatalf("through the GPU replicas: %d %q\n%s", code, body, n.stderr.String())
	}
	var uuids []string
	for _, a := range st.Applications {
		for _, d := range a.Deployments {
			if d.Name != "SpanishResponder" {
				continue
			}
			for _, p := range d.Placements {
				if len(p.GPUs) != 1 || p.GPUs[0].Fraction != 0.5 {
					t.Fatalf("placement %+v", p)
				}
				uuids = append(uuids, p.GPUs[0].UUID)
			}
		}
	}
	if len(uuids) != 2 || uuids[0] != uuids[1] {
		t.Fatalf("two halves share one device: %v", uuids)
	}
	envs := replicaEnvs(t, n.prefix, "SpanishResponder")
	if len(envs) != 2 {
		t.Fatalf("%d SpanishResponder processes, want 2", len(envs))
	}
	for _, env := range envs {
		if env[gpu.EnvCUDA] != uuids[0] || env[gpu.EnvNVIDIA] != uuids[0] || env[gpu.EnvMemoryFraction] != "0.5" {
			t.Fatalf("a replica process is pinned to %s with half its memory: %v %v %v", uuids[0], env[gpu.EnvCUDA], env[gpu.EnvNVIDIA], env[gpu.EnvMemoryFraction])
		}
	}
	out, _ := exec.Command(n.bin, "status", "--addr", n.addr).CombinedOutput()
	if !strings.Contains(string(out), uuids[0]+" ×0.5") {
		t.Fatalf("sluice status shows the shares:\n%s", out)
	}
	t.Logf("two replicas share %s:\n%s", uuids[0], out)
}

// waitStatus polls `sluice status --json` until ok, for 30 s.
func (n *testNode) waitStatus(t *testing.T, what string, ok func(gpuStatus) bool) gpuStatus {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := exec.Command(n.bin, "status", "--json", "--addr", n.addr).CombinedOutput()
		var st gpuStatus
		if err == nil {
			err = json.Unmarshal(b, &st)
		}
		if err != nil {
			t.Fatalf("status: %v\n%s", err, b)
		}
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s\n%s\nnode stderr:\n%s", what, b, n.stderr.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// placedOf is a deployment's problem and how many of its replicas are
// placed.
func placedOf(st gpuStatus, dep string) (string, int) {
	for _, a := range st.Applications {
		for _, d := range a.Deployments {
			if d.Name == dep {
				return d.Autoscaler.Problem, len(d.Placements)
			}
		}
	}
	return "", -1
}

// placedOn counts a deployment's replicas by node.
func placedOn(st gpuStatus, dep string) map[string]int {
	out := map[string]int{}
	for _, a := range st.Applications {
		for _, d := range a.Deployments {
			if d.Name == dep {
				for _, p := range d.Placements {
					out[p.Node]++
				}
			}
		}
	}
	return out
}

func readyOf(st gpuStatus, dep string) int {
	for _, a := range st.Applications {
		for _, d := range a.Deployments {
			if d.Name == dep {
				return d.Autoscaler.Ready
			}
		}
	}
	return -1
}

// replicaEnvs reads the environment of the running `sluice replica`
// processes of a deployment under a topic prefix (Linux /proc).
func replicaEnvs(t *testing.T, prefix, dep string) []map[string]string {
	t.Helper()
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var out []map[string]string
	for _, d := range dirs {
		cmd, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmd), "\x00")
		if !strings.Contains(strings.Join(args, " "), "--prefix "+prefix+" ") || !strings.Contains(strings.Join(args, " "), "--deployment "+dep+" ") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(d, "environ"))
		if err != nil {
			continue
		}
		env := map[string]string{}
		for _, kv := range strings.Split(string(b), "\x00") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				env[k] = v
			}
		}
		out = append(out, env)
	}
	return out
}

// A second machine joins with --join: the placing node offers one core,
// the joining one two, and three one-core replicas need both. When the
// joining node leaves, its replicas wait with the reason, and come back
// when it returns.
func TestNodeJoins(t *testing.T) {
	t.Parallel()
	n := startNode(t, "--name", "placing", "--cpu", "1")
	join := func() (*exec.Cmd, chan error) {
		return n.start(t, "--join", "--name", "joining", "--cpu", "2", "--model-cache", t.TempDir())
	}
	cmd, done := join()
	spec := writeFile(t, "joinhello.yaml", helloYAML("joinhello", "    replicas: {min: 3, initial: 3, max: 3}\n    resources: {cpu: 1}\n", ""))
	if b, err := exec.Command(n.bin, "deploy", "-f", spec, "--addr", n.addr).CombinedOutput(); err != nil {
		t.Fatalf("deploy: %v\n%s", err, b)
	}
	st := n.waitStatus(t, "three replicas over two nodes, all running", func(st gpuStatus) bool {
		on := placedOn(st, "SpanishResponder")
		return on["placing"] == 1 && on["joining"] == 2 && readyOf(st, "SpanishResponder") == 3
	})
	if len(st.Nodes) != 2 {
		t.Fatalf("two nodes in the status: %+v", st.Nodes)
	}
	for range 5 { // answered by replicas on either node
		if code, body := postTo(t, n.addr, "/joinhello", `{"language":"spanish","name":"Join"}`); code != 200 || body != "Hola Join" {
			t.Fatalf("%d %q\n%s", code, body, n.stderr.String())
		}
	}
	n.stopProcess(t, cmd, done)
	n.waitStatus(t, "the joining node's replicas wait for room", func(st gpuStatus) bool {
		p, placed := placedOf(st, "SpanishResponder")
		return placed == 1 && strings.Contains(p, "2 of 3 replicas wait for room: needs cpu 1")
	})
	join()
	n.waitStatus(t, "back on the joining node", func(st gpuStatus) bool {
		p, _ := placedOf(st, "SpanishResponder")
		return placedOn(st, "SpanishResponder")["joining"] == 2 && readyOf(st, "SpanishResponder") == 3 && p == ""
	})
}
