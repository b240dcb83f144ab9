package node

import (
	"context"
	"strconv"

	"github.com/sluice-serve/sluice/autoscaler"
	"github.com/sluice-serve/sluice/autoscaler/placement"
	"github.com/sluice-serve/sluice/replicas/procs"
)

// ProcessRunner runs each placed replica as a process (procs), with its
// devices and share in its environment.
type ProcessRunner struct{ Procs *procs.Actuator }

// Set implements Runner.
func (r ProcessRunner) Set(t autoscaler.Target, rs []placement.Replica, devs []placement.Device) {
	want := make([]procs.Replica, len(rs))
	for i, x := range rs {
		want[i] = procs.Replica{ID: strconv.Itoa(x.ID), Env: x.Env(devs), Revision: x.Revision, NoSurge: len(x.Shares) > 0}
	}
	_ = r.Procs.Set(procs.Target(t), want)
}

// Size implements Runner.
func (r ProcessRunner) Size(t autoscaler.Target) autoscaler.Size {
	return autoscaler.Size(r.Procs.Size(procs.Target(t)))
}

// Counted runs as many replicas as are placed through an actuator that
// counts them (the goroutines of `sluice dev`): placement holds the
// devices' capacity and keeps what does not fit waiting, but the
// replicas share the process and see its devices.
type Counted struct{ Actuator autoscaler.Actuator }

// Set implements Runner.
func (c Counted) Set(t autoscaler.Target, rs []placement.Replica, _ []placement.Device) {
	_ = c.Actuator.Scale(context.Background(), t, len(rs))
}

// Size implements Runner.
func (c Counted) Size(t autoscaler.Target) autoscaler.Size {
	sz, _ := c.Actuator.Size(context.Background(), t)
	return sz
}
