package serve

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluice-serve/sluice/replicas"
	"github.com/sluice-serve/sluice/streams"
)

type counted struct {
	once  sync.Once
	calls *prometheus.CounterVec
}

func (c *counted) Call(ctx context.Context, in string) (string, error) {
	c.once.Do(func() { Metrics(ctx).MustRegister(c.calls) })
	c.calls.WithLabelValues(in).Inc()
	return in, nil
}

type discard struct{}

func (discard) Emit([]byte, string) error { return nil }

// A deployment's own metrics land in the registry the platform gave its
// build, labelled with the replica's app, deployment and instance; two
// replicas of one deployment in one process register side by side.
func TestMetrics(t *testing.T) {
	t.Parallel()
	d := Type[string, string]("Counted", func() *counted {
		return &counted{calls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "greetings_total", Help: "Greetings by language."}, []string{"language"})}
	})
	app := MustApp("metered", "/metered", d.Bind())
	reg, err := NewRegistry([]*Application{app})
	if err != nil {
		t.Fatal(err)
	}
	prom := prometheus.NewPedanticRegistry()
	for _, instance := range []string{"r1", "r2"} {
		ctx := WithMetrics(context.Background(), prom, "metered", "Counted", instance)
		h, err := reg.Build(ctx, app.Spec(), "Counted", nil, streams.Namer{})
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if err := h.Handle(context.Background(), &replicas.Input{Value: []byte("en")}, discard{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := `
# HELP greetings_total Greetings by language.
# TYPE greetings_total counter
greetings_total{app="metered",deployment="Counted",language="en",replica="r1"} 2
greetings_total{app="metered",deployment="Counted",language="en",replica="r2"} 2
`
	if err := testutil.GatherAndCompare(prom, strings.NewReader(want), "greetings_total"); err != nil {
		t.Error(err)
	}

	// Without the platform's registry (a unit test of the deployment),
	// registering works and goes nowhere.
	h, err := reg.Build(context.Background(), app.Spec(), "Counted", nil, streams.Namer{})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Handle(context.Background(), &replicas.Input{Value: []byte("en")}, discard{}); err != nil {
		t.Fatal(err)
	}
}
