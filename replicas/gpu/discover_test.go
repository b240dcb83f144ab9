//go:build cgo

package gpu

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/dl"
	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
)

// The fake NVML below names errors as go-nvml does while libnvidia-ml is
// not loaded ("ERROR_GPU_IS_LOST"); the real library says "GPU is lost".

const gib = 1 << 30

// fakeGPU is one device of a fake NVML: a GPU, or a MIG instance.
type fakeGPU struct {
	uuid, name  string
	total, free uint64
	util        int             // -1: NVML says utilization is not supported
	mig         map[int]fakeGPU // instances by MIG slot; non-nil: MIG mode
}

func (g fakeGPU) device() *mock.Device {
	mode := nvml.DEVICE_MIG_DISABLE
	if g.mig != nil {
		mode = nvml.DEVICE_MIG_ENABLE
	}
	return &mock.Device{
		GetUUIDFunc: func() (string, nvml.Return) { return g.uuid, nvml.SUCCESS },
		GetNameFunc: func() (string, nvml.Return) { return g.name, nvml.SUCCESS },
		GetMemoryInfoFunc: func() (nvml.Memory, nvml.Return) {
			return nvml.Memory{Total: g.total, Free: g.free, Used: g.total - g.free}, nvml.SUCCESS
		},
		GetUtilizationRatesFunc: func() (nvml.Utilization, nvml.Return) {
			if g.util < 0 {
				return nvml.Utilization{}, nvml.ERROR_NOT_SUPPORTED
			}
			return nvml.Utilization{Gpu: uint32(g.util), Memory: 3}, nvml.SUCCESS
		},
		GetMigModeFunc:           func() (int, int, nvml.Return) { return mode, mode, nvml.SUCCESS },
		GetMaxMigDeviceCountFunc: func() (int, nvml.Return) { return 7, nvml.SUCCESS },
		GetMigDeviceHandleByIndexFunc: func(i int) (nvml.Device, nvml.Return) {
			in, ok := g.mig[i]
			if !ok {
				return nil, nvml.ERROR_NOT_FOUND
			}
			return in.device(), nvml.SUCCESS
		},
	}
}

// want is what Discover should report for g as GPU index.
func (g fakeGPU) want(index int) Device {
	return Device{Index: index, MIGIndex: -1, UUID: g.uuid, Name: g.name,
		MemoryTotal: int64(g.total), MemoryFree: int64(g.free), Utilization: g.util}
}

func fakeNVML(devs ...*mock.Device) *mock.Interface {
	return &mock.Interface{
		InitFunc:                   func() nvml.Return { return nvml.SUCCESS },
		ShutdownFunc:               func() nvml.Return { return nvml.SUCCESS },
		SystemGetDriverVersionFunc: func() (string, nvml.Return) { return "550.54.15", nvml.SUCCESS },
		DeviceGetCountFunc:         func() (int, nvml.Return) { return len(devs), nvml.SUCCESS },
		DeviceGetHandleByIndexFunc: func(i int) (nvml.Device, nvml.Return) {
			if i < 0 || i >= len(devs) {
				return nil, nvml.ERROR_INVALID_ARGUMENT
			}
			return devs[i], nvml.SUCCESS
		},
	}
}

// node is a fake machine of n GPUs of 16, 24 and 80 GiB in turn.
func node(n int) []fakeGPU {
	kinds := []struct {
		name string
		size uint64
	}{{"Tesla V100-SXM2-16GB", 16 * gib}, {"NVIDIA A10G", 24 * gib}, {"NVIDIA H100 80GB HBM3", 80 * gib}}
	var gpus []fakeGPU
	for i := range n {
		k := kinds[i%len(kinds)]
		gpus = append(gpus, fakeGPU{uuid: fmt.Sprintf("GPU-%08d", i), name: k.name,
			total: k.size, free: k.size - uint64(i+1)*gib, util: 10 * i})
	}
	return gpus
}

func devices(gpus []fakeGPU) []*mock.Device {
	var devs []*mock.Device
	for _, g := range gpus {
		devs = append(devs, g.device())
	}
	return devs
}

