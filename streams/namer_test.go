package streams

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

func mustNamer(t testing.TB, prefix string) Namer {
	t.Helper()
	n, err := NewNamer(prefix)
	if err != nil {
		t.Fatalf("NewNamer(%q): %v", prefix, err)
	}
	return n
}

// namerCases pairs every builder's output with its parsed Name.
func namerCases(n Namer) []struct {
	got  string
	want string
	name Name
} {
	p := n.Prefix()
	return []struct {
		got  string
		want string
		name Name
	}{
		{n.Ingress("shop"), p + ".app.shop.in", Name{Kind: KindIngress, App: "shop"}},
		{n.Output("shop"), p + ".app.shop.out", Name{Kind: KindOutput, App: "shop"}},
		{n.DeadLetter("shop"), p + ".app.shop.dlq", Name{Kind: KindDeadLetter, App: "shop"}},
		{n.Edge("shop", "embed", "rank-2"), p + ".app.shop.edge.embed.rank-2", Name{Kind: KindEdge, App: "shop", From: "embed", To: "rank-2"}},
		{n.Reply("gw-7f9c"), p + ".reply.gw-7f9c", Name{Kind: KindReply, Instance: "gw-7f9c"}},
		{n.Apps(), p + ".control.apps", Name{Kind: KindApps}},
		{n.Status(), p + ".control.status", Name{Kind: KindStatus}},
		{n.RegistryEvents(), p + ".registry.events", Name{Kind: KindRegistryEvents}},
		{n.Audit(), p + ".control.audit", Name{Kind: KindAudit}},
		{n.Group("shop", "rank"), p + ".app.shop.dep.rank", Name{Kind: KindGroup, App: "shop", Deployment: "rank"}},
		{n.Ingress("Shop-EU-1"), p + ".app.Shop-EU-1.in", Name{Kind: KindIngress, App: "Shop-EU-1"}},
		{n.Group("a", "0"), p + ".app.a.dep.0", Name{Kind: KindGroup, App: "a", Deployment: "0"}},
	}
}

func TestNamerBuildParseFormat(t *testing.T) {
	t.Parallel()
	for _, prefix := range []string{"", "sluice", "prod-eu", "Prod2"} {
		n := mustNamer(t, prefix)
		for _, tc := range namerCases(n) {
			t.Run(tc.want, func(t *testing.T) {
				t.Parallel()
				if tc.got != tc.want {
					t.Errorf("builder = %q, want %q", tc.got, tc.want)
				}
				got, err := n.Parse(tc.want)
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if got != tc.name {
					t.Errorf("Parse = %+v, want %+v", got, tc.name)
				}
				s, err := n.Format(tc.name)
				if err != nil {
					t.Fatalf("Format: %v", err)
				}
				if s != tc.want {
					t.Errorf("Format = %q, want %q", s, tc.want)
				}
			})
		}
	}
}

func TestNamerPrefix(t *testing.T) {
	t.Parallel()
	tests := []struct {
		prefix, want string
		ok           bool
	}{
		{"", "sluice", true},
		{"sluice", "sluice", true},
		{"Team-A", "Team-A", true},
		{"9", "9", true},
		{strings.Repeat("p", 63), strings.Repeat("p", 63), true},
		{strings.Repeat("p", 64), "", false},
		{"my.prefix", "", false},
		{"my_prefix", "", false},
		{"-x", "", false},
		{"x y", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.prefix, func(t *testing.T) {
			t.Parallel()
			n, err := NewNamer(tc.prefix)
			if (err == nil) != tc.ok {
				t.Fatalf("NewNamer(%q) error = %v, want ok=%v", tc.prefix, err, tc.ok)
			}
			if tc.ok && n.Prefix() != tc.want {
				t.Errorf("Prefix() = %q, want %q", n.Prefix(), tc.want)
			}
		})
	}
	if got := (Namer{}).Ingress("a"); got != "sluice.app.a.in" {
		t.Errorf("zero Namer Ingress = %q", got)
	}
}

