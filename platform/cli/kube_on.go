//go:build kubernetes

package cli

import (
	"github.com/sluice-serve/sluice/autoscaler"
	"github.com/sluice-serve/sluice/autoscaler/kube"
)

// kubeActuator scales Kubernetes workloads; only a build with the
// `kubernetes` tag links client-go.
func kubeActuator(f kubeFlags) (autoscaler.Actuator, error) {
	client, ns, err := kube.NewClient(f.kubeconfig)
	if err != nil {
		return nil, err
	}
	if f.namespace != "" {
		ns = f.namespace
	}
	return kube.New(client, kube.Namespace(ns), kube.WorkloadTemplate(f.template), kube.Kind(f.kind))
}
