package keda

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluice-serve/sluice/autoscaler/kube/workload"
	"github.com/sluice-serve/sluice/platform/controller"
	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/streams"
)

// shop is an application with an autoscaled ingress, a fixed-size
// deployment it calls, and a deployment fed by two inputs.
const shop = `
name: shop
route_prefix: /shop
partitions: 16
ingress: front
deployments:
  - name: front
    args: [{handle: ranker}]
    replicas: {min: 0, initial: 1, max: 12}
    autoscaling:
      target_lag_per_replica: 25
      activation_lag: 5
      scale_up_delay: 4s
      scale_down_delay: 90s
      scale_to_zero_after: 120s
      poll_interval: 2s
  - name: ranker
    replicas: {min: 3, max: 3}
  - name: audit
    replicas: {min: 1, max: 6}
    autoscaling:
      target_lag_per_replica: 2.5
      poll_interval: 1500ms
      scale_down_delay: 2h
      add_partitions: true
      target_ongoing_requests: 4
  - name: enrich
    replicas: {min: 1, max: 2}
edges:
  - {from: front, to: enrich}
  - {from: front, to: audit}
  - {from: enrich, to: audit}
`

func parse(t *testing.T, src string) *spec.App {
	t.Helper()
	apps, err := spec.Parse("shop.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return apps[0]
}

func render(t *testing.T, app *spec.App, opts Options) ([]ScaledObject, []Skipped, string) {
	t.Helper()
	if opts.Brokers == nil {
		opts.Brokers = []string{"k1:9092", "k2:9092"}
	}
	objs, skipped, err := ScaledObjects(app, controller.Compile(streams.Namer{}, app), opts)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Write(&out, objs, skipped); err != nil {
		t.Fatal(err)
	}
	return objs, skipped, out.String()
}

// docs parses a YAML stream back, by object name.
func docs(t *testing.T, out string) map[string]map[string]any {
	t.Helper()
	byName := map[string]map[string]any{}
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return byName
		}
		if err != nil {
			t.Fatalf("output is not YAML: %v\n%s", err, out)
		}
		if doc == nil {
			t.Fatalf("an empty document in\n%s", out)
		}
		byName[get(t, doc, "metadata.name").(string)] = doc
	}
}

// get follows a dotted path (numbers index lists) through a parsed document.
func get(t *testing.T, v any, path string) any {
	t.Helper()
	for _, p := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[p]; !ok {
				t.Fatalf("%s: no %q", path, p)
			}
		case []any:
			var i int
			if _, err := fmt.Sscan(p, &i); err != nil || i >= len(x) {
				t.Fatalf("%s: no item %q", path, p)
			}
			v = x[i]
		default:
			t.Fatalf("%s: %q of a %T", path, p, v)
		}
	}
	return v
}

func TestEveryMappedFieldEqualsTheSpec(t *testing.T) {
	t.Parallel()
	app := parse(t, shop)
	_, _, out := render(t, app, Options{})
	front := docs(t, out)["shop-front"]
	if front == nil {
		t.Fatalf("no shop-front in\n%s", out)
	}
	const hpa = "spec.advanced.horizontalPodAutoscalerConfig.behavior."
	const trig = "spec.triggers.0.metadata."
	for path, want := range map[string]any{
		"apiVersion":                                 "keda.sh/v1alpha1",
		"kind":                                       "ScaledObject",
		"spec.scaleTargetRef.apiVersion":             "apps/v1",
		"spec.scaleTargetRef.kind":                   "Deployment",
		"spec.scaleTargetRef.name":                   "shop-front",
		"spec.minReplicaCount":                       0,  // replicas.min
		"spec.maxReplicaCount":                       12, // replicas.max
		"spec.pollingInterval":                       2,  // poll_interval 2s
		"spec.cooldownPeriod":                        120,
		hpa + "scaleUp.stabilizationWindowSeconds":   4,
		hpa + "scaleDown.stabilizationWindowSeconds": 90,
		hpa + "scaleUp.policies.0.type":              "Pods",
		hpa + "scaleUp.policies.0.value":             12,
		trig + "bootstrapServers":                    "k1:9092,k2:9092",
		trig + "consumerGroup":                       streams.Namer{}.Group("shop", "front"),
		trig + "topic":                               streams.Namer{}.Ingress("shop"),
		trig + "lagThreshold":                        "25",
		trig + "activationLagThreshold":              "4", // activation_lag 5 − 1
		trig + "offsetResetPolicy":                   "earliest",
		trig + "allowIdleConsumers":                  "false",
		trig + "limitToPartitionsWithLag":            "false",
		trig + "excludePersistentLag":                "false",
	} {
		if got := get(t, front, path); got != want {
			t.Errorf("%s = %#v, want %#v", path, got, want)
		}
	}
	if _, ok := get(t, front, "spec").(map[string]any)["idleReplicaCount"]; ok {
		t.Error("idleReplicaCount is set")
	}
	if n := len(get(t, front, "spec.triggers").([]any)); n != 1 {
		t.Errorf("%d triggers for one input", n)
	}
}

