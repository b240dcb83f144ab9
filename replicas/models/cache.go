package models

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-serve/sluice/registry"
	"github.com/sluice-serve/sluice/streams"
)

// Source is where the cache fetches artifacts: the registry.
type Source interface {
	Version(model, version string) (*registry.Version, error)
	Open(ctx context.Context, v *registry.Version, f registry.File) (io.ReadCloser, error)
}

// Config bounds a cache.
type Config struct {
	Dir          string // disk cache; one directory per version
	MaxModels    int    // loaded at once; default 3
	MemoryBudget int64  // bytes loaded at once; 0: no budget
	DiskBudget   int64  // bytes on disk; 0: no budget
	// FailureHold is how long a version that failed to load for a reason
	// other than an unreachable store (a corrupt artifact, a runtime error)
	// stays failed before a request tries again; default 30s.
	FailureHold time.Duration
	Log         *slog.Logger
	// OnChange, when set, is called (not under a lock) after a load, an
	// eviction or a failure.
	OnChange func()
}

// Cache holds loaded models, least recently used first out. One download
// and one load per version however many requests want it at once; a
// version whose artifact is on disk but no longer in the registry's store
// still loads from disk. Cache.mu guards entries, the LRU list and every
// entry's fields but ready.
type Cache struct {
	cfg      Config
	src      Source
	runtimes Runtimes

	mu      sync.Mutex
	entries map[string]*entry // by "model/version"
	lru     *list.List        // of *entry, most recent at the front, loaded only
	memory  int64

	stats Stats
}

// Stats count what the cache did.
type Stats struct {
	Hits, Misses, Loads, Evictions, Failures atomic.Int64
}

type entry struct {
	key   string
	v     *registry.Version
	ready chan struct{} // closed when loading ends
	model Loaded
	err   error // why it failed to load
	elem  *list.Element
	size  int64
	users int       // requests using it now; not evicted while > 0
	drop  bool      // unload as soon as no request uses it
	until time.Time // a failed entry answers its error until then

	fetched, loadTook time.Duration // download (0 from disk) and runtime load
}

// NewCache creates a cache over a source and runtimes.
func NewCache(cfg Config, src Source, runtimes Runtimes) (*Cache, error) {
	if cfg.MaxModels <= 0 {
		cfg.MaxModels = 3
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.FailureHold <= 0 {
		cfg.FailureHold = 30 * time.Second
	}
	if cfg.OnChange == nil {
		cfg.OnChange = func() {}
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("model cache dir: %w", err)
	}
	return &Cache{cfg: cfg, src: src, runtimes: runtimes, entries: map[string]*entry{}, lru: list.New()}, nil
}

// Stats returns the cache's counters.
func (c *Cache) Stats() *Stats { return &c.stats }

// Loaded lists the versions loaded now, most recent first.
func (c *Cache) Loaded() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for e := c.lru.Front(); e != nil; e = e.Next() {
		out = append(out, e.Value.(*entry).key)
	}
	return out
}

// Loading lists the versions being downloaded or loaded now.
func (c *Cache) Loading() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for k, e := range c.entries {
		if e.elem == nil && e.err == nil {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// Failed maps the versions that failed to load, and are held failed now,
// to the reason.
func (c *Cache) Failed() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]string{}
	now := time.Now()
	for k, e := range c.entries {
		if e.err != nil && now.Before(e.until) {
			out[k] = e.err.Error()
		}
	}
	return out
}

// Timings returns how long the loaded model at version took to fetch (0
// when it was already on disk) and to load.
func (c *Cache) Timings(model, version string) (fetch, load time.Duration, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[model+"/"+version]
	if e == nil || e.elem == nil {
		return 0, 0, false
	}
	return e.fetched, e.loadTook, true
}

// MemoryBytes is what the loaded models take, as the budget counts it.
func (c *Cache) MemoryBytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.memory
}

// IsLoaded reports whether model at version is loaded and ready.
func (c *Cache) IsLoaded(model, version string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[model+"/"+version]
	return e != nil && e.elem != nil
}

// HeldFailed reports whether model at version failed to load and is held
// failed now (a request gets the failure without a new attempt).
func (c *Cache) HeldFailed(model, version string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[model+"/"+version]
	return e != nil && e.err != nil && time.Now().Before(e.until)
}

// Unload unloads model at version now, or when the last request using it
// is done; a later request loads it again.
func (c *Cache) Unload(model, version string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[model+"/"+version]; e != nil && e.elem != nil {
		e.drop = true
		c.evictLocked()
	}
}

// Acquire returns the loaded model for model at version (a number,
// "@alias", or "" for the highest), loading it if needed. The caller calls
// release when its request is done with it.
func (c *Cache) Acquire(ctx context.Context, model, version string) (Loaded, *registry.Version, func(), error) {
	v, err := c.src.Version(model, version)
	if err != nil {
		return nil, nil, nil, err
	}
	return c.AcquireVersion(ctx, v)
}

