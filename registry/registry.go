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

// Registry publishes and serves model versions. One process writes (the
// platform's; writes are serialized there); any number follow the events.
type Registry struct {
	cfg Config
	log *streams.Log

	mu       sync.Mutex
	models   map[string]*Model
	pending  map[string]map[string]bool // model -> versions being uploaded
	watchers []func(Event)
}

// New connects to the brokers and creates the events topic.
func New(ctx context.Context, cfg Config) (*Registry, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	r := &Registry{cfg: cfg, models: map[string]*Model{}, pending: map[string]map[string]bool{}}
	l, err := streams.OpenLog(ctx, streams.LogConfig{
		Brokers: cfg.Brokers, Topic: cfg.Namer.RegistryEvents(), Apply: r.apply, Log: cfg.Log,
		Opts: []kgo.Opt{kgo.ProducerBatchMaxBytes(16 << 20)}, // an event carries a model's whole state
	})
	if err != nil {
		return nil, err
	}
	r.log = l
	return r, nil
}

// Watch registers fn for every event applied from now on.
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

func (r *Registry) apply(_ context.Context, rec *kgo.Record) {
	var ev Event
	if rec.Value == nil {
		ev = Event{Model: string(rec.Key)} // tombstone: the model is gone
	} else if err := json.Unmarshal(rec.Value, &ev); err != nil {
		r.cfg.Log.Error("registry event undecodable; skipped", "offset", rec.Offset, "err", err)
	}
	r.mu.Lock()
	if ev.Model != "" {
		if ev.State == nil || len(ev.State.Versions) == 0 && len(ev.State.Aliases) == 0 {
			delete(r.models, ev.Model)
		} else {
			r.models[ev.Model] = ev.State
		}
	}
	fns := slices.Clone(r.watchers)
	r.mu.Unlock()
	if ev.Model != "" {
		for _, fn := range fns {
			fn(ev)
		}
	}
}

// append writes an event and waits, bounded by ctx, until it is applied.
func (r *Registry) append(ctx context.Context, ev Event) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	return r.log.Write(ctx, &kgo.Record{Key: []byte(ev.Model), Value: b})
}

// Models returns every model, sorted by name.
func (r *Registry) Models() []*Model {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*Model, 0, len(r.models))
	for _, m := range r.models {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b *Model) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Model returns one model.
