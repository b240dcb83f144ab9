// Package appstore keeps the applications on Kafka: the compacted apps
// topic is the system of record, and a Store is one process's view of
// it. Every record is validated as it is read, wherever it came from (a
// deploy through the API, or a producer writing to the topic directly):
// an invalid spec is refused and reported, and the application keeps the
// spec it had. Each applied spec has a generation, the offset of its
// record, so every process agrees on it without coordination.
package appstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/streams"
)

// Config configures a Store.
type Config struct {
	Brokers []string
	Namer   streams.Namer
	// Check validates an application beyond the spec's own rules: the
	// handlers its code offers. Nil checks the spec rules only.
	Check func(*spec.App) error
	// Prepare completes an application being deployed before it is
	// checked and written: it pins the code it names to versions. Nil
	// writes it as given.
	Prepare func(context.Context, *spec.App) error
	// Tensors tells what the model deployments upstream of a tensor join
	// answer with, to refuse a clash of tensor names at deploy (see
	// spec.App.CheckTensorJoins). Nil checks declared outputs only.
	Tensors spec.TensorCatalog
	// Watch, when set, sees every application spec as it is applied.
	Watch func(Applied)
	Log   *slog.Logger
}

// Applied is an application's spec as it runs, with its generation.
type Applied struct {
	Spec       *spec.App
	Generation int64
}

// Rejection is a spec read from the apps topic and refused: the
// application keeps running its previous spec (or does not exist).
type Rejection struct {
	App        string    `json:"app"`
	Generation int64     `json:"generation"`
	Reason     string    `json:"reason"`
	At         time.Time `json:"at"`
}

// ErrInvalid is wrapped by errors caused by the spec itself.
var ErrInvalid = errors.New("invalid application")

// ErrNotFound is returned for an application that does not exist.
var ErrNotFound = errors.New("no such application")

// Store follows the apps topic.
type Store struct {
	cfg Config
	log *streams.Log

	// deliver serializes the deliveries to OnChange's functions, so each
	// sees every change in order, its first snapshot included. Lock order:
	// deliver before mu.
	deliver  sync.Mutex
	mu       sync.Mutex
	apps     map[string]Applied
	rejected map[string]Rejection // the latest refused record per app, until a later one applies
	onChange []func([]Applied)
}

// Open connects and creates the apps topic (and the status topic beside
// it) if missing; Run follows it.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	s := &Store{cfg: cfg, apps: map[string]Applied{}, rejected: map[string]Rejection{}}
	l, err := streams.OpenLog(ctx, streams.LogConfig{
		Brokers: cfg.Brokers, Topic: cfg.Namer.Apps(), Also: []streams.TopicSpec{streams.CompactedTopic(cfg.Namer.Status())},
		Apply: s.apply, Log: cfg.Log,
	})
	if err != nil {
		return nil, err
	}
	s.log = l
	return s, nil
}

// Run applies the apps topic until ctx ends.
func (s *Store) Run(ctx context.Context) { s.log.Run(ctx) }

// Sync waits, bounded by ctx, until every record written before the call
// is applied.
func (s *Store) Sync(ctx context.Context) error { return s.log.Sync(ctx) }

// Client is the store's Kafka client, for admin requests beside it.
func (s *Store) Client() *kgo.Client { return s.log.Client() }

// OnChange registers fn to receive every application after each change,
// and once now.
func (s *Store) OnChange(fn func([]Applied)) {
	s.deliver.Lock()
	defer s.deliver.Unlock()
	s.mu.Lock()
	s.onChange = append(s.onChange, fn)
	apps := s.appsLocked()
	s.mu.Unlock()
	fn(apps)
}

func (s *Store) apply(_ context.Context, r *kgo.Record) {
	name := string(r.Key)
	var app *spec.App
	var err error
	if r.Value != nil {
		app, err = s.decode(name, r.Value)
	}
	s.mu.Lock()
	switch {
	case err != nil:
		s.rejected[name] = Rejection{App: name, Generation: r.Offset, Reason: err.Error(), At: time.Now().UTC()}
		s.mu.Unlock()
		s.cfg.Log.Error("application spec refused; the previous one keeps running", "app", name, "generation", r.Offset, "err", err)
		return
	case app == nil:
		delete(s.apps, name)
	default:
		s.apps[name] = Applied{Spec: app, Generation: r.Offset}
		if s.cfg.Watch != nil {
			s.cfg.Watch(s.apps[name])
		}
	}
	delete(s.rejected, name)
	s.mu.Unlock()
	s.deliver.Lock()
	defer s.deliver.Unlock()
	s.mu.Lock()
	apps := s.appsLocked()
	fns := slices.Clone(s.onChange)
	s.mu.Unlock()
	for _, fn := range fns {
		fn(apps)
	}
}

// decode parses and validates one stored spec.
func (s *Store) decode(key string, value []byte) (*spec.App, error) {
	app := new(spec.App)
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.DisallowUnknownFields()
	if err := dec.Decode(app); err != nil {
		return nil, fmt.Errorf("%w %s: stored spec undecodable: %w", ErrInvalid, key, err)
	}
	if app.Name != key {
		return nil, fmt.Errorf("%w %s: the record's key names application %s, its spec %q", ErrInvalid, key, key, app.Name)
	}
	s.mu.Lock()
	others := s.appsLocked()
	s.mu.Unlock()
	return app, s.validate(app, others)
}

