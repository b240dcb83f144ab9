package cli

import (
	"context"
	"os"
	"slices"
	"testing"

	"github.com/sluice-serve/sluice/streams/tracing"
)

// --log-format is taken out of the arguments wherever it sits, before
// `--` only; SLUICE_LOG_FORMAT is its default; anything but text or json
// is a usage error naming the value.
func TestLogFormat(t *testing.T) {
	t.Cleanup(func() { os.Unsetenv(logFormatEnv) }) // the flag sets it for child processes
	env := func(format string) Env {
		return Env{Getenv: func(k string) string {
			if k == logFormatEnv {
				return format
			}
			return ""
		}}
	}
	for _, tc := range []struct {
		args    []string
		env     string
		want    string
		rest    []string
		wantErr bool
	}{
		{args: []string{"status"}, want: "text", rest: []string{"status"}},
		{args: []string{"status"}, env: "json", want: "json", rest: []string{"status"}},
		{args: []string{"--log-format", "json", "dev", "--http", ":0"}, want: "json", rest: []string{"dev", "--http", ":0"}},
		{args: []string{"dev", "-log-format=json"}, env: "text", want: "json", rest: []string{"dev"}},
		{args: []string{"dev", "--log-format=text"}, env: "json", want: "text", rest: []string{"dev"}},
		{args: []string{"dev", "--", "--log-format=json"}, want: "text", rest: []string{"dev", "--", "--log-format=json"}},
		{args: []string{"dev", "--log-format", "yaml"}, wantErr: true},
		{args: []string{"dev", "--log-format"}, wantErr: true},
		{args: []string{"dev"}, env: "xml", wantErr: true},
	} {
		got, rest, err := logFormat(tc.args, env(tc.env))
		if tc.wantErr {
			if err == nil || ExitCode(err) != 2 {
				t.Errorf("logFormat(%q, env %q) = %q, %v; want a usage error", tc.args, tc.env, got, err)
			}
			continue
		}
		if err != nil || got != tc.want || !slices.Equal(rest, tc.rest) {
			t.Errorf("logFormat(%q, env %q) = %q, %q, %v; want %q, %q", tc.args, tc.env, got, rest, err, tc.want, tc.rest)
		}
	}
}

// Without an OTLP endpoint in the environment, or with the SDK disabled,
// no tracer is installed: tracing stays off.
func TestSetupTracingOff(t *testing.T) {
	for _, vars := range []map[string]string{
		{},
		{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_SDK_DISABLED": "true"},
		{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_TRACES_EXPORTER": "none"},
	} {
		stop, err := setupTracing(context.Background(), "gateway", Env{Getenv: func(k string) string { return vars[k] }})
		if err != nil {
			t.Fatal(err)
		}
		if tracing.Tracer() != nil {
			t.Errorf("env %v: a tracer is installed", vars)
		}
		stop()
	}
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	stop, err := setupTracing(context.Background(), "gateway", Env{Getenv: os.Getenv})
	if err != nil {
		t.Fatal(err)
	}
	if tracing.Tracer() == nil {
		t.Error("OTEL_EXPORTER_OTLP_ENDPOINT set: no tracer installed")
	}
	stop()
	if tracing.Tracer() != nil {
		t.Error("a tracer stays installed after stop")
	}
}
