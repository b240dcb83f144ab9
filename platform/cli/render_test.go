package cli_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/sluice-serve/sluice/platform/cli"
)

const renderSpec = `name: shop
route_prefix: /shop
ingress: front
deployments:
  - name: front
    replicas: {min: 0, max: 4}
    autoscaling:
      poll_interval: 2s
  - name: fixed
    replicas: {min: 2, max: 2}
edges:
  - {from: front, to: fixed}
`

// runRender runs `sluice render args...` with env holding only vars.
func runRender(t *testing.T, vars map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := cli.Env{
		Stdout: &out, Stderr: &errOut, Log: slog.New(slog.DiscardHandler),
		Getenv: func(k string) string { return vars[k] },
	}
	err = cli.Run(context.Background(), append([]string{"render"}, args...), env)
	return out.String(), errOut.String(), err
}

func writeSpec(t *testing.T, src string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "app.yaml")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRender(t *testing.T) {
	t.Parallel()
	file := writeSpec(t, renderSpec)
	out, errOut, err := runRender(t, nil, "-f", file, "--brokers", "b:9092", "--prefix", "acme", "--namespace", "ml")
	if err != nil {
		t.Fatalf("render: %v\n%s", err, errOut)
	}
	var objs []map[string]any
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("output is not YAML: %v\n%s", err, out)
		}
		objs = append(objs, doc)
	}
	if len(objs) != 1 {
		t.Fatalf("%d objects, want 1 (fixed has min = max):\n%s", len(objs), out)
	}
	o := objs[0]
	meta := o["metadata"].(map[string]any)
	sp := o["spec"].(map[string]any)
	trig := sp["triggers"].([]any)[0].(map[string]any)["metadata"].(map[string]any)
	if o["kind"] != "ScaledObject" || meta["name"] != "shop-front" || meta["namespace"] != "ml" ||
		sp["pollingInterval"] != 2 || sp["maxReplicaCount"] != 4 {
		t.Errorf("object %v", o)
	}
	if trig["bootstrapServers"] != "b:9092" || trig["consumerGroup"] != "acme.app.shop.dep.front" || trig["topic"] != "acme.app.shop.in" {
		t.Errorf("trigger %v: want brokers b:9092 and names under prefix acme", trig)
	}
	if !strings.Contains(errOut, "shop/fixed") || !strings.Contains(out, "#   shop/fixed: replicas.min = replicas.max = 2") {
		t.Errorf("stdout and stderr (%q) must both say why shop/fixed has no object", errOut)
	}
}

func TestRenderBrokersFromEnv(t *testing.T) {
	t.Parallel()
	out, _, err := runRender(t, map[string]string{"SLUICE_BROKERS": "e1:9092,e2:9092"}, "-f", writeSpec(t, renderSpec))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "bootstrapServers: e1:9092,e2:9092") {
		t.Errorf("SLUICE_BROKERS not used:\n%s", out)
	}
}