func TestDiscoverNodes(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 4, 8} {
		t.Run(fmt.Sprintf("%d GPUs", n), func(t *testing.T) {
			t.Parallel()
			gpus := node(n)
			inv := NewWith(fakeNVML(devices(gpus)...)).Discover()
			var want []Device
			for i, g := range gpus {
				want = append(want, g.want(i))
			}
			if inv.Driver != "550.54.15" || inv.Problem != "" || !reflect.DeepEqual(inv.Devices, want) {
				t.Fatalf("Discover() = %+v, want driver 550.54.15 and devices %+v", inv, want)
			}
			if got := inv.Placeable(); !reflect.DeepEqual(got, want) {
				t.Errorf("Placeable() = %+v, want every GPU", got)
			}
		})
	}
}

func TestDiscoverMixedMemory(t *testing.T) {
	t.Parallel()
	inv := NewWith(fakeNVML(devices(node(3))...)).Discover()
	want := []Device{
		{Index: 0, MIGIndex: -1, UUID: "GPU-00000000", Name: "Tesla V100-SXM2-16GB",
			MemoryTotal: 17179869184, MemoryFree: 16106127360, Utilization: 0},
		{Index: 1, MIGIndex: -1, UUID: "GPU-00000001", Name: "NVIDIA A10G",
			MemoryTotal: 25769803776, MemoryFree: 23622320128, Utilization: 10},
		{Index: 2, MIGIndex: -1, UUID: "GPU-00000002", Name: "NVIDIA H100 80GB HBM3",
			MemoryTotal: 85899345920, MemoryFree: 82678120448, Utilization: 20},
	}
	if !reflect.DeepEqual(inv.Devices, want) {
		t.Fatalf("Devices = %+v, want %+v", inv.Devices, want)
	}
}

// dgx is go-nvml's fake DGX A100 (eight A100-SXM4-40GB) with the calls
// Discover makes that it leaves out.
func dgx() *dgxa100.Server {
	s := dgxa100.New()
	for i, d := range s.Devices {
		d.(*dgxa100.Device).GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
			return nvml.Utilization{Gpu: uint32(5 * i)}, nvml.SUCCESS
		}
	}
	return s
}

func TestDiscoverDGXA100(t *testing.T) {
	t.Parallel()
	s := dgx()
	inv := NewWith(s).Discover()
	if inv.Driver != "550.54.15" || inv.Problem != "" || len(inv.Devices) != 8 {
		t.Fatalf("Discover() = %+v, want 8 GPUs of driver 550.54.15", inv)
	}
	for i, got := range inv.Devices {
		want := Device{Index: i, MIGIndex: -1, UUID: s.Devices[i].(*dgxa100.Device).UUID,
			Name: "Mock NVIDIA A100-SXM4-40GB", MemoryTotal: 42949672960, Utilization: 5 * i}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("device %d = %+v, want %+v", i, got, want)
		}
	}
}

