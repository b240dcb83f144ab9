package replicas

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/claim"
	"github.com/sluice-serve/sluice/streams/protocol"
)

// The conformance runner of docs/PROTOCOL.md ("Conformance suite"): each
// file of streams/protocol/conformance is one replica scenario, records
// in and records out, that every implementation of a replica must pass
// unchanged. This runner feeds them to the Go Replica on the embedded
// broker.

const conformanceDir = "../streams/protocol/conformance"

// scenario is one conformance file.
type scenario struct {
	Description string           `json:"description"`
	Deployment  scenarioDep      `json:"deployment"`
	Topics      []string         `json:"topics"`
	Input       []scenarioRecord `json:"input"`
	Output      []scenarioRecord `json:"output"`
	Claims      *scenarioClaims  `json:"claims"`
}

// scenarioClaims gives the replica a claim store: its threshold, the
// objects in it before the run, and the keys that must be gone after
// (every other object must still be there).
type scenarioClaims struct {
	Threshold int               `json:"threshold"`
	Objects   map[string]string `json:"objects"`
	Gone      []string          `json:"gone"`
}

type scenarioDep struct {
	Name       string          `json:"name"`
	Inputs     []string        `json:"inputs"`
	Successors []string        `json:"successors"`
	Output     string          `json:"output"`
	DeadLetter string          `json:"dead_letter"`
	Streams    bool            `json:"streams"`
	Handler    scenarioHandler `json:"handler"`
}

// scenarioHandler is a behaviour of the fixed vocabulary.
type scenarioHandler struct {
	Name    string `json:"name"`    // echo, upper, fail, stream, panic, http
	Items   int    `json:"items"`   // stream, http: items to emit
	Status  int    `json:"status"`  // http: the response status (0: 200)
	Code    string `json:"code"`    // fail: the code; stream: fail with it after the items
	Message string `json:"message"` // with Code
}

type scenarioRecord struct {
	Topic       string                 `json:"topic"`
	Key         *string                `json:"key"`
	Value       string                 `json:"value"`
	ValueBase64 string                 `json:"value_base64"`
	Headers     map[string]headerMatch `json:"headers"`
}

// headerMatch is an expected header value: a string to equal, a list of
// strings (the header repeated, with these values in order), or
// {"contains": s} or {"any": true}, or {"claim": v, "kind": k}: an
// sl-claim reference to an object in the scenario's store that holds v,
// its key of kind k. Input headers are strings or lists.
type headerMatch struct {
	Exact     *string
	Values    []string
	Contains  *string
	Any       bool
	Claim     *string
	ClaimKind string
}

