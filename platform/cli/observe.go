package cli

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/sluice-serve/sluice/streams/tracing"
)

// Every command takes --log-format text|json (or SLUICE_LOG_FORMAT): the
// process's log lines as slog text (the default) or one JSON object a
// line. The flag is read before the command's own flags, wherever it
// sits, and passes to the processes the command starts (replicas of a
// node or of sluice dev) through SLUICE_LOG_FORMAT.
const logFormatEnv = "SLUICE_LOG_FORMAT"

// logFormat takes --log-format out of args and returns the format: the
// flag's, else SLUICE_LOG_FORMAT's, else "text".
func logFormat(args []string, env Env) (string, []string, error) {
	format := env.Getenv(logFormatEnv)
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "log-format" {
			rest = append(rest, a)
			continue
		}
		if !hasValue {
			if i+1 == len(args) {
				return "", nil, usageError("--log-format needs a value: text or json")
			}
			i++
			value = args[i]
		}
		format = value
		os.Setenv(logFormatEnv, value) // for the processes it starts
	}
	switch format {
	case "", "text":
		return "text", rest, nil
	case "json":
		return "json", rest, nil
	}
	return "", nil, usageError("--log-format %q: want text or json", format)
}

// jsonLogger is a JSON logger to w at the level SLUICE_DEBUG sets.
func jsonLogger(env Env) *slog.Logger {
	level := slog.LevelInfo
	if env.Getenv("SLUICE_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewJSONHandler(env.Stderr, &slog.HandlerOptions{Level: level}))
}

// traceFlushTimeout bounds the export of the last spans at exit.
const traceFlushTimeout = 5 * time.Second

// setupTracing installs an OpenTelemetry tracer provider exporting OTLP
// over HTTP when the standard environment asks for one:
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT set,
// and neither OTEL_SDK_DISABLED=true nor OTEL_TRACES_EXPORTER=none. The
// exporter reads the rest of OTEL_EXPORTER_OTLP_*, the sampler
// OTEL_TRACES_SAMPLER and _ARG (parentbased_traceidratio with a ratio
// samples a share of new traces and follows the caller's decision), the
// resource OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; the service
// is sluice-<command> when OTEL_SERVICE_NAME is unset. Otherwise tracing
// stays off and costs nothing. The returned function flushes and stops.
func setupTracing(ctx context.Context, command string, env Env) (func(), error) {
	endpoint := env.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || env.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
	if !endpoint || strings.EqualFold(env.Getenv("OTEL_SDK_DISABLED"), "true") || env.Getenv("OTEL_TRACES_EXPORTER") == "none" {
		return func() {}, nil
	}
	// The SDK's OTLP/HTTP client (OTEL_EXPORTER_OTLP_* read as the SDK
	// reads them) under the project's exporter, which writes the spans'
	// protobuf itself.
	exp, err := tracing.NewExporter(ctx, otlptracehttp.NewClient())
	if err != nil {
		return nil, err
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "sluice-"+command)),
		resource.WithProcessPID(), // tells replica processes of one deployment apart
		resource.WithFromEnv(),    // OTEL_SERVICE_NAME wins
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, err
	}
	tp := tracing.NewProvider(exp, sdktrace.WithResource(res))
	tracing.Set(tp)
	return func() {
		tracing.Set(nil)
		sctx, cancel := context.WithTimeout(context.Background(), traceFlushTimeout)
		defer cancel()
		if err := tp.Shutdown(sctx); err != nil && env.Log != nil {
			env.Log.Warn("trace exporter shutdown failed", "err", err)
		}
	}, nil
}

// accessLogFlag registers --access-log (SLUICE_ACCESS_LOG=1) for a
// command that serves the gateway; after parsing, the returned function
// gives the access log, one JSON object a line on stderr, or nil when
// the flag is off.
func accessLogFlag(fs *flagSet, env Env) func() *slog.Logger {
	on := fs.Bool("access-log", env.Getenv("SLUICE_ACCESS_LOG") != "", "log one JSON line per call on stderr: app, route, code, duration, request id, trace id (SLUICE_ACCESS_LOG=1)")
	return func() *slog.Logger {
		if !*on {
			return nil
		}
		return slog.New(slog.NewJSONHandler(env.Stderr, nil)).With("log", "access")
	}
}
