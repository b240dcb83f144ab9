package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"text/tabwriter"

	"github.com/sluice-serve/sluice/gateway/audit"
	"github.com/sluice-serve/sluice/streams"
)

// openAudit opens the audit trail of a gateway instance and follows it
// until ctx ends; done closes once it stopped.
func openAudit(ctx, runCtx context.Context, brokers []string, namer streams.Namer, instance string, log *slog.Logger) (*audit.Trail, <-chan struct{}, error) {
	t, err := audit.Open(ctx, brokers, namer.Audit(), instance, log)
	if err != nil {
		return nil, nil, err
	}
	done := make(chan struct{})
	go func() { defer close(done); t.Run(runCtx) }()
	return t, done, nil
}

// runAudit prints the latest admin actions: who deployed, deleted,
// pushed, aliased or removed what, and how it ended (admin scope).
func runAudit(ctx context.Context, args []string, env Env) error {
	fs := newFlags("audit", env)
	addr := addrFlag(fs)
	n := fs.Int("n", 20, "how many of the latest entries")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *n <= 0 {
		return usageError("audit: -n must be positive, got %d", *n)
	}
	data, err := apiRequest(ctx, env, http.MethodGet, fmt.Sprintf("%s/sluice/v1/audit?limit=%d", baseURL(*addr), *n), nil)
	if err != nil {
		return err
	}
	var list struct {
		Entries []audit.Entry `json:"entries"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		return fmt.Errorf("audit: the platform's answer: %w", err)
	}
	if *asJSON {
		out, err := json.MarshalIndent(list, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(env.Stdout, string(out))
		return err
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tIDENTITY\tACTION\tTARGET\tOUTCOME\tGATEWAY")
	for _, e := range list.Entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Format("2006-01-02T15:04:05Z"), e.Identity, e.Action, e.Target, e.Outcome, e.Gateway)
	}
	return tw.Flush()
}
