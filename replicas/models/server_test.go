package models

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-serve/sluice/gateway/oip"
	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/registry"
	"github.com/sluice-serve/sluice/replicas"
	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/protocol"
)

// fakeCatalog is a registry follower over a memSource: models assembled
// from its versions, aliases set by the test, and events the test fires.
type fakeCatalog struct {
	*memSource

	mu       sync.Mutex
	aliases  map[string]map[string]string // model → alias → version
	watchers []func(registry.Event)
}

func newFakeCatalog() *fakeCatalog {
	return &fakeCatalog{memSource: newMemSource(), aliases: map[string]map[string]string{}}
}

func (c *fakeCatalog) Model(name string) (*registry.Model, error) {
	m := &registry.Model{Name: name, Aliases: map[string]string{}}
	c.memSource.mu.Lock()
	for _, v := range c.vers {
		if v.Model == name {
			m.Versions = append(m.Versions, *v)
		}
	}
	c.memSource.mu.Unlock()
	if len(m.Versions) == 0 {
		return nil, streams.Errorf(streams.CodeNotFound, "no model %s", name)
	}
	slices.SortFunc(m.Versions, func(a, b registry.Version) int {
		x, _ := strconv.Atoi(a.Version)
		y, _ := strconv.Atoi(b.Version)
		return x - y
	})
	c.mu.Lock()
	maps.Copy(m.Aliases, c.aliases[name])
	c.mu.Unlock()
	return m, nil
}

func (c *fakeCatalog) Watch(fn func(registry.Event)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.watchers = append(c.watchers, fn)
}

func (c *fakeCatalog) setAlias(model, alias, version string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.aliases[model] == nil {
		c.aliases[model] = map[string]string{}
	}
	c.aliases[model][alias] = version
}

// fire delivers an event about model to the watchers, as the registry's
// follower would after a change.
func (c *fakeCatalog) fire(model string) {
	c.mu.Lock()
	fns := slices.Clone(c.watchers)
	c.mu.Unlock()
	for _, fn := range fns {
		fn(registry.Event{Type: registry.AliasSet, Model: model})
	}
}

// edit changes a published version's metadata (its signature, labels).
func (c *fakeCatalog) edit(model, version string, fn func(v *registry.Version)) {
	c.memSource.mu.Lock()
	defer c.memSource.mu.Unlock()
	fn(c.vers[model+"/"+version])
}

// emitted collects a handler's output.
type emitted struct {
	values [][]byte
	types  []string
}

func (o *emitted) Emit(v []byte, contentType string) error {
	o.values = append(o.values, bytes.Clone(v))
	o.types = append(o.types, contentType)
	return nil
}

func newTestServer(t *testing.T, cat *fakeCatalog, serving *spec.ModelServing, max int) *Server {
	t.Helper()
	c := newTestCache(t, cat, max)
	s := NewServer(ServerConfig{Deployment: "d", Serving: serving, Catalog: cat, Cache: c, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(func() { waitIdle(t, s) }) // before the cache's directory goes
	return s
}

// waitIdle waits until no preload runs and nothing loads.
func waitIdle(t *testing.T, s *Server) {
	t.Helper()
	eventually(t, "preloads to finish", func() bool {
		s.mu.Lock()
		n := len(s.preloading)
		s.mu.Unlock()
		return n == 0 && len(s.Cache().Loading()) == 0
	})
}

// eventually polls cond for up to 2s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 2s for %s", what)
		}
	}
}

// switches reports the server's version switches as "model from->to".
func switches(s *Server) <-chan string {
	ch := make(chan string, 16)
	s.mu.Lock()
	s.onSwitch = func(model, from, to string) {
		select {
		case ch <- model + " " + from + "->" + to:
		default:
		}
	}
	s.mu.Unlock()
	return ch
}

func waitSwitch(t *testing.T, ch <-chan string, want string) {
	t.Helper()
	select {
	case got := <-ch:
		if got != want {
			t.Fatalf("switch %q, want %q", got, want)
		}
	case <-time.After(2 * time.Second):
		t.Fatalf("no switch %q in 2s", want)
	}
}

func binaryInput(t *testing.T, model, version string, req *oip.InferRequest) *replicas.Input {
	t.Helper()
	b, err := req.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return &replicas.Input{Env: protocol.Envelope{Model: model, Version: version, ContentType: oip.ContentType}, Value: b}
}

