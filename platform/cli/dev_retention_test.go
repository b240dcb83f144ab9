package cli_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/sluice-serve/sluice/platform/cli"
)

// The retention flags are checked before anything starts.
func TestDevRetentionFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		vars map[string]string
		want string // in the error
	}{
		{"size without a number", []string{"--retention-bytes", "MiB"}, nil, "--retention-bytes"},
		{"negative size", []string{"--retention-bytes", "-1MiB"}, nil, "must not be negative"},
		{"negative time", []string{"--retention", "-1m"}, nil, "--retention: must not be negative"},
		{"with --brokers", []string{"--brokers", "127.0.0.1:1", "--retention", "1m"}, nil, "bound the embedded broker"},
		{"with SLUICE_BROKERS", []string{"--retention-bytes", "8MiB"}, map[string]string{"SLUICE_BROKERS": "127.0.0.1:1"}, "bound the embedded broker"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			env := cli.Env{Stdout: &out, Stderr: &out, Log: slog.New(slog.DiscardHandler), Getenv: func(k string) string { return tc.vars[k] }}
			err := cli.Run(context.Background(), append([]string{"dev"}, tc.args...), env)
			if cli.ExitCode(err) != 2 || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("sluice dev %v = %v (exit %d), want exit 2 naming %q", tc.args, err, cli.ExitCode(err), tc.want)
			}
		})
	}
}
