package kube

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/sluice-serve/sluice/autoscaler"
	"github.com/sluice-serve/sluice/autoscaler/kube/workload"
)

var (
	greeter = autoscaler.Target{App: "hello", Deployment: "greeter"}
	ctx     = context.Background()
)

func deployment(ns, name string, replicas int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       appsv1.DeploymentSpec{Replicas: &replicas},
		Status:     appsv1.DeploymentStatus{Replicas: replicas, ReadyReplicas: replicas},
	}
}

func statefulSet(ns, name string, replicas int32) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       appsv1.StatefulSetSpec{Replicas: &replicas},
		Status:     appsv1.StatefulSetStatus{Replicas: replicas, ReadyReplicas: replicas},
	}
}

// newFake is a fake clientset holding objs that also serves the scale
// subresource of Deployments and StatefulSets, which the fake's object
// tracker does not: it answers a get of deployments/scale with the
// Deployment itself. The reactors read and write the workload's
// spec.replicas as the API server does.
func newFake(objs ...runtime.Object) *fake.Clientset {
	c := fake.NewClientset(objs...)
	tr := c.Tracker()
	for _, res := range []string{"deployments", "statefulsets"} {
		c.PrependReactor("get", res, func(a k8stesting.Action) (bool, runtime.Object, error) {
			if a.GetSubresource() != "scale" {
				return false, nil, nil
			}
			obj, err := tr.Get(a.GetResource(), a.GetNamespace(), a.(k8stesting.GetAction).GetName())
			if err != nil {
				return true, nil, err
			}
			return true, scaleOf(obj), nil
		})
		c.PrependReactor("update", res, func(a k8stesting.Action) (bool, runtime.Object, error) {
			if a.GetSubresource() != "scale" {
				return false, nil, nil
			}
			s := a.(k8stesting.UpdateAction).GetObject().(*autoscalingv1.Scale)
			obj, err := tr.Get(a.GetResource(), a.GetNamespace(), s.Name)
			if err != nil {
				return true, nil, err
			}
			switch w := obj.(type) {
			case *appsv1.Deployment:
				w.Spec.Replicas = &s.Spec.Replicas
			case *appsv1.StatefulSet:
				w.Spec.Replicas = &s.Spec.Replicas
			}
			if err := tr.Update(a.GetResource(), obj, a.GetNamespace()); err != nil {
				return true, nil, err
			}
			return true, scaleOf(obj), nil
		})
	}
	return c
}

func scaleOf(obj runtime.Object) *autoscalingv1.Scale {
	s := &autoscalingv1.Scale{}
	switch w := obj.(type) {
	case *appsv1.Deployment:
		s.ObjectMeta = metav1.ObjectMeta{Name: w.Name, Namespace: w.Namespace, ResourceVersion: w.ResourceVersion}
		s.Spec.Replicas, s.Status.Replicas = *w.Spec.Replicas, w.Status.Replicas
	case *appsv1.StatefulSet:
		s.ObjectMeta = metav1.ObjectMeta{Name: w.Name, Namespace: w.Namespace, ResourceVersion: w.ResourceVersion}
		s.Spec.Replicas, s.Status.Replicas = *w.Spec.Replicas, w.Status.Replicas
	}
	return s
}

