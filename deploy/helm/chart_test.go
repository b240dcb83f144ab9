// Package helm_test checks the Helm chart in deploy/helm/sluice offline:
// it renders the chart with `helm template` (default values and each
// values file in sluice/ci), decodes every object strictly into its
// k8s.io/api type (a misspelt or misplaced field, or a value of the wrong
// type, fails: the same schema the API server applies, without
// downloading one), and checks what the types cannot: the objects refer
// to each other correctly, every credential comes from a Secret, the pods
// run non-root on a read-only root, and the Role grants what
// deploy/kubernetes/rbac.yaml grants (which autoscaler/kube's tests check
// against the actuator's calls).
//
// It needs helm: SLUICE_HELM names the binary (scripts/test.sh helm
// installs a pinned one); without it the tests skip.
package helm_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes/scheme"
	sigsyaml "sigs.k8s.io/yaml"
)

const (
	chart       = "sluice"
	release     = "rel"
	namespace   = "sluice"
	kubeVersion = "1.33.0" // the chart asks for >= 1.27 (gRPC probes)
)

func helmBin(t *testing.T) string {
	t.Helper()
	h := os.Getenv("SLUICE_HELM")
	if h == "" {
		t.Skip("SLUICE_HELM is not set: scripts/test.sh helm installs a pinned helm and runs these tests")
	}
	return h
}

// helm runs helm template with args; the output and the error with
// helm's stderr.
func helm(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(helmBin(t), append([]string{"template", release, chart, "--namespace", namespace, "--kube-version", kubeVersion}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%w: %s", err, stderr.Bytes())
	}
	return out, nil
}

// rendered is one rendering of the chart, every object decoded.
type rendered struct {
	objects     []runtime.Object
	secrets     map[string]*corev1.Secret
	deployments map[string]*appsv1.Deployment // by component
	services    []*corev1.Service
	pdbs        []*policyv1.PodDisruptionBudget
	roles       []*rbacv1.Role
	bindings    []*rbacv1.RoleBinding
	accounts    []*corev1.ServiceAccount
	podMonitors []*podMonitor
}

// podMonitor is the Prometheus Operator's PodMonitor
// (monitoring.coreos.com/v1), a CRD k8s.io/api does not know: the fields
// of its schema the chart writes, decoded as strictly as the rest.
type podMonitor struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		NamespaceSelector struct {
			MatchNames []string `json:"matchNames"`
		} `json:"namespaceSelector"`
		Selector            metav1.LabelSelector `json:"selector"`
		PodMetricsEndpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path"`
			Interval      string `json:"interval"`
			Scheme        string `json:"scheme,omitempty"`
			Authorization *struct {
				Type        string                   `json:"type"`
				Credentials corev1.SecretKeySelector `json:"credentials"`
			} `json:"authorization,omitempty"`
		} `json:"podMetricsEndpoints"`
	} `json:"spec"`
}