// AcquireVersion is Acquire for a version already looked up.
func (c *Cache) AcquireVersion(ctx context.Context, v *registry.Version) (Loaded, *registry.Version, func(), error) {
	key := v.Model + "/" + v.Version
	c.mu.Lock()
	e := c.entries[key]
	if e != nil && e.err != nil && !time.Now().Before(e.until) { // held long enough: try again
		delete(c.entries, key)
		e = nil
	}
	if e == nil {
		c.stats.Misses.Add(1)
		e = &entry{key: key, v: v, ready: make(chan struct{})}
		c.entries[key] = e
		e.users++
		c.mu.Unlock()
		go c.load(e) // off the request: a canceled request does not abort a load others wait for
	} else {
		c.stats.Hits.Add(1)
		e.users++
		if e.elem != nil {
			c.lru.MoveToFront(e.elem)
		}
		c.mu.Unlock()
	}
	release := func() {
		c.mu.Lock()
		e.users--
		c.evictLocked()
		c.mu.Unlock()
	}
	select {
	case <-e.ready:
	case <-ctx.Done():
		release()
		return nil, nil, nil, streams.ContextError(ctx.Err())
	}
	if e.err != nil {
		release()
		return nil, nil, nil, e.err
	}
	return e.model, v, release, nil
}

// load downloads (if not on disk) and loads one version.
func (c *Cache) load(e *entry) {
	ctx := context.Background()
	start := time.Now()
	dir, downloaded, err := c.fetch(ctx, e.v)
	fetched := time.Since(start)
	if !downloaded {
		fetched = 0 // on disk already: the Stat is not a fetch
	}
	var m Loaded
	if err == nil {
		var rt Runtime
		if rt, err = c.runtimes.For(e.v.Format); err == nil {
			m, err = c.safeLoad(ctx, rt, dir, e.v)
		}
	}
	e.fetched, e.loadTook = fetched, time.Since(start)-fetched
	c.mu.Lock()
	if err != nil {
		c.stats.Failures.Add(1)
		e.err = fmt.Errorf("model %s version %s failed to load: %w", e.v.Model, e.v.Version, err)
		if streams.CodeOf(err) != streams.CodeUnavailable { // not the store being down: held failed
			e.until = time.Now().Add(c.cfg.FailureHold)
			e.err = &streams.Error{Code: streams.CodeFailedPrecondition, Msg: e.err.Error(), Err: err}
		}
		c.cfg.Log.Warn("model load failed", "model", e.v.Model, "version", e.v.Version, "err", err)
	} else {
		c.stats.Loads.Add(1)
		e.model = m
		e.size = e.v.Size
		if s, ok := m.(Sizer); ok {
			e.size = s.MemoryBytes()
		}
		c.memory += e.size
		e.elem = c.lru.PushFront(e)
		c.cfg.Log.Info("model loaded", "model", e.v.Model, "version", e.v.Version, "bytes", e.size, "fetch", e.fetched, "load", e.loadTook)
	}
	close(e.ready)
	c.evictLocked()
	c.mu.Unlock()
	c.cfg.OnChange()
}

// safeLoad turns a runtime panic into an error: one model's broken load
// must not take the replica down.
func (c *Cache) safeLoad(ctx context.Context, rt Runtime, dir string, v *registry.Version) (m Loaded, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("runtime panicked loading: %v", p)
		}
	}()
	return rt.Load(ctx, dir, v)
}

// evictLocked unloads least recently used models past the limits, never
// one in use; c.mu is held.
func (c *Cache) evictLocked() {
	for e := c.lru.Back(); e != nil; {
		prev := e.Prev()
		ent := e.Value.(*entry)
		if ent.users == 0 && (ent.drop || c.over()) {
			c.lru.Remove(e)
			ent.elem = nil
			delete(c.entries, ent.key)
			c.memory -= ent.size
			c.stats.Evictions.Add(1)
			go func(m Loaded, key string) { // unload off the lock
				if err := m.Close(); err != nil {
					c.cfg.Log.Warn("model unload failed", "model", key, "err", err)
				}
			}(ent.model, ent.key)
			c.cfg.Log.Info("model evicted", "model", ent.key)
			go c.cfg.OnChange()
		}
		e = prev
	}
}

// over reports whether the loaded models are past the limits, not
// counting those unloaded (Unload) but still in use: they go as soon as
// their requests end, and must not push out the version replacing them.
func (c *Cache) over() bool {
	n, memory := c.lru.Len(), c.memory
	for e := c.lru.Front(); e != nil; e = e.Next() {
		if ent := e.Value.(*entry); ent.drop {
			n, memory = n-1, memory-ent.size
		}
	}
	return n > c.cfg.MaxModels || c.cfg.MemoryBudget > 0 && memory > c.cfg.MemoryBudget && n > 1
}

