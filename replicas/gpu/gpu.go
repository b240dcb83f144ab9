// Package gpu discovers the GPUs of this machine with NVML
// (libnvidia-ml, loaded at run time): what a node agent reports to the
// placer and pins replicas to. A machine without the library has no GPUs
// and says why in one line; everything else still runs.
package gpu

// Device is one GPU, or one MIG instance of a GPU in MIG mode.
type Device struct {
	// Index is NVML's index of the GPU (of the parent GPU for a MIG
	// instance); MIGIndex the instance's index on it, -1 for a whole GPU.
	Index    int    `json:"index"`
	MIGIndex int    `json:"mig_index"`
	UUID     string `json:"uuid"` // "GPU-…", or "MIG-…" for an instance
	Name     string `json:"name"`
	// MemoryTotal and MemoryFree are bytes of device memory; free counts
	// what any process (Sluice's or not) holds.
	MemoryTotal int64 `json:"memory_total"`
	MemoryFree  int64 `json:"memory_free"`
	// Utilization is the GPU's busy percentage over NVML's last sample
	// period, -1 where unknown (MIG instances report none).
	Utilization int `json:"utilization"`
	// MIG is true for a GPU in MIG mode: replicas are placed on its
	// Instances, never on the GPU itself.
	MIG       bool     `json:"mig,omitempty"`
	Instances []Device `json:"instances,omitempty"`
	// Problem is why the device cannot be read or used ("" when fine);
	// a device with a problem is not placeable.
	Problem string `json:"problem,omitempty"`
}

// Inventory is what one discovery found.
type Inventory struct {
	Driver  string   `json:"driver,omitempty"`
	Devices []Device `json:"devices,omitempty"`
	// Problem is why there are no GPUs, or why some are missing
	// ("libnvidia-ml.so.1 not found: no NVIDIA driver on this machine").
	Problem string `json:"problem,omitempty"`
}

// Placeable returns what replicas can be placed on: whole GPUs not in MIG
// mode and the instances of those in MIG mode, without problems.
func (inv Inventory) Placeable() []Device {
	var out []Device
	for _, d := range inv.Devices {
		switch {
		case d.Problem != "":
		case d.MIG:
			for _, in := range d.Instances {
				if in.Problem == "" {
					out = append(out, in)
				}
			}
		default:
			out = append(out, d)
		}
	}
	return out
}

// The environment of a replica process placed on devices. CUDA and the
// NVIDIA container runtime read the first two; the TensorFlow runtime
// reads the third and takes no more of each device's memory.
const (
	EnvCUDA           = "CUDA_VISIBLE_DEVICES"
	EnvNVIDIA         = "NVIDIA_VISIBLE_DEVICES"
	EnvMemoryFraction = "SLUICE_GPU_MEMORY_FRACTION"
)
