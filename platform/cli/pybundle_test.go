package cli

import "testing"

func TestPythonAppName(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"hello:language_classifier", "language-classifier"},
		{"pkg.mod:App", "app"},
		{"m:ns.inner_app", "inner-app"},
	} {
		if got := pythonAppName(c.in); got != c.want {
			t.Errorf("pythonAppName(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