// decode decodes every document strictly into the Go type of its kind.
func decode(t *testing.T, out []byte) *rendered {
	t.Helper()
	r := &rendered{secrets: map[string]*corev1.Secret{}, deployments: map[string]*appsv1.Deployment{}}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var node yaml.Node
		err := dec.Decode(&node)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("rendered YAML: %v", err)
		}
		doc, err := yaml.Marshal(&node)
		if err != nil {
			t.Fatal(err)
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := sigsyaml.Unmarshal(doc, &head); err != nil {
			t.Fatal(err)
		}
		if head.Kind == "" {
			continue // an empty document
		}
		if head.APIVersion == "monitoring.coreos.com/v1" && head.Kind == "PodMonitor" {
			var pm podMonitor
			if err := sigsyaml.UnmarshalStrict(doc, &pm); err != nil {
				t.Fatalf("PodMonitor: %v\n%s", err, doc)
			}
			r.podMonitors = append(r.podMonitors, &pm)
			continue
		}
		gv, err := schema.ParseGroupVersion(head.APIVersion)
		if err != nil {
			t.Fatalf("%s: %v", head.Kind, err)
		}
		obj, err := scheme.Scheme.New(gv.WithKind(head.Kind))
		if err != nil {
			t.Fatalf("%s %s: not a Kubernetes type: %v", head.APIVersion, head.Kind, err)
		}
		// Strict: an unknown field, a duplicate key or a value of the
		// wrong type is an error, as the API server's schema makes it.
		if err := sigsyaml.UnmarshalStrict(doc, obj); err != nil {
			t.Fatalf("%s: %v\n%s", head.Kind, err, doc)
		}
		r.objects = append(r.objects, obj)
		switch o := obj.(type) {
		case *corev1.Secret:
			r.secrets[o.Name] = o
		case *appsv1.Deployment:
			r.deployments[o.Labels["app.kubernetes.io/component"]] = o
		case *corev1.Service:
			r.services = append(r.services, o)
		case *policyv1.PodDisruptionBudget:
			r.pdbs = append(r.pdbs, o)
		case *rbacv1.Role:
			r.roles = append(r.roles, o)
		case *rbacv1.RoleBinding:
			r.bindings = append(r.bindings, o)
		case *corev1.ServiceAccount:
			r.accounts = append(r.accounts, o)
		default:
			t.Errorf("unexpected %T", obj)
		}
	}
	return r
}

// The renderings: default values, and each values file in ci/, with the
// Secrets each expects to exist already (named in existingSecret).
var cases = []struct {
	name     string
	values   string
	existing []string
	secrets  int // the chart makes
	tls      bool
	insecure bool // no authentication: the gateway runs with --insecure
}{
	{name: "default", insecure: true},
	{name: "existing secrets", values: "sluice/ci/secure-existing-values.yaml", tls: true,
		existing: []string{"kafka-scram", "kafka-ca", "s3-credentials", "sluice-tokens", "sluice-jwks", "sluice-gateway-cert"}},
	{name: "created secrets", values: "sluice/ci/secure-created-values.yaml", tls: true, secrets: 6},
}

func TestChartRendersValidObjects(t *testing.T) {
	t.Parallel()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var args []string
			var values []byte
			if tc.values != "" {
				args = append(args, "-f", tc.values)
				var err error
				if values, err = os.ReadFile(tc.values); err != nil {
					t.Fatal(err)
				}
			}
			out, err := helm(t, args...)
			if err != nil {
				t.Fatal(err)
			}
			r := decode(t, out)
			checkMetadata(t, r)
			if len(r.secrets) != tc.secrets {
				t.Errorf("the chart makes %d Secrets, want %d", len(r.secrets), tc.secrets)
			}
			gw, as := r.deployments["gateway"], r.deployments["autoscaler"]
			if gw == nil || as == nil {
				t.Fatalf("deployments %v: want the gateway and the autoscaler", keys(r.deployments))
			}
			for _, d := range []*appsv1.Deployment{gw, as} {
				checkPod(t, r, d, tc.existing, secretValues(t, values))
			}
			checkGateway(t, r, gw, tc.tls, tc.insecure)
			checkAutoscaler(t, r, as)
		})
	}
}

// checkMetadata: names, namespaces and labels are valid, and every object
// carries the chart's labels.
func checkMetadata(t *testing.T, r *rendered) {
	t.Helper()
	for _, obj := range r.objects {
		m, err := metaOf(obj)
		if err != nil {
			t.Fatal(err)
		}
		what := fmt.Sprintf("%T %s", obj, m.GetName())
		for _, msg := range validation.IsDNS1123Subdomain(m.GetName()) {
			t.Errorf("%s: name: %s", what, msg)
		}
		if _, ok := obj.(*corev1.Service); ok {
			for _, msg := range validation.IsDNS1035Label(m.GetName()) {
				t.Errorf("%s: Service name: %s", what, msg)
			}
		}
		if m.GetNamespace() == "" {
			t.Errorf("%s: no namespace", what)
		}
		for k, v := range m.GetLabels() {
			for _, msg := range append(validation.IsQualifiedName(k), validation.IsValidLabelValue(v)...) {
				t.Errorf("%s: label %s=%s: %s", what, k, v, msg)
			}
		}
		for _, k := range []string{"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component",
			"app.kubernetes.io/managed-by", "app.kubernetes.io/part-of", "app.kubernetes.io/version", "helm.sh/chart"} {
			if m.GetLabels()[k] == "" {
				t.Errorf("%s: no label %s", what, k)
			}
		}
	}
}

