package workload

import (
	"strings"
	"testing"
)

func TestTemplateName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		template, app, dep string
		want               string // "" for an error
	}{
		{"", "hello", "greeter", "hello-greeter"},
		{DefaultTemplate, "hello", "LanguageClassifier", "hello-languageclassifier"},
		{"sluice-{deployment}", "hello", "greeter", "sluice-greeter"},
		{"{app}.{deployment}", "hello", "greeter", "hello.greeter"},
		{"{app}-{deployment}", "hello", "greeter-", ""},                 // ends in '-'
		{"{app}-{deployment}", strings.Repeat("a", 250), "greeter", ""}, // too long
	} {
		tmpl, err := ParseTemplate(tc.template)
		if err != nil {
			t.Fatalf("%q: %v", tc.template, err)
		}
		got, err := tmpl.Name(tc.app, tc.dep)
		if tc.want == "" {
			if err == nil {
				t.Errorf("%q for %s/%s gave %q, want an error", tc.template, tc.app, tc.dep, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q for %s/%s: %q, %v; want %q", tc.template, tc.app, tc.dep, got, err, tc.want)
		}
	}
}

func TestParseTemplateRejects(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"{app}", "static", "{app}-{dep}", "{App}-{deployment}", "x_{deployment}", "X-{deployment}", "{deployment}/x", "{{deployment}}"} {
		if _, err := ParseTemplate(s); err == nil {
			t.Errorf("ParseTemplate(%q) succeeded", s)
		}
	}
}

func TestParseKind(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Kind{"": Deployment, "deployment": Deployment, "StatefulSet": StatefulSet, "statefulset": StatefulSet} {
		if got, err := ParseKind(in); err != nil || got != want {
			t.Errorf("ParseKind(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseKind("DaemonSet"); err == nil {
		t.Error("ParseKind(DaemonSet) succeeded")
	}
}

// FuzzTemplate: whatever template parses, a name it gives is one
// Kubernetes accepts and holds the deployment's name, lowercased.
func FuzzTemplate(f *testing.F) {
	f.Add("{app}-{deployment}", "hello", "greeter")
	f.Add("x.{deployment}.{app}", "A-1", "b")
	f.Fuzz(func(t *testing.T, tmpl, app, dep string) {
		tp, err := ParseTemplate(tmpl)
		if err != nil {
			return
		}
		name, err := tp.Name(app, dep)
		if err != nil {
			return
		}
		if len(name) > maxName || !dns1123.MatchString(name) || !strings.Contains(name, strings.ToLower(dep)) {
			t.Fatalf("template %q for %q/%q gave %q", tmpl, app, dep, name)
		}
	})
}