func TestRenderUsageErrors(t *testing.T) {
	t.Parallel()
	bad := writeSpec(t, strings.Replace(renderSpec, "poll_interval: 2s", "poll_interval: 2 parsecs", 1))
	good := writeSpec(t, renderSpec)
	for _, tc := range []struct {
		name string
		args []string
		want []string // substrings of the error
	}{
		{"bad spec", []string{"-f", bad, "--brokers", "b:9092"}, []string{bad + ":8:", "poll_interval"}},
		{"missing brokers", []string{"-f", good}, []string{"--brokers"}},
		{"missing file flag", []string{"--brokers", "b:9092"}, []string{"-f"}},
		{"no such file", []string{"-f", filepath.Join(t.TempDir(), "none.yaml"), "--brokers", "b:9092"}, []string{"none.yaml"}},
		{"bad template", []string{"-f", good, "--brokers", "b:9092", "--workload-template", "{app}"}, []string{"--workload-template", "{deployment}"}},
		{"bad prefix", []string{"-f", good, "--brokers", "b:9092", "--prefix", "a b"}, []string{"--prefix"}},
		{"image without workloads", []string{"-f", good, "--brokers", "b:9092", "--image", "x:1"}, []string{"--image", "--workloads"}},
		{"shared resource without workloads", []string{"-f", good, "--brokers", "b:9092", "--gpu-shared-resource", "a.b/c"}, []string{"--gpu-shared-resource", "--workloads"}},
		{"bad shared resource", []string{"-f", good, "--brokers", "b:9092", "--workloads", "--gpu-shared-resource", "gpu"}, []string{"--gpu-shared-resource", `"gpu"`}},
		{"empty image", []string{"-f", good, "--brokers", "b:9092", "--workloads", "--image", ""}, []string{"--image"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, _, err := runRender(t, nil, tc.args...)
			if code := cli.ExitCode(err); code != 2 {
				t.Fatalf("exit code %d (%v), want 2", code, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if out != "" {
				t.Errorf("printed %q on a usage error", out)
			}
		})
	}
}

func TestRenderSameNameTwice(t *testing.T) {
	t.Parallel()
	a, b := writeSpec(t, renderSpec), writeSpec(t, renderSpec)
	_, _, err := runRender(t, nil, "-f", a, "-f", b, "--brokers", "b:9092")
	if cli.ExitCode(err) != 2 || !strings.Contains(err.Error(), "shop-front") {
		t.Fatalf("the same application in two files: %v, want exit 2 naming shop-front", err)
	}
}

const gpuSpec = `name: shop
route_prefix: /shop
ingress: front
deployments:
  - name: front
    replicas: {min: 0, max: 4}
    resources: {cpu: 0.5, memory: 256MiB, gpu: 0.5, gpu_memory: 8GiB}
  - name: fixed
    replicas: {min: 2, max: 2}
    resources: {cpu: 2, memory: 4GiB, gpu: 2}
  - name: light
    replicas: {min: 1, max: 3}
edges:
  - {from: front, to: fixed}
  - {from: front, to: light}
`

// renderedObjects splits render's output into its Deployments, read
// strictly as Kubernetes' own type, the kinds of all its objects in order,
// and the workloads its ScaledObjects scale.
func renderedObjects(t *testing.T, out string) (deps map[string]appsv1.Deployment, kinds, scaled []string) {
	t.Helper()
	deps = map[string]appsv1.Deployment{}
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("output is not YAML: %v\n%s", err, out)
		}
		var head struct {
			Kind string
			Spec struct {
				ScaleTargetRef struct{ Name string } `yaml:"scaleTargetRef"`
			}
		}
		if err := doc.Decode(&head); err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, head.Kind)
		if head.Kind == "ScaledObject" {
			scaled = append(scaled, head.Spec.ScaleTargetRef.Name)
		}
		if head.Kind != "Deployment" {
			continue
		}
		raw, err := yaml.Marshal(&doc)
		if err != nil {
			t.Fatal(err)
		}
		var d appsv1.Deployment
		if err := sigsyaml.UnmarshalStrict(raw, &d); err != nil {
			t.Fatalf("not an apps/v1 Deployment: %v\n%s", err, raw)
		}
		deps[d.Name] = d
	}
	return deps, kinds, scaled
}

