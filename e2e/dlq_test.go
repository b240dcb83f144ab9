package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-serve/sluice/platform/dlq"
)

// dlqYAML: A adds 1 and hands its output to B along an edge; B (%[1]s)
// doubles it. Version 1 of B fails on multiples of 5 (a division by
// zero), version 2 is fixed.
const dlqYAML = `name: dlqapp
route_prefix: /dlqapp
ingress: A
deployments:
  - {name: A, kind: cel, transform: 'int(body) + 1'}
  - {name: B, kind: cel, transform: '%s'}
edges:
  - {from: A, to: B}
`

const (
	dlqBroken = `int(body) % 5 == 0 ? int(body) / 0 : int(body) * 2`
	dlqFixed  = `int(body) * 2`
)

// Dead letters replayed after a fix: 50 offline records through a graph
// whose second deployment fails on 10 of them; `sluice dlq ls` shows the
// 10 at B with their code, first and last time and latest error; after a
// deploy of the fixed B, `sluice dlq replay --where` replays the chosen
// ones to B's input edge, a plain replay the others, and a third replay
// nothing (every one already replayed); every key is then on the output
// topic exactly once with its right value.
func TestDLQReplay(t *testing.T) {
	t.Parallel()
	const app, total = "dlqapp", 50
	cluster := []string{"--brokers", strings.Join(plat.Brokers, ","), "--prefix", namer.Prefix()}
	deploy := func(transform string) {
		t.Helper()
		f := writeFile(t, app+".yaml", fmt.Sprintf(dlqYAML, transform))
		if code, out := run(t, "deploy", "-f", f); code != 0 {
			t.Fatalf("deploy: exit %d: %s", code, out)
		}
	}
	deploy(dlqBroken)
	defer run(t, "delete", app)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r := readBatch(ctx, t, namer.Output(app), 0, total, true)
	if err := produceBatch(ctx, namer.Ingress(app), 0, total, 0); err != nil {
		t.Fatal(err)
	}
	ls := func() dlq.Summary {
		t.Helper()
		code, out := run(t, append([]string{"dlq", "ls", app, "--json"}, cluster...)...)
		var s dlq.Summary
		if code != 0 || json.Unmarshal([]byte(out), &s) != nil {
			t.Fatalf("dlq ls: exit %d: %s", code, out)
		}
		return s
	}
	var s dlq.Summary
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if s = ls(); (s.Pending == total/5 && r.out() == total-total/5) || time.Now().After(deadline) {
			break
		}
	}
	if s.Pending != total/5 || s.Replayed != 0 || len(s.Groups) != 1 {
		t.Fatalf("dlq ls before the fix: %+v, want %d pending at B", s, total/5)
	}
	if g := s.Groups[0]; g.Deployment != "B" || g.Count != total/5 || g.Code == "" || !strings.Contains(g.LatestError, "division by zero") ||
		g.First.IsZero() || g.Last.Before(g.First) {
		t.Errorf("dlq ls group: %+v", g)
	}
	if code, out := run(t, append([]string{"dlq", "ls", app}, cluster...)...); code != 0 || !strings.Contains(out, "10 dead letters to replay") || !strings.Contains(out, "division by zero") {
		t.Errorf("dlq ls table: exit %d:\n%s", code, out)
	} else {
		t.Logf("sluice dlq ls %s:\n%s", app, out)
	}

	deploy(dlqFixed)
	// B's new version serves once a sync call through it is answered so.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if code, got := post(t, "/"+app, "4"); code == http.StatusOK && got == "10" {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the fixed B not serving within a minute: %d %q", code, got)
		}
	}

	replay := func(want int, wantSkips map[string]int, args ...string) {
		t.Helper()
		code, out := run(t, append(append([]string{"dlq", "replay", app, "--json"}, args...), cluster...)...)
		var res dlq.Result
		if code != 0 || json.Unmarshal([]byte(out), &res) != nil {
			t.Fatalf("dlq replay %v: exit %d: %s", args, code, out)
		}
		if res.Replayed != want || fmt.Sprint(res.Skipped) != fmt.Sprint(wantSkips) {
			t.Errorf("dlq replay %v: replayed %d, skipped %v; want %d, %v", args, res.Replayed, res.Skipped, want, wantSkips)
		}
	}
	// A's outputs 35, 40, 45 and 50 failed at B: the --where chooses them
	// (a dry run says so first, replaying nothing).
	where := `deployment == "B" && int(body) > 30 && request.headers["sl-status"] != ""`
	replay(4, map[string]int{dlq.SkipWhere: 6}, "--where", where, "--dry-run")
	replay(4, map[string]int{dlq.SkipWhere: 6}, "--where", where)
	replay(6, map[string]int{dlq.SkipReplayed: 4})
	replay(0, map[string]int{dlq.SkipReplayed: 10})
	if code, out := run(t, append([]string{"dlq", "replay", app, "--where", "body >"}, cluster...)...); code != 2 || !strings.Contains(out, "--where") {
		t.Errorf("a --where that does not compile: exit %d: %s", code, out)
	}

	select {
	case <-r.full:
	case <-ctx.Done():
		t.Fatalf("%d of %d keys on the output topic after the replays", r.out(), total)
	}
	time.Sleep(2 * time.Second) // anything late would be a duplicate
	cancel()
	<-r.done
	if records, dups := r.counts(); dups != 0 || len(r.wrong) > 0 {
		t.Errorf("output topic: %d records, %d duplicates, wrong %v", records, dups, r.wrong)
	}
	if s := ls(); s.Pending != 0 || s.Replayed != total/5 {
		t.Errorf("dlq ls after the replays: %+v, want 0 pending, %d replayed", s, total/5)
	}
}
