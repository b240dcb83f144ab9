// Package cli is the sluice command line. The stock binary and every user
// binary that links the SDK run the same commands, so a user's deployments
// run as replicas of their own binary.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/sluice-serve/sluice/platform/serve"
	"github.com/sluice-serve/sluice/streams"
)

// ExitError carries the process exit code of a failed command: 2 for bad
// usage or an invalid spec, 1 otherwise.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

func usageError(format string, args ...any) error {
	return &ExitError{Code: 2, Err: fmt.Errorf(format, args...)}
}

// ExitCode is the code a main should exit with for err.
func ExitCode(err error) int {
	var e *ExitError
	if errors.As(err, &e) {
		return e.Code
	}
	if err != nil {
		return 1
	}
	return 0
}

// Env is what a command runs with.
type Env struct {
	Stdout, Stderr io.Writer
	Log            *slog.Logger
	Registry       *serve.Registry
	Getenv         func(string) string
}

const usage = `usage: sluice <command> [flags]

commands:
  dev       run the platform in one process: embedded broker, controller, replicas, HTTP
  replica   run one replica of a deployment against any brokers
  gateway   run a gateway instance (REST + gRPC) against any brokers
  node      autoscale deployments as replica processes of this machine
  autoscaler  autoscale deployments as Kubernetes workloads (--kubernetes)
  models    publish, list, alias, delete and download model versions
  deploy    deploy applications from a YAML file to a running platform
  status    show applications, deployments, replicas and lag
  delete    delete an application
  render    print Kubernetes objects for applications (a KEDA ScaledObject per deployment)

Client commands find the platform with --addr, or SLUICE_ADDR (default 127.0.0.1:8000).
Run 'sluice <command> -h' for a command's flags.
`

// Run runs the command in args (without the program name).
func Run(ctx context.Context, args []string, env Env) error {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	if len(args) == 0 {
		fmt.Fprint(env.Stderr, usage)
		return usageError("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "dev":
		return runDev(ctx, rest, env)
	case "replica":
		return runReplica(ctx, rest, env)
	case "gateway":
		return runGateway(ctx, rest, env)
	case "node":
		return runNode(ctx, rest, env)
	case "autoscaler":
		return runAutoscaler(ctx, rest, env)
	case "models":
		return runModels(ctx, rest, env)
	case "deploy":
		return runDeploy(ctx, rest, env)
	case "status":
		return runStatus(ctx, rest, env)
	case "delete":
		return runDelete(ctx, rest, env)
	case "render":
		return runRender(ctx, rest, env)
	case "help", "-h", "--help":
		fmt.Fprint(env.Stdout, usage)
		return nil
	}
	fmt.Fprint(env.Stderr, usage)
	return usageError("unknown command %q", cmd)
}

// parse parses flags, turning flag errors into exit code 2.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return &ExitError{Code: 0, Err: err}
		}
		return &ExitError{Code: 2, Err: err}
	}
	return nil
}

// isSet reports whether the command line set the flag name.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func newFlags(name string, env Env) *flag.FlagSet {
	fs := flag.NewFlagSet("sluice "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	return fs
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func splitBrokers(s string) []string {
	var out []string
	for _, b := range strings.Split(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

func orEnv(v string, env Env, key, def string) string {
	if v != "" {
		return v
	}
	if e := env.Getenv(key); e != "" {
		return e
	}
	return def
}

// clusterFlags registers --brokers and --prefix for a command that joins
// an existing cluster; resolve reads them after parsing, failing with exit
// code 2 when no broker is given or the prefix is not a valid name.
func clusterFlags(fs *flag.FlagSet, env Env) (resolve func() ([]string, streams.Namer, error)) {
	brokers := fs.String("brokers", "", "Kafka brokers, comma-separated (env SLUICE_BROKERS; required)")
	prefix := fs.String("prefix", "", "prefix of every topic and group name (default sluice)")
	return func() ([]string, streams.Namer, error) {
		bs := splitBrokers(orEnv(*brokers, env, "SLUICE_BROKERS", ""))
		if len(bs) == 0 {
			return nil, streams.Namer{}, usageError("%s: --brokers is required", fs.Name())
		}
		namer, err := streams.NewNamer(*prefix)
		if err != nil {
			return nil, streams.Namer{}, usageError("--prefix: %v", err)
		}
		return bs, namer, nil
	}
}