func newActuator(t *testing.T, c *fake.Clientset, opts ...Option) *Actuator {
	t.Helper()
	a, err := New(c, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// replicas reads spec.replicas of a workload straight from the tracker.
func replicas(t *testing.T, c *fake.Clientset, kind, ns, name string) int32 {
	t.Helper()
	var obj runtime.Object
	var err error
	switch kind {
	case "StatefulSet":
		obj, err = c.Tracker().Get(appsv1.SchemeGroupVersion.WithResource("statefulsets"), ns, name)
	default:
		obj, err = c.Tracker().Get(appsv1.SchemeGroupVersion.WithResource("deployments"), ns, name)
	}
	if err != nil {
		t.Fatal(err)
	}
	return scaleOf(obj).Spec.Replicas
}

// verbs lists the actions of c as "verb resource[/subresource]".
func verbs(c *fake.Clientset) []string {
	var out []string
	for _, a := range c.Actions() {
		r := a.GetResource().Resource
		if s := a.GetSubresource(); s != "" {
			r += "/" + s
		}
		out = append(out, a.GetVerb()+" "+r)
	}
	return out
}

func TestScale(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kind     string
		from, to int32
	}{
		{"Deployment", 2, 5},
		{"Deployment", 5, 0},
		{"Deployment", 0, 1},
		{"StatefulSet", 1, 3},
		{"StatefulSet", 3, 0},
	} {
		t.Run(fmt.Sprintf("%s %d to %d", tc.kind, tc.from, tc.to), func(t *testing.T) {
			t.Parallel()
			var c *fake.Clientset
			if tc.kind == "StatefulSet" {
				// A Deployment of the same name must stay untouched.
				c = newFake(statefulSet("models", "hello-greeter", tc.from), deployment("models", "hello-greeter", tc.from))
			} else {
				c = newFake(deployment("models", "hello-greeter", tc.from), deployment("default", "hello-greeter", tc.from),
					deployment("models", "hello-other", tc.from))
			}
			a := newActuator(t, c, Namespace("models"), Kind(tc.kind))
			if err := a.Scale(ctx, greeter, int(tc.to)); err != nil {
				t.Fatal(err)
			}
			if got := replicas(t, c, tc.kind, "models", "hello-greeter"); got != tc.to {
				t.Fatalf("models/hello-greeter has %d replicas, want %d", got, tc.to)
			}
			if tc.kind == "StatefulSet" {
				if got := replicas(t, c, "Deployment", "models", "hello-greeter"); got != tc.from {
					t.Errorf("the Deployment of the same name changed to %d replicas", got)
				}
			} else {
				for _, other := range [][2]string{{"default", "hello-greeter"}, {"models", "hello-other"}} {
					if got := replicas(t, c, tc.kind, other[0], other[1]); got != tc.from {
						t.Errorf("%s/%s changed to %d replicas", other[0], other[1], got)
					}
				}
			}
			res := "deployments/scale"
			if tc.kind == "StatefulSet" {
				res = "statefulsets/scale"
			}
			if got, want := verbs(c), []string{"get " + res, "update " + res}; !slices.Equal(got, want) {
				t.Errorf("actions %q, want %q", got, want)
			}
			for _, act := range c.Actions() {
				if act.GetNamespace() != "models" {
					t.Errorf("%s in namespace %q, want models", act.GetVerb(), act.GetNamespace())
				}
			}
		})
	}
}

func TestScaleUnchangedDoesNotWrite(t *testing.T) {
	t.Parallel()
	c := newFake(deployment("default", "hello-greeter", 3))
	a := newActuator(t, c)
	if err := a.Scale(ctx, greeter, 3); err != nil {
		t.Fatal(err)
	}
	if got, want := verbs(c), []string{"get deployments/scale"}; !slices.Equal(got, want) {
		t.Errorf("actions %q, want only %q", got, want)
	}
}

func TestScaleRetriesOneConflict(t *testing.T) {
	t.Parallel()
	for _, conflicts := range []int{1, 2} {
		t.Run(fmt.Sprint(conflicts, " conflicts"), func(t *testing.T) {
			t.Parallel()
			c := newFake(deployment("default", "hello-greeter", 1))
			left := conflicts
			c.PrependReactor("update", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
				if a.GetSubresource() != "scale" || left == 0 {
					return false, nil, nil
				}
				left--
				return true, nil, apierrors.NewConflict(schema.GroupResource{Group: "apps", Resource: "deployments"}, "hello-greeter", errors.New("the object has been modified"))
			})
			err := newActuator(t, c).Scale(ctx, greeter, 4)
			got := replicas(t, c, "Deployment", "default", "hello-greeter")
			if conflicts == 1 {
				if err != nil || got != 4 {
					t.Fatalf("after one conflict: err %v, %d replicas; want a retry that sets 4", err, got)
				}
			} else {
				if !apierrors.IsConflict(err) || got != 1 {
					t.Fatalf("after two conflicts: err %v, %d replicas; want the conflict and 1 replica", err, got)
				}
			}
			if n := len(c.Actions()); n != 4 {
				t.Errorf("%d actions %q, want a get and an update, twice", n, verbs(c))
			}
		})
	}
}

func TestScaleRejectsNegative(t *testing.T) {
	t.Parallel()
	c := newFake(deployment("default", "hello-greeter", 1))
	if err := newActuator(t, c).Scale(ctx, greeter, -1); err == nil {
		t.Fatal("scale to -1 succeeded")
	}
	if len(c.Actions()) != 0 {
		t.Errorf("actions %q for a bad count", verbs(c))
	}
}