func metaOf(obj runtime.Object) (metav1.Object, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("%T has no metadata", obj)
	}
	return m, nil
}

// secretValues are the values of the credential fields of a values file,
// which must appear in no argument.
func secretValues(t *testing.T, values []byte) []string {
	t.Helper()
	var out []string
	var walk func(key string, v any)
	walk = func(key string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				walk(k, x)
			}
		case string:
			if slices.Contains([]string{"password", "secretKey", "accessKey", "tokensFile", "key", "username"}, key) && v != "" {
				out = append(out, v)
			}
		}
	}
	var doc map[string]any
	if err := yaml.Unmarshal(values, &doc); err != nil {
		t.Fatal(err)
	}
	walk("", doc)
	return out
}

// checkPod: selector, security, resources, and every reference to a
// Secret or a volume resolves; no credential in the arguments.
func checkPod(t *testing.T, r *rendered, d *appsv1.Deployment, existing, secrets []string) {
	t.Helper()
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || sel.Empty() || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("%s: selector %v does not select its pods (%v): %v", d.Name, d.Spec.Selector, d.Spec.Template.Labels, err)
	}
	pod := d.Spec.Template.Spec
	if sc := pod.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("%s: the pod may run as root", d.Name)
	}
	secretKnown := func(name string) bool { return r.secrets[name] != nil || slices.Contains(existing, name) }
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
		if v.Secret != nil && !secretKnown(v.Secret.SecretName) {
			t.Errorf("%s: volume %s: Secret %s is neither made by the chart nor named as existing", d.Name, v.Name, v.Secret.SecretName)
		}
	}
	for _, c := range pod.Containers {
		what := d.Name + "/" + c.Name
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Errorf("%s: securityContext %+v: want a read-only root, no privilege escalation, no capabilities", what, sc)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s: resources %v: want CPU and memory requests and a memory limit", what, c.Resources)
		}
		if c.Image == "" || len(c.Command) == 0 || c.Command[0] != "sluice" {
			t.Errorf("%s: image %q, command %v", what, c.Image, c.Command)
		}
		args := strings.Join(c.Args, " ")
		for _, s := range secrets {
			if strings.Contains(args, s) {
				t.Errorf("%s: a credential in the arguments: %s", what, args)
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				ref := e.ValueFrom.SecretKeyRef
				if !secretKnown(ref.Name) {
					t.Errorf("%s: env %s: Secret %s is neither made by the chart nor named as existing", what, e.Name, ref.Name)
				} else if s := r.secrets[ref.Name]; s != nil {
					if _, ok := s.StringData[ref.Key]; !ok {
						t.Errorf("%s: env %s: Secret %s has no key %s", what, e.Name, ref.Name, ref.Key)
					}
				}
				continue
			}
			for _, word := range []string{"PASSWORD", "SECRET", "TOKEN", "ACCESS_KEY"} {
				if strings.Contains(e.Name, word) {
					t.Errorf("%s: env %s holds a credential as a plain value, not from a Secret", what, e.Name)
				}
			}
		}
		for _, m := range c.VolumeMounts {
			if _, ok := volumes[m.Name]; !ok {
				t.Errorf("%s: mount %s: no such volume", what, m.Name)
			}
		}
		ports := map[string]int32{}
		for _, p := range c.Ports {
			ports[p.Name] = p.ContainerPort
		}
		for kind, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
			switch {
			case p == nil:
			case p.HTTPGet != nil:
				if _, ok := ports[p.HTTPGet.Port.String()]; !ok {
					t.Errorf("%s: %s probe on port %s, which the container does not declare", what, kind, p.HTTPGet.Port.String())
				}
			case p.GRPC != nil:
				if !slices.Contains(valuesOf(ports), p.GRPC.Port) {
					t.Errorf("%s: %s gRPC probe on port %d, which the container does not declare", what, kind, p.GRPC.Port)
				}
			}
		}
	}
}

