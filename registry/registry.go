package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/registry/blob"
	"github.com/sluice-serve/sluice/streams"
)

// Store is what the registry needs from object storage.
type Store interface {
	Put(ctx context.Context, key string, r io.Reader, size int64) (blob.Info, error)
	Get(ctx context.Context, key string) (io.ReadCloser, blob.Info, error)
	Delete(ctx context.Context, key string) error
}

// Config configures a registry.
type Config struct {
	Brokers []string
	Namer   streams.Namer
	Store   Store // nil: a read-only follower (replicas, gateways)
	Log     *slog.Logger
}

// Registry publishes and serves model versions and code bundle versions.
// One process writes (the platform's); any number follow the events.
//
// Lock order: wmu before mu. wmu serializes state changes (read the state,
// append the event, wait until it is applied, which takes mu), so two
// changes of one entry never both start from the same state; uploads run
// outside it. mu guards the tables and watchers.
type Registry struct {
	cfg Config
	log *streams.Log

	wmu      sync.Mutex
	mu       sync.Mutex
	models   table[Version]
	code     table[BundleVersion]
	watchers []func(Event)
}

// table is one kind's entries and the versions being uploaded.
type table[V versionOf] struct {
	sets    map[string]*Set[V]
	pending map[string]map[string]bool // name -> versions being uploaded
}

func newTable[V versionOf]() table[V] {
	return table[V]{sets: map[string]*Set[V]{}, pending: map[string]map[string]bool{}}
}

// put applies an entry's state; an empty or nil state removes it.
func (t *table[V]) put(name string, state *Set[V]) {
	if state == nil || len(state.Versions) == 0 && len(state.Aliases) == 0 {
		delete(t.sets, name)
		return
	}
	t.sets[name] = state
}