func TestNamerParseErrors(t *testing.T) {
	t.Parallel()
	n := mustNamer(t, "sluice")
	long := strings.Repeat("a", 64)
	for _, s := range []string{
		"",
		"sluice",
		"sluice.",
		"sluicex.app.a.in",
		"other.app.a.in",
		"Sluice.app.a.in",
		"prefix.sluice.app.a.in",
		".app.a.in",
		"sluice.app",
		"sluice.app.x",
		"sluice.app.x.",
		"sluice.app.x.in.",
		"sluice.app.x.in.y",
		"sluice.app..in",
		"sluice.app.x.inn",
		"sluice.app.x.IN",
		"sluice.app.x.edge",
		"sluice.app.x.edge.a",
		"sluice.app.x.edge.a.",
		"sluice.app.x.edge..b",
		"sluice.app.x.edge.a.b.c",
		"sluice.app.x.dep",
		"sluice.app.x.dep.",
		"sluice.app.x.dep.a.b",
		"sluice.app.x.dlq.a",
		"sluice.apps.x.in",
		"sluice.App.x.in",
		"sluice.reply",
		"sluice.reply.",
		"sluice.reply.a.b",
		"sluice.control",
		"sluice.control.app",
		"sluice.control.apps.x",
		"sluice.control.other",
		"sluice.registry",
		"sluice.registry.event",
		"sluice.registry.events.x",
		"sluice.unknown.x",
		"sluice.app.my_app.in",
		"sluice.app.a.dep.my_dep",
		"sluice.reply.gw_1",
		"sluice.app.-a.in",
		"sluice.app.a b.in",
		"sluice.app.é.in",
		"sluice.app.\xff.in",
		"sluice.app." + long + ".in",
		"sluice.app.a.dep." + long,
		"sluice.reply." + long,
		"sluice.app.a.edge." + long + ".b",
		"sluice.app.a.edge.b." + long,
		"sluice.app." + strings.Repeat("a.", 200) + "in",
	} {
		t.Run(s, func(t *testing.T) {
			t.Parallel()
			got, err := n.Parse(s)
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, want error", s, got)
			}
			if !errors.Is(err, ErrNotSluiceName) {
				t.Errorf("Parse(%q) error %v does not wrap ErrNotSluiceName", s, err)
			}
			if !strings.Contains(err.Error(), strconv.Quote(s)) {
				t.Errorf("Parse(%q) error %q does not name the input", s, err)
			}
		})
	}
}

func TestNamerFormatErrors(t *testing.T) {
	t.Parallel()
	n := mustNamer(t, "")
	long := strings.Repeat("a", 64)
	seg63 := strings.Repeat("a", 63)
	for _, tc := range []struct {
		desc string
		nm   Name
	}{
		{"zero kind", Name{App: "a"}},
		{"unknown kind", Name{Kind: 200, App: "a"}},
		{"empty app", Name{Kind: KindIngress}},
		{"underscore", Name{Kind: KindOutput, App: "a_b"}},
		{"dot", Name{Kind: KindDeadLetter, App: "a.b"}},
		{"leading dash", Name{Kind: KindIngress, App: "-a"}},
		{"64 chars", Name{Kind: KindIngress, App: long}},
		{"edge missing to", Name{Kind: KindEdge, App: "a", From: "b"}},
		{"edge bad from", Name{Kind: KindEdge, App: "a", From: "b_", To: "c"}},
		{"group missing deployment", Name{Kind: KindGroup, App: "a"}},
		{"group bad deployment", Name{Kind: KindGroup, App: "a", Deployment: "x.y"}},
		{"reply empty", Name{Kind: KindReply}},
		{"reply non-ascii", Name{Kind: KindReply, Instance: "gw-ü"}},
		{"stray instance", Name{Kind: KindIngress, App: "a", Instance: "i"}},
		{"stray app", Name{Kind: KindApps, App: "a"}},
		{"stray deployment on edge", Name{Kind: KindEdge, App: "a", From: "b", To: "c", Deployment: "d"}},
		{"stray from on group", Name{Kind: KindGroup, App: "a", Deployment: "d", From: "b"}},
		{"stray app on reply", Name{Kind: KindReply, Instance: "i", App: "a"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			if s, err := n.Format(tc.nm); err == nil {
				t.Errorf("Format(%+v) = %q, want error", tc.nm, s)
			}
		})
	}
	// With a 63-char prefix the longest edge names reach Kafka's limit exactly.
	long63 := mustNamer(t, strings.Repeat("p", 63))
	fits := Name{Kind: KindEdge, App: seg63, From: seg63, To: strings.Repeat("c", 249-63-len(".app..edge..")-2*63)}
	s, err := long63.Format(fits)
	if err != nil || len(s) != 249 {
		t.Fatalf("Format(%+v) = %q (%d), %v; want a 249-char name", fits, s, len(s), err)
	}
	if got, err := long63.Parse(s); err != nil || got != fits {
		t.Errorf("Parse(%q) = %+v, %v", s, got, err)
	}
	over := fits
	over.To += "c"
	if s, err := long63.Format(over); err == nil {
		t.Errorf("Format(%+v) = %q (%d chars), want error", over, s, len(s))
	}
	if _, err := long63.Parse(long63.Edge(over.App, over.From, over.To)); !errors.Is(err, ErrNotSluiceName) {
		t.Errorf("Parse of a 250-char edge: err = %v, want ErrNotSluiceName", err)
	}
}

