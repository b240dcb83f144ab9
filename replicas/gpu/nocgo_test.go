//go:build !cgo

package gpu

import (
	"strings"
	"testing"
)

func TestDiscoverWithoutCgo(t *testing.T) {
	d := Open()
	defer d.Close()
	inv := d.Discover()
	if len(inv.Devices) != 0 || !strings.HasPrefix(inv.Problem, "built without cgo:") {
		t.Fatalf("Discover() = %+v, want no devices and the cgo problem", inv)
	}
}
