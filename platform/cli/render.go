package cli

import "context"

// runRender prints Kubernetes objects for the applications of YAML files.
func runRender(ctx context.Context, args []string, env Env) error {
	return usageError("render: not built yet")
}
