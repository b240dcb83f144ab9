package spec

import (
	"strings"
	"testing"
)

func TestParseCode(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want CodeRef
		err  string
	}{
		{"", CodeRef{}, ""},
		{"shop", CodeRef{Name: "shop"}, ""},
		{"shop@3", CodeRef{Name: "shop", Version: "3"}, ""},
		{"shop@prod", CodeRef{Name: "shop", Version: "prod"}, ""},
		{"./bin/shop", CodeRef{Path: "./bin/shop"}, ""},
		{"../shop", CodeRef{Path: "../shop"}, ""},
		{"/opt/shop", CodeRef{Path: "/opt/shop"}, ""},
		{"shop@", CodeRef{}, "version or alias"},
		{"shop@a/b", CodeRef{}, "version or alias"},
		{"sh op", CodeRef{}, "bundle name"},
		{"@3", CodeRef{}, "bundle name is required"},
	} {
		got, msg := ParseCode(tc.in)
		if got != tc.want || (tc.err == "") != (msg == "") || !strings.Contains(msg, tc.err) {
			t.Errorf("ParseCode(%q) = %+v, %q; want %+v, an error with %q", tc.in, got, msg, tc.want, tc.err)
		}
	}
}

// A deployment's own code overrides the application's; errors name the
// field with file:line.
func TestCodeInSpec(t *testing.T) {
	t.Parallel()
	apps, err := Parse("app.yaml", []byte("name: a\nroute_prefix: /a\ningress: X\ncode: shop@prod\ndeployments:\n  - name: X\n    args: [{handle: Y}]\n  - name: Y\n    code: ./bin/y\n"))
	if err != nil {
		t.Fatal(err)
	}
	a := apps[0]
	if got := a.CodeOf(a.Deployments[0]); got.String() != "shop@prod" {
		t.Fatalf("X runs %v, want shop@prod", got)
	}
	if got := a.CodeOf(a.Deployments[1]); got.Path != "./bin/y" {
		t.Fatalf("Y runs %v, want ./bin/y", got)
	}
	_, err = Parse("bad.yaml", []byte("name: a\nroute_prefix: /a\ningress: X\ncode: \"x@\"\ndeployments:\n  - name: X\n    kind: cel\n    code: shop\n"))
	for _, want := range []string{"bad.yaml:4:7: code: version or alias", "bad.yaml:8:11: deployments[0].code: a deployment of kind cel runs no code"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("errors %v, want one with %q", err, want)
		}
	}
}