func TestNamerValidSegment(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		s, err string // err == "" means valid
	}{
		{"a", ""},
		{"A", ""},
		{"0", ""},
		{"my-App-2", ""},
		{"a-", ""},
		{strings.Repeat("x", 63), ""},
		{"", `name "": length 0 is not in 1..63`},
		{strings.Repeat("x", 64), `length 64 is not in 1..63`},
		{"a.b", `name "a.b": character '.' at 1 is not allowed (use letters, digits and '-')`},
		{"ab_c", `name "ab_c": character '_' at 2 is not allowed (use letters, digits and '-')`},
		{"-a", `name "-a": character '-' at 0 is not allowed (must start with a letter or digit)`},
		{"a b", `character ' ' at 1 is not allowed`},
		{"aé", `character 'é' at 1 is not allowed`},
		{"a/b", `character '/' at 1`},
	} {
		t.Run(tc.s, func(t *testing.T) {
			t.Parallel()
			err := ValidSegment(tc.s)
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("ValidSegment(%q) = %v, want nil", tc.s, err)
			case tc.err != "" && err == nil:
				t.Errorf("ValidSegment(%q) = nil, want error containing %q", tc.s, tc.err)
			case tc.err != "" && !strings.Contains(err.Error(), tc.err):
				t.Errorf("ValidSegment(%q) = %q, want it to contain %q", tc.s, err, tc.err)
			}
		})
	}
}

func TestNamerKindString(t *testing.T) {
	t.Parallel()
	want := map[Kind]string{
		KindIngress: "ingress", KindOutput: "output", KindDeadLetter: "dead-letter",
		KindEdge: "edge", KindReply: "reply", KindApps: "apps", KindStatus: "status",
		KindRegistryEvents: "registry-events", KindGroup: "group", KindAudit: "audit",
		0: "Kind(0)", KindAudit + 1: "Kind(11)",
	}
	for k, s := range want {
		if k.String() != s {
			t.Errorf("Kind(%d).String() = %q, want %q", uint8(k), k.String(), s)
		}
	}
}

// TestNamerRoundTrip checks Parse(Format(nm)) == nm and Format(Parse(s)) == s
// for every kind under several prefixes.
func TestNamerRoundTrip(t *testing.T) {
	t.Parallel()
	names := []Name{
		{Kind: KindIngress, App: "a"},
		{Kind: KindOutput, App: "B-2"},
		{Kind: KindDeadLetter, App: "x-"},
		{Kind: KindEdge, App: "a", From: "in", To: "dep"}, // kind words as segments
		{Kind: KindEdge, App: "edge", From: "edge", To: "edge"},
		{Kind: KindReply, Instance: "reply"},
		{Kind: KindApps},
		{Kind: KindStatus},
		{Kind: KindRegistryEvents},
		{Kind: KindAudit},
		{Kind: KindGroup, App: "app", Deployment: "dep"},
	}
	for _, prefix := range []string{"sluice", "app", "reply", "X"} {
		n := mustNamer(t, prefix)
		for _, nm := range names {
			s, err := n.Format(nm)
			if err != nil {
				t.Fatalf("%s: Format(%+v): %v", prefix, nm, err)
			}
			got, err := n.Parse(s)
			if err != nil || got != nm {
				t.Errorf("%s: Parse(Format(%+v)) = %+v, %v", prefix, nm, got, err)
			}
			back, err := n.Format(got)
			if err != nil || back != s {
				t.Errorf("%s: Format(Parse(%q)) = %q, %v", prefix, s, back, err)
			}
			// A namer with another prefix rejects it.
			other := mustNamer(t, prefix+"2")
			if _, err := other.Parse(s); !errors.Is(err, ErrNotSluiceName) {
				t.Errorf("%s: namer %q parsed foreign %q (err %v)", prefix, other.Prefix(), s, err)
			}
		}
	}
}

