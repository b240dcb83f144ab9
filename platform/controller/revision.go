package controller

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/sluice-serve/sluice/platform/spec"
)

// Revision names what a deployment's replicas run: its spec less its
// sizing (replicas and autoscaling are the autoscaler's, and change no
// replica), and the topics it reads and writes. Replicas report the
// revision they run; a new revision rolls them. It is a pure function
// of the spec, so every process computes the same one.
func Revision(t *Topology, d spec.Deployment) string {
	d.Replicas, d.Autoscaling = spec.Replicas{}, spec.Autoscaling{}
	v := struct {
		Deployment         spec.Deployment
		Topics             DeploymentTopics
		Output, DeadLetter string
	}{d, t.Deployments[d.Name], t.Output, t.DeadLetter}
	b, err := json.Marshal(v)
	if err != nil { // a decoded spec always encodes; never share a revision by accident
		b = fmt.Appendf(nil, "%#v", v)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}