func xRequest(xs ...float32) *oip.InferRequest {
	return &oip.InferRequest{ID: "r1", Inputs: []oip.Tensor{oip.NewFP32("x", []int64{int64(len(xs)), 1}, xs)}}
}

// handle sends req in the payload form and decodes the answer.
func handle(t *testing.T, s *Server, model, version string, req *oip.InferRequest) (*oip.InferResponse, error) {
	t.Helper()
	out := &emitted{}
	if err := s.Handle(context.Background(), binaryInput(t, model, version, req), out); err != nil {
		return nil, err
	}
	if len(out.values) != 1 || out.types[0] != oip.ContentType {
		t.Fatalf("emitted %d answers of types %v, want one %s", len(out.values), out.types, oip.ContentType)
	}
	resp := new(oip.InferResponse)
	if err := resp.UnmarshalBinary(out.values[0]); err != nil {
		t.Fatal(err)
	}
	if resp.ModelName != model || resp.ID != req.ID {
		t.Fatalf("answer for model %q id %q, want %q %q", resp.ModelName, resp.ID, model, req.ID)
	}
	return resp, nil
}

// answer asks model at version for y(1) and returns the version that
// answered; the test models are y = n*x for version n, so y must agree.
func answer(t *testing.T, s *Server, model, version string) string {
	t.Helper()
	resp, err := handle(t, s, model, version, xRequest(1))
	if err != nil {
		t.Fatalf("%s %q: %v", model, version, err)
	}
	ys, err := resp.Outputs[0].Float32s()
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := strconv.Atoi(resp.ModelVersion); len(ys) != 1 || ys[0] != float32(n) {
		t.Fatalf("%s %q: model_version %q answered %v: not that version's output", model, version, resp.ModelVersion, ys)
	}
	return resp.ModelVersion
}

// versions publishes model at versions 1..n, version i computing y = i*x.
func versions(cat *fakeCatalog, model string, n int) {
	for i := 1; i <= n; i++ {
		cat.add(model, strconv.Itoa(i), float32(i), 0, LinearFormat)
	}
}

func TestServerResolvesVersions(t *testing.T) {
	t.Parallel()
	cat := newFakeCatalog()
	versions(cat, "m", 3)
	cat.setAlias("m", "production", "2")

	t.Run("no default", func(t *testing.T) {
		t.Parallel()
		s := newTestServer(t, cat, nil, 3)
		for ref, want := range map[string]string{"1": "1", "3": "3", "@production": "2", "": "3"} {
			if got := answer(t, s, "m", ref); got != want {
				t.Errorf("version %q answered by %s, want %s", ref, got, want)
			}
		}
		for _, ref := range []string{"7", "@canary"} {
			if _, err := handle(t, s, "m", ref, xRequest(1)); streams.CodeOf(err) != streams.CodeNotFound {
				t.Errorf("version %q: %v, want %s", ref, err, streams.CodeNotFound)
			}
		}
	})
	t.Run("default alias", func(t *testing.T) {
		t.Parallel()
		s := newTestServer(t, cat, &spec.ModelServing{DefaultVersion: "@production"}, 3)
		if got := answer(t, s, "m", ""); got != "2" {
			t.Fatalf("no version, default @production: answered by %s, want 2", got)
		}
	})
	t.Run("default number", func(t *testing.T) {
		t.Parallel()
		s := newTestServer(t, cat, &spec.ModelServing{DefaultVersion: "1"}, 3)
		for ref, want := range map[string]string{"": "1", "3": "3", "@production": "2"} {
			if got := answer(t, s, "m", ref); got != want {
				t.Errorf("version %q with default 1: answered by %s, want %s", ref, got, want)
			}
		}
	})
	t.Run("reconfigured", func(t *testing.T) {
		t.Parallel()
		s := newTestServer(t, cat, &spec.ModelServing{DefaultVersion: "1"}, 3)
		for _, step := range []struct{ config, want string }{
			{`{"default_version": "@production"}`, "2"},
			{`{"default_version": "3"}`, "3"},
			{`{"default_version": ""}`, "3"},
			{`{}`, "1"}, // back to the spec's
			{`{"default_version": "2"}`, "2"},
			{`null`, "1"},
		} {
			if err := s.Reconfigure(context.Background(), json.RawMessage(step.config)); err != nil {
				t.Fatalf("%s: %v", step.config, err)
			}
			if got := answer(t, s, "m", ""); got != step.want {
				t.Fatalf("after %s: no version answered by %s, want %s", step.config, got, step.want)
			}
		}
	})
	t.Run("reconfigured without a spec", func(t *testing.T) {
		t.Parallel()
		s := newTestServer(t, cat, nil, 3)
		for _, step := range []struct{ config, want string }{
			{`{"default_version": "1"}`, "1"},
			{`{}`, "3"}, // no default in the spec: the highest
		} {
			if err := s.Reconfigure(context.Background(), json.RawMessage(step.config)); err != nil {
				t.Fatalf("%s: %v", step.config, err)
			}
			if got := answer(t, s, "m", ""); got != step.want {
				t.Fatalf("after %s: no version answered by %s, want %s", step.config, got, step.want)
			}
		}
	})
}

