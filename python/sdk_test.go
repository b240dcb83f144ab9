package python

import (
	"slices"
	"testing"
)

func TestExtraRequirements(t *testing.T) {
	t.Parallel()
	reqs, ok, err := ExtraRequirements("ingress")
	if err != nil || !ok || !slices.ContainsFunc(reqs, func(r string) bool { return len(r) >= 7 && r[:7] == "fastapi" }) {
		t.Fatalf("ingress = %v %v %v, want fastapi", reqs, ok, err)
	}
	reqs, ok, err = ExtraRequirements("test") // several lines, a trailing comma
	if err != nil || !ok || !slices.Contains(reqs, "pytest>=8") || !slices.Contains(reqs, "ruff>=0.6") {
		t.Fatalf("test = %v %v %v", reqs, ok, err)
	}
	if reqs, ok, err := ExtraRequirements("gpu"); err != nil || ok || reqs != nil {
		t.Fatalf("gpu = %v %v %v, want none", reqs, ok, err)
	}
}
