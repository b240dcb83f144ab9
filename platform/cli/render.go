package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sluice-serve/sluice/autoscaler/keda"
	"github.com/sluice-serve/sluice/autoscaler/kube/manifest"
	"github.com/sluice-serve/sluice/autoscaler/kube/workload"
	"github.com/sluice-serve/sluice/platform/code"
	"github.com/sluice-serve/sluice/platform/controller"
	"github.com/sluice-serve/sluice/platform/spec"
	sluicev1 "github.com/sluice-serve/sluice/protos/gen/sluice/v1"
	"github.com/sluice-serve/sluice/registry"
)

// runRender prints Kubernetes objects for the applications of YAML files:
// a KEDA ScaledObject for each deployment that autoscales, so that a
// cluster can scale Sluice's replicas with KEDA instead of `sluice
// autoscaler`, and with --workloads, first, the Deployment that runs each
// deployment's replicas, with the resources (GPUs included) it asks for.
// It reads files, and contacts the platform (--addr) only to resolve the
// code bundles a spec names.
func runRender(ctx context.Context, args []string, env Env) error {
	fs := newFlags("render", env)
	var files listFlag
	fs.Var(&files, "f", "YAML file with one or more applications (required, repeatable)")
	cluster := clusterFlags(fs)
	namespace := fs.String("namespace", "", "metadata.namespace of every object (default: none, kubectl's namespace)")
	template := fs.String("workload-template", workload.DefaultTemplate, "name of the workload running each deployment's replicas; {app} and {deployment} are replaced, the result lowercased")
	workloads := fs.Bool("workloads", false, "also print an apps/v1 Deployment running each deployment's replicas, with its resources")
	image := fs.String("image", manifest.DefaultImage, "with --workloads: the replicas' image")
	dial := registryDial(fs, false) // --addr: the platform that resolves code: references
	shared := fs.String("gpu-shared-resource", manifest.DefaultGPUSharedResource, "with --workloads: the resource a replica asking for a fraction of a GPU takes one of (the NVIDIA device plugin's time-sliced GPUs)")
	acls := aclFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if done, err := acls(files); done {
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
	var pins *code.Resolver // resolves code: references through the platform (--addr)
	for _, app := range apps {
		if *workloads && namesCode(app) {
			if pins == nil {
				if !fs.given("addr") && env.Getenv("SLUICE_ADDR") == "" {
					return usageError("render: %s names code bundles: give --addr (or SLUICE_ADDR), the platform whose registry holds them", app.Name)
				}
				conn, err := dial()
				if err != nil {
					return err
				}
				defer conn.Close()
				pins = &code.Resolver{Catalog: grpcCatalog{ctx: ctx, client: sluicev1.NewCodeClient(conn)}}
			}
			if err := pins.Pin(ctx, app); err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			mopts.Pin = func(dep string) *spec.BundlePin {
				d, _ := deploymentOf(app, dep)
				return d.Bundle
			}
		}
		if *workloads {
			topo := controller.Compile(namer, app)
			mopts.Revision = func(dep string) string {
				d, _ := deploymentOf(app, dep)
				return controller.Revision(topo, d)
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

// namesCode reports whether any deployment of app runs a code bundle.
func namesCode(app *spec.App) bool {
	return slices.ContainsFunc(app.Deployments, func(d spec.Deployment) bool { return d.Kind == "" && !app.CodeOf(d).IsZero() })
}

// grpcCatalog resolves bundles through a platform's Code service.
type grpcCatalog struct {
	ctx    context.Context
	client sluicev1.CodeClient
}

func (c grpcCatalog) ResolveBundle(ref string) (*registry.BundleVersion, error) {
	name, version, _ := strings.Cut(ref, "@")
	ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	defer cancel()
	v, err := c.client.GetBundleVersion(ctx, &sluicev1.GetBundleVersionRequest{Name: name, Version: version})
	if err != nil {
		return nil, rpcError(err)
	}
	out := &registry.BundleVersion{Bundle: v.GetName(), Version: v.GetVersion(), Format: v.GetFormat(), Image: v.GetImage(), Size: v.GetSize()}
	if m := v.GetManifest(); m != "" {
		out.Manifest = json.RawMessage(m)
	}
	for _, f := range v.GetFiles() {
		out.Files = append(out.Files, registry.File{Path: f.GetPath(), Size: f.GetSize(), SHA256: f.GetSha256()})
	}
	return out, nil
}