// An alias moves: requests keep getting the old version, without waiting,
// while the new one loads; then they get the new one and the old one is
// unloaded.
func TestServerAliasMoveServesOldUntilNewIsLoaded(t *testing.T) {
	t.Parallel()
	const load = 200 * time.Millisecond
	cat := newFakeCatalog()
	versions(cat, "m", 2)
	cat.setAlias("m", "production", "1")
	s := newTestServer(t, cat, nil, 3)
	switched := switches(s)
	if got := answer(t, s, "m", "@production"); got != "1" {
		t.Fatalf("@production answered by %s, want 1", got)
	}

	cat.setAlias("m", "production", "2")
	cat.delay = load // no load runs now: the next one (v2) is slow
	moved := time.Now()
	var byOld int
	for {
		start := time.Now()
		got := answer(t, s, "m", "@production")
		if took := time.Since(start); took > load/2 {
			t.Fatalf("a request during the move took %v: it waited for the new version's load", took)
		}
		if got == "2" {
			break
		}
		if got != "1" {
			t.Fatalf("@production answered by %s during the move, want 1 or 2", got)
		}
		byOld++
		if time.Since(moved) > 2*time.Second {
			t.Fatal("@production still answered by version 1 2s after the move")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if byOld == 0 {
		t.Fatal("no request was answered by version 1 while version 2 loaded")
	}
	if took := time.Since(moved); took < load {
		t.Fatalf("version 2 answered %v after the move, before its %v load could end", took, load)
	}
	waitSwitch(t, switched, "m 1->2")
	if s.Cache().IsLoaded("m", "1") {
		t.Fatal("version 1 is still loaded: no moving name uses it")
	}
	if got := answer(t, s, "m", "@production"); got != "2" {
		t.Fatalf("after the switch: answered by %s", got)
	}
}

// Another moving name still served with the old version keeps it loaded.
func TestServerAliasMoveKeepsVersionOtherAliasUses(t *testing.T) {
	t.Parallel()
	cat := newFakeCatalog()
	versions(cat, "m", 2)
	cat.setAlias("m", "production", "1")
	cat.setAlias("m", "stable", "1")
	s := newTestServer(t, cat, nil, 3)
	switched := switches(s)
	for _, ref := range []string{"@production", "@stable"} {
		if got := answer(t, s, "m", ref); got != "1" {
			t.Fatalf("%s answered by %s, want 1", ref, got)
		}
	}

	cat.setAlias("m", "production", "2")
	cat.fire("m")
	waitSwitch(t, switched, "m 1->2")
	if !s.Cache().IsLoaded("m", "1") {
		t.Fatal("version 1 was unloaded while @stable is still served with it")
	}
	if got := answer(t, s, "m", "@stable"); got != "1" {
		t.Fatalf("@stable answered by %s, want 1", got)
	}
	if got := answer(t, s, "m", "@production"); got != "2" {
		t.Fatalf("@production answered by %s, want 2", got)
	}

	// @stable follows to the loaded version 2: it switches at the event,
	// and version 1 is no one's now.
	cat.setAlias("m", "stable", "2")
	cat.fire("m")
	waitSwitch(t, switched, "m 1->2")
	if s.Cache().IsLoaded("m", "1") {
		t.Fatal("version 1 is still loaded after both aliases left it")
	}
}

// A registry event starts loading a moving name's new target before any
// request asks for it.
func TestServerPreloadsOnEvent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, ref string
		move      func(cat *fakeCatalog)
	}{
		{"alias", "@production", func(cat *fakeCatalog) {
			cat.add("m", "2", 2, 0, LinearFormat)
			cat.setAlias("m", "production", "2")
		}},
		{"highest", "", func(cat *fakeCatalog) { cat.add("m", "2", 2, 0, LinearFormat) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cat := newFakeCatalog()
			versions(cat, "m", 1)
			cat.setAlias("m", "production", "1")
			s := newTestServer(t, cat, nil, 3)
			switched := switches(s)
			if got := answer(t, s, "m", tc.ref); got != "1" {
				t.Fatalf("%q answered by %s, want 1", tc.ref, got)
			}
			cat.fire("other") // a model not served here: nothing to do
			tc.move(cat)
			cat.fire("m")
			eventually(t, "version 2 to load without a request", func() bool { return s.Cache().IsLoaded("m", "2") })
			waitSwitch(t, switched, "m 1->2")
			if s.Cache().IsLoaded("m", "1") {
				t.Fatal("version 1 is still loaded after the switch")
			}
			opens := cat.opens.Load()
			if got := answer(t, s, "m", tc.ref); got != "2" {
				t.Fatalf("%q answered by %s after the switch, want 2", tc.ref, got)
			}
			if cat.opens.Load() != opens {
				t.Fatal("the request after the switch downloaded: the preload should have loaded version 2")
			}
		})
	}
}

