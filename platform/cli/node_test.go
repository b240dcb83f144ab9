package cli

import (
	"strings"
	"testing"

	"github.com/sluice-serve/sluice/platform/controller"
	"github.com/sluice-serve/sluice/replicas/procs"
)

// A replica process's slot is its ID, the same for every restart; a
// placement environment adds a hash of it, so that the process replacing
// one whose environment changed (started while the old one drains) does
// not share its instance ID. The instance ID adds the revision, so the
// two revisions of a slot that run side by side in a roll differ too.
func TestReplicaSlot(t *testing.T) {
	t.Parallel()
	if got := replicaSlot(procs.Replica{ID: "3"}); got != "3" {
		t.Fatalf("no environment: %q, want 3", got)
	}
	gpu0 := procs.Replica{ID: "0", Env: []string{"CUDA_VISIBLE_DEVICES=GPU-a", "GOMAXPROCS=2"}}
	gpu1 := procs.Replica{ID: "0", Env: []string{"CUDA_VISIBLE_DEVICES=GPU-b", "GOMAXPROCS=2"}}
	a, again, b := replicaSlot(gpu0), replicaSlot(gpu0), replicaSlot(gpu1)
	if a != again {
		t.Fatalf("one slot and environment, two slots: %q, %q", a, again)
	}
	if a == b {
		t.Fatalf("two environments of slot 0 share %q", a)
	}
	if !strings.HasPrefix(a, "0-") || len(a) != len("0-")+8 {
		t.Fatalf("with an environment: %q, want 0-<8 hex digits>", a)
	}
	if x, y := controller.Instance("shop", "Cart", a, "r1"), controller.Instance("shop", "Cart", a, "r2"); x == y || x != "shop.Cart."+a+".r1" {
		t.Fatalf("instances of two revisions: %q, %q", x, y)
	}
}
