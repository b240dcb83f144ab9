package autoscaler

import "context"

// Target names one deployment of one application.
type Target struct {
	App        string `json:"app"`
	Deployment string `json:"deployment"`
}

func (t Target) String() string { return t.App + "/" + t.Deployment }

// Size is what an actuator runs of a deployment.
type Size struct {
	Current int // replicas started or starting
	Ready   int // replicas up, as the actuator sees them
	// Problem says why replicas are not starting ("" when none is failing):
	// such replicas are retried by the actuator and never counted ready.
	Problem string
}

// An Actuator starts and stops the replicas of deployments: goroutines of
// the dev process, processes of a node, or a Kubernetes workload.
type Actuator interface {
	// Scale asks for n replicas of t. It returns once the request is
	// taken; replicas start (or stop) in the background.
	Scale(ctx context.Context, t Target, n int) error
	// Size reports what runs of t now.
	Size(ctx context.Context, t Target) (Size, error)
}
