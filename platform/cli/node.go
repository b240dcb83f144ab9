package cli

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/sluice-serve/sluice/autoscaler"
	"github.com/sluice-serve/sluice/platform/controller"
	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/replicas/procs"
	"github.com/sluice-serve/sluice/streams"
)

// runNode runs the autoscaler with replicas as processes of this machine:
// each is `sluice replica` of this same binary, started, drained and
// restarted as the autoscaler decides.
func runNode(ctx context.Context, args []string, env Env) error {
	fs := newFlags("node", env)
	cluster := clusterFlags(fs, env)
	s3 := s3Flags(fs)
	var only listFlag
	fs.Var(&only, "app", "scale only this application (repeatable; default: every application)")
	if err := parse(fs, args); err != nil {
		return err
	}
	bs, namer, err := cluster()
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("node: cannot find this binary to run replicas: %w", err)
	}
	base := []string{"replica", "--brokers", strings.Join(bs, ","), "--prefix", namer.Prefix()}
	if s3.Endpoint != "" {
		base = append(base, "--s3-endpoint", s3.Endpoint, "--s3-bucket", s3.Bucket, "--s3-prefix", s3.Prefix, "--s3-tls="+strconv.FormatBool(s3.TLS))
	}
	var mu sync.Mutex
	resources := map[autoscaler.Target]spec.Resources{}
	act := procs.New(procs.Config{
		Command: func(t autoscaler.Target) *exec.Cmd {
			cmd := exec.Command(self, append(slices.Clone(base), "--app", t.App, "--deployment", t.Deployment)...)
			mu.Lock()
			cmd.Env = append(os.Environ(), resourceEnv(resources[t])...)
			mu.Unlock()
			return cmd
		},
		Log: env.Log,
	})
	defer act.Close()
	return runScaler(ctx, env, "node", bs, namer, act, only, func(apps []*spec.App) {
		mu.Lock()
		defer mu.Unlock()
		clear(resources)
		for _, a := range apps {
			for _, d := range a.Deployments {
				resources[autoscaler.Target{App: a.Name, Deployment: d.Name}] = d.Resources
			}
		}
	})
}

// resourceEnv gives a replica process what its deployment asks for, as
// the Go runtime takes it: resources.cpu as GOMAXPROCS (rounded up) and
// resources.memory as GOMEMLIMIT (a soft limit: the collector works
// harder near it).
func resourceEnv(r spec.Resources) []string {
	var env []string
	if r.CPU > 0 {
		env = append(env, "GOMAXPROCS="+strconv.Itoa(int(math.Ceil(r.CPU))))
	}
	if r.Memory > 0 {
		env = append(env, "GOMEMLIMIT="+strconv.FormatInt(int64(r.Memory), 10))
	}
	return env
}

// runAutoscaler runs the autoscaler against a Kubernetes cluster: each
// deployment's workload is scaled through its scale subresource.
func runAutoscaler(ctx context.Context, args []string, env Env) error {
	fs := newFlags("autoscaler", env)
	cluster := clusterFlags(fs, env)
	k8s := fs.Bool("kubernetes", false, "scale Kubernetes workloads (required: the actuator of this command)")
	kc := kubeFlags{}
	fs.StringVar(&kc.kubeconfig, "kubeconfig", "", "kubeconfig file (default: the in-cluster service account, then $KUBECONFIG)")
	fs.StringVar(&kc.namespace, "namespace", "", "namespace of the workloads (default: the kubeconfig's, or the pod's own)")
	fs.StringVar(&kc.template, "workload-template", "{app}-{deployment}", "name of each deployment's workload")
	fs.StringVar(&kc.kind, "kind", "Deployment", "kind of the workloads: Deployment or StatefulSet")
	var only listFlag
	fs.Var(&only, "app", "scale only this application (repeatable; default: every application)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if !*k8s {
		return usageError("autoscaler: --kubernetes is required (`sluice node` runs replicas as processes of one machine; `sluice dev` runs them in process)")
	}
	bs, namer, err := cluster()
	if err != nil {
		return err
	}
	act, err := kubeActuator(kc)
	if err != nil {
		return err
	}
	return runScaler(ctx, env, "autoscaler", bs, namer, act, only, nil)
}

type kubeFlags struct{ kubeconfig, namespace, template, kind string }

// runScaler follows the applications and scales their deployments with
// act until ctx ends; onApps, when set, sees the applications first.
func runScaler(ctx context.Context, env Env, name string, bs []string, namer streams.Namer, act autoscaler.Actuator, only []string, onApps func([]*spec.App)) error {
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctl, err := controller.New(ctx, controller.Config{Brokers: bs, Namer: namer, Registry: env.Registry, Log: env.Log, TopicsOnly: true})
	if err != nil {
		return err
	}
	scaler, err := autoscaler.New(ctx, autoscaler.Config{Brokers: bs, Status: namer.Status(), Actuator: act, Log: env.Log})
	if err != nil {
		return err
	}
	ctl.OnChange(func(apps []*spec.App) {
		if len(only) > 0 {
			apps = slices.DeleteFunc(slices.Clone(apps), func(a *spec.App) bool { return !slices.Contains(only, a.Name) })
		}
		if onApps != nil {
			onApps(apps)
		}
		scaler.Set(controller.ScaleTargets(namer, apps))
	})
	ctlDone := make(chan struct{})
	go func() {
		defer close(ctlDone)
		_ = ctl.Run(runCtx)
	}()
	fmt.Fprintf(env.Stdout, "sluice %s: scaling deployments (brokers %v)\n", name, bs)
	err = scaler.Run(ctx)
	cancel()
	<-ctlDone
	return err
}
