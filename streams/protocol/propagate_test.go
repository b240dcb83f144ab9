package protocol

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// full is an incoming request with every envelope field set.
func full() Request {
	return Request{Topic: "sluice.app.a.in", Key: []byte("user-key"), Value: []byte("in"), Env: Envelope{
		ID:          "r1",
		ReplyTo:     "sluice.reply.gw",
		Deadline:    time.Unix(1_900_000_000, 7),
		Trace:       "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		TraceState:  "congo=t61rcWkgMzE",
		ContentType: "application/json",
		Model:       "resnet",
		Version:     "@prod",
		Method:      "say_hello",
		Cont:        []Hop{{"sluice.app.a.edge.A.B", "r2"}, {"sluice.app.a.edge.B.C", "r3"}},
		Request:     []kgo.RecordHeader{hdr("h-x-tenant", "acme"), hdr("h-x-user", "u1")},
	}}
}

// The propagation table of docs/PROTOCOL.md, field by field.
func TestPropagation(t *testing.T) {
	t.Parallel()
	in := full()
	in.Env.Cont = nil // an edge is taken only without a continuation
	edge := Edge(&in, "sluice.app.a.edge.A.B", []byte("out"), "text/plain")
	wantEdge := in.Env
	wantEdge.ContentType, wantEdge.Method = "text/plain", "" // the input's method is not the next deployment's
	if edge.Topic != "sluice.app.a.edge.A.B" || string(edge.Key) != "user-key" || string(edge.Value) != "out" || !envEqual(edge.Env, wantEdge) {
		t.Errorf("Edge = %+v, want the input's key and whole envelope with the output's content type %+v", edge, wantEdge)
	}

	in = full()
	fwd, ok := Forward(&in, []byte("out"), "text/plain")
	wantFwd := in.Env
	wantFwd.ID, wantFwd.Cont, wantFwd.ContentType, wantFwd.Method = "r2", in.Env.Cont[1:], "text/plain", ""
	if !ok || fwd.Topic != "sluice.app.a.edge.A.B" || string(fwd.Key) != "r2" || !envEqual(fwd.Env, wantFwd) {
		t.Errorf("Forward = %+v, %v; want to the first hop under its id with the later hops, %+v", fwd, ok, wantFwd)
	}
	if fwd.Env.FinalID() != in.Env.FinalID() {
		t.Errorf("forwarded FinalID %q, want the input's %q", fwd.Env.FinalID(), in.Env.FinalID())
	}
	last := Request{Env: Envelope{ID: "r2", Cont: []Hop{{"t", "r3"}}}}
	if fwd, _ := Forward(&last, nil, ""); fwd.Env.Cont != nil || fwd.Env.ID != "r3" {
		t.Errorf("Forward of the last hop = %+v, want no continuation left", fwd.Env)
	}
	if _, ok := Forward(&Request{}, nil, ""); ok {
		t.Error("Forward without a continuation reported ok")
	}

	parent := full().Env
	call := Envelope{ID: "c1", ReplyTo: "ignored", ContentType: "application/x-go", Model: "other", Version: "2", Method: "other_method", Cont: []Hop{{"t", "c2"}}}
	got := HandleCall(parent, call)
	want := Envelope{ID: "c1", Deadline: parent.Deadline, Trace: parent.Trace, TraceState: parent.TraceState, ContentType: "application/x-go", Model: "other", Version: "2",
		Method: "other_method", Cont: []Hop{{"t", "c2"}}, Request: parent.Request}
	if !envEqual(got, want) {
		t.Errorf("HandleCall = %+v, want %+v", got, want)
	}
	if got := HandleCall(parent, Envelope{ID: "c"}); got.Method != "" {
		t.Errorf("HandleCall took the parent's method %q; a call names its own", got.Method)
	}
	if got := HandleCall(Envelope{}, Envelope{ID: "c"}); !envEqual(got, Envelope{ID: "c"}) {
		t.Errorf("HandleCall of an empty parent = %+v", got)
	}
	early := parent.Deadline.Add(-time.Second)
	if got := HandleCall(parent, Envelope{Deadline: early}); !got.Deadline.Equal(early) {
		t.Errorf("HandleCall deadline %v, want the call's earlier %v", got.Deadline, early)
	}
	if got := HandleCall(Envelope{}, Envelope{Deadline: early}); !got.Deadline.Equal(early) {
		t.Errorf("HandleCall deadline %v, want the call's %v when the parent has none", got.Deadline, early)
	}
}

