package cli

import (
	"testing"

	"github.com/sluice-serve/sluice/gateway"
)

// Every method of every gRPC service the platform's front serves (the
// gateway's, the registry's, and whatever startFront registers beside
// them) has its scope in the gateway's one table.
func TestFrontMethodsHaveScopes(t *testing.T) {
	t.Parallel()
	d := startTestDev(t)
	n := 0
	for name, info := range d.front.grpc.GetServiceInfo() {
		for _, m := range info.Methods {
			n++
			if _, ok := gateway.MethodScope("/" + name + "/" + m.Name); !ok {
				t.Errorf("gRPC method /%s/%s has no scope in gateway/access.go's table", name, m.Name)
			}
		}
	}
	if n == 0 {
		t.Fatal("no methods served")
	}
}
