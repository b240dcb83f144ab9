package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/sluice-serve/sluice/gateway"
	"github.com/sluice-serve/sluice/gateway/audit"
	"github.com/sluice-serve/sluice/platform/metrics"
	"github.com/sluice-serve/sluice/registry"
	"github.com/sluice-serve/sluice/registry/blob"
	"github.com/sluice-serve/sluice/streams"
)

// runGateway runs a gateway instance on its own against any brokers: it
// follows the apps topic for routes (running nothing), owns a reply topic,
// and serves REST and gRPC. Several instances share the brokers without
// sharing replies.
func runGateway(ctx context.Context, args []string, env Env) error {
	fs := newFlags("gateway", env)
	httpAddr := fs.envString("http", "HTTP_ADDR", "127.0.0.1:8000", "REST listen address (gRPC is served there too)")
	grpcAddr := fs.envString("grpc", "GRPC_ADDR", "127.0.0.1:9000", "gRPC listen address")
	cluster := clusterFlags(fs)
	limits := limitFlags(fs)
	s3 := s3Flags(fs)
	claimThreshold := claimFlags(fs)
	security := securityFlags(fs)
	accessLog := accessLogFlag(fs, env)
	if err := parse(fs, args); err != nil {
		return err
	}
	sec, err := security() // a file that does not load refuses to start
	if err != nil {
		return err
	}
	if err := sec.checkExposure("gateway", env.Log, *httpAddr, *grpcAddr); err != nil {
		return err
	}
	bs, namer, err := cluster()
	if err != nil {
		return err
	}
	hl, gl, err := listen(*httpAddr, *grpcAddr)
	if err != nil {
		return err
	}
	// The blob store the nodes read weights from (--s3-endpoint) carries
	// the values too large for a record (claim checks); without one, a
	// value over the broker's limit fails naming how to configure it.
	var store blob.Store
	if s3c := withS3Env(*s3, env); s3c.Endpoint != "" {
		if store, err = blob.NewS3(ctx, s3c, env.Log); err != nil {
			hl.Close()
			gl.Close()
			return err
		}
	}
	lim := limits().WithDefaults()
	claims, err := openClaims(store, *claimThreshold, claimLimit(lim))
	if err != nil {
		hl.Close()
		gl.Close()
		return err
	}
	instance := "gw-" + streams.Instance()
	mreg := metrics.NewRegistry()
	caller, err := streams.NewCaller(ctx, bs, namer, instance, env.Log, streams.WithClaims(claims), streams.WithClientOpts(metrics.Kafka(mreg, "gateway")))
	if err != nil {
		hl.Close()
		gl.Close()
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		caller.Close(cctx)
		cancel()
	}()
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Every gateway sweeps the claims that expired: on Kubernetes (gateway,
	// replica pods, autoscaler) nothing else does.
	sweepDone := make(chan struct{})
	go func() { defer close(sweepDone); sweepClaims(runCtx, claims, lim.MaxTimeout, env.Log) }()
	defer func() { cancel(); <-sweepDone }()
	authDone := sec.watch(runCtx, env.Log)
	defer func() { cancel(); <-authDone }()
	// The registry (models by name, and its API): it follows the
	// registry's events; writes need the store the nodes read weights
	// from (--s3-endpoint), without which it lists and resolves only.
	var regStore registry.Store
	if store != nil {
		regStore = store
	}
	reg, err := followRegistry(ctx, runCtx, registry.Config{Brokers: bs, Namer: namer, Store: regStore, Log: env.Log})
	var fw followed
	if err == nil {
		fw, err = followStatus(runCtx, bs, namer, env)
	}
	var ctl *control
	if err == nil {
		ctl, err = openControl(ctx, runCtx, bs, namer, resolver(env.Registry, reg, false), reg, fw, env)
	}
	var trail *audit.Trail
	var auditDone <-chan struct{}
	if err == nil {
		trail, auditDone, err = openAudit(ctx, runCtx, bs, namer, instance, env.Log)
	}
	if err != nil {
		hl.Close()
		gl.Close()
		return err
	}
	defer func() { cancel(); <-auditDone }()
	gw := gateway.New(gateway.Config{Caller: caller, Namer: namer, Control: ctl.status, Models: reg, Reports: fw.reports, Nodes: fw.nodes, Limits: lim, Log: env.Log, AccessLog: accessLog(), Auth: sec.tokens, JWT: sec.jwt, Audit: trail, Metrics: mreg})
	registryAPI := registry.NewService(reg, gateway.GRPCError)
	f, err := startFront(ctx, gw, hl, gl, sec.tls, registryAPI.Register)
	if err != nil {
		return err
	}
	defer f.close()
	f.setReady(true)
	fmt.Fprintf(env.Stdout, "sluice gateway: REST on %s://%s, gRPC on %s (brokers %v)\n", sec.scheme(), hl.Addr(), gl.Addr(), bs)
	select {
	case <-ctx.Done():
		return nil
	case err := <-f.done:
		return err
	}
}
