// Package kube is the autoscaler's Kubernetes actuator. Each Sluice
// deployment runs as one workload, a Deployment (or a StatefulSet) in group
// apps/v1 named "<app>-<deployment>" by default, whose pods run
// `sluice replica`. The actuator sizes it through its scale subresource and
// reads its status; it never creates, changes or deletes workloads, so the
// workload's pod template stays the operator's.
//
// What it calls, and so what its Role must grant (deploy/kubernetes/rbac.yaml;
// a test keeps the two equal): get and update on deployments/scale or
// statefulsets/scale, and get on deployments or statefulsets.
//
// This is the only package that imports client-go.
package kube

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/sluice-serve/sluice/autoscaler"
	"github.com/sluice-serve/sluice/autoscaler/kube/workload"
)

// DefaultNamespace is where workloads are looked for unless told otherwise.
const DefaultNamespace = "default"

// Actuator scales the workloads of Sluice deployments. It is safe for
// concurrent use.
type Actuator struct {
	client    kubernetes.Interface
	namespace string
	template  workload.Template
	kind      workload.Kind
}

var _ autoscaler.Actuator = (*Actuator)(nil)

type config struct {
	namespace string
	template  string
	kind      string
}

// An Option configures an Actuator.
type Option func(*config)

// Namespace is the namespace of the workloads (default "default").
func Namespace(ns string) Option { return func(c *config) { c.namespace = ns } }

// WorkloadTemplate names the workload of each deployment, with {app} and
// {deployment} (default workload.DefaultTemplate, "{app}-{deployment}").
func WorkloadTemplate(t string) Option { return func(c *config) { c.template = t } }

// Kind is the kind of the workloads: Deployment (the default) or
// StatefulSet.
func Kind(k string) Option { return func(c *config) { c.kind = k } }

// New returns an actuator that scales workloads through client; tests pass
// a fake clientset.
func New(client kubernetes.Interface, opts ...Option) (*Actuator, error) {
	if client == nil {
		return nil, errors.New("kube: no client")
	}
	c := config{namespace: DefaultNamespace}
	for _, o := range opts {
		o(&c)
	}
	if c.namespace == "" {
		return nil, errors.New("kube: empty namespace")
	}
	t, err := workload.ParseTemplate(c.template)
	if err != nil {
		return nil, fmt.Errorf("kube: %w", err)
	}
	k, err := workload.ParseKind(c.kind)
	if err != nil {
		return nil, fmt.Errorf("kube: %w", err)
	}
	return &Actuator{client: client, namespace: c.namespace, template: t, kind: k}, nil
}

// Scale sets the replicas of t's workload to n through its scale
// subresource. It writes only when the count differs, and retries once
// when the workload changed between its read and its write (a conflict).
func (a *Actuator) Scale(ctx context.Context, t autoscaler.Target, n int) error {
	if n < 0 || n > math.MaxInt32 {
		return fmt.Errorf("scale %s: %d replicas is out of range", t, n)
	}
	name, err := a.template.Name(t.App, t.Deployment)
	if err != nil {
		return fmt.Errorf("scale %s: %w", t, err)
	}
	sc := a.scales()
	for try := 0; ; try++ {
		s, err := sc.GetScale(ctx, name, metav1.GetOptions{})
		if err != nil {
			return a.fail("scale", t, name, err)
		}
		if s.Spec.Replicas == int32(n) {
			return nil
		}
		s.Spec.Replicas = int32(n)
		_, err = sc.UpdateScale(ctx, name, s, metav1.UpdateOptions{})
		if err == nil {
			return nil
		}
		if !apierrors.IsConflict(err) || try > 0 {
			return a.fail("scale", t, name, err)
		}
	}
}

// Size reads t's workload: Current is the replicas it asks for, Ready
// those ready, and Problem what its status says keeps pods from coming up.
//
// A Deployment reports pods it cannot create (a ReplicaFailure condition:
// quota, admission) at once, and pods that never become ready (crash loops,
// unpullable images, unschedulable pods) once its progressDeadlineSeconds
// has passed (Progressing false, ProgressDeadlineExceeded). A StatefulSet
// has no progress deadline: the actuator reports the failure conditions it
// has, and otherwise its missing pods count as starting. Telling more would
// mean reading pods, which the actuator's Role does not grant.
func (a *Actuator) Size(ctx context.Context, t autoscaler.Target) (autoscaler.Size, error) {
	name, err := a.template.Name(t.App, t.Deployment)
	if err != nil {
		return autoscaler.Size{}, fmt.Errorf("size %s: %w", t, err)
	}
	var (
		spec  *int32
		ready int32
		conds []condition
	)
	switch a.kind {
	case workload.StatefulSet:
		s, err := a.client.AppsV1().StatefulSets(a.namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return autoscaler.Size{}, a.fail("size", t, name, err)
		}
		spec, ready = s.Spec.Replicas, s.Status.ReadyReplicas
		for _, c := range s.Status.Conditions {
			conds = append(conds, condition{string(c.Type), string(c.Status), c.Reason, c.Message})
		}
	default:
		d, err := a.client.AppsV1().Deployments(a.namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return autoscaler.Size{}, a.fail("size", t, name, err)
		}
		spec, ready = d.Spec.Replicas, d.Status.ReadyReplicas
		for _, c := range d.Status.Conditions {
			conds = append(conds, condition{string(c.Type), string(c.Status), c.Reason, c.Message})
		}
	}
	size := autoscaler.Size{Current: 1, Ready: int(ready)} // the API's default for spec.replicas
	if spec != nil {
		size.Current = int(*spec)
	}
	if size.Current > 0 {
		size.Problem = a.problem(name, conds)
	}
	return size, nil
}