func (r *Registry) Model(name string) (*Model, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.models[name]
	if m == nil {
		return nil, streams.Errorf(streams.CodeNotFound, "no model %q", name)
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

// ErrReadOnly is returned by writes on a registry without a store.
var ErrReadOnly = errors.New("this process has no model store to write to: start it with --s3-endpoint, the store its nodes read weights from")

// Publish stores the files, read one after the other from content, and
// makes the version visible only once every file arrived with its size and
// checksum. On any failure nothing is visible and the stored files are
// deleted. Memory use does not grow with the artifact.
func (r *Registry) Publish(ctx context.Context, u Upload, content io.Reader) (*Version, error) {
	if r.cfg.Store == nil {
		return nil, ErrReadOnly
	}
	if err := validUpload(&u); err != nil {
		return nil, err
	}
	if err := r.reserve(&u); err != nil {
		return nil, err
	}
	defer r.release(u.Model, u.Version)

	v := Version{Model: u.Model, Version: u.Version, Format: u.Format, Inputs: u.Inputs, Outputs: u.Outputs, Labels: u.Labels, Created: time.Now().UTC().Truncate(time.Millisecond)}
	stored, err := r.storeFiles(ctx, &v, u.Files, content)
	if err != nil {
		r.cleanup(stored)
		return nil, err
	}
	manifest, _ := json.MarshalIndent(v, "", "  ")
	if _, err := r.cfg.Store.Put(ctx, manifestKey(v.Model, v.Version), bytes.NewReader(manifest), int64(len(manifest))); err != nil {
		r.cleanup(stored)
		return nil, storeError("write manifest", err)
	}
	stored = append(stored, manifestKey(v.Model, v.Version))

	r.mu.Lock()
	state := &Model{Name: u.Model, Aliases: map[string]string{}}
	if m := r.models[u.Model]; m != nil {
		state = m.clone()
	}
	r.mu.Unlock()
	state.insert(v)
	if u.Alias != "" {
		state.Aliases[u.Alias] = v.Version
	}
	if err := r.append(ctx, Event{Type: VersionPublished, Model: u.Model, Version: v.Version, Alias: u.Alias, At: v.Created, State: state}); err != nil {
		r.cleanup(stored)
		return nil, err
	}
	r.cfg.Log.Info("model version published", "model", v.Model, "version", v.Version, "bytes", v.Size, "files", len(v.Files))
	return &v, nil
}

// reserve assigns or checks the version under the lock, so two uploads
// never take the same number.
func (r *Registry) reserve(u *Upload) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.models[u.Model]
	taken := r.pending[u.Model]
	if u.Version == "" {
		u.Version = nextVersion(m, taken)
	}
	if taken[u.Version] {
		return streams.Errorf(streams.CodeAlreadyExists, "model %s version %s is being uploaded", u.Model, u.Version)
	}
	if m != nil {
		if _, err := m.Lookup(u.Version); err == nil {
			return streams.Errorf(streams.CodeAlreadyExists, "model %s already has version %s", u.Model, u.Version)
		}
	}
	if taken == nil {
		taken = map[string]bool{}
		r.pending[u.Model] = taken
	}
	taken[u.Version] = true
	return nil
}

func (r *Registry) release(model, version string) {
	r.mu.Lock()
	delete(r.pending[model], version)
	if len(r.pending[model]) == 0 {
		delete(r.pending, model)
	}
	r.mu.Unlock()
}

// storeFiles streams each file to the store and checks what arrived; it
// returns the keys written so far.
func (r *Registry) storeFiles(ctx context.Context, v *Version, files []File, content io.Reader) ([]string, error) {
	var stored []string
	for _, f := range files {
		key := ObjectKey(v.Model, v.Version, f.Path)
		cr := &countingReader{r: io.LimitReader(content, f.Size)}
		info, err := r.cfg.Store.Put(ctx, key, cr, f.Size)
		if err == nil {
			stored = append(stored, key)
		}
		if cr.eof && cr.n < f.Size { // the caller's content ended early
			return stored, streams.Errorf(streams.CodeInvalidArgument, "file %s: declared %d bytes, received %d", f.Path, f.Size, cr.n)
		}
		if err != nil {
			return stored, storeError("store "+f.Path, err)
		}
		if info.Size != f.Size {
			return stored, streams.Errorf(streams.CodeInvalidArgument, "file %s: declared %d bytes, received %d", f.Path, f.Size, cr.n)
		}
		if f.SHA256 != "" && info.SHA256 != f.SHA256 {
			return stored, streams.Errorf(streams.CodeInvalidArgument, "file %s: checksum mismatch: declared sha256 %s, received %s", f.Path, f.SHA256, info.SHA256)
		}
		v.Files = append(v.Files, File{Path: f.Path, Size: f.Size, SHA256: info.SHA256})
		v.Size += f.Size
	}
	if n, _ := io.Copy(io.Discard, io.LimitReader(content, 1)); n > 0 {
		return stored, streams.Errorf(streams.CodeInvalidArgument, "more content than the manifest's %d files declare", len(files))
	}
	return stored, nil
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
	if r.cfg.Store == nil {
		return nil, ErrReadOnly
	}
	if err := validAlias(alias); err != nil {
		return nil, err
	}
	m, err := r.Model(model)
	if err != nil {
		return nil, err
	}
	v, err := m.Lookup(version)
	if err != nil {
		return nil, err
	}
	state := m.clone()
	state.Aliases[alias] = v.Version
	if err := r.append(ctx, Event{Type: AliasSet, Model: model, Version: v.Version, Alias: alias, At: time.Now().UTC(), State: state}); err != nil {
		return nil, err
	}
	return state, nil
}

// DeleteVersion removes a version; it is refused while an alias points at
// it unless force, which removes those aliases too. The artifact is
// deleted after the version is gone from the registry.
func (r *Registry) DeleteVersion(ctx context.Context, model, version string, force bool) (*Model, error) {
	if r.cfg.Store == nil {
		return nil, ErrReadOnly
	}
	m, err := r.Model(model)
	if err != nil {
		return nil, err
	}
	v, err := m.Lookup(version)
	if err != nil {
		return nil, err
	}
	if aliases := m.AliasesOf(v.Version); len(aliases) > 0 && !force {
		return nil, streams.Errorf(streams.CodeFailedPrecondition, "model %s version %s is aliased as %s; move the alias first or force", model, v.Version, strings.Join(aliases, ", "))
	}
	state := m.clone()
	state.Versions = slices.DeleteFunc(state.Versions, func(x Version) bool { return x.Version == v.Version })
	for a, target := range state.Aliases {
		if target == v.Version {
			delete(state.Aliases, a)
		}
	}
	if err := r.append(ctx, Event{Type: VersionDeleted, Model: model, Version: v.Version, At: time.Now().UTC(), State: state}); err != nil {
		return nil, err
	}
	keys := []string{manifestKey(model, v.Version)}
	for _, f := range v.Files {
		keys = append(keys, ObjectKey(model, v.Version, f.Path))
	}
	r.cleanup(keys)
	return state, nil
}

// Open streams one file of a version from the store.
func (r *Registry) Open(ctx context.Context, v *Version, f File) (io.ReadCloser, error) {
	if r.cfg.Store == nil {
		return nil, ErrReadOnly
	}
	rc, _, err := r.cfg.Store.Get(ctx, ObjectKey(v.Model, v.Version, f.Path))
	if errors.Is(err, blob.ErrNotFound) {
		return nil, streams.Errorf(streams.CodeNotFound, "model %s version %s: file %s is missing from the store", v.Model, v.Version, f.Path)
	}
	if err != nil {
		return nil, storeError("read "+f.Path, err)
	}
	return rc, nil
}

// Sync waits, bounded by ctx, until every event written before the call
// is applied (Run must be running).
func (r *Registry) Sync(ctx context.Context) error { return r.log.Sync(ctx) }