func (m *headerMatch) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		m.Exact = &s
		return nil
	}
	if err := json.Unmarshal(b, &m.Values); err == nil && len(m.Values) > 0 {
		return nil
	}
	var o struct {
		Contains *string `json:"contains"`
		Any      bool    `json:"any"`
		Claim    *string `json:"claim"`
		Kind     string  `json:"kind"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil {
		return fmt.Errorf("header value %s: want a string, a list of strings, {\"contains\": s}, {\"any\": true} or {\"claim\": v, \"kind\": k}: %w", b, err)
	}
	set := 0
	for _, ok := range []bool{o.Contains != nil, o.Any, o.Claim != nil} {
		if ok {
			set++
		}
	}
	if set != 1 || o.Kind != "" && o.Claim == nil {
		return fmt.Errorf("header value %s: want exactly one of contains, any and claim (kind with claim only)", b)
	}
	m.Contains, m.Any, m.Claim, m.ClaimKind = o.Contains, o.Any, o.Claim, o.Kind
	return nil
}

func loadScenario(path string) (*scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var sc scenario
	if err := dec.Decode(&sc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := sc.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &sc, nil
}

func (sc *scenario) validate() error {
	d := sc.Deployment
	if d.Name == "" || len(d.Inputs) == 0 || d.Output == "" || d.DeadLetter == "" {
		return errors.New("deployment: name, inputs, output and dead_letter are required")
	}
	for _, t := range slices.Concat(d.Inputs, d.Successors, []string{d.Output, d.DeadLetter}) {
		if !slices.Contains(sc.Topics, t) {
			return fmt.Errorf("deployment names topic %q, which is not in topics", t)
		}
	}
	switch h := d.Handler; h.Name {
	case "echo", "upper", "panic":
	case "fail":
		if h.Code == "" {
			return errors.New("handler fail: code is required")
		}
	case "stream":
		if !d.Streams {
			return errors.New("handler stream: the deployment must stream")
		}
	case "http":
		if d.Streams {
			return errors.New("handler http: the deployment does not stream (its handler chooses per request)")
		}
	default:
		return fmt.Errorf("handler %q is not in the vocabulary (echo, upper, fail, stream, panic, http)", h.Name)
	}
	for i, r := range slices.Concat(sc.Input, sc.Output) {
		if !slices.Contains(sc.Topics, r.Topic) {
			return fmt.Errorf("record %d: topic %q is not in topics", i, r.Topic)
		}
		if r.Value != "" && r.ValueBase64 != "" {
			return fmt.Errorf("record %d: value and value_base64 both set", i)
		}
		if _, err := base64.StdEncoding.DecodeString(r.ValueBase64); err != nil {
			return fmt.Errorf("record %d: value_base64: %w", i, err)
		}
	}
	for i, r := range sc.Input {
		if !slices.Contains(d.Inputs, r.Topic) {
			return fmt.Errorf("input %d goes to %q, which the deployment does not read", i, r.Topic)
		}
		for k, m := range r.Headers {
			if m.Exact == nil && m.Values == nil {
				return fmt.Errorf("input %d: header %s must be a string or a list of strings", i, k)
			}
		}
	}
	return nil
}

func (r *scenarioRecord) value() []byte {
	if r.ValueBase64 != "" {
		b, _ := base64.StdEncoding.DecodeString(r.ValueBase64) // validated
		return b
	}
	return []byte(r.Value)
}

// vocabulary implements the scenarios' handlers.
type vocabulary struct {
	h       scenarioHandler
	streams bool
}

func (v vocabulary) Streams() bool { return v.streams }

func (v vocabulary) HTTPIngress() bool { return v.h.Name == "http" }

func (v vocabulary) Handle(_ context.Context, in *Input, out Output) error {
	fail := func() error { return &streams.Error{Code: streams.Code(v.h.Code), Msg: v.h.Message} }
	switch v.h.Name {
	case "echo":
		return out.Emit(in.Value, in.Env.ContentType)
	case "upper":
		return out.Emit(asciiUpper(in.Value), "text/plain")
	case "fail":
		return fail()
	case "stream":
		for i := range v.h.Items {
			if err := out.Emit([]byte("item-"+strconv.Itoa(i)), "text/plain"); err != nil {
				return err
			}
		}
		if v.h.Code != "" {
			return fail()
		}
		return nil
	case "panic":
		panic("conformance: the handler panics")
	case "http":
		return v.http(in, out)
	}
	return fmt.Errorf("handler %q is not in the vocabulary", v.h.Name)
}

// http answers an HTTP request: the status asked for, x-method, x-path
// and x-query saying what came, x-echo repeating the request's x-echo
// values; the body echoed, or items streamed.
func (v vocabulary) http(in *Input, out Output) error {
	req, err := in.Env.HTTPRequest() // the replica refused records without one
	if err != nil {
		return err
	}
	h := http.Header{"X-Method": {req.Method}, "X-Path": {req.Path}, "X-Query": {req.Query}}
	if vs := req.Header.Values("X-Echo"); len(vs) > 0 {
		h["X-Echo"] = vs
	}
	hout, ok := out.(HTTPOutput)
	if !ok {
		return fmt.Errorf("the replica handed an HTTP ingress %T, not an HTTPOutput", out)
	}
	hout.Respond(&protocol.HTTPResponse{Status: cmp.Or(v.h.Status, http.StatusOK), Header: h}, v.h.Items > 0)
	if v.h.Items == 0 {
		return out.Emit(in.Value, in.Env.ContentType)
	}
	for i := range v.h.Items {
		if err := out.Emit([]byte("item-"+strconv.Itoa(i)), "text/plain"); err != nil {
			return err
		}
	}
	return nil
}

// asciiUpper upper-cases a-z only, so every language agrees.
func asciiUpper(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		out[i] = c
	}
	return out
}

var placeholder = regexp.MustCompile(`\{\{([A-Za-z0-9_-]+)(?::(\d+))?\}\}`)

// expand replaces {{topic}} with the topic's real name and {{source:N}}
// with input N's topic/partition/offset.
func expand(s string, topics map[string]string, inputs []*kgo.Record) (string, error) {
	var err error
	out := placeholder.ReplaceAllStringFunc(s, func(m string) string {
		g := placeholder.FindStringSubmatch(m)
		if g[1] == "source" && g[2] != "" {
			n, _ := strconv.Atoi(g[2])
			if n >= len(inputs) || inputs[n] == nil {
				err = fmt.Errorf("%s: no input %d", m, n)
				return m
			}
			r := inputs[n]
			return protocol.Source{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}.String()
		}
		if real, ok := topics[g[1]]; ok && g[2] == "" {
			return real
		}
		err = fmt.Errorf("placeholder %s names no topic of the scenario", m)
		return m
	})
	return out, err
}

func TestConformance(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join(conformanceDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no conformance files in %s (%v)", conformanceDir, err)
	}
	for _, path := range files {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".json"), func(t *testing.T) {
			t.Parallel()
			sc, err := loadScenario(path)
			if err != nil {
				t.Fatal(err)
			}
			runScenario(t, sc)
		})
	}
}

// runScenario runs one scenario on a replica of its deployment, with one
// record in flight at a time so that each topic's records come in input
// order, and compares every topic but the inputs with what it expects.
func runScenario(t *testing.T, sc *scenario) {
	topics := map[string]string{}
	for _, name := range sc.Topics {
		topics[name] = uniq(t, name)
	}
	real := func(names []string) []string {
		out := make([]string, len(names))
		for i, n := range names {
			out[i] = topics[n]
		}
		return out
	}
	createTopics(t, 1, real(sc.Topics)...)

	d := sc.Deployment
	cfg := Config{
		Brokers:      brokers,
		Group:        uniq(t, "group"),
		Topics:       real(d.Inputs),
		Successors:   real(d.Successors),
		Output:       topics[d.Output],
		DeadLetter:   topics[d.DeadLetter],
		Deployment:   d.Name,
		MaxOngoing:   1,
		Ordered:      true,
		DrainTimeout: 5 * time.Second,
		Log:          testLog,
	}
	var store *claim.Memory
	if sc.Claims != nil {
		store = claim.NewMemory()
		for k, v := range sc.Claims.Objects {
			if _, err := store.Put(context.Background(), k, []byte(v)); err != nil {
				t.Fatal(err)
			}
		}
		c, err := claim.New(store, claim.WithThreshold(sc.Claims.Threshold))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Claims = c
	}
	start(t, cfg, vocabulary{h: d.Handler, streams: d.Streams})

	inputs := make([]*kgo.Record, len(sc.Input))
	for i, in := range sc.Input {
		rec := &kgo.Record{Topic: topics[in.Topic], Value: in.value()}
		if in.Key != nil {
			rec.Key = []byte(*in.Key)
		}
		for _, k := range slices.Sorted(maps.Keys(in.Headers)) {
			m := in.Headers[k]
			values := m.Values
			if m.Exact != nil {
				values = []string{*m.Exact}
			}
			for _, raw := range values {
				v, err := expand(raw, topics, nil)
				if err != nil {
					t.Fatalf("input %d header %s: %v", i, k, err)
				}
				rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
			}
		}
		inputs[i] = produce(t, rec)[0]
	}

	// Every output of a record is acknowledged before its offset is
	// committed: once every input is committed, every output is there.
	for _, name := range d.Inputs {
		end := endOffsets(t, topics[name])[0]
		waitFor(t, wait, "the inputs of "+name+" committed", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			res, err := adm.FetchOffsets(ctx, cfg.Group) // fails until the group exists
			o, ok := res.Lookup(topics[name], 0)
			return err == nil && ok && o.Err == nil && o.At >= end
		})
	}

	want := map[string][]scenarioRecord{}
	for _, r := range sc.Output {
		want[r.Topic] = append(want[r.Topic], r)
	}
	for _, name := range sc.Topics {
		if slices.Contains(d.Inputs, name) {
			continue
		}
		n := int(count(t, topics[name]))
		got := consume(t, topics[name], n, wait)
		if len(got) != len(want[name]) {
			t.Errorf("topic %s: %d records, want %d:\n%s", name, len(got), len(want[name]), describe(got))
			continue
		}
		for i, r := range got {
			if err := matchRecord(r, &want[name][i], topics, inputs, store); err != nil {
				t.Errorf("topic %s record %d: %v\n%s", name, i, err, describe([]*kgo.Record{r}))
			}
		}
	}
	if sc.Claims != nil {
		checkClaimsLeft(t, sc.Claims, store)
	}
}

// checkClaimsLeft waits for the scenario's gone keys to leave the store
// (deletes run in the background) and checks every other object is kept.
func checkClaimsLeft(t *testing.T, sc *scenarioClaims, store *claim.Memory) {
	t.Helper()
	ctx := context.Background()
	for _, k := range sc.Gone {
		waitFor(t, wait, "claim "+k+" deleted", func() bool {
			_, err := store.Get(ctx, k)
			return errors.Is(err, claim.ErrNotFound)
		})
	}
	for _, k := range slices.Sorted(maps.Keys(sc.Objects)) {
		if slices.Contains(sc.Gone, k) {
			continue
		}
		if _, err := store.Get(ctx, k); err != nil {
			t.Errorf("claim %s: %v, want it kept", k, err)
		}
	}
}

// matchClaim checks an sl-claim value against {"claim": v, "kind": k}.
func matchClaim(v []byte, m headerMatch, store *claim.Memory) string {
	if store == nil {
		return "an sl-claim where the scenario has no claims"
	}
	ref, err := claim.Parse(v)
	if err != nil {
		return err.Error()
	}
	if m.ClaimKind != "" && string(ref.Kind()) != m.ClaimKind {
		return fmt.Sprintf("claim %s of kind %q, want %q", ref.Key, string(ref.Kind()), m.ClaimKind)
	}
	c, _ := claim.New(store)
	got, _, err := c.Fetch(context.Background(), []kgo.RecordHeader{{Key: protocol.HeaderClaim, Value: v}}, nil)
	if err != nil {
		return err.Error()
	}
	if string(got) != *m.Claim {
		return fmt.Sprintf("claim %s holds %q, want %q", ref.Key, got, *m.Claim)
	}
	return ""
}

// matchRecord compares a produced record with an expected one: key (null
// is no key or an empty one), value (empty and null alike), and headers
// as a set, each key once, values as the match says.
func matchRecord(r *kgo.Record, w *scenarioRecord, topics map[string]string, inputs []*kgo.Record, store *claim.Memory) error {
	var problems []string
	switch {
	case w.Key == nil && len(r.Key) > 0:
		problems = append(problems, fmt.Sprintf("key %q, want none", r.Key))
	case w.Key != nil && string(r.Key) != *w.Key:
		problems = append(problems, fmt.Sprintf("key %q, want %q", r.Key, *w.Key))
	}
	if !bytes.Equal(r.Value, w.value()) {
		problems = append(problems, fmt.Sprintf("value %q, want %q", r.Value, w.value()))
	}
	seen := map[string]bool{}
	repeated := map[string][]string{}
	for _, h := range r.Headers {
		m, ok := w.Headers[h.Key]
		if ok && m.Values != nil {
			repeated[h.Key] = append(repeated[h.Key], string(h.Value))
			seen[h.Key] = true
			continue
		}
		if seen[h.Key] {
			problems = append(problems, "header "+h.Key+" repeated")
		}
		seen[h.Key] = true
		if !ok {
			problems = append(problems, fmt.Sprintf("header %s=%q not expected", h.Key, h.Value))
			continue
		}
		switch {
		case m.Any:
		case m.Claim != nil:
			if why := matchClaim(h.Value, m, store); why != "" {
				problems = append(problems, "header "+h.Key+": "+why)
			}
		case m.Contains != nil:
			if !strings.Contains(string(h.Value), *m.Contains) {
				problems = append(problems, fmt.Sprintf("header %s=%q, want it to contain %q", h.Key, h.Value, *m.Contains))
			}
		default:
			v, err := expand(*m.Exact, topics, inputs)
			if err != nil {
				return err
			}
			if string(h.Value) != v {
				problems = append(problems, fmt.Sprintf("header %s=%q, want %q", h.Key, h.Value, v))
			}
		}
	}
	for k, got := range repeated {
		if want := w.Headers[k].Values; !slices.Equal(got, want) {
			problems = append(problems, fmt.Sprintf("header %s=%q, want %q in that order", k, got, want))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(w.Headers)) {
		if !seen[k] {
			problems = append(problems, "header "+k+" missing")
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

func describe(recs []*kgo.Record) string {
	var b strings.Builder
	for _, r := range recs {
		fmt.Fprintf(&b, "  key=%q value=%q headers:", r.Key, r.Value)
		for _, h := range r.Headers {
			fmt.Fprintf(&b, " %s=%q", h.Key, h.Value)
		}
		b.WriteByte('\n')
	}
	return b.String()
}