// An outgoing request's caller headers are its own slice: adding one
// does not write into the input's.
func TestPropagationDoesNotAlias(t *testing.T) {
	t.Parallel()
	in := full()
	in.Env.Request = append(make([]kgo.RecordHeader, 0, 8), in.Env.Request...)
	e := Edge(&in, "t", nil, "")
	e.Env.AddRequestHeader("x-more", "1")
	f, _ := Forward(&in, nil, "")
	f.Env.AddRequestHeader("x-other", "2")
	c := HandleCall(in.Env, Envelope{})
	c.AddRequestHeader("x-third", "3")
	if len(in.Env.Request) != 2 || len(e.Env.Request) != 3 || string(Header(f.Env.Request, "h-x-other")) != "2" || Header(e.Env.Request, "h-x-other") != nil {
		t.Errorf("input %v, edge %v, forward %v: the slices alias", in.Env.Request, e.Env.Request, f.Env.Request)
	}
}

func TestAnswerEndFailure(t *testing.T) {
	t.Parallel()
	sync := full()
	sync.Env.Cont = nil
	offline := full()
	offline.Env.Cont, offline.Env.ReplyTo = nil, ""
	rec := &kgo.Record{Topic: "sluice.app.a.in", Partition: 1, Offset: 9, Key: []byte("user-key"), Value: []byte("in"),
		Headers: offline.Env.AppendHeaders(nil)}
	tests := []struct {
		name    string
		rec     *kgo.Record
		topic   string
		key     string
		headers string
	}{
		{"sync answer", Answer(&sync, "out", -1, []byte("v"), "text/plain"), "sluice.reply.gw", "", "sl-id=r1 content-type=text/plain"},
		{"sync item", Answer(&sync, "out", 2, []byte("v"), "text/plain"), "sluice.reply.gw", "", "sl-id=r1 content-type=text/plain sl-seq=2"},
		{"sync end", End(&sync, "out", 3), "sluice.reply.gw", "", "sl-id=r1 sl-eos=3"},
		{"sync failure", Failure(&sync, rec, "dlq", "D", CodeNotFound, "gone"), "sluice.reply.gw", "", "sl-id=r1 sl-status=not_found sl-error=gone"},
		{"offline answer", Answer(&offline, "out", -1, []byte("v"), "text/plain"), "out", "user-key", "sl-id=r1 content-type=text/plain"},
		{"offline item", Answer(&offline, "out", 0, []byte("v"), "text/plain"), "out", "user-key", "sl-id=r1 content-type=text/plain sl-seq=0"},
		{"offline end", End(&offline, "out", 1), "out", "user-key", "sl-id=r1 sl-eos=1"},
		{"offline failure", Failure(&offline, rec, "dlq", "D", CodeNotFound, "gone"), "dlq", "user-key",
			"sl-id=r1 sl-deadline=1900000000000000007 traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 tracestate=congo=t61rcWkgMzE content-type=application/json sl-model=resnet sl-version=@prod sl-method=say_hello h-x-tenant=acme h-x-user=u1 " +
				"sl-status=not_found sl-error=gone sl-source=sluice.app.a.in/1/9 sl-deployment=D"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.rec.Topic != tc.topic || string(tc.rec.Key) != tc.key {
				t.Errorf("to %q key %q, want %q key %q", tc.rec.Topic, tc.rec.Key, tc.topic, tc.key)
			}
			if got := headersOf(tc.rec); got != tc.headers {
				t.Errorf("headers\n %q\nwant\n %q", got, tc.headers)
			}
		})
	}
}
