package gpu

import (
	"reflect"
	"testing"
)

func TestPlaceable(t *testing.T) {
	t.Parallel()
	whole := Device{Index: 0, MIGIndex: -1, UUID: "GPU-a"}
	lost := Device{Index: 1, MIGIndex: -1, UUID: "GPU-b", Problem: "memory info: GPU is lost"}
	in0 := Device{Index: 2, MIGIndex: 0, UUID: "MIG-c0"}
	in1 := Device{Index: 2, MIGIndex: 1, Problem: "MIG device handle: Unknown Error"}
	in2 := Device{Index: 2, MIGIndex: 2, UUID: "MIG-c2"}
	mig := Device{Index: 2, MIGIndex: -1, UUID: "GPU-c", MIG: true, Instances: []Device{in0, in1, in2}}
	migLost := Device{Index: 3, MIGIndex: -1, UUID: "GPU-d", MIG: true, Instances: []Device{{Index: 3, UUID: "MIG-d0"}},
		Problem: "MIG device count: GPU is lost"}
	migEmpty := Device{Index: 4, MIGIndex: -1, UUID: "GPU-e", MIG: true}
	for _, tc := range []struct {
		name string
		inv  Inventory
		want []Device
	}{
		{"no devices", Inventory{Problem: "no NVIDIA driver"}, nil},
		{"whole GPUs", Inventory{Devices: []Device{whole}}, []Device{whole}},
		{"problem skipped", Inventory{Devices: []Device{whole, lost}}, []Device{whole}},
		{"MIG instances not parent", Inventory{Devices: []Device{whole, mig}}, []Device{whole, in0, in2}},
		{"MIG parent with problem", Inventory{Devices: []Device{migLost}}, nil},
		{"MIG without instances", Inventory{Devices: []Device{migEmpty, whole}}, []Device{whole}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.inv.Placeable(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Placeable() = %+v, want %+v", got, tc.want)
			}
		})
	}
}