func TestDiscoverMIG(t *testing.T) {
	t.Parallel()
	s := dgx()
	a100 := s.Devices[1].(*dgxa100.Device)
	a100.MigMode = nvml.DEVICE_MIG_ENABLE
	a100.GetMaxMigDeviceCountFunc = func() (int, nvml.Return) { return 7, nvml.SUCCESS }
	// Slots 0 and 2 hold instances, slot 3 cannot be read, the rest are empty.
	big := fakeGPU{uuid: "MIG-3g20gb", name: "NVIDIA A100-SXM4-40GB MIG 3g.20gb", total: 19968 << 20, free: 19000 << 20}
	small := fakeGPU{uuid: "MIG-1g5gb", name: "NVIDIA A100-SXM4-40GB MIG 1g.5gb", total: 4864 << 20, free: 4864 << 20}
	a100.GetMigDeviceHandleByIndexFunc = func(i int) (nvml.Device, nvml.Return) {
		switch i {
		case 0:
			return big.device(), nvml.SUCCESS
		case 2:
			return small.device(), nvml.SUCCESS
		case 3:
			return nil, nvml.ERROR_UNKNOWN
		}
		return nil, nvml.ERROR_NOT_FOUND
	}
	inv := NewWith(s).Discover()
	if len(inv.Devices) != 8 {
		t.Fatalf("Discover() = %+v, want 8 GPUs", inv)
	}
	want := []Device{
		{Index: 1, MIGIndex: 0, UUID: "MIG-3g20gb", Name: "NVIDIA A100-SXM4-40GB MIG 3g.20gb",
			MemoryTotal: 20937965568, MemoryFree: 19922944000, Utilization: -1},
		{Index: 1, MIGIndex: 2, UUID: "MIG-1g5gb", Name: "NVIDIA A100-SXM4-40GB MIG 1g.5gb",
			MemoryTotal: 5100273664, MemoryFree: 5100273664, Utilization: -1},
		{Index: 1, MIGIndex: 3, Utilization: -1, Problem: "MIG device handle: ERROR_UNKNOWN"},
	}
	parent := inv.Devices[1]
	if !parent.MIG || parent.Problem != "" || parent.UUID != a100.UUID || !reflect.DeepEqual(parent.Instances, want) {
		t.Fatalf("MIG GPU = %+v, want MIG with instances %+v", parent, want)
	}
	var placeable []string
	for _, d := range inv.Placeable() {
		placeable = append(placeable, d.UUID)
	}
	wantUUIDs := []string{inv.Devices[0].UUID, "MIG-3g20gb", "MIG-1g5gb"}
	for _, d := range inv.Devices[2:] {
		wantUUIDs = append(wantUUIDs, d.UUID)
	}
	if !reflect.DeepEqual(placeable, wantUUIDs) {
		t.Errorf("Placeable() UUIDs = %q, want %q", placeable, wantUUIDs)
	}
}

// TestDiscoverDeviceProblems breaks one call on GPU 1 of three: GPU 1 keeps
// what was read before the call and names it; GPUs 0 and 2 are untouched.
func TestDiscoverDeviceProblems(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		fail func(lib *mock.Interface, d *mock.Device)
		want func(d *Device) // from the healthy GPU 1
	}{
		{"handle", func(lib *mock.Interface, _ *mock.Device) {
			next := lib.DeviceGetHandleByIndexFunc
			lib.DeviceGetHandleByIndexFunc = func(i int) (nvml.Device, nvml.Return) {
				if i == 1 {
					return nil, nvml.ERROR_GPU_IS_LOST
				}
				return next(i)
			}
		}, func(d *Device) {
			*d = Device{Index: 1, MIGIndex: -1, Utilization: -1, Problem: "handle: ERROR_GPU_IS_LOST"}
		}},
		{"UUID", func(_ *mock.Interface, d *mock.Device) {
			d.GetUUIDFunc = func() (string, nvml.Return) { return "", nvml.ERROR_GPU_IS_LOST }
		}, func(d *Device) {
			*d = Device{Index: 1, MIGIndex: -1, Utilization: -1, Problem: "UUID: ERROR_GPU_IS_LOST"}
		}},
		{"name", func(_ *mock.Interface, d *mock.Device) {
			d.GetNameFunc = func() (string, nvml.Return) { return "", nvml.ERROR_UNKNOWN }
		}, func(d *Device) {
			*d = Device{Index: 1, MIGIndex: -1, UUID: d.UUID, Utilization: -1, Problem: "name: ERROR_UNKNOWN"}
		}},
		{"memory", func(_ *mock.Interface, d *mock.Device) {
			d.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) { return nvml.Memory{}, nvml.ERROR_GPU_IS_LOST }
		}, func(d *Device) {
			d.MemoryTotal, d.MemoryFree, d.Utilization, d.Problem = 0, 0, -1, "memory info: ERROR_GPU_IS_LOST"
		}},
		{"utilization", func(_ *mock.Interface, d *mock.Device) {
			d.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{}, nvml.ERROR_UNKNOWN }
		}, func(d *Device) { d.Utilization, d.Problem = -1, "utilization: ERROR_UNKNOWN" }},
		{"utilization unsupported", func(_ *mock.Interface, d *mock.Device) {
			d.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{}, nvml.ERROR_NOT_SUPPORTED }
		}, func(d *Device) { d.Utilization = -1 }},
		{"MIG mode", func(_ *mock.Interface, d *mock.Device) {
			d.GetMigModeFunc = func() (int, int, nvml.Return) { return 0, 0, nvml.ERROR_UNKNOWN }
		}, func(d *Device) { d.Problem = "MIG mode: ERROR_UNKNOWN" }},
		{"MIG unsupported", func(_ *mock.Interface, d *mock.Device) {
			d.GetMigModeFunc = func() (int, int, nvml.Return) { return 0, 0, nvml.ERROR_NOT_SUPPORTED }
		}, func(*Device) {}},
		{"MIG pending only", func(_ *mock.Interface, d *mock.Device) {
			d.GetMigModeFunc = func() (int, int, nvml.Return) {
				return nvml.DEVICE_MIG_DISABLE, nvml.DEVICE_MIG_ENABLE, nvml.SUCCESS
			}
		}, func(*Device) {}},
		{"MIG device count", func(_ *mock.Interface, d *mock.Device) {
			d.GetMigModeFunc = func() (int, int, nvml.Return) {
				return nvml.DEVICE_MIG_ENABLE, nvml.DEVICE_MIG_ENABLE, nvml.SUCCESS
			}
			d.GetMaxMigDeviceCountFunc = func() (int, nvml.Return) { return 0, nvml.ERROR_GPU_IS_LOST }
		}, func(d *Device) { d.MIG, d.Problem = true, "MIG device count: ERROR_GPU_IS_LOST" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			gpus := node(3)
			devs := devices(gpus)
			lib := fakeNVML(devs...)
			tc.fail(lib, devs[1])
			inv := NewWith(lib).Discover()
			want := []Device{gpus[0].want(0), gpus[1].want(1), gpus[2].want(2)}
			tc.want(&want[1])
			if inv.Problem != "" || !reflect.DeepEqual(inv.Devices, want) {
				t.Fatalf("Discover() = %+v, want devices %+v", inv, want)
			}
			placeable := 3
			if want[1].Problem != "" {
				placeable = 2
			}
			if got := len(inv.Placeable()); got != placeable {
				t.Errorf("%d placeable, want %d", got, placeable)
			}
		})
	}
}

