// Package workload names the Kubernetes workload that runs the replicas of
// a Sluice deployment, and writes the YAML documents of the renderers. It
// is a leaf, so that the renderers and the Kubernetes actuator agree on
// names without the renderers importing client-go.
package workload

import (
	"fmt"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Kind is the kind of workload, in group apps/v1, that runs a deployment.
type Kind string

const (
	Deployment  Kind = "Deployment"
	StatefulSet Kind = "StatefulSet"
)

// ParseKind reads a kind, in any case; "" is Deployment.
func ParseKind(s string) (Kind, error) {
	switch strings.ToLower(s) {
	case "", "deployment":
		return Deployment, nil
	case "statefulset":
		return StatefulSet, nil
	}
	return "", fmt.Errorf("unknown workload kind %q: use Deployment or StatefulSet", s)
}

// DefaultTemplate names the workload of deployment D of application A
// "A-D", lowercased.
const DefaultTemplate = "{app}-{deployment}"

// Template names workloads: {app} and {deployment} stand for the names of
// the application and the deployment, and the result is lowercased, as
// Kubernetes names must be.
type Template struct{ s string }

var (
	placeholder = regexp.MustCompile(`\{[^{}]*\}`)
	literal     = regexp.MustCompile(`^[a-z0-9.-]*$`)
	// dns1123 is a DNS-1123 subdomain, what Kubernetes accepts as the name
	// of a Deployment or a StatefulSet.
	dns1123 = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

// maxName is the longest name Kubernetes accepts for a workload.
const maxName = 253

// ParseTemplate checks a template: it must hold {deployment} (or every
// deployment of an application would share one workload), may hold {app},
// and its other characters must be lowercase letters, digits, '-' or '.'.
func ParseTemplate(s string) (Template, error) {
	if s == "" {
		s = DefaultTemplate
	}
	for _, p := range placeholder.FindAllString(s, -1) {
		if p != "{app}" && p != "{deployment}" {
			return Template{}, fmt.Errorf("workload template %q: unknown placeholder %s: use {app} and {deployment}", s, p)
		}
	}
	if !strings.Contains(s, "{deployment}") {
		return Template{}, fmt.Errorf("workload template %q: must hold {deployment}, or the deployments of an application would share one workload", s)
	}
	if rest := placeholder.ReplaceAllString(s, ""); !literal.MatchString(rest) {
		return Template{}, fmt.Errorf("workload template %q: use only lowercase letters, digits, '-' and '.' around the placeholders", s)
	}
	return Template{s}, nil
}

// MustParseTemplate is ParseTemplate for templates known to be good; it
// panics on a bad one.
func MustParseTemplate(s string) Template {
	t, err := ParseTemplate(s)
	if err != nil {
		panic(err)
	}
	return t
}

func (t Template) String() string {
	if t.s == "" {
		return DefaultTemplate
	}
	return t.s
}

// Name is the name of the workload of deployment d of application app. It
// fails when the result is not a name Kubernetes accepts (too long, or
// ending in '-').
func (t Template) Name(app, d string) (string, error) {
	r := strings.NewReplacer("{app}", app, "{deployment}", d)
	name := strings.ToLower(r.Replace(t.String()))
	if len(name) > maxName || !dns1123.MatchString(name) {
		return "", fmt.Errorf("workload name %q (from template %q for %s/%s) is not a valid Kubernetes name: at most %d lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
			name, t, app, d, maxName)
	}
	return name, nil
}

// WriteDoc appends doc to b as one YAML document ("---" first), indented
// by two spaces as kubectl writes.
func WriteDoc(b *strings.Builder, doc *yaml.Node) error {
	b.WriteString("---\n")
	enc := yaml.NewEncoder(b)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return err
	}
	return enc.Close()
}
