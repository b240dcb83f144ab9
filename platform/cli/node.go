package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-serve/sluice/autoscaler"
	"github.com/sluice-serve/sluice/autoscaler/placement"
	"github.com/sluice-serve/sluice/gateway"
	"github.com/sluice-serve/sluice/platform/appstore"
	"github.com/sluice-serve/sluice/platform/controller"
	"github.com/sluice-serve/sluice/platform/metrics"
	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/registry"
	"github.com/sluice-serve/sluice/replicas/node"
	"github.com/sluice-serve/sluice/replicas/procs"
	"github.com/sluice-serve/sluice/streams"
)

// runNode runs a node: its agent discovers the machine's GPUs, reports
// the node on the status topic and runs the replicas placed on it as
// `sluice replica` processes of this same binary, each pinned to its
// devices. Without --join the node also places and scales: it follows
// the applications, autoscales their deployments and packs the replicas
// onto every node that reports (itself included).
func runNode(ctx context.Context, args []string, env Env) error {
	fs := newFlags("node", env)
	cluster := clusterFlags(fs)
	s3 := s3Flags(fs)
	var only listFlag
	fs.Var(&only, "app", "scale only this application (repeatable; default: every application)")
	name := fs.String("name", "", "this node's name among the nodes (default: the host name)")
	join := fs.Bool("join", false, "only run what the placing node assigns to this one (a second GPU machine)")
	cpu := fs.Float64("cpu", 0, "cores this node offers replicas (default: every core)")
	memFlag := fs.String("memory", "", "memory this node offers replicas, e.g. 48GiB (default: the machine's)")
	cache := fs.String("model-cache", "", "where the node's replicas keep model weights (default: sluice/models under the user cache directory)")
	codeCache := fs.String("code-cache", "", "where the node's replicas keep code bundles, by content (default: sluice/code under the user cache directory)")
	claimThreshold := claimFlags(fs)
	claimLimit := claimLimitFlag(fs)
	metricsAddr := metricsFlag(fs, "node")
	replicaHost := fs.envString("replica-metrics-host", "SLUICE_REPLICA_METRICS_HOST", "127.0.0.1", "the address each replica process serves its /metrics on (a free port of it; reported on the status topic): this node's address, or 0.0.0.0 (reported as the machine's first address), where the scraper is elsewhere")
	checkPrincipals, principalEnv := replicaPrincipals(fs)
	err := parse(fs, args)
	if err != nil {
		return err
	}

	var memory spec.Bytes
	if *memFlag != "" {
		if memory, err = spec.ParseBytes(*memFlag); err != nil {
			return usageError("node: --memory: %v", err)
		}
	}
	if *join && len(only) > 0 {
		return usageError("node: --app is for the placing node; a node with --join runs what it is assigned")
	}
	bs, namer, err := cluster()
	if err != nil {
		return err
	}
	if err := checkPrincipals(bs); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("node: cannot find this binary to run replicas: %w", err)
	}
	if *cache == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return fmt.Errorf("node: no user cache directory for model weights (%v): pass --model-cache", err)
		}
		*cache = filepath.Join(dir, "sluice", "models")
	}
	base := append([]string{"replica", "--brokers", strings.Join(bs, ","), "--prefix", namer.Prefix()}, claimArgs(*claimThreshold, *claimLimit)...)
	if *codeCache != "" {
		base = append(base, "--code-cache", *codeCache)
	}
	if s3.Endpoint != "" {
		base = append(base, "--s3-endpoint", s3.Endpoint, "--s3-bucket", s3.Bucket, "--s3-prefix", s3.Prefix, "--s3-tls="+strconv.FormatBool(s3.TLS), "--s3-ca-file", s3.CAFile)
	}
	ps := procs.New(procs.Config{
		Command: func(t procs.Target, r procs.Replica) *exec.Cmd {
			dir := filepath.Join(*cache, t.App, t.Deployment, r.ID)
			cmd := exec.Command(self, append(slices.Clone(base), "--app", t.App, "--deployment", t.Deployment, "--slot", replicaSlot(r), "--revision", r.Revision, "--model-cache", dir)...)
			cmd.Env = append(append(append(append(os.Environ(), kafkaEnv(bs)...), principalEnv(namer, t.App)...), r.Env...), metrics.AddrEnv+"="+net.JoinHostPort(*replicaHost, "0"))
			return cmd
		},
		Log: env.Log,
	})
	defer ps.Close()
	agent, err := node.New(ctx, node.Config{
		Name: *name, Brokers: bs, Status: namer.Status(), Follow: *join,
		CPU: *cpu, Memory: int64(memory), ModelCache: *cache, Runner: node.ProcessRunner{Procs: ps}, Log: env.Log,
	})
	if err != nil {
		return err
	}
	agentCtx, stopAgent := context.WithCancel(context.Background())
	agentDone := make(chan error, 1)
	go func() { agentDone <- agent.Run(agentCtx) }()
	defer func() { stopAgent(); <-agentDone }()
	pm := newProcessMetrics()
	maddr, stopMetrics, err := serveMetrics(*metricsAddr, pm.reg, env.Log)
	if err != nil {
		return err
	}
	defer stopMetrics()
	if maddr != "" {
		fmt.Fprintf(env.Stdout, "sluice node %s: metrics on http://%s/metrics\n", agent.Name(), maddr)
	}
	if *join {
		fmt.Fprintf(env.Stdout, "sluice node %s: running what is placed here (brokers %v)\n", agent.Name(), bs)
		<-ctx.Done()
		return nil
	}
	placer, err := placement.NewPlacer(ctx, placement.PlacerConfig{Brokers: bs, Status: namer.Status(), Local: agent, Log: env.Log})
	if err != nil {
		return err
	}
	go func() { _ = placer.Run(agentCtx) }()
	// The placing node sweeps the claim checks that expired, as every
	// gateway does (the TTL from the gateway's default deadline cap: the
	// data topics' retention is longer).
	claims, err := replicaClaims(ctx, withS3Env(*s3, env), "", *claimThreshold, *claimLimit, env)
	if err != nil {
		return err
	}
	sweepDone := make(chan struct{})
	go func() { defer close(sweepDone); sweepClaims(agentCtx, claims, gateway.DefaultMaxTimeout, env.Log) }()
	defer func() { stopAgent(); <-sweepDone }()
	return runScaler(ctx, env, "node", bs, namer, placer, only, pm.reg, func(apps []*spec.App) {
		placer.SetRequests(controller.PlacementRequests(namer, apps, false))
	})
}