// validate checks app against the spec rules, the handlers, what
// replicas serve (spec.App.NotServed), and the route prefixes of the
// other applications.
func (s *Store) validate(app *spec.App, others []Applied) error {
	if err := app.Validate(); err != nil {
		return fmt.Errorf("%w %s: %w", ErrInvalid, app.Name, err)
	}
	if s.cfg.Check != nil {
		if err := s.cfg.Check(app); err != nil {
			return fmt.Errorf("%w %s: %w", ErrInvalid, app.Name, err)
		}
	}
	if err := app.NotServed(); err != nil {
		return fmt.Errorf("%w %s: %w", ErrInvalid, app.Name, err)
	}
	for _, o := range others {
		if o.Spec.Name != app.Name && o.Spec.RoutePrefix == app.RoutePrefix {
			return fmt.Errorf("%w %s: %sroute_prefix %s is taken by application %s: choose another prefix, or delete %s first",
				ErrInvalid, app.Name, position(app, "route_prefix"), app.RoutePrefix, o.Spec.Name, o.Spec.Name)
		}
	}
	return nil
}

// position is where the YAML set field path of app followed by ": ", or
// "" for a spec read back from JSON.
func position(app *spec.App, path string) string {
	if pos := app.Position(path); pos != "" {
		return pos + ": "
	}
	return ""
}

func (s *Store) appsLocked() []Applied {
	out := make([]Applied, 0, len(s.apps))
	for _, a := range s.apps {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b Applied) int { return strings.Compare(a.Spec.Name, b.Spec.Name) })
	return out
}

// Apps returns the applied applications, sorted by name.
func (s *Store) Apps() []Applied {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appsLocked()
}

// App returns one applied application.
func (s *Store) App(name string) (Applied, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.apps[name]
	return a, ok
}

// Rejected returns the refused spec of an application, if its latest
// record was refused.
func (s *Store) Rejected(name string) (Rejection, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.rejected[name]
	return r, ok
}

// Rejections returns every application whose latest record was refused.
func (s *Store) Rejections() []Rejection {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Rejection, 0, len(s.rejected))
	for _, r := range s.rejected {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Rejection) int { return strings.Compare(a.App, b.App) })
	return out
}

// Deploy validates apps as the reader will, writes them to the apps topic
// and waits, bounded by ctx, until they are applied. It returns each
// application's new generation. A record refused on reading (another
// writer's change won the route prefix meanwhile) is an error too.
func (s *Store) Deploy(ctx context.Context, apps ...*spec.App) (map[string]int64, error) {
	current := s.Apps()
	for _, a := range apps {
		if s.cfg.Prepare != nil {
			if err := s.cfg.Prepare(ctx, a); err != nil {
				return nil, fmt.Errorf("%w %s: %w", ErrInvalid, a.Name, err)
			}
		}
		if err := s.validate(a, current); err != nil {
			return nil, err
		}
		// The dataflow rules hold for what is deployed from now on; a
		// stored spec that predates them is not refused when read back.
		if err := a.CheckGraph(); err != nil {
			return nil, fmt.Errorf("%w %s: %w", ErrInvalid, a.Name, err)
		}
		if err := a.CheckTensorJoins(s.cfg.Tensors); err != nil {
			return nil, fmt.Errorf("%w %s: %w", ErrInvalid, a.Name, err)
		}
	}
	recs := make([]*kgo.Record, 0, len(apps))
	for _, a := range apps {
		b, err := json.Marshal(a)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", a.Name, err)
		}
		recs = append(recs, &kgo.Record{Key: []byte(a.Name), Value: b})
	}
	if err := s.log.Write(ctx, recs...); err != nil {
		return nil, err
	}
	gens := make(map[string]int64, len(recs))
	for _, r := range recs {
		name := string(r.Key)
		if rej, ok := s.Rejected(name); ok && rej.Generation == r.Offset {
			return nil, refusal(rej.Reason) // another writer's change won meanwhile
		}
		gens[name] = r.Offset
	}
	return gens, nil
}

// Delete removes an application (a tombstone) and waits until applied.
func (s *Store) Delete(ctx context.Context, name string) error {
	if _, ok := s.App(name); !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return s.log.Write(ctx, &kgo.Record{Key: []byte(name)})
}

// Load reads the apps topic to its end, validating as a Store does, and
// returns the named application: what a replica process runs. With want,
// it returns the latest applied spec of the application that want
// accepts (a replica asked to run one revision of its deployment), and
// waits, bounded by ctx, for one to be written.
func Load(ctx context.Context, cfg Config, name string, want func(Applied) bool) (Applied, error) {
	var found Applied
	var mu sync.Mutex
	cfg.Watch = func(a Applied) {
		if a.Spec.Name == name && (want == nil || want(a)) {
			mu.Lock()
			found = a
			mu.Unlock()
		}
	}
	s, err := Open(ctx, cfg)
	if err != nil {
		return Applied{}, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(runCtx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	if err := s.Sync(ctx); err != nil {
		return Applied{}, err
	}
	for want != nil {
		mu.Lock()
		a := found
		mu.Unlock()
		if a.Spec != nil {
			return a, nil
		}
		select {
		case <-ctx.Done():
			return Applied{}, fmt.Errorf("%w: %s: no spec of it is the one asked for: %w", ErrNotFound, name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	a, ok := s.App(name)
	if !ok {
		if rej, refused := s.Rejected(name); refused {
			return Applied{}, fmt.Errorf("%w: %s (its spec was refused: %s)", ErrNotFound, name, rej.Reason)
		}
		return Applied{}, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return a, nil
}

// refusal is a spec refused on reading, as an error: its reason (which
// names the application already) is ErrInvalid.
type refusal string

func (r refusal) Error() string        { return string(r) }
func (r refusal) Is(target error) bool { return target == ErrInvalid }
