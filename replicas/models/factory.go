package models

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
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
	CacheDir string // each replica caches under CacheDir/<app>/<deployment>/<n>
	Log      *slog.Logger

	seq atomic.Int64
}

// Build returns the handler of one replica of deployment d of app.
func (f *Factory) Build(ctx context.Context, app *spec.App, d spec.Deployment) (replicas.Handler, error) {
	log := f.Log
	if log == nil {
		log = slog.Default()
	}
	n := f.seq.Add(1)
	replica := streams.Instance() + "-" + strconv.FormatInt(n, 10)
	dir := filepath.Join(f.CacheDir, app.Name, d.Name, strconv.FormatInt(n, 10))
	rep, err := NewReporter(ctx, f.Brokers, f.Namer.Status(), Report{App: app.Name, Deployment: d.Name, Replica: replica}, log)
	if err != nil {
		return nil, err
	}
	cfg := Config{Dir: dir, MaxModels: d.MaxModelsPerReplica, Log: log.With("deployment", d.Name), OnChange: rep.Poke}
	if m := d.Model; m != nil {
		cfg.MemoryBudget, cfg.DiskBudget = int64(m.MemoryBudget), int64(m.DiskBudget)
	}
	cache, err := NewCache(cfg, f.Catalog, f.Runtimes)
	if err != nil {
		rep.Close(ctx)
		return nil, fmt.Errorf("deployment %s: %w", d.Name, err)
	}
	s := NewServer(ServerConfig{Deployment: d.Name, Serving: d.Model, Catalog: f.Catalog, Cache: cache, Log: cfg.Log})
	if len(d.UserConfig) > 0 {
		if err := s.Reconfigure(ctx, d.UserConfig); err != nil {
			rep.Close(ctx)
			return nil, err
		}
	}
	s.reporter = rep
	rep.Start(cache)
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
