package appstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/streams"
)

func parse(t *testing.T, yaml string) *spec.App {
	t.Helper()
	apps, err := spec.Parse("app.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return apps[0]
}

const appA = `
name: a
route_prefix: /a
ingress: X
deployments:
  - name: X
`

// open starts an embedded broker and a store following it.
func open(t *testing.T, check func(*spec.App) error) (*Store, []string, streams.Namer) {
	t.Helper()
	e, err := streams.StartEmbedded(0, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	namer, _ := streams.NewNamer("")
	ctx, cancel := context.WithCancel(context.Background())
	s, err := Open(ctx, Config{Brokers: e.Brokers(), Namer: namer, Check: check, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return s, e.Brokers(), namer
}

// A spec written straight to the apps topic is validated as it is read:
// an invalid one is refused and reported, the previous one keeps
// running, and a later valid one applies with a higher generation.
func TestRecordsAreValidatedOnRead(t *testing.T) {
	s, brokers, namer := open(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	gens, err := s.Deploy(ctx, parse(t, appA))
	if err != nil {
		t.Fatal(err)
	}
	first := gens["a"]
	if a, ok := s.App("a"); !ok || a.Generation != first {
		t.Fatalf("after deploy: %+v %v, want generation %d", a, ok, first)
	}
	if _, err := s.Deploy(ctx, parse(t, strings.ReplaceAll(appA, "name: a", "name: b"))); err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "app.yaml:3:15: route_prefix /a is taken by application a") {
		t.Fatalf("a second app on /a through Deploy: %v", err)
	}

	cl, err := streams.Dial(ctx, brokers, slog.New(slog.DiscardHandler), kgo.DefaultProduceTopic(namer.Apps()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	write := func(key string, v any) {
		t.Helper()
		b, _ := json.Marshal(v)
		if raw, ok := v.(string); ok {
			b = []byte(raw)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte(key), Value: b}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := s.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name, key string
		value     any
		want      string
	}{
		{"route taken", "b", parse(t, strings.ReplaceAll(appA, "name: a", "name: b")), "route_prefix /a is taken by application a"},
		{"undecodable", "a", "{not json", "stored spec undecodable"},
		{"unknown field", "a", `{"name":"a","route_prefix":"/a","ingress":"X","deployments":[{"name":"X"}],"replica":1}`, "unknown field"},
		{"key and name differ", "a", parse(t, strings.ReplaceAll(appA, "name: a", "name: c")), "the record's key names application a"},
		{"spec rule", "a", withIngress(parse(t, appA), "nope"), "ingress"},
	} {
		write(c.key, c.value)
		rej, ok := s.Rejected(c.key)
		if !ok || !strings.Contains(rej.Reason, c.want) {
			t.Fatalf("%s: rejection %+v %v, want one naming %q", c.name, rej, ok, c.want)
		}
		if a, ok := s.App("a"); !ok || a.Generation != first {
			t.Fatalf("%s: application a is %+v, want generation %d kept", c.name, a, first)
		}
		if _, ok := s.App("b"); ok {
			t.Fatalf("%s: the refused application b was applied", c.name)
		}
	}

	v2 := parse(t, strings.ReplaceAll(appA, "route_prefix: /a", "route_prefix: /a2"))
	gens, err = s.Deploy(ctx, v2)
	if err != nil {
		t.Fatal(err)
	}
	if gens["a"] <= first {
		t.Fatalf("generation %d after %d", gens["a"], first)
	}
	if _, ok := s.Rejected("a"); ok {
		t.Fatal("a valid spec clears the rejection")
	}

	// A replica process loads the latest valid spec.
	write("a", "{garbage")
	got, err := Load(ctx, Config{Brokers: brokers, Namer: namer, Log: slog.New(slog.DiscardHandler)}, "a", nil)
	if err != nil || got.Generation != gens["a"] || got.Spec.RoutePrefix != "/a2" {
		t.Fatalf("Load: %+v %v, want generation %d on /a2", got, err, gens["a"])
	}
	if _, err := Load(ctx, Config{Brokers: brokers, Namer: namer, Log: slog.New(slog.DiscardHandler)}, "b", nil); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("Load of a refused application: %v", err)
	}
}

// The handler check (what this binary can run) refuses on read too.
func TestCheckRefusesOnRead(t *testing.T) {
	s, _, _ := open(t, func(a *spec.App) error {
		if a.Name == "bad" {
			return errors.New("unknown handler X")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := s.Deploy(ctx, parse(t, strings.ReplaceAll(appA, "name: a", "name: bad"))); err == nil || !strings.Contains(err.Error(), "unknown handler X") {
		t.Fatalf("deploy of an app the check refuses: %v", err)
	}
	if len(s.Apps()) != 0 {
		t.Fatalf("apps %v", s.Apps())
	}
}

func withIngress(a *spec.App, ingress string) *spec.App {
	a.Ingress = ingress
	return a
}

const diamond = `name: d
route_prefix: /d
ingress: In
deployments:
  - {name: In, kind: cel}
  - {name: Plus1, kind: cel}
  - {name: Times10, kind: cel}
  - {name: Final, kind: cel%s}
edges:
  - {from: In, to: Plus1}
  - {from: In, to: Times10}
  - {from: Plus1, to: Final}
  - {from: Times10, to: Final}
`

// Deploy refuses what the dataflow rules refuse, with the file:line of
// the field; a spec that predates
// the rules, read back from the topic, is not refused.
func TestDeployChecksTheGraph(t *testing.T) {
	s, brokers, namer := open(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, c := range []struct{ join, want string }{
		{"", "invalid application d: app.yaml:8:5: deployments[3]: deployment Final has 2 incoming dataflow edges (edges[2] from Plus1, edges[3] from Times10) and no join"},
	} {
		_, err := s.Deploy(ctx, parse(t, fmt.Sprintf(diamond, c.join)))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("deploy with %q: %v, want %q", c.join, err, c.want)
		}
	}
	if _, ok := s.App("d"); ok {
		t.Fatal("a refused application was applied")
	}
	cl, err := streams.Dial(ctx, brokers, slog.New(slog.DiscardHandler), kgo.DefaultProduceTopic(namer.Apps()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	b, _ := json.Marshal(parse(t, fmt.Sprintf(diamond, "")))
	if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("d"), Value: b}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.App("d"); !ok {
		rej, _ := s.Rejected("d")
		t.Fatalf("a stored spec that predates the dataflow rules was refused on read: %s", rej.Reason)
	}
}