func valuesOf(m map[string]int32) []int32 {
	var out []int32
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// checkGateway: --insecure exactly without authentication, the probes, the Service and the PodDisruptionBudget.
func checkGateway(t *testing.T, r *rendered, gw *appsv1.Deployment, tls, insecure bool) {
	t.Helper()
	c := gw.Spec.Template.Spec.Containers[0]
	if !strings.HasPrefix(strings.Join(c.Args, " "), "gateway --brokers") {
		t.Errorf("the gateway runs %v", c.Args)
	}
	// It listens on every address: without authentication it starts only
	// when told --insecure, and only then.
	if slices.Contains(c.Args, "--insecure") != insecure {
		t.Errorf("the gateway runs %v: want --insecure %v", c.Args, insecure)
	}
	scheme := corev1.URISchemeHTTP
	if tls {
		scheme = corev1.URISchemeHTTPS
	}
	for p, path := range map[*corev1.Probe]string{c.ReadinessProbe: "/v2/health/ready", c.LivenessProbe: "/v2/health/live"} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path || p.HTTPGet.Scheme != scheme {
			t.Errorf("probe %+v: want GET %s over %s", p, path, scheme)
		}
	}
	// gRPC probes speak no TLS: grpc.health.v1 without, HTTPS with.
	if sp := c.StartupProbe; sp == nil || (tls && sp.HTTPGet == nil) || (!tls && (sp.GRPC == nil || sp.GRPC.Port != portOf(c, "grpc"))) {
		t.Errorf("startup probe %+v: want grpc.health.v1 on the gRPC port (HTTPS readiness with TLS)", sp)
	}
	pods := labels.Set(gw.Spec.Template.Labels)
	if len(r.services) != 1 {
		t.Fatalf("%d Services, want the gateway's", len(r.services))
	}
	svc := r.services[0]
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(pods) || len(svc.Spec.Selector) == 0 {
		t.Errorf("Service selector %v does not select the gateway's pods", svc.Spec.Selector)
	}
	for _, p := range svc.Spec.Ports {
		if portOf(c, p.TargetPort.String()) == 0 {
			t.Errorf("Service port %s: target %s is not a port of the gateway", p.Name, p.TargetPort.String())
		}
	}
	if len(r.pdbs) != 1 {
		t.Fatalf("%d PodDisruptionBudgets, want the gateway's", len(r.pdbs))
	}
	if sel, err := metav1.LabelSelectorAsSelector(r.pdbs[0].Spec.Selector); err != nil || sel.Empty() || !sel.Matches(pods) {
		t.Errorf("the PodDisruptionBudget's selector does not select the gateway's pods: %v", err)
	}
	if pdb := r.pdbs[0].Spec; (pdb.MinAvailable == nil) == (pdb.MaxUnavailable == nil) {
		t.Errorf("PodDisruptionBudget %+v: want minAvailable or maxUnavailable", pdb)
	}
	if s := gw.Spec.Strategy.RollingUpdate; s == nil || s.MaxUnavailable == nil || s.MaxUnavailable.IntValue() != 0 {
		t.Error("a gateway rollout may take instances down before new ones are ready")
	}
}