// condition is the part of a Deployment's or a StatefulSet's condition
// the actuator reads.
type condition struct{ typ, status, reason, message string }

// problem is a sentence saying why pods of the workload are not coming
// up, or "".
func (a *Actuator) problem(name string, conds []condition) string {
	var out []string
	for _, c := range conds {
		switch {
		case c.typ == "ReplicaFailure" && c.status == "True":
			out = append(out, fmt.Sprintf("%s %s/%s cannot create pods (%s): %s", a.kind, a.namespace, name, c.reason, c.message))
		case c.typ == "Progressing" && c.status == "False":
			out = append(out, fmt.Sprintf("%s %s/%s is not progressing (%s): %s; see kubectl describe pods of it", a.kind, a.namespace, name, c.reason, c.message))
		}
	}
	return strings.Join(out, "; ")
}

// scaler is the scale subresource of Deployments or StatefulSets.
type scaler interface {
	GetScale(ctx context.Context, name string, opts metav1.GetOptions) (*autoscalingv1.Scale, error)
	UpdateScale(ctx context.Context, name string, s *autoscalingv1.Scale, opts metav1.UpdateOptions) (*autoscalingv1.Scale, error)
}

func (a *Actuator) scales() scaler {
	if a.kind == workload.StatefulSet {
		return a.client.AppsV1().StatefulSets(a.namespace)
	}
	return a.client.AppsV1().Deployments(a.namespace)
}

// NotFoundError is returned when the workload of a deployment does not
// exist: the operator creates workloads, the actuator only sizes them.
type NotFoundError struct {
	Target    autoscaler.Target
	Kind      workload.Kind
	Namespace string
	Name      string
	Err       error // the API server's answer
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("no %s %q in namespace %q for Sluice deployment %s: create it there, running `sluice replica --app %s --deployment %s` (see deploy/kubernetes/replica-example.yaml), or fix --namespace / --workload-template",
		e.Kind, e.Name, e.Namespace, e.Target, e.Target.App, e.Target.Deployment)
}

func (e *NotFoundError) Unwrap() error { return e.Err }

func (a *Actuator) fail(op string, t autoscaler.Target, name string, err error) error {
	switch {
	case apierrors.IsNotFound(err):
		return &NotFoundError{Target: t, Kind: a.kind, Namespace: a.namespace, Name: name, Err: err}
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%s %s: %s %s/%s: %w (the autoscaler's Role must grant what deploy/kubernetes/rbac.yaml grants)", op, t, a.kind, a.namespace, name, err)
	}
	return fmt.Errorf("%s %s: %s %s/%s: %w", op, t, a.kind, a.namespace, name, err)
}

// NewClient connects to a cluster: with the kubeconfig file at path, or,
// when path is "", as the pod's service account when running in a
// cluster, else with the default kubeconfig ($KUBECONFIG, ~/.kube/config).
// It also returns the namespace the configuration names, "default" when
// it names none. No request is made until the client is used.
func NewClient(kubeconfig string) (*kubernetes.Clientset, string, error) {
	if kubeconfig == "" {
		cfg, err := rest.InClusterConfig()
		switch {
		case err == nil:
			return clientset(cfg, inClusterNamespace())
		case !errors.Is(err, rest.ErrNotInCluster):
			return nil, "", fmt.Errorf("kube: in-cluster config: %w", err)
		}
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("kube: kubeconfig: %w", err)
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, "", fmt.Errorf("kube: kubeconfig namespace: %w", err)
	}
	return clientset(cfg, ns)
}

func clientset(cfg *rest.Config, ns string) (*kubernetes.Clientset, string, error) {
	cfg.UserAgent = "sluice-autoscaler"
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("kube: client: %w", err)
	}
	if ns == "" {
		ns = DefaultNamespace
	}
	return c, ns, nil
}

// inClusterNamespace is the namespace of the pod's service account.
func inClusterNamespace() string {
	b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
	if err != nil {
		return DefaultNamespace
	}
	return strings.TrimSpace(string(b))
}
