package models

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/replicas"
	"github.com/sluice-serve/sluice/streams"
)

// Factory builds the handlers of `kind: model` deployments: one Server,
// cache and reporter per replica.
type Factory struct {
	Brokers  []string
	Namer    streams.Namer
	Catalog  Catalog
	Runtimes Runtimes
	CacheDir string // each replica caches under CacheDir/<app>/<deployment>/<slot>
	Log      *slog.Logger
	Metrics  *Metrics // exports each replica's cache; nil: not exported

	seq   atomic.Int64
	mu    sync.Mutex
	slots map[string]map[int]bool // by app/deployment: cache directory slots in use
}

// takeSlot returns the lowest cache directory slot of a deployment not in
// use, so that a replica started in place of a stopped one finds its
// downloads on disk; give it back with the returned func.
func (f *Factory) takeSlot(app, dep string) (int, func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.slots == nil {
		f.slots = map[string]map[int]bool{}
	}
	key := app + "/" + dep
	used := f.slots[key]
	if used == nil {
		used = map[int]bool{}
		f.slots[key] = used
	}
	n := 0
	for used[n] {
		n++
	}
	used[n] = true
	return n, func() {
		f.mu.Lock()
		delete(used, n)
		f.mu.Unlock()
	}
}

// Build returns the handler of one replica of deployment d of app.
func (f *Factory) Build(ctx context.Context, app *spec.App, d spec.Deployment) (replicas.Handler, error) {
	log := f.Log
	if log == nil {
		log = slog.Default()
	}
	replica := streams.Instance() + "-" + strconv.FormatInt(f.seq.Add(1), 10)
	slot, free := f.takeSlot(app.Name, d.Name)
	dir := filepath.Join(f.CacheDir, app.Name, d.Name, strconv.Itoa(slot))
	rep, err := NewReporter(ctx, f.Brokers, f.Namer.Status(), Report{App: app.Name, Deployment: d.Name, Replica: replica}, log)
	if err != nil {
		free()
		return nil, err
	}
	cfg := Config{Dir: dir, MaxModels: d.MaxModelsPerReplica, Log: log.With("deployment", d.Name), OnChange: rep.Poke}
	if m := d.Model; m != nil {
		cfg.MemoryBudget, cfg.DiskBudget = int64(m.MemoryBudget), int64(m.DiskBudget)
	}
	cache, err := NewCache(cfg, f.Catalog, f.Runtimes)
	if err != nil {
		rep.Close(ctx)
		free()
		return nil, fmt.Errorf("deployment %s: %w", d.Name, err)
	}
	s := NewServer(ServerConfig{Deployment: d.Name, Serving: d.Model, Catalog: f.Catalog, Cache: cache, Log: cfg.Log})
	if len(d.UserConfig) > 0 {
		if err := s.Reconfigure(ctx, d.UserConfig); err != nil {
			rep.Close(ctx)
			free()
			return nil, err
		}
	}
	s.reporter, s.freeSlot = rep, free
	rep.Start(cache)
	f.Metrics.add(rep)
	return s, nil
}

// closeReporter removes the replica's report. The cache directory stays:
// a replica started again in its place finds the artifacts on disk.
func (s *Server) closeReporter() {
	if s.reporter != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s.reporter.Close(ctx)
		cancel()
	}
}