func portOf(c corev1.Container, name string) int32 {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

// checkAutoscaler: one replica, its service account bound to the Role in
// the workloads' namespace, and the Role's rules are rbac.yaml's.
func checkAutoscaler(t *testing.T, r *rendered, as *appsv1.Deployment) {
	t.Helper()
	if as.Spec.Replicas == nil || *as.Spec.Replicas != 1 || as.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Error("the autoscaler must run one replica, replaced with Recreate")
	}
	c := as.Spec.Template.Spec.Containers[0]
	args := c.Args
	if !strings.HasPrefix(strings.Join(args, " "), "autoscaler --kubernetes --brokers") {
		t.Errorf("the autoscaler runs %v", args)
	}
	i := slices.Index(args, "--namespace")
	if i < 0 || i+1 >= len(args) {
		t.Fatalf("the autoscaler is not told the workloads' namespace: %v", args)
	}
	workloads := args[i+1]
	if len(r.roles) != 1 || len(r.bindings) != 1 || len(r.accounts) != 1 {
		t.Fatalf("%d Roles, %d RoleBindings, %d ServiceAccounts: want one each", len(r.roles), len(r.bindings), len(r.accounts))
	}
	role, binding, sa := r.roles[0], r.bindings[0], r.accounts[0]
	if role.Namespace != workloads || binding.Namespace != workloads {
		t.Errorf("the Role (%s) and its binding (%s) are not where the workloads are (%s)", role.Namespace, binding.Namespace, workloads)
	}
	if as.Spec.Template.Spec.ServiceAccountName != sa.Name || sa.Namespace != as.Namespace {
		t.Errorf("the autoscaler runs as %q, the chart makes %s/%s", as.Spec.Template.Spec.ServiceAccountName, sa.Namespace, sa.Name)
	}
	if binding.RoleRef.Kind != "Role" || binding.RoleRef.Name != role.Name || binding.RoleRef.APIGroup != rbacv1.GroupName {
		t.Errorf("the binding refers to %+v, not the Role %s", binding.RoleRef, role.Name)
	}
	if len(binding.Subjects) != 1 || binding.Subjects[0].Kind != "ServiceAccount" ||
		binding.Subjects[0].Name != sa.Name || binding.Subjects[0].Namespace != sa.Namespace {
		t.Errorf("the binding's subjects %+v, want %s/%s", binding.Subjects, sa.Namespace, sa.Name)
	}
	if want := rbacYAMLRules(t); !reflect.DeepEqual(role.Rules, want) {
		t.Errorf("the chart's Role grants\n%+v\ndeploy/kubernetes/rbac.yaml's grants\n%+v", role.Rules, want)
	}
}

// rbacYAMLRules are the rules of the Role in deploy/kubernetes/rbac.yaml.
func rbacYAMLRules(t *testing.T) []rbacv1.PolicyRule {
	t.Helper()
	data, err := os.ReadFile("../kubernetes/rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range bytes.Split(data, []byte("\n---\n")) {
		var role rbacv1.Role
		if err := sigsyaml.Unmarshal(doc, &role); err != nil {
			t.Fatal(err)
		}
		if role.Kind == "Role" {
			return role.Rules
		}
	}
	t.Fatal("rbac.yaml holds no Role")
	return nil
}

