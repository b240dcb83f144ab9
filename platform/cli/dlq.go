package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sluice-serve/sluice/cel"
	"github.com/sluice-serve/sluice/platform/dlq"
	"github.com/sluice-serve/sluice/streams"
)

// The dlq commands talk to Kafka directly (--brokers, --prefix, as
// `sluice replica` does), not through the gateway: they read a whole
// dead-letter topic and write transactions across an application's
// topics, which is an operator's work on the cluster, and the gateway has
// no state they need.

func runDLQ(ctx context.Context, args []string, env Env) error {
	return runGroup(ctx, "dlq", map[string]func(context.Context, []string, Env) error{
		"ls": dlqList, "replay": dlqReplay,
	}, args, env)
}

// dlqApp parses a dlq command's flags and returns the brokers and the
// application's dead-letter topic.
func dlqApp(fs *flagSet, args []string, resolve func() ([]string, streams.Namer, error)) ([]string, string, error) {
	if err := parse(fs, args); err != nil {
		return nil, "", err
	}
	bs, namer, err := resolve()
	if err != nil {
		return nil, "", err
	}
	topic, err := namer.Format(streams.Name{Kind: streams.KindDeadLetter, App: fs.Arg(0)})
	if err != nil {
		return nil, "", fs.usageError("application %q: %v", fs.Arg(0), err)
	}
	return bs, topic, nil
}

func dlqList(ctx context.Context, args []string, env Env) error {
	fs := newFlags("dlq ls", env)
	resolve := clusterFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	bs, topic, err := dlqApp(fs, args, resolve)
	if err != nil {
		return err
	}
	l, err := dlq.Read(ctx, bs, env.Log, topic)
	if err != nil {
		return err
	}
	s := dlq.Summarize(fs.Arg(0), l)
	if *asJSON {
		b, err := json.MarshalIndent(s, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(env.Stdout, string(b))
		return err
	}
	fmt.Fprintf(env.Stdout, "%s: %d dead letters to replay, %d replayed", s.App, s.Pending, s.Replayed)
	if s.Unreadable > 0 {
		fmt.Fprintf(env.Stdout, ", %d unreadable records", s.Unreadable)
	}
	fmt.Fprintln(env.Stdout)
	if len(s.Groups) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEPLOYMENT\tCODE\tCOUNT\tFIRST\tLAST\tLATEST ERROR")
	for _, g := range s.Groups {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", g.Deployment, g.Code, g.Count,
			g.First.UTC().Format(time.RFC3339), g.Last.UTC().Format(time.RFC3339), oneLine(g.LatestError, 100))
	}
	return tw.Flush()
}

func dlqReplay(ctx context.Context, args []string, env Env) error {
	fs := newFlags("dlq replay", env)
	resolve := clusterFlags(fs)
	since := fs.String("since", "", "only dead letters from this time on: RFC 3339 (2026-01-02T15:04:05Z) or a duration before now (90m)")
	where := fs.String("where", "", "only dead letters for which this CEL condition holds: request.headers (sl-status, sl-error, sl-deployment, sl-source among them), body, deployment, request.id, app")
	asJSON := fs.Bool("json", false, "print JSON")
	dryRun := fs.Bool("dry-run", false, "only say what a replay would replay and skip; write nothing")
	bs, topic, err := dlqApp(fs, args, resolve)
	if err != nil {
		return err
	}
	var f dlq.Filter
	if *since != "" {
		if f.Since, err = parseSince(*since, time.Now()); err != nil {
			return fs.usageError("--since: %v", err)
		}
	}
	if *where != "" {
		if f.Where, err = cel.Compile(*where, cel.Condition); err != nil {
			return fs.usageError("--where: %v", err)
		}
	}
	replay, verb := dlq.Replay, "replayed"
	if *dryRun {
		replay, verb = dlq.Plan, "would replay"
	}
	res, err := replay(ctx, bs, env.Log, fs.Arg(0), topic, f)
	if err != nil {
		if res.Replayed > 0 {
			fmt.Fprintf(env.Stderr, "replayed %d before the error\n", res.Replayed)
		}
		return err
	}
	if *asJSON {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(env.Stdout, string(b))
		return err
	}
	skipped := 0
	for _, n := range res.Skipped {
		skipped += n
	}
	fmt.Fprintf(env.Stdout, "%s: %s %d dead letters, skipped %d\n", fs.Arg(0), verb, res.Replayed, skipped)
	for _, reason := range slices.Sorted(maps.Keys(res.Skipped)) {
		fmt.Fprintf(env.Stdout, "  skipped %d: %s\n", res.Skipped[reason], reason)
	}
	for _, e := range res.WhereErrors {
		fmt.Fprintf(env.Stdout, "  --where failed at %s\n", e)
	}
	return nil
}

// parseSince reads --since: an RFC 3339 time, or a duration before now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, errors.New("want an RFC 3339 time (2026-01-02T15:04:05Z) or a positive duration (90m)")
	}
	return now.Add(-d), nil
}

// oneLine is s on one line, cut to n characters.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
