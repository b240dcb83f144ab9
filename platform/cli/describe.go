package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/sluice-serve/sluice/platform/bundle"
)

// runDescribe prints this binary's manifest: its handlers and built-in
// applications. `sluice code push` runs `BINARY describe --json` to read
// a code bundle's manifest, so with --json stdout holds the JSON and
// nothing else.
func runDescribe(_ context.Context, args []string, env Env) error {
	fs := newFlags("describe", env)
	asJSON := fs.Bool("json", false, "print the manifest as JSON (what the platform validates specs against)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if env.Registry == nil {
		return errors.New("describe: this binary has no registry of deployments")
	}
	m := env.Registry.Manifest()
	if *asJSON {
		b, err := m.Encode()
		if err != nil {
			return fmt.Errorf("describe: %w", err)
		}
		_, err = env.Stdout.Write(append(b, '\n'))
		return err
	}
	return printManifest(env.Stdout, m)
}

// printManifest lists the handlers, one a line, then the applications.
func printManifest(w io.Writer, m bundle.Manifest) error {
	fmt.Fprintf(w, "SDK %s %s, %s %s, manifest format %d\n\n", m.SDK.Language, m.SDK.Version, m.SDK.Runtime, m.SDK.Platform, m.Format)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HANDLER\tKIND\tINPUT\tOUTPUT\tARGS\tHOOKS")
	for _, h := range m.Handlers {
		args := "-" // a function: no constructor
		if !h.Func {
			parts := make([]string, len(h.Args))
			for i, a := range h.Args {
				parts[i] = a.Go
				if a.Handle {
					parts[i] = "handle " + a.Input.Go + "→" + a.Output.Go
				}
				if a.Optional {
					parts[i] += "?"
				}
			}
			args = "(" + strings.Join(parts, ", ") + ")"
		}
		var hooks []string
		if h.Reconfigure {
			hooks = append(hooks, "reconfigure")
		}
		if h.HealthCheck {
			hooks = append(hooks, "health")
		}
		if len(hooks) == 0 {
			hooks = []string{"-"}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", h.Name, h.Kind, payload(h.Input), payload(h.Output), args, strings.Join(hooks, ","))
	}
	if len(m.Apps) > 0 {
		fmt.Fprintln(tw, "\nAPPLICATION\tROUTE\tINGRESS\tDEPLOYMENTS")
		for _, a := range m.Apps {
			names := make([]string, len(a.Deployments))
			for i, d := range a.Deployments {
				names[i] = d.Name
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.Name, a.RoutePrefix, a.Ingress, strings.Join(names, ", "))
		}
	}
	return tw.Flush()
}

// payload is a type with how it travels when that is not JSON.
func payload(t bundle.Type) string {
	if t.Encoding == bundle.EncodingJSON || t.Encoding == "" {
		return t.Go
	}
	return t.Go + " (" + t.Encoding + ")"
}
