//go:build !kubernetes

package cli

import (
	"errors"

	"github.com/sluice-serve/sluice/autoscaler"
)

// kubeActuator: this build has no Kubernetes client (it would double the
// binary's size).
func kubeActuator(kubeFlags) (autoscaler.Actuator, error) {
	return nil, errors.New("autoscaler: this sluice was built without Kubernetes support; build it with `go build -tags kubernetes ./cmd/sluice` (deploy/Dockerfile does)")
}