func TestDiscoverGPULostBetweenRuns(t *testing.T) {
	t.Parallel()
	devs := devices(node(4))
	lib := fakeNVML(devs...)
	d := NewWith(lib)
	before := d.Discover()
	devs[2].GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) { return nvml.Memory{}, nvml.ERROR_GPU_IS_LOST }
	after := d.Discover()
	if len(after.Devices) != 4 || after.Problem != "" {
		t.Fatalf("second Discover() = %+v, want 4 devices", after)
	}
	for i, dev := range after.Devices {
		if i == 2 {
			continue
		}
		if !reflect.DeepEqual(dev, before.Devices[i]) {
			t.Errorf("device %d = %+v, was %+v", i, dev, before.Devices[i])
		}
	}
	if lost := after.Devices[2]; lost.Problem != "memory info: ERROR_GPU_IS_LOST" || lost.UUID != before.Devices[2].UUID {
		t.Errorf("lost GPU = %+v, want its UUID and the memory info problem", lost)
	}
	for _, p := range after.Placeable() {
		if p.Index == 2 {
			t.Errorf("Placeable() has the lost GPU: %+v", p)
		}
	}
	if got := len(after.Placeable()); got != 3 {
		t.Errorf("%d placeable, want 3", got)
	}
	if got := len(lib.InitCalls()); got != 1 {
		t.Errorf("Init called %d times, want 1", got)
	}
}

func TestDiscoverDeviceCountFails(t *testing.T) {
	t.Parallel()
	lib := fakeNVML(devices(node(2))...)
	lib.DeviceGetCountFunc = func() (int, nvml.Return) { return 0, nvml.ERROR_UNKNOWN }
	inv := NewWith(lib).Discover()
	want := Inventory{Driver: "550.54.15", Problem: "device count: ERROR_UNKNOWN; this node has no GPUs"}
	if !reflect.DeepEqual(inv, want) {
		t.Errorf("Discover() = %+v, want %+v", inv, want)
	}
}

