package placement

import (
	"slices"
	"testing"
	"time"
)

// A placed replica's process environment: its devices by UUID, the share
// of their memory it may take, its CPU and memory for the Go runtime.
func TestReplicaEnv(t *testing.T) {
	devs := []Device{{UUID: "GPU-a", Memory: 80 << 30}, {UUID: "GPU-b", Memory: 40 << 30}}
	r := Replica{Shares: []Share{{UUID: "GPU-a", Fraction: 0.5, Memory: 8 << 30}}, CPU: 1.5, Memory: 512 << 20}
	want := []string{"CUDA_VISIBLE_DEVICES=GPU-a", "NVIDIA_VISIBLE_DEVICES=GPU-a", "SLUICE_GPU_MEMORY_FRACTION=0.1", "GOMAXPROCS=2", "GOMEMLIMIT=536870912"}
	if got := r.Env(devs); !slices.Equal(got, want) {
		t.Fatalf("env %v, want %v", got, want)
	}
	whole := Replica{Shares: []Share{{UUID: "GPU-a", Fraction: 1, Memory: 80 << 30}, {UUID: "GPU-b", Fraction: 1, Memory: 40 << 30}}}
	if got := whole.Env(devs); !slices.Equal(got, []string{"CUDA_VISIBLE_DEVICES=GPU-a,GPU-b", "NVIDIA_VISIBLE_DEVICES=GPU-a,GPU-b"}) {
		t.Fatalf("whole GPUs: %v", got)
	}
	if got := (Replica{}).Env(devs); len(got) != 0 {
		t.Fatalf("nothing asked: %v", got)
	}
}

func TestParseNodeAndStale(t *testing.T) {
	if _, _, ok := ParseNode("scale/a/b", []byte("{}")); ok {
		t.Fatal("another kind of key is not a node")
	}
	name, st, ok := ParseNode(NodeKey("n1"), nil)
	if !ok || name != "n1" || st != nil {
		t.Fatalf("tombstone: %q %v %v", name, st, ok)
	}
	_, st, ok = ParseNode(NodeKey("n1"), []byte(`{"name":"n1","cpu":4,"refresh":1000000000,"at":"2026-01-01T00:00:00Z"}`))
	if !ok || st.CPU != 4 || st.Refresh != time.Second {
		t.Fatalf("status: %+v %v", st, ok)
	}
	at := st.At
	if st.Stale(at.Add(3*time.Second)) || !st.Stale(at.Add(3*time.Second+time.Millisecond)) {
		t.Fatal("a node is gone after three refreshes unheard")
	}
	if _, _, ok := ParseNode(NodeKey("n1"), []byte("{")); ok {
		t.Fatal("an unreadable status is not taken")
	}
}