func TestMissingWorkloadNamesIt(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"Deployment", "StatefulSet"} {
		c := newFake(deployment("other", "hello-greeter", 1))
		a := newActuator(t, c, Namespace("models"), Kind(kind))
		for op, call := range map[string]func() error{
			"scale": func() error { return a.Scale(ctx, greeter, 2) },
			"size":  func() error { _, err := a.Size(ctx, greeter); return err },
		} {
			err := call()
			var nf *NotFoundError
			if !errors.As(err, &nf) || !apierrors.IsNotFound(err) {
				t.Fatalf("%s %s: %v, want a NotFoundError wrapping the API's", kind, op, err)
			}
			for _, want := range []string{kind, `"hello-greeter"`, `namespace "models"`, "hello/greeter", "--app hello --deployment greeter"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%s %s: %q does not say %q", kind, op, err, want)
				}
			}
		}
	}
}

func TestSize(t *testing.T) {
	t.Parallel()
	failing := deployment("default", "hello-greeter", 3)
	failing.Status.ReadyReplicas = 1
	failing.Status.Conditions = []appsv1.DeploymentCondition{
		{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable"},
		{Type: appsv1.DeploymentReplicaFailure, Status: corev1.ConditionTrue, Reason: "FailedCreate",
			Message: `pods "hello-greeter-7d9f-x" is forbidden: exceeded quota: gpu, requested: nvidia.com/gpu=1`},
	}
	stuck := deployment("default", "hello-greeter", 2)
	stuck.Status.ReadyReplicas = 0
	stuck.Status.Conditions = []appsv1.DeploymentCondition{
		{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded",
			Message: `ReplicaSet "hello-greeter-7d9f" has timed out progressing.`},
	}
	starting := deployment("default", "hello-greeter", 4)
	starting.Status.ReadyReplicas = 2
	starting.Status.Conditions = []appsv1.DeploymentCondition{
		{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "ReplicaSetUpdated"},
	}
	atZero := deployment("default", "hello-greeter", 0)
	atZero.Status.Conditions = stuck.Status.Conditions // stale: nothing is asked to start
	unset := deployment("default", "hello-greeter", 0)
	unset.Spec.Replicas = nil
	set := statefulSet("default", "hello-greeter", 3)
	set.Status.ReadyReplicas = 2
	setFailing := statefulSet("default", "hello-greeter", 2)
	setFailing.Status.ReadyReplicas = 0
	setFailing.Status.Conditions = []appsv1.StatefulSetCondition{
		{Type: "ReplicaFailure", Status: corev1.ConditionTrue, Reason: "FailedCreate", Message: "exceeded quota"},
	}

	for _, tc := range []struct {
		name    string
		obj     runtime.Object
		kind    string
		want    autoscaler.Size
		problem []string // substrings of Problem; none: Problem must be ""
	}{
		{"replica failure", failing, "Deployment", autoscaler.Size{Current: 3, Ready: 1},
			[]string{"Deployment default/hello-greeter", "FailedCreate", "exceeded quota: gpu"}},
		{"progress deadline", stuck, "Deployment", autoscaler.Size{Current: 2, Ready: 0},
			[]string{"not progressing", "ProgressDeadlineExceeded", "timed out"}},
		{"starting", starting, "Deployment", autoscaler.Size{Current: 4, Ready: 2}, nil},
		{"at zero", atZero, "Deployment", autoscaler.Size{Current: 0, Ready: 0}, nil},
		{"replicas unset", unset, "Deployment", autoscaler.Size{Current: 1, Ready: 0}, nil},
		{"statefulset", set, "StatefulSet", autoscaler.Size{Current: 3, Ready: 2}, nil},
		{"statefulset failing", setFailing, "StatefulSet", autoscaler.Size{Current: 2, Ready: 0},
			[]string{"StatefulSet default/hello-greeter", "FailedCreate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newFake(tc.obj)
			got, err := newActuator(t, c, Kind(tc.kind)).Size(ctx, greeter)
			if err != nil {
				t.Fatal(err)
			}
			if got.Current != tc.want.Current || got.Ready != tc.want.Ready {
				t.Errorf("size %+v, want current %d ready %d", got, tc.want.Current, tc.want.Ready)
			}
			if len(tc.problem) == 0 && got.Problem != "" {
				t.Errorf("problem %q, want none", got.Problem)
			}
			for _, p := range tc.problem {
				if !strings.Contains(got.Problem, p) {
					t.Errorf("problem %q does not say %q", got.Problem, p)
				}
			}
			if c.Actions()[0].GetVerb() != "get" || len(c.Actions()) != 1 {
				t.Errorf("actions %q, want one get", verbs(c))
			}
		})
	}
}

func TestWorkloadTemplate(t *testing.T) {
	t.Parallel()
	c := newFake(deployment("default", "sluice-hello-languageclassifier", 1))
	a := newActuator(t, c, WorkloadTemplate("sluice-{app}-{deployment}"))
	if err := a.Scale(ctx, autoscaler.Target{App: "hello", Deployment: "LanguageClassifier"}, 2); err != nil {
		t.Fatal(err)
	}
	if got := replicas(t, c, "Deployment", "default", "sluice-hello-languageclassifier"); got != 2 {
		t.Errorf("%d replicas, want 2", got)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	t.Parallel()
	c := newFake()
	for name, opts := range map[string][]Option{
		"no deployment in template": {WorkloadTemplate("{app}")},
		"unknown placeholder":       {WorkloadTemplate("{app}-{name}")},
		"uppercase template":        {WorkloadTemplate("Sluice-{deployment}")},
		"unknown kind":              {Kind("DaemonSet")},
		"empty namespace":           {Namespace("")},
	} {
		if _, err := New(c, opts...); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
	if _, err := New(nil); err == nil {
		t.Error("New(nil) succeeded")
	}
}

func TestNewClientFromKubeconfig(t *testing.T) {
	t.Parallel()
	const kubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:6443"}
users:
- name: u
  user: {token: t}
contexts:
- name: with-ns
  context: {cluster: c, user: u, namespace: models}
- name: without-ns
  context: {cluster: c, user: u}
current-context: %s
`
	for current, want := range map[string]string{"with-ns": "models", "without-ns": "default"} {
		path := filepath.Join(t.TempDir(), "config")
		if err := os.WriteFile(path, fmt.Appendf(nil, kubeconfig, current), 0o600); err != nil {
			t.Fatal(err)
		}
		c, ns, err := NewClient(path)
		if err != nil {
			t.Fatal(err)
		}
		if c == nil || ns != want {
			t.Errorf("context %s: namespace %q, want %q", current, ns, want)
		}
	}
	if _, _, err := NewClient(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing kubeconfig gave a client")
	}
}

// TestRBACCoversEveryCall runs the actuator through everything it does, on
// both kinds, and checks that deploy/kubernetes/rbac.yaml's Role allows
// each request it made, so the manifest cannot fall behind the code.
func TestRBACCoversEveryCall(t *testing.T) {
	t.Parallel()
	role := readRole(t)
	seen := map[string]bool{}
	for _, kind := range []string{"Deployment", "StatefulSet"} {
		c := newFake(deployment("sluice", "hello-greeter", 1), statefulSet("sluice", "hello-greeter", 1))
		conflicted := false
		c.PrependReactor("update", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
			if conflicted {
				return false, nil, nil
			}
			conflicted = true
			return true, nil, apierrors.NewConflict(a.GetResource().GroupResource(), "hello-greeter", errors.New("modified"))
		})
		a := newActuator(t, c, Namespace("sluice"), Kind(kind))
		for _, n := range []int{3, 3, 0} { // a conflict and a retry, no change, down
			if err := a.Scale(ctx, greeter, n); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := a.Size(ctx, greeter); err != nil {
			t.Fatal(err)
		}
		if err := a.Scale(ctx, autoscaler.Target{App: "hello", Deployment: "missing"}, 1); err == nil {
			t.Fatal("scaling a missing workload succeeded")
		}
		for _, act := range c.Actions() {
			r := act.GetResource()
			req := fmt.Sprintf("%s %s/%s", act.GetVerb(), r.Group, r.Resource)
			if s := act.GetSubresource(); s != "" {
				req += "/" + s
			}
			if seen[req] {
				continue
			}
			seen[req] = true
			if !role.allows(act.GetVerb(), r.Group, r.Resource, act.GetSubresource()) {
				t.Errorf("%s: the Role in rbac.yaml does not allow %s", kind, req)
			}
		}
	}
	// The scenario must exercise what the actuator does, or it proves little.
	for _, want := range []string{"get apps/deployments/scale", "update apps/deployments/scale", "get apps/deployments",
		"get apps/statefulsets/scale", "update apps/statefulsets/scale", "get apps/statefulsets"} {
		if !seen[want] {
			t.Errorf("the scenario never made %s", want)
		}
	}
}

type rbacRole struct{ rules []rbacv1.PolicyRule }

func (r rbacRole) allows(verb, group, resource, sub string) bool {
	name := resource
	if sub != "" {
		name += "/" + sub
	}
	in := func(list []string, v string) bool { return slices.Contains(list, v) || slices.Contains(list, "*") }
	for _, rule := range r.rules {
		if in(rule.APIGroups, group) && in(rule.Resources, name) && in(rule.Verbs, verb) {
			return true
		}
	}
	return false
}

// manifests decodes every document of a file under deploy/kubernetes.
func manifests(t *testing.T, file string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "deploy", "kubernetes", file))
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []map[string]any
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
}

// decodeStrict turns a decoded document into a Kubernetes type, failing on
// any field the type does not have.
func decodeStrict(t *testing.T, doc map[string]any, into any) {
	t.Helper()
	js, err := sigsyaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := sigsyaml.UnmarshalStrict(js, into); err != nil {
		t.Fatalf("%s %v: %v", doc["kind"], doc["metadata"], err)
	}
}

func readRole(t *testing.T) rbacRole {
	t.Helper()
	var role *rbacv1.Role
	for _, doc := range manifests(t, "rbac.yaml") {
		if doc["kind"] == "Role" {
			role = &rbacv1.Role{}
			decodeStrict(t, doc, role)
		}
	}
	if role == nil {
		t.Fatal("rbac.yaml holds no Role")
	}
	return rbacRole{role.Rules}
}

// TestManifestsFitTogether checks the manifests against the Kubernetes
// types (no misspelt field) and against each other: the autoscaler runs as
// the service account the RoleBinding binds to the Role, all in one
// namespace, and the example replica is named as the default template says.
func TestManifestsFitTogether(t *testing.T) {
	t.Parallel()
	var (
		sa      corev1.ServiceAccount
		role    rbacv1.Role
		binding rbacv1.RoleBinding
	)
	for _, doc := range manifests(t, "rbac.yaml") {
		switch doc["kind"] {
		case "ServiceAccount":
			decodeStrict(t, doc, &sa)
		case "Role":
			decodeStrict(t, doc, &role)
		case "RoleBinding":
			decodeStrict(t, doc, &binding)
		default:
			t.Errorf("rbac.yaml: unexpected %v", doc["kind"])
		}
	}
	docs := manifests(t, "autoscaler.yaml")
	if len(docs) != 1 {
		t.Fatalf("autoscaler.yaml holds %d documents, want 1", len(docs))
	}
	var auto appsv1.Deployment
	decodeStrict(t, docs[0], &auto)

	ns := sa.Namespace
	if ns == "" || role.Namespace != ns || binding.Namespace != ns || auto.Namespace != ns {
		t.Errorf("namespaces: service account %q, role %q, binding %q, autoscaler %q; want one", sa.Namespace, role.Namespace, binding.Namespace, auto.Namespace)
	}
	if binding.RoleRef.Kind != "Role" || binding.RoleRef.Name != role.Name {
		t.Errorf("the binding refers to %s %q, not the Role %q", binding.RoleRef.Kind, binding.RoleRef.Name, role.Name)
	}
	if len(binding.Subjects) != 1 || binding.Subjects[0].Kind != "ServiceAccount" ||
		binding.Subjects[0].Name != sa.Name || binding.Subjects[0].Namespace != ns {
		t.Errorf("the binding's subjects %+v, want the service account %s/%s", binding.Subjects, ns, sa.Name)
	}
	pod := auto.Spec.Template.Spec
	if pod.ServiceAccountName != sa.Name {
		t.Errorf("the autoscaler runs as %q, want %q", pod.ServiceAccountName, sa.Name)
	}
	if auto.Spec.Replicas == nil || *auto.Spec.Replicas != 1 {
		t.Error("the autoscaler must run one replica")
	}
	cmd := strings.Join(pod.Containers[0].Command, " ")
	if !strings.HasPrefix(cmd, "sluice autoscaler --kubernetes --brokers") {
		t.Errorf("the autoscaler runs %q", cmd)
	}

	docs = manifests(t, "replica-example.yaml")
	if len(docs) != 1 {
		t.Fatalf("replica-example.yaml holds %d documents, want 1", len(docs))
	}
	var replica appsv1.Deployment
	decodeStrict(t, docs[0], &replica)
	args := replica.Spec.Template.Spec.Containers[0].Command
	app, dep := flagValue(args, "--app"), flagValue(args, "--deployment")
	want, err := workload.MustParseTemplate(workload.DefaultTemplate).Name(app, dep)
	if err != nil || replica.Name != want {
		t.Errorf("the example replica of %s/%s is named %q, want %q (%v)", app, dep, replica.Name, want, err)
	}
	if replica.Namespace != ns {
		t.Errorf("the example replica is in %q, the autoscaler in %q", replica.Namespace, ns)
	}
}

func flagValue(args []string, name string) string {
	if i := slices.Index(args, name); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}