func TestFixedSizeIsSkipped(t *testing.T) {
	t.Parallel()
	objs, skipped, out := render(t, parse(t, shop), Options{})
	if _, ok := docs(t, out)["shop-ranker"]; ok {
		t.Error("a ScaledObject for ranker, whose min = max")
	}
	if len(objs) != 3 || len(skipped) != 1 || skipped[0].Target.Deployment != "ranker" {
		t.Fatalf("objects %d, skipped %+v; want 3 and ranker", len(objs), skipped)
	}
	if !strings.Contains(out, "#   shop/ranker: replicas.min = replicas.max = 3") {
		t.Errorf("the output does not say why ranker has no object:\n%s", out)
	}
}

func TestSeveralInputsGiveSeveralTriggers(t *testing.T) {
	t.Parallel()
	app := parse(t, shop)
	topo := controller.Compile(streams.Namer{}, app)
	objs, _, out := render(t, app, Options{})
	audit := docs(t, out)["shop-audit"]
	inputs := topo.Deployments["audit"].Inputs
	triggers := get(t, audit, "spec.triggers").([]any)
	if len(inputs) != 2 || len(triggers) != len(inputs) {
		t.Fatalf("%d triggers for inputs %q", len(triggers), inputs)
	}
	for i, in := range inputs {
		md := fmt.Sprintf("spec.triggers.%d.metadata.", i)
		if got := get(t, audit, md+"topic"); got != in {
			t.Errorf("trigger %d topic %v, want %s", i, got, in)
		}
		if got := get(t, audit, md+"consumerGroup"); got != topo.Deployments["audit"].Group {
			t.Errorf("trigger %d group %v", i, got)
		}
		if got := get(t, audit, fmt.Sprintf("spec.triggers.%d.type", i)); got != "kafka" {
			t.Errorf("trigger %d type %v", i, got)
		}
	}
	for _, o := range objs {
		if o.Target.Deployment == "audit" && !containsNote(o.Notes, "Inputs:") {
			t.Errorf("audit's notes do not explain how KEDA combines its %d triggers: %q", len(inputs), o.Notes)
		}
		if o.Target.Deployment == "front" && containsNote(o.Notes, "Inputs:") {
			t.Error("front, with one input, has a note on several")
		}
	}
}

