//go:build !cgo

package gpu

// Discoverer stands in for NVML discovery in a build without cgo, which
// cannot load libnvidia-ml: the node has no GPUs and says why.
type Discoverer struct{}

// Open returns a Discoverer that finds no GPUs.
func Open() *Discoverer { return &Discoverer{} }

// Discover returns no devices and the reason.
func (*Discoverer) Discover() Inventory {
	return Inventory{Problem: "built without cgo: GPU discovery (NVML) unavailable; this node has no GPUs"}
}

// Close does nothing.
func (*Discoverer) Close() {}