// The new target of a moving name fails to load: the old version keeps
// answering, and no request fails.
func TestServerFailedPreloadKeepsOldVersion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		publish func(cat *fakeCatalog)
	}{
		{"runtime panics", func(cat *fakeCatalog) { cat.add("m", "2", 2, 0, "boom") }},
		{"corrupt artifact", func(cat *fakeCatalog) {
			cat.add("m", "2", 2, 0, LinearFormat)
			cat.corrupt("m", "2")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cat := newFakeCatalog()
			versions(cat, "m", 1)
			tc.publish(cat)
			cat.setAlias("m", "production", "1")
			s := newTestServer(t, cat, nil, 3)
			switched := switches(s)
			if got := answer(t, s, "m", "@production"); got != "1" {
				t.Fatalf("@production answered by %s, want 1", got)
			}
			cat.setAlias("m", "production", "2")
			cat.fire("m")
			eventually(t, "version 2 to fail", func() bool {
				if got := answer(t, s, "m", "@production"); got != "1" {
					t.Fatalf("@production answered by %s while version 2 failed to load", got)
				}
				_, failed := s.Cache().Failed()["m/2"]
				return failed
			})
			for range 20 {
				if got := answer(t, s, "m", "@production"); got != "1" {
					t.Fatalf("@production answered by %s after version 2 failed to load, want 1", got)
				}
			}
			waitIdle(t, s)
			if !s.Cache().IsLoaded("m", "1") {
				t.Fatal("version 1 was unloaded though version 2 never loaded")
			}
			select {
			case sw := <-switched:
				t.Fatalf("switched %s to a version that failed to load", sw)
			default:
			}
			if _, err := handle(t, s, "m", "2", xRequest(1)); streams.CodeOf(err) != streams.CodeFailedPrecondition {
				t.Fatalf("version 2 asked by number: %v, want the held failure (%s)", err, streams.CodeFailedPrecondition)
			}
		})
	}
}

