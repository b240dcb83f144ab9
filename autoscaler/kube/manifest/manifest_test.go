package manifest

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"

	"github.com/sluice-serve/sluice/autoscaler/kube/workload"
	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/replicas/gpu"
)

// lab asks for whole GPUs, a share of one, none, and a share that is not
// a whole number of slices.
const lab = `
name: lab
route_prefix: /lab
ingress: Whole
deployments:
  - name: Whole
    args: [{handle: half}, {handle: plain}, {handle: odd}]
    replicas: {min: 0, initial: 1, max: 4}
    resources: {cpu: 2, memory: 4GiB, gpu: 2, gpu_memory: 40GiB}
  - name: half
    replicas: {min: 1, initial: 3, max: 8}
    resources: {cpu: 0.5, memory: 512MiB, gpu: 0.5, gpu_memory: 8GiB}
  - name: plain
    replicas: {min: 2, max: 2}
  - name: odd
    replicas: {min: 1, max: 2}
    resources: {cpu: 0.3, memory: 8GB, gpu: 0.3}
`

func parse(t *testing.T, src string) *spec.App {
	t.Helper()
	apps, err := spec.Parse("lab.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return apps[0]
}

// render renders app and reads the YAML back strictly into Kubernetes'
// own types, so that a field Kubernetes does not know fails the test.
func render(t *testing.T, app *spec.App, opts Options) (string, map[string]appsv1.Deployment) {
	t.Helper()
	if opts.Brokers == nil {
		opts.Brokers = []string{"k1:9092", "k2:9092"}
	}
	ds, err := Deployments(app, opts)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Write(&out, ds); err != nil {
		t.Fatal(err)
	}
	got := map[string]appsv1.Deployment{}
	for i, doc := range strings.Split(out.String(), "---\n")[1:] {
		var d appsv1.Deployment
		if err := yaml.UnmarshalStrict([]byte(doc), &d); err != nil {
			t.Fatalf("document %d is not an apps/v1 Deployment: %v\n%s", i, err, doc)
		}
		got[d.Name] = d
	}
	if len(got) != len(app.Deployments) {
		t.Fatalf("%d Deployments, want %d:\n%s", len(got), len(app.Deployments), out.String())
	}
	return out.String(), got
}

func container(t *testing.T, d appsv1.Deployment) corev1.Container {
	t.Helper()
	if n := len(d.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("%s: %d containers, want 1", d.Name, n)
	}
	return d.Spec.Template.Spec.Containers[0]
}

// quantities is a resource list as strings, for comparing.
func quantities(l corev1.ResourceList) map[string]string {
	m := map[string]string{}
	for k, q := range l {
		m[string(k)] = q.String()
	}
	return m
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// comments is the text of the YAML comments in out, lines joined.
func comments(out string) string {
	var text []string
	for _, l := range strings.Split(out, "\n") {
		if c, ok := strings.CutPrefix(strings.TrimSpace(l), "#"); ok {
			text = append(text, strings.TrimSpace(c))
		}
	}
	return strings.Join(text, " ")
}

func envOf(c corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value, true
		}
	}
	return "", false
}

