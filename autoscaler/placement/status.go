package placement

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-serve/sluice/autoscaler"
	"github.com/sluice-serve/sluice/replicas/gpu"
)

// NodeStatus is what a node agent publishes on the status topic under
// NodeKey(name): when it starts, every Refresh, and when what it runs
// changes. A node not heard from for three Refreshes is gone: its
// replicas are placed elsewhere.
type NodeStatus struct {
	Node
	Driver string `json:"driver,omitempty"`
	// GPUs is everything discovery found, placeable or not, for `sluice
	// status`; Node.Devices is what replicas can be placed on.
	GPUs    []gpu.Device  `json:"gpus,omitempty"`
	Running []Running     `json:"running,omitempty"`
	Refresh time.Duration `json:"refresh"`
	At      time.Time     `json:"at"`
	// Instance tells two agents that took the same name apart.
	Instance string `json:"instance,omitempty"`
}

// Running is what a node runs of one target.
type Running struct {
	Target  autoscaler.Target `json:"target"`
	Current int               `json:"current"`
	Ready   int               `json:"ready"`
	Problem string            `json:"problem,omitempty"`
}

// Assignment is what the placer publishes for one node under
// PlaceKey(node): every replica the node should run.
type Assignment struct {
	Node     string    `json:"node"`
	Replicas []Replica `json:"replicas"`
}

const (
	nodePrefix  = "node/"
	placePrefix = "place/"
)

// NodeKey is the status topic key of a node's status.
func NodeKey(node string) string { return nodePrefix + node }

// PlaceKey is the status topic key of a node's assignment.
func PlaceKey(node string) string { return placePrefix + node }

// ParseNode reads a status topic record: the node's name and status when
// key is a node's (a nil status for a tombstone), ok false otherwise.
func ParseNode(key string, value []byte) (name string, st *NodeStatus, ok bool) {
	name, ok = strings.CutPrefix(key, nodePrefix)
	if !ok || name == "" || value == nil {
		return name, nil, ok && name != ""
	}
	st = &NodeStatus{}
	if json.Unmarshal(value, st) != nil {
		return name, nil, false
	}
	return name, st, true
}

// Stale reports whether st is too old to count at now: three refreshes
// unheard (a refresh of 0 counts as 10 s).
func (st *NodeStatus) Stale(now time.Time) bool {
	r := st.Refresh
	if r <= 0 {
		r = 10 * time.Second
	}
	return now.Sub(st.At) > 3*r
}

// Env is the environment of a replica process placed as r: its devices
// (CUDA_VISIBLE_DEVICES and NVIDIA_VISIBLE_DEVICES by UUID), the share
// of their memory it may take, and its CPU and memory as the Go runtime
// takes them (GOMAXPROCS rounded up, GOMEMLIMIT).
func (r Replica) Env(devices []Device) []string {
	var env []string
	if len(r.Shares) > 0 {
		uuids := make([]string, len(r.Shares))
		frac := 1.0
		for i, s := range r.Shares {
			uuids[i] = s.UUID
			for _, d := range devices {
				if d.UUID == s.UUID && d.Memory > 0 {
					frac = min(frac, float64(s.Memory)/float64(d.Memory))
				}
			}
		}
		list := strings.Join(uuids, ",")
		env = append(env, gpu.EnvCUDA+"="+list, gpu.EnvNVIDIA+"="+list)
		if frac < 1 {
			env = append(env, gpu.EnvMemoryFraction+"="+strconv.FormatFloat(math.Floor(frac*1e4)/1e4, 'f', -1, 64))
		}
	}
	if r.CPU > 0 {
		env = append(env, "GOMAXPROCS="+strconv.Itoa(int(math.Ceil(r.CPU))))
	}
	if r.Memory > 0 {
		env = append(env, "GOMEMLIMIT="+strconv.FormatInt(r.Memory, 10))
	}
	return env
}