// TestDiscoverInit fails Init once, then lets it succeed: the first
// Discover says why in one line, the second finds the GPUs.
func TestDiscoverInit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ret  nvml.Return
		want string
	}{
		{nvml.ERROR_LIBRARY_NOT_FOUND, "no NVIDIA driver: libnvidia-ml.so.1 not found (NVML); this node has no GPUs"},
		{nvml.ERROR_DRIVER_NOT_LOADED, "NVML init: ERROR_DRIVER_NOT_LOADED; this node has no GPUs"},
	} {
		t.Run(tc.ret.Error(), func(t *testing.T) {
			t.Parallel()
			lib := fakeNVML(devices(node(2))...)
			lib.InitFunc = func() nvml.Return {
				if len(lib.InitCalls()) == 1 {
					return tc.ret
				}
				return nvml.SUCCESS
			}
			d := NewWith(lib)
			if inv := d.Discover(); !reflect.DeepEqual(inv, Inventory{Problem: tc.want}) {
				t.Fatalf("first Discover() = %+v, want only problem %q", inv, tc.want)
			}
			if n := len(lib.DeviceGetCountCalls()); n != 0 {
				t.Errorf("device count read %d times without NVML", n)
			}
			for range 2 {
				if inv := d.Discover(); len(inv.Devices) != 2 || inv.Problem != "" {
					t.Fatalf("later Discover() = %+v, want 2 GPUs", inv)
				}
			}
			if got := len(lib.InitCalls()); got != 2 {
				t.Errorf("Init called %d times, want 2 (once failing, once succeeding)", got)
			}
		})
	}
}

func TestDiscoverConcurrent(t *testing.T) {
	t.Parallel()
	s := dgx()
	d := NewWith(s)
	invs := make([]Inventory, 8)
	var wg sync.WaitGroup
	for i := range invs {
		wg.Go(func() { invs[i] = d.Discover() })
	}
	wg.Wait()
	for _, inv := range invs {
		if len(inv.Devices) != 8 || !reflect.DeepEqual(inv, invs[0]) {
			t.Fatalf("concurrent Discover() differ or miss GPUs: %+v vs %+v", inv, invs[0])
		}
	}
	if got := len(s.InitCalls()); got != 1 {
		t.Errorf("Init called %d times, want 1", got)
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	lib := fakeNVML(devices(node(1))...)
	d := NewWith(lib)
	d.Close()
	if got := len(lib.ShutdownCalls()); got != 0 {
		t.Fatalf("Close before Discover shut NVML down %d times", got)
	}
	d.Discover()
	d.Close()
	d.Close()
	if got := len(lib.ShutdownCalls()); got != 1 {
		t.Fatalf("Shutdown called %d times, want 1", got)
	}
	if inv := d.Discover(); len(inv.Devices) != 1 || len(lib.InitCalls()) != 2 {
		t.Errorf("Discover after Close = %+v with %d Inits, want 1 GPU and NVML initialised again", inv, len(lib.InitCalls()))
	}
}

// TestOpenThisMachine runs the real library. It is not parallel: loading
// libnvidia-ml changes how go-nvml names errors, which the tests above
// compare; Close unloads it before they run.
func TestOpenThisMachine(t *testing.T) {
	d := Open()
	inv := d.Discover()
	d.Close()
	lib := dl.New("libnvidia-ml.so.1", dl.RTLD_LAZY)
	if lib.Open() != nil {
		if len(inv.Devices) != 0 || !strings.Contains(inv.Problem, "libnvidia-ml.so.1 not found") {
			t.Fatalf("Discover() without libnvidia-ml = %+v, want no devices and the missing library named", inv)
		}
		return
	}
	lib.Close()
	for _, dev := range inv.Devices {
		if dev.UUID == "" {
			t.Errorf("device %d has no UUID: %+v", dev.Index, dev)
		}
	}
}