// Values that contradict the schema or each other are refused, naming
// the value.
func TestChartRefusesBadValues(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		set  []string
		want string
	}{
		{[]string{"gateway.replicas=0"}, "/gateway/replicas"},
		{[]string{"gateway.replica=2"}, "additional properties 'replica'"},
		{[]string{"kafka.brokers=kafka"}, "/kafka/brokers"},
		{[]string{"kafka.brokers="}, "/kafka/brokers"},
		{[]string{"podSecurityContext.runAsNonRoot=false"}, "/podSecurityContext/runAsNonRoot"},
		{[]string{"securityContext.allowPrivilegeEscalation=true"}, "/securityContext/allowPrivilegeEscalation"},
		{[]string{"autoscaler.kind=ReplicaSet"}, "/autoscaler/kind"},
		{[]string{"image.digest=latest"}, "/image/digest"},
		{[]string{"kafka.sasl.enabled=true"}, "kafka.sasl.username"},
		{[]string{"kafka.tls.enabled=true"}, "kafka.tls.ca"},
		{[]string{"s3.endpoint=minio:9000"}, "s3.accessKey"},
		{[]string{"gateway.auth.enabled=true"}, "gateway.auth.tokensFile"},
		{[]string{"gateway.jwt.enabled=true"}, "gateway.jwt.jwks"},
		{[]string{"gateway.jwt.enabled=true", "gateway.jwt.existingSecret=j"}, "gateway.jwt.issuer"},
		{[]string{"gateway.jwt.enabled=true", "gateway.jwt.existingSecret=j", "gateway.jwt.issuer=i"}, "gateway.jwt.audience"},
		{[]string{"gateway.jwt.enable=true"}, "additional properties 'enable'"},
		{[]string{"gateway.tls.enabled=true"}, "gateway.tls.cert"},
		{[]string{"gateway.tls.enabled=true", "gateway.tls.existingSecret=c", "gateway.tls.verifyClients=true", "gateway.tls.cert=x"}, ""},
		{[]string{"gateway.podDisruptionBudget.maxUnavailable=1"}, "not both"},
		{[]string{"gateway.replicas=1"}, "every node drain"},
		{[]string{"gateway.replicas=3", "gateway.podDisruptionBudget.minAvailable=3"}, "every node drain"},
		{[]string{"gateway.replicas=1", "gateway.podDisruptionBudget.minAvailable=", "gateway.podDisruptionBudget.maxUnavailable=1"}, ""},
	} {
		var args []string
		for _, s := range tc.set {
			args = append(args, "--set", s)
		}
		_, err := helm(t, args...)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.set, err)
		case tc.want != "" && err == nil:
			t.Errorf("%v: rendered, want a refusal naming %s", tc.set, tc.want)
		case tc.want != "" && !strings.Contains(err.Error(), tc.want):
			t.Errorf("%v: %v\nwant it to name %s", tc.set, err, tc.want)
		}
	}
}

// The gateway runs with --insecure exactly when neither the token file
// nor JWTs authenticate; with JWTs it is given the key set, issuer and
// audience.
func TestChartInsecureOnlyWithoutAuth(t *testing.T) {
	t.Parallel()
	jwt := []string{"gateway.jwt.enabled=true", "gateway.jwt.existingSecret=jwks", "gateway.jwt.issuer=https://idp", "gateway.jwt.audience=sluice"}
	for _, tc := range []struct {
		set      []string
		insecure bool
	}{
		{nil, true},
		{jwt, false},
		{[]string{"gateway.auth.enabled=true", "gateway.auth.tokensFile=tokens: []"}, false},
	} {
		var args []string
		for _, s := range tc.set {
			args = append(args, "--set", s)
		}
		out, err := helm(t, args...)
		if err != nil {
			t.Fatalf("%v: %v", tc.set, err)
		}
		c := decode(t, out).deployments["gateway"].Spec.Template.Spec.Containers[0]
		if slices.Contains(c.Args, "--insecure") != tc.insecure {
			t.Errorf("%v: the gateway runs %v: want --insecure %v", tc.set, c.Args, tc.insecure)
		}
		env := map[string]string{}
		for _, e := range c.Env {
			env[e.Name] = e.Value
		}
		if tc.set != nil && tc.set[0] == jwt[0] && (env["SLUICE_JWKS_FILE"] != "/etc/sluice/jwt/jwks.json" || env["SLUICE_JWT_ISSUER"] != "https://idp" || env["SLUICE_JWT_AUDIENCE"] != "sluice") {
			t.Errorf("with JWTs the gateway's environment is %v", env)
		}
	}
}

