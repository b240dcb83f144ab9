package cli

import (
	"strings"
	"testing"

	sluicev1 "github.com/sluice-serve/sluice/protos/gen/sluice/v1"
)

// The node table: a line per GPU, MIG instances under their GPU, what
// replicas hold of each; a node without GPUs says why. GPU replicas are
// listed with their node and shares.
func TestPrintNodesAndPlacements(t *testing.T) {
	nodes := []*sluicev1.NodeStatus{
		{Name: "gpu-1", Cpu: 16, MemoryBytes: 128 << 30, Gpus: []*sluicev1.GpuDevice{
			{Uuid: "GPU-aaa", Name: "H200", MemoryTotalBytes: 140 << 30, MemoryFreeBytes: 100 << 30, Utilization: 37, PlacedFraction: 1.0000000001, PlacedMemoryBytes: 70 << 30},
			{Uuid: "GPU-bbb", Name: "A100", Mig: true, Utilization: -1, Instances: []*sluicev1.GpuDevice{
				{Uuid: "MIG-ccc", Name: "A100 MIG 3g.40gb", MemoryTotalBytes: 40 << 30, MemoryFreeBytes: 40 << 30, Utilization: -1},
			}},
			{Uuid: "GPU-ddd", Name: "A100", Utilization: -1, Problem: "memory info: GPU is lost"},
		}},
		{Name: "cpu-1", Cpu: 2, MemoryBytes: 512 << 20, GpuProblem: "no NVIDIA driver"},
	}
	var b strings.Builder
	if err := printNodes(&b, nodes); err != nil {
		t.Fatal(err)
	}
	out := strings.Join(strings.Fields(b.String()), " ")
	for _, want := range []string{
		"gpu-1 16 128.0GiB GPU-aaa H200", "100.0GiB/140.0GiB", "37%", "1, 70.0GiB",
		"MIG: on its instances", "MIG-ccc A100 MIG 3g.40gb", "memory info: GPU is lost",
		"cpu-1 2 512MiB", "no NVIDIA driver",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, b.String())
		}
	}
	apps := []*sluicev1.ApplicationStatus{{Name: "a", Deployments: []*sluicev1.DeploymentStatus{
		{Name: "d", Placements: []*sluicev1.ReplicaPlacement{
			{Id: 0, Node: "gpu-1", Gpus: []*sluicev1.GpuShare{{Uuid: "GPU-aaa", Fraction: 0.5, MemoryBytes: 8 << 30}}},
			{Id: 1, Node: "cpu-1"}, // no GPU: not listed
		}},
	}}}
	b.Reset()
	if err := printPlacements(&b, apps); err != nil {
		t.Fatal(err)
	}
	if out := strings.Join(strings.Fields(b.String()), " "); !strings.Contains(out, "a/d#0 gpu-1 GPU-aaa ×0.5 (8.0GiB)") || strings.Contains(out, "#1") {
		t.Fatalf("placements:\n%s", out)
	}
	b.Reset()
	if err := printNodes(&b, nil); err != nil || b.Len() != 0 {
		t.Fatalf("no nodes, no table: %q", b.String())
	}
}
