package cli

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-serve/sluice/platform/metrics"
	"github.com/sluice-serve/sluice/replicas"
	"github.com/sluice-serve/sluice/replicas/models"
)

// processMetrics is what one process exports: its registry (Go runtime,
// process), and the collectors of the replicas and model caches it runs
// (empty in a process that runs none).
type processMetrics struct {
	reg      *prometheus.Registry
	replicas *replicas.Metrics
	models   *models.Metrics
}

func newProcessMetrics() processMetrics {
	m := processMetrics{reg: metrics.NewRegistry(), replicas: replicas.NewMetrics(), models: models.NewMetrics()}
	m.reg.MustRegister(m.replicas, m.models)
	return m
}

// replica gives rc the process's replica metrics and its client's Kafka
// metrics.
func (m processMetrics) replica(rc *replicas.Config) {
	if m.replicas == nil { // not exported
		return
	}
	rc.Metrics = m.replicas
	rc.Opts = append(rc.Opts, metrics.Kafka(m.reg, "replica"))
}

// serveMetrics serves reg's /metrics at addr ("" serves none) and
// returns the address bound and the stop. It serves without
// authentication, read-only, and warns when addr is not loopback.
func serveMetrics(addr string, reg prometheus.Gatherer, log *slog.Logger) (string, func(), error) {
	if addr == "" {
		return "", func() {}, nil
	}
	if !loopback(addr) && log != nil {
		log.Warn("serving /metrics without authentication on an address other than loopback: its counters, and the names of applications and deployments, are readable by anyone who reaches it; keep it on a network only the scraper reaches", "addr", addr)
	}
	srv, err := metrics.Listen(addr, reg)
	if err != nil {
		return "", nil, err
	}
	return srv.Addr(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Close(ctx)
	}, nil
}

// metricsFlag is the --metrics-addr of a process that serves its
// /metrics on a listener of its own (node, autoscaler).
func metricsFlag(fs *flagSet, what string) *string {
	return fs.envString("metrics-addr", "SLUICE_"+strings.ToUpper(what)+"_METRICS_ADDR", "", "serve this "+what+"'s /metrics at host:port (default: none)")
}