// runAutoscaler runs the autoscaler against a Kubernetes cluster: each
// deployment's workload is scaled through its scale subresource.
func runAutoscaler(ctx context.Context, args []string, env Env) error {
	fs := newFlags("autoscaler", env)
	cluster := clusterFlags(fs)
	k8s := fs.Bool("kubernetes", false, "scale Kubernetes workloads (required: the actuator of this command)")
	kc := kubeFlags{}
	fs.StringVar(&kc.kubeconfig, "kubeconfig", "", "kubeconfig file (default: the in-cluster service account, then $KUBECONFIG)")
	fs.StringVar(&kc.namespace, "namespace", "", "namespace of the workloads (default: the kubeconfig's, or the pod's own)")
	fs.StringVar(&kc.template, "workload-template", "{app}-{deployment}", "name of each deployment's workload")
	fs.StringVar(&kc.kind, "kind", "Deployment", "kind of the workloads: Deployment or StatefulSet")
	var only listFlag
	fs.Var(&only, "app", "scale only this application (repeatable; default: every application)")
	metricsAddr := metricsFlag(fs, "autoscaler")
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
	pm := newProcessMetrics()
	_, stopMetrics, err := serveMetrics(*metricsAddr, pm.reg, env.Log)
	if err != nil {
		return err
	}
	defer stopMetrics()
	return runScaler(ctx, env, "autoscaler", bs, namer, act, only, pm.reg, nil)
}

type kubeFlags struct{ kubeconfig, namespace, template, kind string }

// runScaler follows the applications, reconciles their topics and
// groups, and scales their deployments with act until ctx ends,
// exporting the scaler's metrics to mreg; onApps, when set, sees the
// applications first.
func runScaler(ctx context.Context, env Env, name string, bs []string, namer streams.Namer, act autoscaler.Actuator, only []string, mreg *prometheus.Registry, onApps func([]*spec.App)) error {
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fw, err := followStatus(runCtx, bs, namer, env)
	if err != nil {
		return err
	}
	// The registry's bundles, to check specs that name them (read-only:
	// their manifests travel in the events).
	reg, err := followRegistry(ctx, runCtx, registry.Config{Brokers: bs, Namer: namer, Log: env.Log})
	if err != nil {
		return err
	}
	ctl, err := openControl(ctx, runCtx, bs, namer, resolver(env.Registry, reg, false), reg, fw, env)
	if err != nil {
		return err
	}
	scaler, err := autoscaler.New(ctx, autoscaler.Config{Brokers: bs, Status: namer.Status(), Actuator: act, Log: env.Log})
	if err != nil {
		return err
	}
	mreg.MustRegister(scaler)
	rec, err := ctl.reconcile(ctx, bs, namer, env, func(_ context.Context, applied []appstore.Applied) {
		apps := specs(applied)
		if len(only) > 0 {
			apps = slices.DeleteFunc(apps, func(a *spec.App) bool { return !slices.Contains(only, a.Name) })
		}
		if onApps != nil {
			onApps(apps)
		}
		scaler.Set(controller.ScaleTargets(namer, apps))
	})
	if err != nil {
		return err
	}
	defer rec.Close()
	fmt.Fprintf(env.Stdout, "sluice %s: scaling deployments (brokers %v)\n", name, bs)
	return scaler.Run(ctx)
}

// replicaSlot is replica process r's slot: its ID, the same for every
// restart of the process (procs restarts one that exits), so the
// restarted one takes its partitions back at once as the same static
// group member. When the placement gives r an environment (devices,
// their share, CPU, memory), a hash of it follows: procs replaces a
// replica whose environment changed by starting the new process while
// the old one drains, and two live members with one ID would fence each
// other. (The instance ID adds the revision for the same reason.)
func replicaSlot(r procs.Replica) string {
	slot := r.ID
	if len(r.Env) > 0 {
		sum := sha256.Sum256([]byte(strings.Join(r.Env, "\n")))
		slot += "-" + hex.EncodeToString(sum[:4])
	}
	return slot
}
