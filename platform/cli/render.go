package cli

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strings"

	"github.com/sluice-serve/sluice/autoscaler/keda"
	"github.com/sluice-serve/sluice/autoscaler/kube/manifest"
	"github.com/sluice-serve/sluice/autoscaler/kube/workload"
	"github.com/sluice-serve/sluice/platform/controller"
	"github.com/sluice-serve/sluice/platform/spec"
)

// runRender prints Kubernetes objects for the applications of YAML files:
// a KEDA ScaledObject for each deployment that autoscales, so that a
// cluster can scale Sluice's replicas with KEDA instead of `sluice
// autoscaler`, and with --workloads, first, the Deployment that runs each
// deployment's replicas, with the resources (GPUs included) it asks for.
// It reads only files and contacts nothing.
func runRender(_ context.Context, args []string, env Env) error {
	fs := newFlags("render", env)
	var files listFlag
	fs.Var(&files, "f", "YAML file with one or more applications (required, repeatable)")
	cluster := clusterFlags(fs)
	namespace := fs.String("namespace", "", "metadata.namespace of every object (default: none, kubectl's namespace)")
	template := fs.String("workload-template", workload.DefaultTemplate, "name of the workload running each deployment's replicas; {app} and {deployment} are replaced, the result lowercased")
	workloads := fs.Bool("workloads", false, "also print an apps/v1 Deployment running each deployment's replicas, with its resources")
	image := fs.String("image", manifest.DefaultImage, "with --workloads: the replicas' image")
	shared := fs.String("gpu-shared-resource", manifest.DefaultGPUSharedResource, "with --workloads: the resource a replica asking for a fraction of a GPU takes one of (the NVIDIA device plugin's time-sliced GPUs)")
	if err := parse(fs, args); err != nil {
		return err
	}
	var misplaced error
	fs.Visit(func(f *flag.Flag) {
		if !*workloads && (f.Name == "image" || f.Name == "gpu-shared-resource") {
			misplaced = usageError("render: --%s applies only with --workloads", f.Name)
		}
	})
	if misplaced != nil {
		return misplaced
	}
	if *image == "" {
		return usageError("render: --image is empty")
	}
	if !strings.Contains(*shared, "/") {
		return usageError("render: --gpu-shared-resource %q: want an extended resource name, domain/name, such as %s", *shared, manifest.DefaultGPUSharedResource)
	}
	if len(files) == 0 {
		return usageError("render: -f FILE is required")
	}
	if fs.NArg() > 0 {
		return usageError("render: unexpected argument %q", fs.Arg(0))
	}
	brokers, namer, err := cluster()
	if err != nil {
		return err
	}
	tmpl, err := workload.ParseTemplate(*template)
	if err != nil {
		return usageError("--workload-template: %v", err)
	}
	apps, err := readSpecs(files)
	if err != nil {
		return err
	}
	opts := keda.Options{Brokers: brokers, Namespace: *namespace, Workload: tmpl}
	mopts := manifest.Options{
		Brokers: brokers, Prefix: namer.Prefix(), Namespace: *namespace, Workload: tmpl,
		Image: *image, GPUSharedResource: *shared,
	}
	var (
		deps    []manifest.Deployment
		objs    []keda.ScaledObject
		skipped []keda.Skipped
		names   = map[string]string{} // object name → deployment, across apps
		wnames  = map[string]string{} // workload name → deployment, across apps
	)
	for _, app := range apps {
		if *workloads {
			topo := controller.Compile(namer, app)
			mopts.Revision = func(dep string) string {
				return controller.Revision(topo, app.Deployments[slices.IndexFunc(app.Deployments, func(d spec.Deployment) bool { return d.Name == dep })])
			}
			ds, err := manifest.Deployments(app, mopts)
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			for _, d := range ds {
				if err := unique(wnames, d.Metadata.Name, d.Target.String()); err != nil {
					return err
				}
			}
			deps = append(deps, ds...)
		}
		o, s, err := keda.ScaledObjects(app, controller.Compile(namer, app), opts)
		if err != nil {
			return &ExitError{Code: 2, Err: err}
		}
		for _, x := range o {
			if err := unique(names, x.Metadata.Name, x.Target.String()); err != nil {
				return err
			}
		}
		objs, skipped = append(objs, o...), append(skipped, s...)
	}
	if *workloads {
		if err := manifest.Write(env.Stdout, deps); err != nil {
			return err
		}
	}
	if err := keda.Write(env.Stdout, objs, skipped); err != nil {
		return err
	}
	for _, s := range skipped {
		fmt.Fprintf(env.Stderr, "render: no ScaledObject for %s: %s\n", s.Target, s.Reason)
	}
	return nil
}

// unique records that object name belongs to deployment, or refuses a
// second deployment mapped to the same name.
func unique(names map[string]string, name, deployment string) error {
	if prev, dup := names[name]; dup {
		return usageError("render: %s and %s both map to %q: change --workload-template or the application names", prev, deployment, name)
	}
	names[name] = deployment
	return nil
}
