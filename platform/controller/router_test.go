package controller

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sluice-serve/sluice/platform/serve"
	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/replicas"
	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/protocol"
)

func routerOf(t *testing.T, yaml string) replicas.Router {
	t.Helper()
	apps, err := spec.Parse("r.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := streams.NewNamer("t")
	topo := Compile(n, apps[0])
	r, err := newRouter("r", "A", topo.Deployments["A"])
	if err != nil || r == nil {
		t.Fatalf("router: %v %v", r, err)
	}
	return r
}

const routed = `name: r
route_prefix: /r
ingress: A
deployments:
- {name: A, routing: %s}
- {name: B}
- {name: C}
edges:
- {from: A, to: B, when: 'body.n > 1.0', transform: 'string(body.n)'}
- {from: A, to: C, when: 'body.n > 2.0'}
`

func input(body string, headers ...string) *replicas.Input {
	in := &replicas.Input{Value: []byte(body), Env: protocol.Envelope{ID: "req-1", ContentType: serve.ContentJSON}}
	for i := 0; i+1 < len(headers); i += 2 {
		in.Env.AddRequestHeader(headers[i], headers[i+1])
	}
	return in
}

func targets(hops []replicas.Hop) string {
	var s []string
	for _, h := range hops {
		s = append(s, h.Topic[strings.LastIndex(h.Topic, ".")+1:]+"="+string(h.Value)+"("+h.ContentType+")")
	}
	return strings.Join(s, " ")
}

func TestRouterModes(t *testing.T) {
	ctx := context.Background()
	first := routerOf(t, strings.Replace(routed, "%s", "first", 1))
	all := routerOf(t, strings.Replace(routed, "%s", "all", 1))
	for _, tc := range []struct {
		r          replicas.Router
		body, want string
	}{
		{first, `{"n": 3}`, "B=3(text/plain; charset=utf-8)"}, // first match only; a string travels as text
		{all, `{"n": 3}`, `B=3(text/plain; charset=utf-8) C=out()`},
		{all, `{"n": 0}`, ""}, // nothing taken: the output is the answer
	} {
		hops, err := tc.r.Route(ctx, input(tc.body), []byte("out"), "")
		if err != nil || targets(hops) != tc.want {
			t.Errorf("%s: %q %v, want %q", tc.body, targets(hops), err, tc.want)
		}
	}
	_, err := first.Route(ctx, input(`{"m": 1}`), []byte("out"), "")
	var se *streams.Error
	if !errors.As(err, &se) || se.Code != streams.CodeInvalidArgument || !strings.Contains(err.Error(), "edges[0].when") {
		t.Fatalf("a failing rule: %v", err)
	}
	dead, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancel()
	if _, err := first.Route(dead, input(`{"n": 3}`), []byte("out"), ""); !errors.As(err, &se) || se.Code != streams.CodeDeadlineExceeded {
		t.Fatalf("past its deadline: %v", err)
	}
}

func TestRouterSplitIsSticky(t *testing.T) {
	r := routerOf(t, `name: r
route_prefix: /r
ingress: A
deployments:
- {name: A, routing: split, split_key: 'request.headers["x-user"]'}
- {name: B}
- {name: C}
edges:
- {from: A, to: B, weight: 3}
- {from: A, to: C, weight: 1}
`)
	count := map[string]int{}
	for u := range 400 {
		user := "u" + strings.Repeat("x", u%7) + string(rune('a'+u%26)) + string(rune('a'+u/26))
		var got string
		for range 3 {
			hops, err := r.Route(context.Background(), input(`{}`, "x-user", user), []byte("o"), "")
			if err != nil || len(hops) != 1 {
				t.Fatalf("%v %v", hops, err)
			}
			if got != "" && hops[0].Topic != got {
				t.Fatalf("user %s moved from %s to %s", user, got, hops[0].Topic)
			}
			got = hops[0].Topic
		}
		count[got[strings.LastIndex(got, ".")+1:]]++
	}
	if b := count["B"]; b < 250 || b > 350 { // 3:1 of 400 is 300
		t.Fatalf("split 3:1 over 400 users: %v", count)
	}
}
