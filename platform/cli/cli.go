// Package cli is the sluice command line. The stock binary and every user
// binary that links the SDK run the same commands, so a user's deployments
// run as replicas of their own binary.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

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

// usage lists the commands.
func usage(w io.Writer) {
	fmt.Fprint(w, "usage: sluice <command> [arguments] [flags]\n\ncommands:\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, h := range commandHelps {
		if !strings.Contains(h.name, " ") {
			fmt.Fprintf(tw, "  %s\t%s\n", h.name, h.summary)
		}
	}
	tw.Flush()
	fmt.Fprint(w, `
Client commands (deploy, status, delete, models, code) find the platform with
--addr, or SLUICE_ADDR (default 127.0.0.1:8000), and send SLUICE_TOKEN as
their bearer token when it is set (a gateway with --auth-file needs one).
Flags may come before or after the arguments; -- ends them. SLUICE_DEBUG=1
logs at debug level; --log-format json (or SLUICE_LOG_FORMAT=json) logs one
JSON object a line, for every command. OTEL_EXPORTER_OTLP_ENDPOINT turns on
OpenTelemetry traces (OTLP over HTTP; OTEL_TRACES_SAMPLER and _ARG sample).
Run 'sluice help <command>' or 'sluice <command> --help' for a command's flags.
`)
}

// Run runs the command in args (without the program name).
func Run(ctx context.Context, args []string, env Env) error {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	format, args, err := logFormat(args, env)
	if err != nil {
		return err
	}
	if format == "json" {
		env.Log = jsonLogger(env)
		slog.SetDefault(env.Log)
	}
	if len(args) > 0 {
		stop, err := setupTracing(ctx, args[0], env)
		if err != nil {
			return fmt.Errorf("tracing: %w", err)
		}
		defer stop()
	}
	err = run(ctx, args, env)
	if errors.Is(err, errHelp) {
		return nil
	}
	return err
}

func run(ctx context.Context, args []string, env Env) error {
	if len(args) == 0 {
		usage(env.Stderr)
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
	case "code":
		return runCode(ctx, rest, env)
	case "deploy":
		return runDeploy(ctx, rest, env)
	case "status":
		return runStatus(ctx, rest, env)
	case "delete":
		return runDelete(ctx, rest, env)
	case "audit":
		return runAudit(ctx, rest, env)
	case "render":
		return runRender(ctx, rest, env)
	case "describe":
		return runDescribe(ctx, rest, env)
	case "dlq":
		return runDLQ(ctx, rest, env)
	case "help", "-h", "-help", "--help":
		if len(rest) == 0 || rest[0] == "help" || strings.HasPrefix(rest[0], "-") {
			usage(env.Stdout)
			return nil
		}
		// sluice help models push: sluice models push --help
		return run(ctx, append(slices.Clone(rest), "--help"), env)
	}
	usage(env.Stderr)
	return usageError("unknown command %q", cmd)
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

// clusterFlags registers --brokers, --prefix and Kafka's TLS and SASL
// flags (kafkaFlags) for a command that joins an existing cluster;
// resolve reads them after parsing, failing with exit code 2 when no
// broker is given, the prefix is not a valid name or the security
// settings are wrong, and registers the security for the brokers.
func clusterFlags(fs *flagSet) (resolve func() ([]string, streams.Namer, error)) {
	brokers := fs.envString("brokers", "SLUICE_BROKERS", "", "Kafka brokers, comma-separated (required)")
	prefix := fs.String("prefix", "", "prefix of every topic and group name (default sluice)")
	secure := kafkaFlags(fs)
	return func() ([]string, streams.Namer, error) {
		bs := splitBrokers(*brokers)
		if len(bs) == 0 {
			return nil, streams.Namer{}, usageError("%s: --brokers is required", fs.Name())
		}
		namer, err := streams.NewNamer(*prefix)
		if err != nil {
			return nil, streams.Namer{}, usageError("--prefix: %v", err)
		}
		if err := secure(bs); err != nil {
			return nil, streams.Namer{}, err
		}
		return bs, namer, nil
	}
}
