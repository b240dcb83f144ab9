package cli

import (
	"context"
	"fmt"

	"github.com/sluice-serve/sluice/autoscaler/keda"
	"github.com/sluice-serve/sluice/autoscaler/kube/workload"
	"github.com/sluice-serve/sluice/platform/controller"
)

// runRender prints Kubernetes objects for the applications of YAML files:
// a KEDA ScaledObject for each deployment that autoscales, so that a
// cluster can scale Sluice's replicas with KEDA instead of `sluice
// autoscaler`. It reads only files and contacts nothing.
func runRender(_ context.Context, args []string, env Env) error {
	fs := newFlags("render", env)
	var files listFlag
	fs.Var(&files, "f", "YAML file with one or more applications (required, repeatable)")
	cluster := clusterFlags(fs, env)
	namespace := fs.String("namespace", "", "metadata.namespace of every object (default: none, kubectl's namespace)")
	template := fs.String("workload-template", workload.DefaultTemplate, "name of the workload running each deployment's replicas; {app} and {deployment} are replaced, the result lowercased")
	if err := parse(fs, args); err != nil {
		return err
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
	var (
		objs    []keda.ScaledObject
		skipped []keda.Skipped
		names   = map[string]string{} // object name → deployment, across apps
	)
	for _, app := range apps {
		o, s, err := keda.ScaledObjects(app, controller.Compile(namer, app), opts)
		if err != nil {
			return &ExitError{Code: 2, Err: err}
		}
		for _, x := range o {
			if prev, dup := names[x.Metadata.Name]; dup {
				return usageError("render: %s and %s both map to %q: change --workload-template or the application names", prev, x.Target, x.Metadata.Name)
			}
			names[x.Metadata.Name] = x.Target.String()
		}
		objs, skipped = append(objs, o...), append(skipped, s...)
	}
	if err := keda.Write(env.Stdout, objs, skipped); err != nil {
		return err
	}
	for _, s := range skipped {
		fmt.Fprintf(env.Stderr, "render: no ScaledObject for %s: %s\n", s.Target, s.Reason)
	}
	return nil
}