func TestRounding(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		d    time.Duration
		want int32
	}{
		{50 * time.Millisecond, 1},
		{500 * time.Millisecond, 1},
		{time.Second, 1},
		{1001 * time.Millisecond, 2},
		{1500 * time.Millisecond, 2},
		{30 * time.Second, 30},
		{0, 0},
	} {
		if got := seconds(spec.Duration(tc.d)); got != tc.want {
			t.Errorf("seconds(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}

	// Through the whole mapping: audit's poll_interval 1500ms, target lag
	// 2.5 and scale_down_delay 2h.
	objs, _, out := render(t, parse(t, shop), Options{})
	audit := docs(t, out)["shop-audit"]
	if got := get(t, audit, "spec.pollingInterval"); got != 2 {
		t.Errorf("poll_interval 1500ms gave pollingInterval %v, want 2 (rounded up)", got)
	}
	if got := get(t, audit, "spec.triggers.0.metadata.lagThreshold"); got != "3" {
		t.Errorf("target 2.5 gave lagThreshold %v, want 3", got)
	}
	if got := get(t, audit, "spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.stabilizationWindowSeconds"); got != 3600 {
		t.Errorf("scale_down_delay 2h gave window %v, want 3600 (the HPA's most)", got)
	}
	for _, want := range []string{"poll_interval 1.5s, rounded up to 2 s", "target_lag_per_replica 2.5, rounded", "cut to 3600 s"} {
		if !strings.Contains(out, want) {
			t.Errorf("the output does not say %q", want)
		}
	}
	for _, o := range objs {
		if o.Target.Deployment == "audit" {
			for _, n := range []string{"add_partitions", "target_ongoing_requests 4"} {
				if !containsNote(o.Notes, n) {
					t.Errorf("audit's notes miss %q", n)
				}
			}
		}
	}
}

func TestDefaultsMap(t *testing.T) {
	t.Parallel()
	app := parse(t, `
name: tiny
route_prefix: /tiny
ingress: d
deployments:
  - name: d
    max_ongoing_requests: 8
    replicas: {min: 1, max: 3}
`)
	objs, _, out := render(t, app, Options{})
	d := docs(t, out)["tiny-d"]
	a := app.Deployments[0].Autoscaling
	const hpa = "spec.advanced.horizontalPodAutoscalerConfig.behavior."
	for path, want := range map[string]any{
		"spec.pollingInterval":                            int(seconds(a.PollInterval)),
		"spec.cooldownPeriod":                             int(seconds(a.ScaleToZeroAfter)),
		hpa + "scaleUp.stabilizationWindowSeconds":        int(seconds(a.ScaleUpDelay)),
		hpa + "scaleDown.stabilizationWindowSeconds":      int(seconds(a.ScaleDownDelay)),
		"spec.triggers.0.metadata.lagThreshold":           fmt.Sprint(a.TargetLagPerReplica),
		"spec.triggers.0.metadata.activationLagThreshold": fmt.Sprint(a.ActivationLag - 1),
	} {
		if got := get(t, d, path); got != want {
			t.Errorf("%s = %#v, want %#v", path, got, want)
		}
	}
	if containsNote(objs[0].Notes, "Waking") {
		t.Error("a note on waking from zero for a deployment whose min is 1")
	}
}

func TestOptions(t *testing.T) {
	t.Parallel()
	tmpl, err := workload.ParseTemplate("sluice-{app}-{deployment}")
	if err != nil {
		t.Fatal(err)
	}
	_, _, out := render(t, parse(t, shop), Options{Namespace: "ml", Workload: tmpl, Kind: workload.StatefulSet})
	front := docs(t, out)["sluice-shop-front"]
	if front == nil {
		t.Fatalf("no sluice-shop-front in\n%s", out)
	}
	for path, want := range map[string]any{
		"metadata.namespace":       "ml",
		"spec.scaleTargetRef.name": "sluice-shop-front",
		"spec.scaleTargetRef.kind": "StatefulSet",
	} {
		if got := get(t, front, path); got != want {
			t.Errorf("%s = %v, want %v", path, got, want)
		}
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	app := parse(t, shop)
	topo := controller.Compile(streams.Namer{}, app)
	if _, _, err := ScaledObjects(app, topo, Options{}); err == nil {
		t.Error("no brokers: no error")
	}
	// Two deployments whose names differ only in case share a workload name.
	twins := parse(t, `
name: twins
route_prefix: /twins
ingress: Ab
deployments:
  - name: Ab
    args: [{handle: ab}]
    replicas: {min: 1, max: 2}
  - name: ab
    replicas: {min: 1, max: 2}
`)
	_, _, err := ScaledObjects(twins, controller.Compile(streams.Namer{}, twins), Options{Brokers: []string{"k:9092"}})
	if err == nil || !strings.Contains(err.Error(), `"twins-ab"`) {
		t.Errorf("twins: %v, want an error naming the shared workload", err)
	}
}

// TestCommentsLandOnTheirFields: every comment names a field of the
// object (Write fails otherwise) and sits right above it.
func TestCommentsLandOnTheirFields(t *testing.T) {
	t.Parallel()
	objs, _, out := render(t, parse(t, shop), Options{})
	if len(objs[0].Comments) == 0 {
		t.Fatal("no comments")
	}
	lines := strings.Split(out, "\n")
	i := slices.IndexFunc(lines, func(l string) bool { return strings.TrimSpace(l) == `excludePersistentLag: "false"` })
	if i < 0 {
		t.Fatal("no excludePersistentLag in the output")
	}
	above := strings.Join(lines[max(0, i-7):i], "\n")
	for _, want := range []string{"stuck lag", "retention", "transaction marker"} {
		if !strings.Contains(above, want) {
			t.Errorf("the comment above excludePersistentLag does not say %q:\n%s", want, above)
		}
	}
	bad := objs[0]
	bad.Comments = map[string]string{"spec.nothing": "x"}
	if err := Write(io.Discard, []ScaledObject{bad}, nil); err == nil {
		t.Error("a comment on a missing field was written")
	}
}

func containsNote(notes []string, s string) bool {
	for _, n := range notes {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}