// fetch makes sure the version's files are on disk, verified, and returns
// the directory; downloaded is false when they were on disk already.
// Files are written to a temporary directory and renamed into place whole,
// so a partial download is never loaded.
func (c *Cache) fetch(ctx context.Context, v *registry.Version) (dir string, downloaded bool, err error) {
	dir = filepath.Join(c.cfg.Dir, v.Model, v.Version)
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err == nil {
		return dir, false, nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", true, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".download-")
	if err != nil {
		return "", true, err
	}
	defer os.RemoveAll(tmp)
	for _, f := range v.Files {
		if err := c.download(ctx, v, f, filepath.Join(tmp, filepath.FromSlash(f.Path))); err != nil {
			return "", true, err
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o644); err != nil {
		return "", true, err
	}
	os.RemoveAll(dir) // a stale incomplete copy
	if err := os.Rename(tmp, dir); err != nil {
		return "", true, err
	}
	c.trimDisk(dir)
	return dir, true, nil
}

func (c *Cache) download(ctx context.Context, v *registry.Version, f registry.File, dst string) error {
	rc, err := c.src.Open(ctx, v, f)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	h := sha256.New()
	buf := copyBufs.Get().(*[]byte)
	n, err := io.CopyBuffer(io.MultiWriter(out, h), struct{ io.Reader }{rc}, *buf) // the struct hides WriterTo: the buffer is used
	copyBufs.Put(buf)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil { // the store or the network, most likely: worth another try
		return &streams.Error{Code: streams.CodeUnavailable, Msg: fmt.Sprintf("download %s: %v", f.Path, err), Err: err}
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != f.Size || got != f.SHA256 {
		return streams.Errorf(streams.CodeInternal, "download %s: got %d bytes with sha256 %s, the registry says %d bytes with %s", f.Path, n, got, f.Size, f.SHA256)
	}
	return nil
}

// copyBufs are download buffers: large reads keep the per-call overhead of
// the store's reader and the hash small.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// DirSize is the total size of the regular files under dir (what a
// version's artifact takes on disk).
func DirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// trimDisk removes the least recently fetched versions (by directory
// modification time) past the disk budget, never keep or a loaded one.
func (c *Cache) trimDisk(keep string) {
	if c.cfg.DiskBudget <= 0 {
		return
	}
	type verDir struct {
		path string
		size int64
		mod  int64
	}
	var dirs []verDir
	var total int64
	models, _ := os.ReadDir(c.cfg.Dir)
	for _, m := range models {
		vers, _ := os.ReadDir(filepath.Join(c.cfg.Dir, m.Name()))
		for _, vd := range vers {
			p := filepath.Join(c.cfg.Dir, m.Name(), vd.Name())
			size := DirSize(p)
			info, err := vd.Info()
			if err != nil {
				continue
			}
			dirs = append(dirs, verDir{path: p, size: size, mod: info.ModTime().UnixNano()})
			total += size
		}
	}
	for total > c.cfg.DiskBudget && len(dirs) > 0 {
		oldest := 0
		for i := range dirs {
			if dirs[i].mod < dirs[oldest].mod {
				oldest = i
			}
		}
		d := dirs[oldest]
		dirs = append(dirs[:oldest], dirs[oldest+1:]...)
		if d.path == keep || c.isLoaded(d.path) {
			continue
		}
		if err := os.RemoveAll(d.path); err == nil {
			total -= d.size
		}
	}
}

func (c *Cache) isLoaded(path string) bool {
	rel, err := filepath.Rel(c.cfg.Dir, path)
	if err != nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.entries[filepath.ToSlash(rel)]
	return ok
}

// Close unloads every model.
func (c *Cache) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for e := c.lru.Front(); e != nil; e = e.Next() {
		if err := e.Value.(*entry).model.Close(); err != nil {
			c.cfg.Log.Warn("model unload failed", "err", err)
		}
	}
	c.lru.Init()
	c.entries = map[string]*entry{}
}

// ErrNoModel is returned for a request that names no model.
var ErrNoModel = errors.New("request names no model")

// SetLimits changes the limits of a running cache: maxModels when > 0,
// the memory budget when >= 0 (0: none). Models past a lowered limit are
// unloaded as soon as no request uses them.
func (c *Cache) SetLimits(maxModels int, memoryBudget int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if maxModels > 0 {
		c.cfg.MaxModels = maxModels
	}
	if memoryBudget >= 0 {
		c.cfg.MemoryBudget = memoryBudget
	}
	c.evictLocked()
}
