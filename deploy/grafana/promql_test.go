package grafana

import (
	"os"
	"slices"
	"strings"
	"testing"
)

func TestNames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`sum by (app) (rate(sluice_gateway_requests_total{app=~"$app",code!="ok"}[$__rate_interval]))`, []string{"sluice_gateway_requests_total"}},
		{`histogram_quantile(0.99, sum by (app, le) (rate(a_bucket{x="by (y)"}[5m])))`, []string{"a_bucket"}},
		{`a / on (app) group_left b + 1e3 * c offset 5m`, []string{"a", "b", "c"}},
		{`sum without (instance) (x) > bool 0.5 and y unless z`, []string{"x", "y", "z"}},
		{`label_values(sluice_deployment_replicas{app=~"$app"}, deployment)`, []string{"sluice_deployment_replicas"}},
		{`max(sluice:recorded:rate5m)`, []string{"sluice:recorded:rate5m"}},
	} {
		got, err := Names(tc.expr)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("Names(%q) = %q, %v; want %q", tc.expr, got, err, tc.want)
		}
	}
	if _, err := Names(`sum(rate(x[5m])`); err == nil {
		t.Error("an unbalanced expression was read")
	}
}

// The dashboard parses, every panel has a query, and it reads the
// series of each area the platform exports.
func TestDashboard(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("sluice.json")
	if err != nil {
		t.Fatal(err)
	}
	names, err := Metrics(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"sluice_gateway_", "sluice_replica_", "sluice_deployment_", "sluice_model_cache_", "sluice_autoscaler_decisions_total", "sluice_kgo_", "process_", "go_"} {
		if !slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, prefix) }) {
			t.Errorf("the dashboard reads no %s* series; it reads %q", prefix, names)
		}
	}
	for _, n := range names {
		if !strings.HasPrefix(n, "sluice_") && !strings.HasPrefix(n, "process_") && !strings.HasPrefix(n, "go_") {
			t.Errorf("the dashboard reads %s, a series no Sluice process exports", n)
		}
	}
}

// Names never panics, and what it returns are metric names.
func FuzzNames(f *testing.F) {
	for _, s := range []string{`up`, `sum by (a) (rate(x{y="z"}[5m]))`, `label_values(m, l)`, `a{`, `"`, `histogram_quantile(0.9, b_bucket)`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		names, err := Names(expr)
		if err != nil {
			return
		}
		for _, n := range names {
			if !identifier.MatchString(n) || strings.ContainsAny(n, " ($") {
				t.Fatalf("Names(%q) returned %q", expr, n)
			}
		}
	})
}