func TestServerChecksSignature(t *testing.T) {
	t.Parallel()
	cat := newFakeCatalog()
	versions(cat, "m", 1)
	cat.edit("m", "1", func(v *registry.Version) {
		v.Inputs = []spec.TensorSpec{{Name: "x", Datatype: "FP32", Shape: []int64{-1, 1}}}
	})
	s := newTestServer(t, cat, nil, 3)
	for _, tc := range []struct {
		name   string
		inputs []oip.Tensor
		want   string // in the error
	}{
		{"missing", nil, "input x is missing"},
		{"wrong input", []oip.Tensor{oip.NewFP32("z", []int64{1, 1}, []float32{1})}, "input x is missing"},
		{"datatype", []oip.Tensor{oip.NewInt64("x", []int64{1, 1}, []int64{1})}, "input x: datatype INT64"},
		{"shape", []oip.Tensor{oip.NewFP32("x", []int64{1, 2}, []float32{1, 2})}, "input x: shape [1 2]"},
		{"rank", []oip.Tensor{oip.NewFP32("x", []int64{2}, []float32{1, 2})}, "input x: shape [2]"},
		{"extra", []oip.Tensor{oip.NewFP32("x", []int64{1, 1}, []float32{1}), oip.NewFP32("extra", []int64{1}, []float32{1})}, "input extra is not an input"},
	} {
		_, err := handle(t, s, "m", "1", &oip.InferRequest{ID: "r1", Inputs: tc.inputs})
		if streams.CodeOf(err) != streams.CodeInvalidArgument || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %s naming %q", tc.name, err, streams.CodeInvalidArgument, tc.want)
		}
	}
	if n := cat.opens.Load(); n != 0 {
		t.Fatalf("%d downloads for requests that do not fit the signature, want 0", n)
	}
	resp, err := handle(t, s, "m", "1", xRequest(1, 2, 3, 4)) // -1: any batch
	if err != nil {
		t.Fatalf("a request that fits the signature: %v", err)
	}
	if ys, _ := resp.Outputs[0].Float32s(); !slices.Equal(ys, []float32{1, 2, 3, 4}) {
		t.Fatalf("y = %v", ys)
	}
}

func TestServerRefuses(t *testing.T) {
	t.Parallel()
	cat := newFakeCatalog()
	versions(cat, "m", 1)
	cat.add("labelled", "1", 1, 0, LinearFormat)
	cat.edit("labelled", "1", func(v *registry.Version) { v.Labels = map[string]string{"team": "vision"} })
	for _, tc := range []struct {
		name    string
		serving *spec.ModelServing
		model   string
		want    streams.Code
	}{
		{"not named", &spec.ModelServing{Names: []string{"other"}}, "m", streams.CodeNotFound},
		{"named", &spec.ModelServing{Names: []string{"m"}}, "m", streams.CodeOK},
		{"not selected", &spec.ModelServing{Selector: map[string]string{"team": "vision"}}, "m", streams.CodeNotFound},
		{"selected", &spec.ModelServing{Selector: map[string]string{"team": "vision"}}, "labelled", streams.CodeOK},
		{"other runtime", &spec.ModelServing{Runtime: "onnx"}, "m", streams.CodeFailedPrecondition},
		{"its runtime", &spec.ModelServing{Runtime: LinearFormat}, "m", streams.CodeOK},
		{"no model", nil, "", streams.CodeInvalidArgument},
		{"unknown model", nil, "nope", streams.CodeNotFound},
	} {
		s := newTestServer(t, cat, tc.serving, 3)
		_, err := handle(t, s, tc.model, "1", xRequest(1))
		if got := streams.CodeOf(err); got != tc.want {
			t.Errorf("%s: %v (code %q), want %q", tc.name, err, got, tc.want)
		}
	}
}

// A request in OIP JSON gets its answer in JSON; the payload form is
// answered in the payload form (handle checks that).
func TestServerRequestForms(t *testing.T) {
	t.Parallel()
	cat := newFakeCatalog()
	versions(cat, "m", 1)
	s := newTestServer(t, cat, nil, 3)
	body := []byte(`{"id":"j1","inputs":[{"name":"x","datatype":"FP32","shape":[1,1],"data":[2]}]}`)
	for _, ct := range []string{"application/json", ""} {
		out := &emitted{}
		in := &replicas.Input{Env: protocol.Envelope{Model: "m", ContentType: ct}, Value: body}
		if err := s.Handle(context.Background(), in, out); err != nil {
			t.Fatalf("content type %q: %v", ct, err)
		}
		if len(out.values) != 1 || out.types[0] != "application/json" {
			t.Fatalf("content type %q: answers of types %v, want one application/json", ct, out.types)
		}
		if !bytes.Contains(out.values[0], []byte(`"model_version":"1"`)) {
			t.Fatalf("answer %s has no model_version", out.values[0])
		}
		resp, err := oip.DecodeResponseJSON(out.values[0])
		if err != nil {
			t.Fatal(err)
		}
		if ys, _ := resp.Outputs[0].Float32s(); resp.ModelName != "m" || resp.ModelVersion != "1" || resp.ID != "j1" || !slices.Equal(ys, []float32{2}) {
			t.Fatalf("answer %s", out.values[0])
		}
	}
	for _, tc := range []struct {
		name, ct string
		body     []byte
	}{
		{"content type", "text/plain", body},
		{"bad json", "application/json", []byte(`{"inputs": [`)},
		{"bad payload", oip.ContentType, []byte{0xff, 0x01}},
	} {
		in := &replicas.Input{Env: protocol.Envelope{Model: "m", ContentType: tc.ct}, Value: tc.body}
		if err := s.Handle(context.Background(), in, &emitted{}); streams.CodeOf(err) != streams.CodeInvalidArgument {
			t.Errorf("%s: %v, want %s", tc.name, err, streams.CodeInvalidArgument)
		}
	}
}