// NOTES.txt renders with each values file (helm template does not render
// it: a copy of the chart renders it as a value of a template).
func TestChartNotes(t *testing.T) {
	t.Parallel()
	helmBin(t)
	dir := filepath.Join(t.TempDir(), chart)
	if err := os.CopyFS(dir, os.DirFS(chart)); err != nil {
		t.Fatal(err)
	}
	notes, err := os.ReadFile(filepath.Join(chart, "templates", "NOTES.txt"))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := "{{- define \"notes-check\" }}" + string(notes) + "{{- end }}\nnotes: {{ include \"notes-check\" . | toJson }}\n"
	if err := os.WriteFile(filepath.Join(dir, "templates", "notes-check.yaml"), []byte(tmpl), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		args := []string{"--show-only", "templates/notes-check.yaml"}
		if tc.values != "" {
			args = append(args, "-f", tc.values)
		}
		cmd := exec.Command(helmBin(t), append([]string{"template", release, dir, "--namespace", namespace, "--kube-version", kubeVersion}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", tc.name, err, out)
		}
		var doc struct{ Notes string }
		if err := sigsyaml.Unmarshal(out, &doc); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		scheme := "http://"
		if tc.tls {
			scheme = "https://"
		}
		for _, want := range []string{"svc/" + release + "-sluice-gateway 8000:8000", scheme + "127.0.0.1:8000/v2/health/ready"} {
			if !strings.Contains(doc.Notes, want) {
				t.Errorf("%s: the notes do not say %q:\n%s", tc.name, want, doc.Notes)
			}
		}
	}
}

// The PodMonitor is rendered only when enabled; it selects the gateway's
// and the autoscaler's pods (and replica pods, by the labels `sluice
// render --workloads` gives them) in the release's and the workloads'
// namespaces, scrapes ports those pods name, and sends the gateway the
// token Secret's key when one is named. By default nothing of it is
// rendered, so a cluster without the CRD installs the chart.
func TestChartPodMonitor(t *testing.T) {
	t.Parallel()
	out, err := helm(t)
	if err != nil {
		t.Fatal(err)
	}
	if r := decode(t, out); len(r.podMonitors) != 0 {
		t.Fatalf("a PodMonitor by default")
	}
	out, err = helm(t, "--set", "metrics.podMonitor.enabled=true", "--set", "metrics.podMonitor.tokenSecret.name=prom-token",
		"--set", "metrics.podMonitor.labels.release=prometheus", "--set", "autoscaler.workloadNamespace=work")
	if err != nil {
		t.Fatal(err)
	}
	r := decode(t, out)
	if len(r.podMonitors) != 1 {
		t.Fatalf("%d PodMonitors, want 1", len(r.podMonitors))
	}
	pm := r.podMonitors[0]
	if pm.Metadata.Namespace != namespace || pm.Metadata.Labels["release"] != "prometheus" {
		t.Errorf("PodMonitor metadata %+v", pm.Metadata)
	}
	if ns := pm.Spec.NamespaceSelector.MatchNames; !slices.Equal(ns, []string{namespace, "work"}) {
		t.Errorf("namespaces %v, want the release's and the workloads'", ns)
	}
	sel, err := metav1.LabelSelectorAsSelector(&pm.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	replica := labels.Set{"app.kubernetes.io/part-of": "sluice", "app.kubernetes.io/component": "replica", "app.kubernetes.io/name": "lab-whole"}
	if !sel.Matches(replica) {
		t.Errorf("the selector %s misses replica pods", sel)
	}
	ports := map[string]string{} // endpoint port → its token Secret
	for _, e := range pm.Spec.PodMetricsEndpoints {
		if e.Path != "/metrics" || e.Interval != "30s" {
			t.Errorf("endpoint %+v", e)
		}
		ports[e.Port] = ""
		if a := e.Authorization; a != nil {
			ports[e.Port] = a.Credentials.Name + "/" + a.Credentials.Key
		}
	}
	for component, port := range map[string]string{"gateway": "http", "autoscaler": "metrics"} {
		d := r.deployments[component]
		if !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Errorf("the selector %s misses the %s's pods", sel, component)
		}
		if _, ok := ports[port]; !ok || portOf(d.Spec.Template.Spec.Containers[0], port) == 0 {
			t.Errorf("the %s's port %s is not scraped or not named by its pod (endpoints %v)", component, port, ports)
		}
	}
	if ports["http"] != "prom-token/token" || ports["metrics"] != "" {
		t.Errorf("token Secrets by port %v: want the gateway's only", ports)
	}
	as := r.deployments["autoscaler"].Spec.Template.Spec.Containers[0]
	if i := slices.Index(as.Args, "--metrics-addr"); i < 0 || as.Args[i+1] != fmt.Sprintf("0.0.0.0:%d", portOf(as, "metrics")) {
		t.Errorf("the autoscaler serves its metrics elsewhere than its port: %v", as.Args)
	}
}
