package serve

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/replicas"
	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/protocol"
)

// A handle call made while serving a request carries what
// protocol.HandleCall says: the request's trace context, caller headers
// and deadline, the caller's own reply topic, a fresh id, and the model
// the call names (not the request's).
func TestHandleCallPropagates(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	emb, err := streams.StartEmbedded(0, "")
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	log := slog.New(slog.DiscardHandler)
	c, err := streams.NewCaller(ctx, emb.Brokers(), streams.Namer{}, "handle-test", log)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	rt := &runtime{caller: c, namer: streams.Namer{}, app: "a"}
	core := rt.handle("A", "B")
	cl, err := streams.Dial(ctx, emb.Brokers(), log, kgo.ConsumeTopics(core.topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := streams.CreateTopics(ctx, kadm.NewClient(cl), streams.DataTopic(core.topic, 1)); err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(10 * time.Second).Truncate(time.Nanosecond) // before ctx's

	parent := protocol.Envelope{ID: "parent", ReplyTo: "sluice.reply.gw", Deadline: deadline, Trace: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		ContentType: "text/plain", Model: "parent-model", Version: "1", Method: "parent_method"}
	parent.AddRequestHeader("X-Tenant", "acme")
	h := &Handle[string, string]{core: core}
	in := &replicas.Input{Env: parent}
	_ = invoke(ctx, rt, in, func(ctx context.Context) error {
		h.Remote(ctx, "unary") // never awaited: sent when the invocation returns
		return nil
	})
	_ = invoke(ctx, rt, in, func(ctx context.Context) error {
		sctx, scancel := context.WithTimeout(WithMethod(WithModel(ctx, "m2", "@prod"), "count"), 200*time.Millisecond)
		defer scancel()
		for range h.Stream(sctx, "stream") { // nobody answers: ends at sctx's deadline
			break
		}
		return nil
	})

	got := map[string]protocol.Request{}
	for len(got) < 2 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(rec *kgo.Record) {
			req, err := protocol.ParseRequest(rec)
			if err != nil {
				t.Errorf("handle call record: %v", err)
			}
			got[string(req.Value)] = req
		})
	}
	for value, model := range map[string][2]string{"unary": {"", ""}, "stream": {"m2", "@prod"}} {
		req, ok := got[value]
		if !ok {
			t.Fatalf("no handle call %s on %s: %v", value, core.topic, got)
		}
		env := req.Env
		if env.Trace != parent.Trace || env.RequestHeaders()["x-tenant"] != "acme" || len(env.Request) != 1 {
			t.Errorf("call %s: trace %q, caller headers %v; want the parent's", value, env.Trace, env.RequestHeaders())
		}
		if value == "unary" && !env.Deadline.Equal(deadline) {
			t.Errorf("call %s: deadline %v, want the parent's %v", value, env.Deadline, deadline)
		}
		if value == "stream" && !env.Deadline.Before(deadline) {
			t.Errorf("call %s: deadline %v, want its context's, earlier than the parent's", value, env.Deadline)
		}
		if env.ID == "" || env.ID == parent.ID || env.ReplyTo != c.Topic() || string(req.Key) != env.ID && model[0] == "" {
			t.Errorf("call %s: id %q key %q reply %q; want a fresh id as key and the caller's reply topic %q", value, env.ID, req.Key, env.ReplyTo, c.Topic())
		}
		if want := map[string]string{"stream": "count"}[value]; env.Method != want {
			t.Errorf("call %s: method %q, want %q (its own, never the parent's)", value, env.Method, want)
		}
		if env.Model != model[0] || env.Version != model[1] || model[0] != "" && string(req.Key) != model[0] {
			t.Errorf("call %s: model %q version %q key %q, want %q %q", value, env.Model, env.Version, req.Key, model[0], model[1])
		}
	}
}
