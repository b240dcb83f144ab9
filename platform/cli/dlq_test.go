package cli

import (
	"strings"
	"testing"
	"time"
)

// The dlq commands refuse bad usage with exit code 2, naming what is
// wrong, before they reach for a broker.
func TestDLQUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		vars map[string]string
		args []string
		want string
	}{
		{"no command", nil, []string{"dlq"}, "dlq: no command given"},
		{"unknown command", nil, []string{"dlq", "purge", "a"}, `unknown command "purge"`},
		{"no app", nil, []string{"dlq", "ls", "--brokers", "b:1"}, "missing arguments: want APP"},
		{"two apps", nil, []string{"dlq", "replay", "a", "b", "--brokers", "b:1"}, `unexpected argument "b"`},
		{"no brokers", nil, []string{"dlq", "ls", "a"}, "--brokers is required"},
		{"bad app", nil, []string{"dlq", "ls", "a.b", "--brokers", "b:1"}, `application "a.b"`},
		{"bad prefix", nil, []string{"dlq", "ls", "a", "--brokers", "b:1", "--prefix", "a/b"}, "--prefix"},
		{"bad since", map[string]string{"SLUICE_BROKERS": "b:1"}, []string{"dlq", "replay", "a", "--since", "yesterday"}, "--since: want an RFC 3339 time"},
		{"negative since", map[string]string{"SLUICE_BROKERS": "b:1"}, []string{"dlq", "replay", "a", "--since", "-1h"}, "--since"},
		{"where syntax", map[string]string{"SLUICE_BROKERS": "b:1"}, []string{"dlq", "replay", "a", "--where", "body >"}, "--where: line 1, column"},
		{"where not bool", map[string]string{"SLUICE_BROKERS": "b:1"}, []string{"dlq", "replay", "a", "--where", "deployment"}, "--where"},
		{"where unknown name", map[string]string{"SLUICE_BROKERS": "b:1"}, []string{"dlq", "replay", "a", "--where", "error == 1"}, "--where"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, stderr, err := runCLI(t, tc.vars, tc.args...)
			if ExitCode(err) != 2 || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("sluice %s: exit %d, %v (stderr %q); want exit 2 naming %q", strings.Join(tc.args, " "), ExitCode(err), err, stderr, tc.want)
			}
		})
	}
}

func TestParseSince(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"2026-12-06T10:00:00Z":      time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC),
		"2026-12-06T10:00:00+01:00": time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC),
		"90m":                       now.Add(-90 * time.Minute),
		"0s":                        now,
	} {
		got, err := parseSince(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "yesterday", "-5m", "2026-12-06"} {
		if _, err := parseSince(in, now); err == nil {
			t.Errorf("parseSince(%q): no error", in)
		}
	}
}