func TestServerReconfigure(t *testing.T) {
	t.Parallel()
	cat := newFakeCatalog()
	for _, m := range []string{"a", "b", "c"} {
		versions(cat, m, 1)
	}
	s := newTestServer(t, cat, nil, 3)
	for _, tc := range []struct{ config, want string }{
		{`{"max_models": 2}`, `"max_models"`},
		{`{"default_version": "1", "surprise": true}`, `"surprise"`},
		{`{"max_models_per_replica": 0}`, "max_models_per_replica"},
		{`{"max_models_per_replica": -2}`, "max_models_per_replica"},
		{`{"memory_budget": "lots"}`, "lots"},
		{`[1]`, "user_config"},
	} {
		if err := s.Reconfigure(context.Background(), json.RawMessage(tc.config)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %s", tc.config, err, tc.want)
		}
	}

	for _, m := range []string{"a", "b", "c"} {
		answer(t, s, m, "1")
	}
	// b is in use: lowering the limit unloads the idle ones only.
	_, _, release, err := s.Cache().Acquire(context.Background(), "b", "1")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Reconfigure(context.Background(), json.RawMessage(`{"max_models_per_replica": 1}`)); err != nil {
		t.Fatal(err)
	}
	release()
	if got := strings.Join(s.Cache().Loaded(), ","); got != "b/1" {
		t.Fatalf("loaded after lowering max_models_per_replica to 1: %s, want b/1", got)
	}

	// Raise the limit again, then a memory budget of two linear models
	// (8 bytes each).
	if err := s.Reconfigure(context.Background(), json.RawMessage(`{"max_models_per_replica": 3}`)); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"a", "b", "c"} {
		answer(t, s, m, "1")
	}
	if n := len(s.Cache().Loaded()); n != 3 {
		t.Fatalf("%d loaded, want 3", n)
	}
	if err := s.Reconfigure(context.Background(), json.RawMessage(`{"max_models_per_replica": 3, "memory_budget": "16B"}`)); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.Cache().Loaded(), ","); got != "c/1,b/1" {
		t.Fatalf("loaded under a 16-byte budget: %s, want c/1,b/1", got)
	}
}

// Bug: with one model per replica and the old version in use when the new
// one finished its preload, the new one was evicted at once (idle, over
// the limit), and the server preloaded it again, in a loop, until the old
// version's requests paused.
func TestServerMoveWithOneModelAndOldInUse(t *testing.T) {
	t.Parallel()
	cat := newFakeCatalog()
	versions(cat, "m", 2)
	cat.setAlias("m", "production", "1")
	s := newTestServer(t, cat, nil, 1)
	switched := switches(s)
	if got := answer(t, s, "m", "@production"); got != "1" {
		t.Fatalf("@production answered by %s, want 1", got)
	}
	_, _, release, err := s.Cache().Acquire(context.Background(), "m", "1") // a long request on version 1
	if err != nil {
		t.Fatal(err)
	}
	cat.setAlias("m", "production", "2")
	cat.fire("m")
	waitSwitch(t, switched, "m 1->2")
	if got := answer(t, s, "m", "@production"); got != "2" {
		t.Fatalf("@production answered by %s after the switch, want 2", got)
	}
	if n := s.Cache().Stats().Loads.Load(); n != 2 {
		t.Fatalf("%d loads, want 2: version 2 was evicted and loaded again while version 1 was in use", n)
	}
	if !s.Cache().IsLoaded("m", "1") {
		t.Fatal("version 1 was unloaded under its request")
	}
	release()
	if got := strings.Join(s.Cache().Loaded(), ","); got != "m/2" {
		t.Fatalf("loaded after version 1's request ended: %s, want m/2", got)
	}
}
