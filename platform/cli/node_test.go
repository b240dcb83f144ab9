package cli

import (
	"strings"
	"testing"

	"github.com/sluice-serve/sluice/autoscaler"
	"github.com/sluice-serve/sluice/replicas/procs"
)

// A replica process's instance ID is its slot, the same for every
// restart; a placement environment adds a hash of it, so that the
// process replacing one whose environment changed (started while the old
// one drains) does not share its ID.
func TestReplicaInstance(t *testing.T) {
	t.Parallel()
	tg := autoscaler.Target{App: "shop", Deployment: "Cart"}
	if got := replicaInstance(tg, procs.Replica{ID: "3"}); got != "shop.Cart.3" {
		t.Fatalf("no environment: %q, want shop.Cart.3", got)
	}
	gpu0 := procs.Replica{ID: "0", Env: []string{"CUDA_VISIBLE_DEVICES=GPU-a", "GOMAXPROCS=2"}}
	gpu1 := procs.Replica{ID: "0", Env: []string{"CUDA_VISIBLE_DEVICES=GPU-b", "GOMAXPROCS=2"}}
	a, again, b := replicaInstance(tg, gpu0), replicaInstance(tg, gpu0), replicaInstance(tg, gpu1)
	if a != again {
		t.Fatalf("one slot and environment, two IDs: %q, %q", a, again)
	}
	if a == b {
		t.Fatalf("two environments of slot 0 share the ID %q", a)
	}
	if !strings.HasPrefix(a, "shop.Cart.0.") || len(a) != len("shop.Cart.0.")+8 {
		t.Fatalf("with an environment: %q, want shop.Cart.0.<8 hex digits>", a)
	}
}