func TestNamerBuildersDoNotPanic(t *testing.T) {
	t.Parallel()
	n := Namer{}
	for _, s := range []string{"", "a.b", "_", "\xff", strings.Repeat("z", 300)} {
		_ = n.Ingress(s) + n.Output(s) + n.DeadLetter(s) + n.Edge(s, s, s) + n.Reply(s) + n.Group(s, s)
	}
}

// TestNamerParseAllocs checks that parsing a valid name does not allocate
// (not parallel: AllocsPerRun counts every goroutine's allocations).
func TestNamerParseAllocs(t *testing.T) {
	n := mustNamer(t, "sluice")
	for _, s := range []string{"sluice.app.shop.edge.embed.rank", "sluice.app.shop.dep.rank", "sluice.control.apps"} {
		if a := testing.AllocsPerRun(100, func() { _, _ = n.Parse(s) }); a != 0 {
			t.Errorf("Parse(%q) allocates %v times, want 0", s, a)
		}
	}
}

func namerSeeds() []string {
	n := Namer{}
	seeds := []string{
		"", ".", "sluice", "sluice.", "sluice..", "sluice.app.x", "sluice.app..in",
		"sluice.app.x.edge.a", "sluice.app.a_b.in", "other.app.a.in",
		"sluice.app.x.edge.a.b.c", "sluice.control.apps.x",
	}
	for _, tc := range namerCases(n) {
		seeds = append(seeds, tc.want)
	}
	return seeds
}

func FuzzNamerParse(f *testing.F) {
	for _, s := range namerSeeds() {
		f.Add(s)
	}
	n := Namer{}
	f.Fuzz(func(t *testing.T, s string) {
		nm, err := n.Parse(s)
		if err != nil {
			if !errors.Is(err, ErrNotSluiceName) {
				t.Fatalf("Parse(%q) error %v does not wrap ErrNotSluiceName", s, err)
			}
			return
		}
		got, err := n.Format(nm)
		if err != nil {
			t.Fatalf("Parse(%q) = %+v, but Format fails: %v", s, nm, err)
		}
		if got != s {
			t.Fatalf("Format(Parse(%q)) = %q", s, got)
		}
	})
}

func FuzzNamerRoundTrip(f *testing.F) {
	for _, tc := range namerCases(Namer{}) {
		nm := tc.name
		f.Add(uint8(nm.Kind), nm.App, nm.From, nm.To, nm.Deployment, nm.Instance)
	}
	f.Add(uint8(0), "", "", "", "", "")
	f.Add(uint8(KindIngress), "a_b", "", "", "", "")
	f.Add(uint8(KindEdge), "a", "b.c", "d", "", "")
	f.Add(uint8(KindReply), "x", "", "", "", "gw")
	n := Namer{}
	f.Fuzz(func(t *testing.T, kind uint8, app, from, to, dep, inst string) {
		nm := Name{Kind: Kind(kind), App: app, From: from, To: to, Deployment: dep, Instance: inst}
		s, err := n.Format(nm)
		if err != nil {
			return
		}
		got, err := n.Parse(s)
		if err != nil {
			t.Fatalf("Format(%+v) = %q, but Parse fails: %v", nm, s, err)
		}
		if got != nm {
			t.Fatalf("Parse(Format(%+v)) = %+v", nm, got)
		}
	})
}
