package models

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// reportsNow is the clock of the Reports under test.
var reportsNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// rep is a report of app/deployment/replica made age before reportsNow.
func rep(app, dep, replica string, age time.Duration, loaded []string, failed map[string]string) Report {
	return Report{App: app, Deployment: dep, Replica: replica, Loaded: loaded, Failed: failed, At: reportsNow.Add(-age)}
}

// record is the status topic record of r.
func record(t *testing.T, r Report) *kgo.Record {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Key: []byte(ReportKey(r.App, r.Deployment, r.Replica)), Value: b}
}

// tombstone is the record that removes the report of app/deployment/replica.
func tombstone(app, dep, replica string) *kgo.Record {
	return &kgo.Record{Key: []byte(ReportKey(app, dep, replica))}
}

// query is one question to Reports: LoadedOn when want is an int,
// FailedOn when it is a string.
type query struct {
	app, model, version string
	want                any
}

func TestReports(t *testing.T) {
	t.Parallel()
	stale := 3*ReportEvery + time.Second
	fresh := func(replica string, loaded ...string) Report {
		return rep("a", "D", replica, time.Second, loaded, nil)
	}
	tests := []struct {
		name    string
		records func(t *testing.T) []*kgo.Record
		later   time.Duration       // the clock moves on by this much before the queries
		deploy  map[string][]string // "app/deployment": replicas of Deployment, in order
		all     []string            // ReportKey of each of All, in order
		queries []query
	}{
		{
			name:    "none",
			records: func(*testing.T) []*kgo.Record { return nil },
			deploy:  map[string][]string{"a/D": nil},
			queries: []query{{"a", "iris", "1", 0}, {"a", "iris", "1", ""}},
		},
		{
			name: "one report",
			records: func(t *testing.T) []*kgo.Record {
				return []*kgo.Record{record(t, rep("a", "D", "r1", time.Second, []string{"iris/2", "iris/1"}, map[string]string{"bad/1": "corrupt artifact"}))}
			},
			deploy: map[string][]string{"a/D": {"r1"}, "a/E": nil, "b/D": nil},
			all:    []string{"models/a/D/r1"},
			queries: []query{
				{"a", "iris", "1", 1}, {"a", "iris", "2", 1}, {"a", "iris", "3", 0},
				{"b", "iris", "1", 0},
				{"a", "bad", "1", "corrupt artifact"}, {"a", "bad", "2", ""}, {"b", "bad", "1", ""},
				{"a", "iris", "1", ""},
			},
		},
		{
			name: "replicas in order",
			records: func(t *testing.T) []*kgo.Record {
				return []*kgo.Record{
					record(t, fresh("r3", "iris/1")), record(t, fresh("r1", "iris/1")), record(t, fresh("r2")),
					record(t, rep("a", "E", "r0", 0, []string{"iris/1"}, nil)),
					record(t, rep("b", "D", "r9", 0, []string{"iris/1"}, nil)),
				}
			},
			deploy: map[string][]string{"a/D": {"r1", "r2", "r3"}, "a/E": {"r0"}, "b/D": {"r9"}},
			all:    []string{"models/a/D/r1", "models/a/D/r2", "models/a/D/r3", "models/a/E/r0", "models/b/D/r9"},
			// LoadedOn counts the app's replicas of every deployment.
			queries: []query{{"a", "iris", "1", 3}, {"b", "iris", "1", 1}},
		},
		{
			name: "exact version",
			records: func(t *testing.T) []*kgo.Record {
				return []*kgo.Record{record(t, fresh("r1", "iris/10", "iris2/1")), record(t, fresh("r2", "iris/1"))}
			},
			deploy:  map[string][]string{"a/D": {"r1", "r2"}},
			all:     []string{"models/a/D/r1", "models/a/D/r2"},
			queries: []query{{"a", "iris", "1", 1}, {"a", "iris", "10", 1}, {"a", "iris2", "1", 1}, {"a", "iris", "", 0}},
		},
		{
			name: "a newer report replaces",
			records: func(t *testing.T) []*kgo.Record {
				return []*kgo.Record{
					record(t, rep("a", "D", "r1", 2*time.Second, []string{"iris/1"}, map[string]string{"bad/1": "x"})),
					record(t, fresh("r1", "iris/2")),
				}
			},
			deploy:  map[string][]string{"a/D": {"r1"}},
			all:     []string{"models/a/D/r1"},
			queries: []query{{"a", "iris", "1", 0}, {"a", "iris", "2", 1}, {"a", "bad", "1", ""}},
		},
		{
			name: "a tombstone removes",
			records: func(t *testing.T) []*kgo.Record {
				return []*kgo.Record{
					record(t, rep("a", "D", "r1", time.Second, []string{"iris/1"}, map[string]string{"bad/1": "x"})),
					record(t, fresh("r2", "iris/1")),
					tombstone("a", "D", "r1"),
					tombstone("a", "D", "never"),
				}
			},
			deploy:  map[string][]string{"a/D": {"r2"}},
			all:     []string{"models/a/D/r2"},
			queries: []query{{"a", "iris", "1", 1}, {"a", "bad", "1", ""}},
		},
		{
			name: "a report after its tombstone",
			records: func(t *testing.T) []*kgo.Record {
				return []*kgo.Record{record(t, fresh("r1")), tombstone("a", "D", "r1"), record(t, fresh("r1", "iris/1"))}
			},
			deploy:  map[string][]string{"a/D": {"r1"}},
			all:     []string{"models/a/D/r1"},
			queries: []query{{"a", "iris", "1", 1}},
		},
		{
			name: "other keys are ignored",
			records: func(t *testing.T) []*kgo.Record {
				r := record(t, fresh("r1", "iris/1"))
				other := record(t, fresh("r2", "iris/1"))
				return []*kgo.Record{
					r,
					{Key: []byte("apps/a"), Value: other.Value},
					{Key: []byte("model/a/D/r2"), Value: other.Value},
					{Value: other.Value},
					{Key: []byte("apps/a")},             // a tombstone of something else
					{Key: []byte("MODELS/a/D/r1")},      // keys are case-sensitive
					{Key: []byte("xmodels/a/D/r1")},     // the prefix starts the key
					{Key: []byte("apps/models/a/D/r1")}, // ...and only there
				}
			},
			deploy:  map[string][]string{"a/D": {"r1"}},
			all:     []string{"models/a/D/r1"},
			queries: []query{{"a", "iris", "1", 1}},
		},
		{
			name: "a value that is not a report is ignored",
			records: func(t *testing.T) []*kgo.Record {
				return []*kgo.Record{
					record(t, fresh("r1", "iris/1")),
					{Key: []byte(ReportKey("a", "D", "r1")), Value: []byte("{not json")},
					{Key: []byte(ReportKey("a", "D", "r2")), Value: []byte(`{"loaded": 3}`)},
				}
			},
			deploy:  map[string][]string{"a/D": {"r1"}},
			all:     []string{"models/a/D/r1"},
			queries: []query{{"a", "iris", "1", 1}},
		},
		{
			name: "stale reports are left out",
			records: func(t *testing.T) []*kgo.Record {
				return []*kgo.Record{
					record(t, rep("a", "D", "gone", stale, []string{"iris/1"}, map[string]string{"bad/1": "old"})),
					record(t, rep("a", "D", "edge", 3*ReportEvery, []string{"iris/1"}, map[string]string{"bad/1": "old"})),
					record(t, rep("a", "D", "zero", 0, nil, nil)),
					record(t, rep("a", "D", "live", 3*ReportEvery-time.Millisecond, []string{"iris/2"}, map[string]string{"bad/2": "new"})),
					record(t, Report{App: "a", Deployment: "E", Replica: "never", Loaded: []string{"iris/1"}}), // no At
				}
			},
			deploy: map[string][]string{"a/D": {"live", "zero"}, "a/E": nil},
			all:    []string{"models/a/D/live", "models/a/D/zero"},
			queries: []query{
				{"a", "iris", "1", 0}, {"a", "bad", "1", ""},
				{"a", "iris", "2", 1}, {"a", "bad", "2", "new"},
			},
		},
		{
			name: "reports go stale as time passes",
			records: func(t *testing.T) []*kgo.Record {
				return []*kgo.Record{
					record(t, rep("a", "D", "old", 2*ReportEvery, []string{"iris/1"}, map[string]string{"bad/1": "x"})),
					record(t, rep("a", "D", "new", 0, []string{"iris/1"}, nil)),
				}
			},
			later:   ReportEvery + time.Second,
			deploy:  map[string][]string{"a/D": {"new"}},
			all:     []string{"models/a/D/new"},
			queries: []query{{"a", "iris", "1", 1}, {"a", "bad", "1", ""}},
		},
		{
			name: "a stale report renewed",
			records: func(t *testing.T) []*kgo.Record {
				return []*kgo.Record{
					record(t, rep("a", "D", "r1", stale, nil, nil)),
					record(t, rep("a", "D", "r1", 0, []string{"iris/1"}, nil)),
				}
			},
			deploy:  map[string][]string{"a/D": {"r1"}},
			all:     []string{"models/a/D/r1"},
			queries: []query{{"a", "iris", "1", 1}},
		},
		{
			name: "failed on another app",
			records: func(t *testing.T) []*kgo.Record {
				return []*kgo.Record{record(t, rep("b", "D", "r1", 0, nil, map[string]string{"bad/1": "b's problem"}))}
			},
			deploy:  map[string][]string{"a/D": nil, "b/D": {"r1"}},
			all:     []string{"models/b/D/r1"},
			queries: []query{{"a", "bad", "1", ""}, {"b", "bad", "1", "b's problem"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rs := NewReports()
			rs.now = func() time.Time { return reportsNow }
			for _, r := range tc.records(t) {
				rs.Apply(context.Background(), r)
			}
			rs.now = func() time.Time { return reportsNow.Add(tc.later) }
			for ad, want := range tc.deploy {
				app, dep, _ := strings.Cut(ad, "/")
				var got []string
				for _, r := range rs.Deployment(app, dep) {
					if r.App != app || r.Deployment != dep {
						t.Errorf("Deployment(%s, %s) holds a report of %s/%s", app, dep, r.App, r.Deployment)
					}
					got = append(got, r.Replica)
				}
				if !slices.Equal(got, want) {
					t.Errorf("Deployment(%s, %s) replicas = %q, want %q", app, dep, got, want)
				}
			}
			var all []string
			for _, r := range rs.All() {
				all = append(all, ReportKey(r.App, r.Deployment, r.Replica))
			}
			if !slices.Equal(all, tc.all) {
				t.Errorf("All = %q, want %q", all, tc.all)
			}
			for _, q := range tc.queries {
				switch want := q.want.(type) {
				case int:
					if got := rs.LoadedOn(q.app, q.model, q.version); got != want {
						t.Errorf("LoadedOn(%s, %s, %s) = %d, want %d", q.app, q.model, q.version, got, want)
					}
				case string:
					if got := rs.FailedOn(q.app, q.model, q.version); got != want {
						t.Errorf("FailedOn(%s, %s, %s) = %q, want %q", q.app, q.model, q.version, got, want)
					}
				}
			}
		})
	}
}

// A report read back keeps every field that Deployment hands out.
func TestReportsKeepFields(t *testing.T) {
	t.Parallel()
	in := Report{
		App: "a", Deployment: "D", Replica: "r1",
		Loaded: []string{"iris/2", "iris/1"}, Loading: []string{"resnet/3"}, Failed: map[string]string{"bad/1": "corrupt"},
		MemoryBytes: 1 << 20, Hits: 10, Misses: 2, Loads: 3, Evictions: 1, Failures: 1,
		At: reportsNow.Add(-time.Second),
	}
	rs := NewReports()
	rs.now = func() time.Time { return reportsNow }
	rs.Apply(context.Background(), record(t, in))
	got := rs.Deployment("a", "D")
	if len(got) != 1 {
		t.Fatalf("Deployment = %+v, want one report", got)
	}
	g := got[0]
	if !g.At.Equal(in.At) || !slices.Equal(g.Loaded, in.Loaded) || !slices.Equal(g.Loading, in.Loading) ||
		g.Failed["bad/1"] != "corrupt" || len(g.Failed) != 1 ||
		g.MemoryBytes != in.MemoryBytes || g.Hits != in.Hits || g.Misses != in.Misses ||
		g.Loads != in.Loads || g.Evictions != in.Evictions || g.Failures != in.Failures {
		t.Errorf("read back %+v, want %+v", g, in)
	}
}

func TestReportKey(t *testing.T) {
	t.Parallel()
	tests := []struct{ app, dep, replica, want string }{
		{"a", "D", "r1", "models/a/D/r1"},
		{"my-app", "Model-1", "host-7f9c", "models/my-app/Model-1/host-7f9c"},
	}
	for _, tc := range tests {
		if got := ReportKey(tc.app, tc.dep, tc.replica); got != tc.want {
			t.Errorf("ReportKey(%q, %q, %q) = %q, want %q", tc.app, tc.dep, tc.replica, got, tc.want)
		}
	}
}

// Owners maps partitions of one topic to the live replicas that report
// them, for one application.
func TestReportsOwners(t *testing.T) {
	t.Parallel()
	rs := NewReports()
	now := time.Now()
	put := func(rep Report) {
		b, _ := json.Marshal(rep)
		rs.Apply(context.Background(), &kgo.Record{Key: []byte(ReportKey(rep.App, rep.Deployment, rep.Replica)), Value: b})
	}
	put(Report{App: "a", Deployment: "d", Replica: "r1", At: now, Partitions: map[string][]int32{"in": {0, 2}, "edge": {1}}})
	put(Report{App: "a", Deployment: "d", Replica: "r2", At: now, Partitions: map[string][]int32{"in": {1, 3}}})
	put(Report{App: "a", Deployment: "d", Replica: "old", At: now.Add(-time.Minute), Partitions: map[string][]int32{"in": {4}}})
	put(Report{App: "b", Deployment: "d", Replica: "r3", At: now, Partitions: map[string][]int32{"in": {5}}})
	got := rs.Owners("a", "in")
	want := map[int32]string{0: "r1", 2: "r1", 1: "r2", 3: "r2"}
	if !maps.Equal(got, want) {
		t.Fatalf("Owners = %v, want %v", got, want)
	}
	if got := rs.Owners("a", "nope"); len(got) != 0 {
		t.Fatalf("Owners of an unknown topic = %v", got)
	}
}