func TestResources(t *testing.T) {
	t.Parallel()
	out, got := render(t, parse(t, lab), Options{})
	for _, tc := range []struct {
		name               string
		requests, limits   map[string]string
		fraction, comments string // fraction "": no SLUICE_GPU_MEMORY_FRACTION
	}{
		{"lab-whole",
			map[string]string{"cpu": "2", "memory": "4Gi"},
			map[string]string{"memory": "4Gi", "nvidia.com/gpu": "2"}, "", ""},
		{"lab-half",
			map[string]string{"cpu": "500m", "memory": "512Mi"},
			map[string]string{"memory": "512Mi", "nvidia.com/gpu.shared": "1"}, "0.5",
			"time-slicing with replicas: 2."},
		{"lab-plain", map[string]string{}, map[string]string{}, "", ""},
		{"lab-odd",
			map[string]string{"cpu": "300m", "memory": "8G"},
			map[string]string{"memory": "8G", "nvidia.com/gpu.shared": "1"}, "0.3",
			"replicas: 3 (1/0.3 is not whole"},
	} {
		d, ok := got[tc.name]
		if !ok {
			t.Errorf("no Deployment %s", tc.name)
			continue
		}
		c := container(t, d)
		if r := quantities(c.Resources.Requests); !equalMaps(r, tc.requests) {
			t.Errorf("%s: requests %v, want %v", tc.name, r, tc.requests)
		}
		if l := quantities(c.Resources.Limits); !equalMaps(l, tc.limits) {
			t.Errorf("%s: limits %v, want %v", tc.name, l, tc.limits)
		}
		frac, has := envOf(c, gpu.EnvMemoryFraction)
		if frac != tc.fraction || has != (tc.fraction != "") {
			t.Errorf("%s: %s = %q (set %v), want %q", tc.name, gpu.EnvMemoryFraction, frac, has, tc.fraction)
		}
		if tc.comments != "" && !strings.Contains(comments(out), tc.comments) {
			t.Errorf("%s: no comment saying %q:\n%s", tc.name, tc.comments, out)
		}
	}
	// Quantities mean what the spec says, not only read the same.
	c := container(t, got["lab-half"])
	if q := c.Resources.Requests[corev1.ResourceMemory]; q.Value() != 512<<20 {
		t.Errorf("lab-half memory %v = %d bytes, want %d", q, q.Value(), 512<<20)
	}
	if q := c.Resources.Requests[corev1.ResourceCPU]; q.MilliValue() != 500 {
		t.Errorf("lab-half cpu %v = %dm, want 500m", q, q.MilliValue())
	}
	// A share of a GPU has gpu_memory only on a GPU that much larger.
	for _, w := range []string{"gpu_memory 40GiB: Kubernetes does not schedule on GPU memory; keep these pods to nodes whose GPUs have at least 40GiB each.",
		"gpu_memory 8GiB: Kubernetes does not schedule on GPU memory; keep these pods to nodes whose GPUs have at least 16GiB each."} {
		if !strings.Contains(comments(out), w) {
			t.Errorf("no comment saying %q:\n%s", w, out)
		}
	}
	// The two shares differ: a comment says which slice count suits both.
	if c := comments(out); !strings.Contains(c, "(lab/half 0.5, lab/odd 0.3)") || !strings.Contains(c, "fraction, replicas: 2,") {
		t.Errorf("no comment on the mixed fractions:\n%s", out)
	}
}

func TestShape(t *testing.T) {
	t.Parallel()
	tmpl := workload.MustParseTemplate("sluice-{app}.{deployment}")
	_, got := render(t, parse(t, lab), Options{
		Brokers: []string{"b:9092"}, Prefix: "acme", Namespace: "ml", Workload: tmpl,
		Image: "registry.example/lab:v1", GPUSharedResource: "example.com/gpu-slice",
	})
	for _, tc := range []struct {
		dep      string
		replicas int32
	}{{"Whole", 1}, {"half", 3}, {"plain", 2}, {"odd", 1}} {
		name, err := tmpl.Name("lab", tc.dep)
		if err != nil {
			t.Fatal(err)
		}
		d, ok := got[name]
		if !ok {
			t.Errorf("no Deployment %s for lab/%s", name, tc.dep)
			continue
		}
		if d.Namespace != "ml" || d.Spec.Replicas == nil || *d.Spec.Replicas != tc.replicas {
			t.Errorf("%s: namespace %q replicas %v, want ml and replicas.initial %d", name, d.Namespace, d.Spec.Replicas, tc.replicas)
		}
		sel := d.Spec.Selector.MatchLabels
		if sel["app.kubernetes.io/name"] != name || d.Spec.Template.Labels["app.kubernetes.io/name"] != name || d.Labels["app.kubernetes.io/part-of"] != "sluice" {
			t.Errorf("%s: labels %v, selector %v, pod labels %v", name, d.Labels, sel, d.Spec.Template.Labels)
		}
		if p := d.Spec.ProgressDeadlineSeconds; p == nil || *p != 120 {
			t.Errorf("%s: progressDeadlineSeconds %v, want 120", name, p)
		}
		pod := d.Spec.Template.Spec
		if g := pod.TerminationGracePeriodSeconds; g == nil || *g != 30 {
			t.Errorf("%s: terminationGracePeriodSeconds %v, want 30", name, g)
		}
		if sc := pod.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: pod securityContext %+v", name, sc)
		}
		c := container(t, d)
		want := []string{"sluice", "replica", "--app", "lab", "--deployment", tc.dep, "--brokers", "b:9092", "--prefix", "acme"}
		if c.Image != "registry.example/lab:v1" || !slices.Equal(c.Command, want) {
			t.Errorf("%s: image %s command %q, want %q", name, c.Image, c.Command, want)
		}
		if sc := c.SecurityContext; sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
			t.Errorf("%s: container securityContext %+v", name, sc)
		}
	}
	half := container(t, got["sluice-lab.half"])
	if q := half.Resources.Limits["example.com/gpu-slice"]; q.Value() != 1 {
		t.Errorf("--gpu-shared-resource not used: limits %v", half.Resources.Limits)
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	_, got := render(t, parse(t, lab), Options{})
	c := container(t, got["lab-whole"])
	if c.Image != DefaultImage || slices.Contains(c.Command, "--prefix") {
		t.Errorf("image %s command %q: want %s and no --prefix", c.Image, c.Command, DefaultImage)
	}
	if got["lab-whole"].Namespace != "" {
		t.Errorf("namespace %q, want none", got["lab-whole"].Namespace)
	}
}