func (t *table[V]) sorted() []*Set[V] {
	out := make([]*Set[V], 0, len(t.sets))
	for _, m := range t.sets {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b *Set[V]) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// New connects to the brokers and creates the events topic.
func New(ctx context.Context, cfg Config) (*Registry, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	r := &Registry{cfg: cfg, models: newTable[Version](), code: newTable[BundleVersion]()}
	l, err := streams.OpenLog(ctx, streams.LogConfig{
		Brokers: cfg.Brokers, Topic: cfg.Namer.RegistryEvents(), Apply: r.apply, Log: cfg.Log,
		Opts: []kgo.Opt{kgo.ProducerBatchMaxBytes(16 << 20)}, // an event carries an entry's whole state
	})
	if err != nil {
		return nil, err
	}
	r.log = l
	return r, nil
}

// Watch registers fn for every event applied from now on, of either kind.
func (r *Registry) Watch(fn func(Event)) {
	r.mu.Lock()
	r.watchers = append(r.watchers, fn)
	r.mu.Unlock()
}

// Run applies the events topic until ctx ends.
func (r *Registry) Run(ctx context.Context) error {
	r.log.Run(ctx)
	return nil
}

// codeKeyPrefix starts the record key of a code bundle's events; a model's
// key is its bare name, as before code bundles, and names have no '/'.
const codeKeyPrefix = "code/"

func recordKey(k Kind, name string) string {
	if k == KindCode {
		return codeKeyPrefix + name
	}
	return name
}

func (r *Registry) apply(_ context.Context, rec *kgo.Record) {
	var ev Event
	if rec.Value == nil { // tombstone: the entry is gone
		if name, ok := strings.CutPrefix(string(rec.Key), codeKeyPrefix); ok {
			ev = Event{Kind: KindCode, Bundle: name}
		} else {
			ev = Event{Model: string(rec.Key)}
		}
	} else if err := json.Unmarshal(rec.Value, &ev); err != nil {
		r.cfg.Log.Error("registry event undecodable; skipped", "offset", rec.Offset, "err", err)
	}
	r.mu.Lock()
	applied := true
	switch {
	case ev.Kind == KindCode && ev.Bundle != "":
		r.code.put(ev.Bundle, ev.Code)
	case ev.Kind == "" && ev.Model != "":
		r.models.put(ev.Model, ev.State)
	default: // undecodable, or a kind this build does not know
		applied = false
	}
	fns := slices.Clone(r.watchers)
	r.mu.Unlock()
	if applied {
		for _, fn := range fns {
			fn(ev)
		}
	}
}

// maxEventBytes bounds an event: Kafka's default max.message.bytes (1 MiB
// and a little) less room for the record's framing. A state past it could
// not be written to a real broker.
const maxEventBytes = 1<<20 - 4<<10

// appendState writes the event of a change to an entry, with the entry's
// state after it, and waits, bounded by ctx, until it is applied.
func appendState[V versionOf](ctx context.Context, r *Registry, typ EventType, state *Set[V], version, alias string, at time.Time) error {
	ev := Event{Type: typ, Version: version, Alias: alias, At: at}
	kind := kindOf[V]()
	switch s := any(state).(type) {
	case *Model:
		ev.Model, ev.State = s.Name, s
	case *Bundle:
		ev.Kind, ev.Bundle, ev.Code = KindCode, s.Name, s
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	if kind == KindCode && len(b) > maxEventBytes {
		return streams.Errorf(streams.CodeFailedPrecondition, "%s %s: its record would be %d bytes, over the events topic's %d: delete old versions first", kind.noun(), state.Name, len(b), maxEventBytes)
	}
	return r.log.Write(ctx, &kgo.Record{Key: []byte(recordKey(kind, state.Name)), Value: b})
}

// Models returns every model, sorted by name.
func (r *Registry) Models() []*Model {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.models.sorted()
}

// Model returns one model.
func (r *Registry) Model(name string) (*Model, error) { return get(r, &r.models, name) }

func get[V versionOf](r *Registry, t *table[V], name string) (*Set[V], error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := t.sets[name]
	if m == nil {
		return nil, streams.Errorf(streams.CodeNotFound, "no %s %q", kindOf[V]().noun(), name)
	}
	return m, nil
}

// Version resolves a version number, "@alias" or "" (the highest).
func (r *Registry) Version(model, version string) (*Version, error) {
	m, err := r.Model(model)
	if err != nil {
		return nil, err
	}
	return m.Lookup(version)
}

// Upload describes a version to publish.
type Upload struct {
	Model, Version, Format string
	Inputs, Outputs        []spec.TensorSpec
	Labels                 map[string]string
	Files                  []File // sizes required; SHA-256 checked when given
	Alias                  string // also point this alias at the version
}

// ErrReadOnly is returned by writes on a registry without a store: 412 /
// FAILED_PRECONDITION at the gateway, not a 500.
var ErrReadOnly error = &streams.Error{Code: streams.CodeFailedPrecondition, // the caller's platform, not the request, must change
	Msg: "this process has no store to write models or code to: start it with --s3-endpoint, the store its nodes read from"}

// Publish stores the files, read one after the other from content, and
// makes the version visible only once every file arrived with its size and
// checksum. On any failure nothing is visible and the stored files are
// deleted. Memory use does not grow with the artifact.
func (r *Registry) Publish(ctx context.Context, u Upload, content io.Reader) (*Version, error) {
	if err := validUpload(&u); err != nil {
		return nil, err
	}
	p := publication{name: u.Model, version: u.Version, alias: u.Alias, files: u.Files}
	return publish(ctx, r, &r.models, p, content, func(version string, files []File, size int64, created time.Time) Version {
		return Version{Model: u.Model, Version: version, Format: u.Format, Inputs: u.Inputs, Outputs: u.Outputs, Labels: u.Labels,
			Files: files, Size: size, Created: created}
	})
}

// publication is what a publish of either kind has.
type publication struct {
	name, version, alias string // version "": the next number
	files                []File
}

// publish is Publish for either kind: reserve the version, stream the
// files to the store checking each, write the MANIFEST.json beside them,
// then append the event; build makes the version from what arrived.
func publish[V versionOf](ctx context.Context, r *Registry, t *table[V], p publication, content io.Reader,
	build func(version string, files []File, size int64, created time.Time) V) (*V, error) {
	if r.cfg.Store == nil {
		return nil, ErrReadOnly
	}
	kind := kindOf[V]()
	version, err := reserve(r, t, p.name, p.version)
	if err != nil {
		return nil, err
	}
	defer release(r, t, p.name, version)

	created := time.Now().UTC().Truncate(time.Millisecond)
	files, size, stored, err := r.storeFiles(ctx, kind, p.name, version, p.files, content)
	if err != nil {
		r.cleanup(stored)
		return nil, err
	}
	v := build(version, files, size, created)
	manifest, _ := json.MarshalIndent(v, "", "  ")
	mkey := manifestKey(kind, p.name, version)
	if _, err := r.cfg.Store.Put(ctx, mkey, bytes.NewReader(manifest), int64(len(manifest))); err != nil {
		r.cleanup(stored)
		return nil, storeError("write manifest", err)
	}
	stored = append(stored, mkey)

	err = func() error {
		r.wmu.Lock()
		defer r.wmu.Unlock()
		r.mu.Lock()
		state := &Set[V]{Name: p.name, Aliases: map[string]string{}}
		if m := t.sets[p.name]; m != nil {
			state = m.clone()
		}
		r.mu.Unlock()
		state.insert(v)
		if p.alias != "" {
			state.Aliases[p.alias] = version
		}
		return appendState(ctx, r, VersionPublished, state, version, p.alias, created)
	}()
	if err != nil {
		r.cleanup(stored)
		return nil, err
	}
	r.cfg.Log.Info("registry version published", "kind", kind, "name", p.name, "version", version, "bytes", size, "files", len(files))
	return &v, nil
}

// reserve assigns or checks the version under the lock, so two uploads
// never take the same number.
func reserve[V versionOf](r *Registry, t *table[V], name, version string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	noun := kindOf[V]().noun()
	m := t.sets[name]
	taken := t.pending[name]
	if version == "" {
		version = nextVersion(m, taken)
	}
	if taken[version] {
		return "", streams.Errorf(streams.CodeAlreadyExists, "%s %s version %s is being uploaded", noun, name, version)
	}
	if m != nil {
		if _, err := m.Lookup(version); err == nil {
			return "", streams.Errorf(streams.CodeAlreadyExists, "%s %s already has version %s", noun, name, version)
		}
	}
	if taken == nil {
		taken = map[string]bool{}
		t.pending[name] = taken
	}
	taken[version] = true
	return version, nil
}

func release[V versionOf](r *Registry, t *table[V], name, version string) {
	r.mu.Lock()
	delete(t.pending[name], version)
	if len(t.pending[name]) == 0 {
		delete(t.pending, name)
	}
	r.mu.Unlock()
}

// storeFiles streams each file to the store and checks what arrived; it
// returns the files as stored, their total size and the keys written so
// far.
func (r *Registry) storeFiles(ctx context.Context, kind Kind, name, version string, files []File, content io.Reader) (out []File, size int64, stored []string, err error) {
	for _, f := range files {
		key := objectKey(kind, name, version, f.Path)
		cr := &countingReader{r: io.LimitReader(content, f.Size)}
		info, err := r.cfg.Store.Put(ctx, key, cr, f.Size)
		if err == nil {
			stored = append(stored, key)
		}
		if cr.eof && cr.n < f.Size { // the caller's content ended early
			return nil, 0, stored, streams.Errorf(streams.CodeInvalidArgument, "file %s: declared %d bytes, received %d", f.Path, f.Size, cr.n)
		}
		if err != nil {
			return nil, 0, stored, storeError("store "+f.Path, err)
		}
		if info.Size != f.Size {
			return nil, 0, stored, streams.Errorf(streams.CodeInvalidArgument, "file %s: declared %d bytes, received %d", f.Path, f.Size, cr.n)
		}
		if f.SHA256 != "" && info.SHA256 != f.SHA256 {
			return nil, 0, stored, streams.Errorf(streams.CodeInvalidArgument, "file %s: checksum mismatch: declared sha256 %s, received %s", f.Path, f.SHA256, info.SHA256)
		}
		out = append(out, File{Path: f.Path, Size: f.Size, SHA256: info.SHA256})
		size += f.Size
	}
	if n, _ := io.Copy(io.Discard, io.LimitReader(content, 1)); n > 0 {
		return nil, 0, stored, streams.Errorf(streams.CodeInvalidArgument, "more content than the manifest's %d files declare", len(files))
	}
	return out, size, stored, nil
}

// cleanup deletes stored objects of a failed publish, off the request's
// context (which may be what failed).
func (r *Registry) cleanup(keys []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, k := range keys {
		if err := r.cfg.Store.Delete(ctx, k); err != nil {
			r.cfg.Log.Warn("object of a failed publish not deleted", "key", k, "err", err)
		}
	}
}

func storeError(what string, err error) error {
	code := streams.CodeInternal
	switch {
	case errors.Is(err, blob.ErrUnavailable):
		code = streams.CodeUnavailable
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return streams.ContextError(err)
	case streams.CodeOf(err) != streams.CodeInternal:
		return err
	}
	return &streams.Error{Code: code, Msg: fmt.Sprintf("%s: %v", what, err), Err: err}
}

// countingReader counts what it passes on and whether it reached the end.
type countingReader struct {
	r   io.Reader
	n   int64
	eof bool
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.eof = c.eof || errors.Is(err, io.EOF)
	return n, err
}

// SetAlias points alias at version (a number), moving it if set.
func (r *Registry) SetAlias(ctx context.Context, model, alias, version string) (*Model, error) {
	return setAlias(ctx, r, &r.models, model, alias, version)
}

func setAlias[V versionOf](ctx context.Context, r *Registry, t *table[V], name, alias, version string) (*Set[V], error) {
	if r.cfg.Store == nil {
		return nil, ErrReadOnly
	}
	if err := validAlias(alias); err != nil {
		return nil, err
	}
	r.wmu.Lock()
	defer r.wmu.Unlock()
	m, err := get(r, t, name)
	if err != nil {
		return nil, err
	}
	v, err := m.Lookup(version)
	if err != nil {
		return nil, err
	}
	state := m.clone()
	state.Aliases[alias] = (*v).number()
	if err := appendState(ctx, r, AliasSet, state, (*v).number(), alias, time.Now().UTC()); err != nil {
		return nil, err
	}
	return state, nil
}

// DeleteVersion removes a version; it is refused while an alias points at
// it unless force, which removes those aliases too. The artifact is
// deleted after the version is gone from the registry.
func (r *Registry) DeleteVersion(ctx context.Context, model, version string, force bool) (*Model, error) {
	return deleteVersion(ctx, r, &r.models, model, version, force)
}

func deleteVersion[V versionOf](ctx context.Context, r *Registry, t *table[V], name, version string, force bool) (*Set[V], error) {
	if r.cfg.Store == nil {
		return nil, ErrReadOnly
	}
	kind := kindOf[V]()
	state, v, err := func() (*Set[V], *V, error) {
		r.wmu.Lock()
		defer r.wmu.Unlock()
		return removeVersion(ctx, r, t, name, version, force)
	}()
	if err != nil {
		return nil, err
	}
	// The files go after the version, off the write lock: a slow store
	// does not hold other changes.
	number := (*v).number()
	keys := []string{manifestKey(kind, name, number)}
	for _, f := range (*v).files() {
		keys = append(keys, objectKey(kind, name, number, f.Path))
	}
	r.cleanup(keys)
	return state, nil
}

// removeVersion appends the event that removes a version; wmu is held.
func removeVersion[V versionOf](ctx context.Context, r *Registry, t *table[V], name, version string, force bool) (*Set[V], *V, error) {
	m, err := get(r, t, name)
	if err != nil {
		return nil, nil, err
	}
	v, err := m.Lookup(version)
	if err != nil {
		return nil, nil, err
	}
	number := (*v).number()
	if aliases := m.AliasesOf(number); len(aliases) > 0 && !force {
		return nil, nil, streams.Errorf(streams.CodeFailedPrecondition, "%s %s version %s is aliased as %s; move the alias first or force", kindOf[V]().noun(), name, number, strings.Join(aliases, ", "))
	}
	state := m.clone()
	state.Versions = slices.DeleteFunc(state.Versions, func(x V) bool { return x.number() == number })
	for a, target := range state.Aliases {
		if target == number {
			delete(state.Aliases, a)
		}
	}
	if err := appendState(ctx, r, VersionDeleted, state, number, "", time.Now().UTC()); err != nil {
		return nil, nil, err
	}
	return state, v, nil
}

// Open streams one file of a version from the store.
func (r *Registry) Open(ctx context.Context, v *Version, f File) (io.ReadCloser, error) {
	return r.open(ctx, KindModel, v.Model, v.Version, f)
}

func (r *Registry) open(ctx context.Context, kind Kind, name, version string, f File) (io.ReadCloser, error) {
	if r.cfg.Store == nil {
		return nil, ErrReadOnly
	}
	rc, _, err := r.cfg.Store.Get(ctx, objectKey(kind, name, version, f.Path))
	if errors.Is(err, blob.ErrNotFound) {
		return nil, streams.Errorf(streams.CodeNotFound, "%s %s version %s: file %s is missing from the store", kind.noun(), name, version, f.Path)
	}
	if err != nil {
		return nil, storeError("read "+f.Path, err)
	}
	return rc, nil
}

// Sync waits, bounded by ctx, until every event written before the call
// is applied (Run must be running).
func (r *Registry) Sync(ctx context.Context) error { return r.log.Sync(ctx) }

// Tensors is the registry as the deploy-time check of tensor joins reads
// it (spec.TensorCatalog); nil for no registry.
func (r *Registry) Tensors() spec.TensorCatalog {
	if r == nil {
		return nil
	}
	return tensorCatalog{r}
}

type tensorCatalog struct{ r *Registry }

func (c tensorCatalog) ModelsServed(d *spec.Deployment) []string {
	var out []string
	for _, m := range c.r.Models() {
		if d.Model == nil || d.Model.Serves(m.Name, m.Labels()...) {
			out = append(out, m.Name)
		}
	}
	return out
}

func (c tensorCatalog) Outputs(d *spec.Deployment, model string) ([]string, string, bool) {
	var version string
	if d.Model != nil {
		version = d.Model.DefaultVersion
	}
	v, err := c.r.Version(model, version)
	if err != nil || len(v.Outputs) == 0 {
		return nil, "", false
	}
	names := make([]string, len(v.Outputs))
	for i, t := range v.Outputs {
		names[i] = t.Name
	}
	return names, v.Version, true
}
