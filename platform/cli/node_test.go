package cli

import (
	"testing"

	"github.com/sluice-serve/sluice/platform/spec"
)

// A node gives each replica process its deployment's resources as the Go
// runtime reads them.
func TestResourceEnv(t *testing.T) {
	got := resourceEnv(spec.Resources{CPU: 1.5, Memory: 512 << 20})
	if len(got) != 2 || got[0] != "GOMAXPROCS=2" || got[1] != "GOMEMLIMIT=536870912" {
		t.Fatalf("resourceEnv = %v", got)
	}
	if got := resourceEnv(spec.Resources{}); len(got) != 0 {
		t.Fatalf("no resources: %v", got)
	}
}