func TestDeploymentsErrors(t *testing.T) {
	t.Parallel()
	app := parse(t, lab)
	if _, err := Deployments(app, Options{}); err == nil {
		t.Error("no brokers: no error")
	}
	// Kubernetes names are lowercase: half and HALF would share one.
	dup := parse(t, `
name: dup
route_prefix: /dup
ingress: half
deployments:
  - name: half
    args: [{handle: HALF}]
  - name: HALF
`)
	if _, err := Deployments(dup, Options{Brokers: []string{"b:9092"}}); err == nil || !strings.Contains(err.Error(), `"dup-half"`) {
		t.Errorf("two deployments named dup-half: %v", err)
	}
}

func TestQuantities(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cores float64
		want  string
	}{{0.5, "500m"}, {2, "2"}, {1.25, "1250m"}, {0.3, "300m"}, {0.1 + 0.2, "300m"}, {0.0001, "1m"}, {0.0015, "2m"}, {16, "16"}} {
		if got := cpuQuantity(tc.cores); got != tc.want {
			t.Errorf("cpuQuantity(%v) = %s, want %s", tc.cores, got, tc.want)
		}
		if q := resource.MustParse(cpuQuantity(tc.cores)); q.MilliValue() < int64(tc.cores*1000-1e-6) {
			t.Errorf("cpuQuantity(%v) = %v, less than asked", tc.cores, q.String())
		}
	}
	for _, tc := range []struct {
		bytes spec.Bytes
		want  string
	}{{4 << 30, "4Gi"}, {512 << 20, "512Mi"}, {1536 << 20, "1536Mi"}, {8e9, "8G"}, {3 << 10, "3Ki"}, {1000, "1k"}, {1001, "1001"}} {
		got := memoryQuantity(tc.bytes)
		if got != tc.want {
			t.Errorf("memoryQuantity(%d) = %s, want %s", tc.bytes, got, tc.want)
		}
		if q := resource.MustParse(got); q.Value() != int64(tc.bytes) {
			t.Errorf("memoryQuantity(%d) = %s, which Kubernetes reads as %d bytes", tc.bytes, got, q.Value())
		}
	}
}

// Every replica pod serves its /metrics on the port named metrics, where
// the chart's PodMonitor scrapes it.
func TestMetricsPort(t *testing.T) {
	t.Parallel()
	_, got := render(t, parse(t, lab), Options{})
	if len(got) == 0 {
		t.Fatal("nothing rendered")
	}
	for name, d := range got {
		c := d.Spec.Template.Spec.Containers[0]
		if v, ok := envOf(c, "SLUICE_METRICS_ADDR"); !ok || v != "0.0.0.0:9464" {
			t.Errorf("%s: SLUICE_METRICS_ADDR = %q, want 0.0.0.0:9464", name, v)
		}
		if len(c.Ports) != 1 || c.Ports[0].Name != "metrics" || c.Ports[0].ContainerPort != MetricsPort {
			t.Errorf("%s: ports %+v, want metrics %d", name, c.Ports, MetricsPort)
		}
	}
}
