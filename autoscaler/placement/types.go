// Package placement packs replicas onto nodes and their GPUs: whole or
// fractional devices, device memory, CPU and memory, never more than a
// device or a node has, preferring nodes that already cache a model
// deployment's model, and saying why a replica that fits nowhere waits.
package placement

import "github.com/sluice-serve/sluice/autoscaler"

// Need is what one replica of a deployment asks for.
type Need struct {
	// GPU is a fraction of one device (0 < GPU < 1) or a number of whole
	// devices (1, 2, …); 0 means none.
	GPU float64
	// GPUMemory is bytes of device memory on each of its devices; 0 means
	// GPU × the device's memory (the share the runtime is limited to).
	GPUMemory int64
	// CPU (cores) and Memory (bytes) are accounted against the node's;
	// 0 means not accounted.
	CPU    float64
	Memory int64
}

// Device is a placeable GPU (or MIG instance) of a node.
type Device struct {
	UUID   string `json:"uuid"`
	Name   string `json:"name"`
	Memory int64  `json:"memory"` // total bytes
}

// Node is a machine that runs replicas, as its agent reports it.
type Node struct {
	Name    string   `json:"name"`
	CPU     float64  `json:"cpu"`    // cores
	Memory  int64    `json:"memory"` // bytes
	Devices []Device `json:"devices,omitempty"`
	// Models are the registry models the node holds on disk.
	Models []string `json:"models,omitempty"`
	// GPUProblem is why the node has no devices, when it has none.
	GPUProblem string `json:"gpu_problem,omitempty"`
}

// Request asks for Replicas replicas of a deployment.
type Request struct {
	Target   autoscaler.Target
	Replicas int
	Need     Need
	// Model is the model of a model deployment ("" otherwise): nodes that
	// cache it are preferred.
	Model string
	// Revision is what the replicas run; a new one rolls them where
	// they are placed.
	Revision string
}

// Share is a replica's part of one device.
type Share struct {
	UUID     string  `json:"uuid"`
	Fraction float64 `json:"fraction"` // of the device's time; 1 for a whole device
	Memory   int64   `json:"memory"`   // bytes of the device's memory
}

// Replica is one placed replica.
type Replica struct {
	Target autoscaler.Target `json:"target"`
	// ID numbers the replicas of a target from 0; a replica keeps its ID
	// and its place from plan to plan while it still fits.
	ID     int     `json:"id"`
	Node   string  `json:"node"`
	Shares []Share `json:"shares,omitempty"`
	CPU    float64 `json:"cpu,omitempty"`
	Memory int64   `json:"memory,omitempty"`
	// Revision is the deployment's revision the replica runs.
	Revision string `json:"revision,omitempty"`
}

// Pending counts the replicas of a target that fit nowhere, and why.
type Pending struct {
	Target autoscaler.Target `json:"target"`
	Count  int               `json:"count"`
	Reason string            `json:"reason"`
}

// Plan is where every requested replica runs, or why it waits.
type Plan struct {
	Replicas []Replica `json:"replicas"`
	Pending  []Pending `json:"pending,omitempty"`
}
