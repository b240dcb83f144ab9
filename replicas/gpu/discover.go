//go:build cgo

package gpu

import (
	"sync"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// Discoverer reads the GPUs of this machine through NVML. It initialises
// the library on the first Discover and, while that fails, tries again on
// every later one, so a driver installed after start is found. It is safe
// for concurrent use.
type Discoverer struct {
	lib nvml.Interface

	mu     sync.Mutex // held across a whole Discover or Close
	inited bool
}

// Open returns a Discoverer of this machine's NVML (libnvidia-ml.so.1,
// loaded at the first Discover).
func Open() *Discoverer { return NewWith(nvml.New()) }

// NewWith returns a Discoverer reading lib: tests pass a fake NVML.
func NewWith(lib nvml.Interface) *Discoverer { return &Discoverer{lib: lib} }

// Discover reads every GPU and MIG instance, ordered by index. It never
// fails as a whole: what cannot be read is a Problem on the inventory or on
// the one device concerned.
func (d *Discoverer) Discover() Inventory {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.inited {
		switch ret := d.lib.Init(); ret {
		case nvml.SUCCESS:
			d.inited = true
		case nvml.ERROR_LIBRARY_NOT_FOUND:
			return Inventory{Problem: "no NVIDIA driver: libnvidia-ml.so.1 not found (NVML); this node has no GPUs"}
		default:
			return Inventory{Problem: "NVML init: " + ret.Error() + "; this node has no GPUs"}
		}
	}
	var inv Inventory
	if v, ret := d.lib.SystemGetDriverVersion(); ret == nvml.SUCCESS {
		inv.Driver = v
	} else {
		inv.Problem = "driver version: " + ret.Error()
	}
	n, ret := d.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return Inventory{Driver: inv.Driver, Problem: "device count: " + ret.Error() + "; this node has no GPUs"}
	}
	for i := range n {
		inv.Devices = append(inv.Devices, d.device(i))
	}
	return inv
}

// device reads GPU i. The first failing call ends the reading and is the
// device's Problem; what was read before it is kept.
func (d *Discoverer) device(i int) Device {
	dev := Device{Index: i, MIGIndex: -1, Utilization: -1}
	h, ret := d.lib.DeviceGetHandleByIndex(i)
	if ret != nvml.SUCCESS {
		dev.Problem = "handle: " + ret.Error()
		return dev
	}
	if !read(&dev, h) {
		return dev
	}
	switch u, ret := h.GetUtilizationRates(); ret {
	case nvml.SUCCESS:
		dev.Utilization = int(u.Gpu)
	case nvml.ERROR_NOT_SUPPORTED:
	default:
		dev.Problem = "utilization: " + ret.Error()
		return dev
	}
	switch cur, _, ret := h.GetMigMode(); ret {
	case nvml.SUCCESS:
		dev.MIG = cur == nvml.DEVICE_MIG_ENABLE
	case nvml.ERROR_NOT_SUPPORTED: // not a MIG-capable GPU
	default:
		dev.Problem = "MIG mode: " + ret.Error()
		return dev
	}
	if !dev.MIG {
		return dev
	}
	slots, ret := h.GetMaxMigDeviceCount()
	if ret != nvml.SUCCESS {
		dev.Problem = "MIG device count: " + ret.Error()
		return dev
	}
	for j := range slots {
		mh, ret := h.GetMigDeviceHandleByIndex(j)
		if ret == nvml.ERROR_NOT_FOUND { // an empty slot
			continue
		}
		in := Device{Index: i, MIGIndex: j, Utilization: -1}
		if ret != nvml.SUCCESS {
			in.Problem = "MIG device handle: " + ret.Error()
		} else {
			read(&in, mh)
		}
		dev.Instances = append(dev.Instances, in)
	}
	return dev
}

// read fills what GPUs and MIG instances share: UUID, name and memory. It
// reports false, with dev.Problem set, at the first failing call.
func read(dev *Device, h nvml.Device) bool {
	var ret nvml.Return
	if dev.UUID, ret = h.GetUUID(); ret != nvml.SUCCESS {
		dev.Problem = "UUID: " + ret.Error()
		return false
	}
	if dev.Name, ret = h.GetName(); ret != nvml.SUCCESS {
		dev.Problem = "name: " + ret.Error()
		return false
	}
	m, ret := h.GetMemoryInfo()
	if ret != nvml.SUCCESS {
		dev.Problem = "memory info: " + ret.Error()
		return false
	}
	dev.MemoryTotal, dev.MemoryFree = int64(m.Total), int64(m.Free)
	return true
}

// Close shuts NVML down if a Discover initialised it (go-nvml's Shutdown on
// a library never loaded dies on an unresolved symbol); a later Discover
// initialises it again.
func (d *Discoverer) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.inited {
		d.lib.Shutdown()
		d.inited = false
	}
}