func TestRenderWorkloads(t *testing.T) {
	t.Parallel()
	out, errOut, err := runRender(t, nil, "-f", writeSpec(t, gpuSpec), "--brokers", "b:9092", "--prefix", "acme",
		"--namespace", "ml", "--workloads", "--workload-template", "sluice-{deployment}")
	if err != nil {
		t.Fatalf("render: %v\n%s", err, errOut)
	}
	deps, kinds, scaled := renderedObjects(t, out)
	want := []string{"Deployment", "Deployment", "Deployment", "ScaledObject", "ScaledObject"}
	if strings.Join(kinds, " ") != strings.Join(want, " ") {
		t.Fatalf("objects %v, want %v (workloads first):\n%s", kinds, want, out)
	}
	for _, tc := range []struct {
		name, dep        string
		replicas         int32
		requests, limits map[corev1.ResourceName]string
		fraction         string
	}{
		{"sluice-front", "front", 1,
			map[corev1.ResourceName]string{"cpu": "500m", "memory": "256Mi"},
			map[corev1.ResourceName]string{"memory": "256Mi", "nvidia.com/gpu.shared": "1"}, "0.5"},
		{"sluice-fixed", "fixed", 2,
			map[corev1.ResourceName]string{"cpu": "2", "memory": "4Gi"},
			map[corev1.ResourceName]string{"memory": "4Gi", "nvidia.com/gpu": "2"}, ""},
		{"sluice-light", "light", 1, nil, nil, ""},
	} {
		d, ok := deps[tc.name]
		if !ok {
			t.Errorf("no Deployment %s:\n%s", tc.name, out)
			continue
		}
		if d.Namespace != "ml" || d.Spec.Replicas == nil || *d.Spec.Replicas != tc.replicas {
			t.Errorf("%s: namespace %q, replicas %v; want ml, %d", tc.name, d.Namespace, d.Spec.Replicas, tc.replicas)
		}
		c := d.Spec.Template.Spec.Containers[0]
		cmd := []string{"sluice", "replica", "--app", "shop", "--deployment", tc.dep, "--brokers", "b:9092", "--prefix", "acme"}
		if strings.Join(c.Command, " ") != strings.Join(cmd, " ") || c.Image != "ghcr.io/sluice-serve/sluice:latest" {
			t.Errorf("%s: image %s, command %q; want the stock image and %q", tc.name, c.Image, c.Command, cmd)
		}
		for _, l := range []struct {
			what string
			got  corev1.ResourceList
			want map[corev1.ResourceName]string
		}{{"requests", c.Resources.Requests, tc.requests}, {"limits", c.Resources.Limits, tc.limits}} {
			if len(l.got) != len(l.want) {
				t.Errorf("%s: %s %v, want %v", tc.name, l.what, l.got, l.want)
			}
			for k, v := range l.want {
				if q, ok := l.got[k]; !ok || q.String() != v {
					t.Errorf("%s: %s %s = %v, want %s", tc.name, l.what, k, l.got[k], v)
				}
			}
		}
		var fraction string
		for _, e := range c.Env {
			if e.Name == "SLUICE_GPU_MEMORY_FRACTION" {
				fraction = e.Value
			}
		}
		if fraction != tc.fraction {
			t.Errorf("%s: SLUICE_GPU_MEMORY_FRACTION %q, want %q", tc.name, fraction, tc.fraction)
		}
	}
	if !strings.Contains(out, "time-slicing with replicas: 2.") {
		t.Errorf("no comment on the time slices that gpu 0.5 implies:\n%s", out)
	}
	// The pod template carries each deployment's revision: a spec change
	// rolls the pods; a change of sizing alone does not.
	rev := func(spec string) map[string]string {
		t.Helper()
		out, errOut, err := runRender(t, nil, "-f", writeSpec(t, spec), "--brokers", "b:9092", "--workloads")
		if err != nil {
			t.Fatalf("render: %v\n%s", err, errOut)
		}
		deps, _, _ := renderedObjects(t, out)
		revs := map[string]string{}
		for name, d := range deps {
			revs[name] = d.Spec.Template.Annotations["sluice.dev/revision"]
			if revs[name] == "" {
				t.Errorf("%s: no sluice.dev/revision in its pod template:\n%s", name, out)
			}
		}
		return revs
	}
	base := rev(gpuSpec)
	resized := rev(strings.Replace(gpuSpec, "replicas: {min: 1, max: 3}", "replicas: {min: 1, max: 5}", 1))
	changed := rev(strings.Replace(gpuSpec, "cpu: 0.5,", "cpu: 0.75,", 1))
	if fmt.Sprint(base) != fmt.Sprint(resized) {
		t.Errorf("a sizing change moved revisions: %v → %v", base, resized)
	}
	if base["shop-front"] == changed["shop-front"] || base["shop-fixed"] != changed["shop-fixed"] {
		t.Errorf("a change of front alone: %v → %v, want front's revision new and the others kept", base, changed)
	}
	// The ScaledObjects scale the workloads rendered beside them.
	for _, name := range scaled {
		if _, ok := deps[name]; !ok {
			t.Errorf("a ScaledObject scales %s, which is not rendered", name)
		}
	}
}

func TestRenderWorkloadsSharedResource(t *testing.T) {
	t.Parallel()
	out, _, err := runRender(t, nil, "-f", writeSpec(t, gpuSpec), "--brokers", "b:9092", "--workloads",
		"--gpu-shared-resource", "example.com/gpu-slice", "--image", "registry.example/shop:v2")
	if err != nil {
		t.Fatal(err)
	}
	deps, _, _ := renderedObjects(t, out)
	c := deps["shop-front"].Spec.Template.Spec.Containers[0]
	if q, ok := c.Resources.Limits["example.com/gpu-slice"]; !ok || q.Value() != 1 || c.Image != "registry.example/shop:v2" {
		t.Errorf("limits %v, image %s: want example.com/gpu-slice 1 and the --image", c.Resources.Limits, c.Image)
	}
	if _, ok := c.Resources.Limits["nvidia.com/gpu.shared"]; ok {
		t.Errorf("limits %v hold the default shared resource too", c.Resources.Limits)
	}
}

func TestRenderWorkloadsSameNameTwice(t *testing.T) {
	t.Parallel()
	a, b := writeSpec(t, gpuSpec), writeSpec(t, gpuSpec)
	out, _, err := runRender(t, nil, "-f", a, "-f", b, "--brokers", "b:9092", "--workloads")
	if cli.ExitCode(err) != 2 || !strings.Contains(err.Error(), "shop-front") || out != "" {
		t.Fatalf("the same application in two files: %v, want exit 2 naming shop-front and no output", err)
	}
}
