package cli

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluice-serve/sluice/autoscaler"
	"github.com/sluice-serve/sluice/autoscaler/placement"
	"github.com/sluice-serve/sluice/gateway"
	"github.com/sluice-serve/sluice/gateway/auth"
	"github.com/sluice-serve/sluice/gateway/certs"
	"github.com/sluice-serve/sluice/platform/appstore"
	"github.com/sluice-serve/sluice/platform/controller"
	"github.com/sluice-serve/sluice/platform/metrics"
	"github.com/sluice-serve/sluice/platform/serve"
	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/registry"
	"github.com/sluice-serve/sluice/registry/blob"
	"github.com/sluice-serve/sluice/replicas"
	"github.com/sluice-serve/sluice/replicas/models"
	"github.com/sluice-serve/sluice/replicas/node"
	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/claim"
	"github.com/sluice-serve/sluice/streams/kafkaauth"
)

// DevConfig configures a platform in one process.
type DevConfig struct {
	HTTPAddr  string   // default 127.0.0.1:8000; port 0 picks a free one
	GRPCAddr  string   // default 127.0.0.1:9000; port 0 picks a free one
	Brokers   []string // external brokers; empty starts the embedded one
	KafkaPort int      // embedded broker port; 0 picks a free one
	DataDir   string   // embedded broker data directory; empty keeps data in memory
	// Embedded configures the embedded broker further (its TLS listener
	// and SASL users: streams.WithTLS, streams.WithSASLUser).
	Embedded []streams.EmbeddedOpt
	// Kafka is how every client of the platform connects to the brokers
	// (streams.Secure); the zero Config leaves what the process
	// registered for them (kafkaFlags) as it is.
	Kafka kafkaauth.Config
	// Retention is the most the embedded broker keeps of each partition
	// of a topic that is not compacted (nil: streams.EmbeddedRetention;
	// a zero field: no bound).
	Retention *streams.Retention
	// TrimConsumed deletes from the embedded broker the records every
	// consumer group reading them has committed (streams.TrimConsumed).
	TrimConsumed bool
	Prefix       string        // topic and group name prefix; default "sluice"
	Builtin      bool          // deploy the applications built into the registry
	S3           blob.S3Config // model weights in S3/MinIO when S3.Endpoint is set; else a local directory
	BlobDir      string        // the local directory (default: <DataDir>/blobs, or a temporary one)
	// ClaimThreshold: values over it travel through the blob store as
	// claim checks (default claim.DefaultThreshold).
	ClaimThreshold int
	// ModelCacheDir is where model replicas keep downloaded weights
	// (default: <DataDir>/models, or a temporary one).
	ModelCacheDir string
	Apps          []*spec.App
	Registry      *serve.Registry
	// NoMetrics exports the gateway's own series only: no replica, model
	// cache or Kafka client metrics (the baseline of what they cost).
	NoMetrics bool
	// Limits bound what callers can take of the gateway (zero fields:
	// gateway's defaults).
	Limits gateway.Limits
	Log    *slog.Logger
	// AccessLog, when set, gets the gateway's line per call (--access-log).
	AccessLog *slog.Logger
	// Auth, when set, holds the bearer tokens the gateway requires
	// (--auth-file); JWT, the key set of the JWTs it accepts
	// (--jwks-file); with neither it serves everyone.
	Auth *auth.Keeper
	JWT  *auth.JWTVerifier
	// TLS, when set, is the certificate both listeners serve TLS with
	// (--tls-cert); nil: clear text.
	TLS *certs.Keeper
}

// Dev is a running platform: embedded or external brokers, the controller
// with its replicas, and the HTTP front door.
type Dev struct {
	Addr     string   // where REST listens
	GRPCAddr string   // where gRPC listens
	Brokers  []string // where Kafka is

	embedded *streams.Embedded
	stopTrim context.CancelFunc
	blobDir  string // the registry's local directory, when no S3
	caller   *streams.Caller
	claims   *claim.Claims
	// replicaArgs are the arguments of a replica process it starts (a
	// code bundle's).
	replicaArgs func(app, dep, slot, revision string) []string
	control     *control
	local       *controller.Local
	reconciler  *controller.Reconciler
	registry    *registry.Registry
	store       blob.Store
	tmpDirs     []string // temporary directories to remove on close
	front       *front
	auditDone   <-chan struct{} // closed once the audit trail flushed
	cancel      context.CancelFunc
	stopped     chan struct{} // closed when the controller has stopped its replicas
	done        chan error
}

// StartDev starts the platform and deploys its applications. Close stops it.
func StartDev(ctx context.Context, cfg DevConfig) (_ *Dev, err error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = "127.0.0.1:8000"
	}
	if cfg.GRPCAddr == "" {
		cfg.GRPCAddr = "127.0.0.1:9000"
	}
	namer, err := streams.NewNamer(cfg.Prefix)
	if err != nil {
		return nil, usageError("--prefix: %v", err)
	}
	d := &Dev{Brokers: cfg.Brokers, done: make(chan error, 1)}
	defer func() {
		if err != nil {
			d.shutdown()
		}
	}()
	if len(d.Brokers) == 0 {
		ret := streams.EmbeddedRetention
		if cfg.Retention != nil {
			ret = *cfg.Retention
		}
		if d.embedded, err = streams.StartEmbedded(cfg.KafkaPort, cfg.DataDir, append([]streams.EmbeddedOpt{streams.WithRetention(ret)}, cfg.Embedded...)...); err != nil {
			return nil, err
		}
		d.Brokers = d.embedded.Brokers()
		if cfg.TrimConsumed {
			tctx, stop := context.WithCancel(context.Background())
			d.stopTrim = stop
			go d.embedded.TrimConsumed(tctx, streams.EmbeddedCleanInterval, cfg.Log)
		}
		cfg.Log.Info("embedded broker started", "brokers", d.Brokers, "data_dir", cfg.DataDir, "retention", ret.Time, "retention_bytes", ret.Bytes)
	}
	if !cfg.Kafka.IsZero() {
		if err := streams.Secure(d.Brokers, cfg.Kafka); err != nil {
			return nil, err
		}
	}
	store, err := d.openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	d.store = store
	// The claims carry what the gateway takes (--max-body), to replicas too.
	claimMax := claimLimit(cfg.Limits)
	if d.claims, err = openClaims(store, cmp.Or(cfg.ClaimThreshold, claim.DefaultThreshold), claimMax); err != nil {
		return nil, err
	}
	pm := newProcessMetrics()
	callerOpts := []streams.CallerOption{streams.WithClaims(d.claims), streams.WithClientOpts(metrics.Kafka(pm.reg, "dev"))}
	if cfg.NoMetrics {
		pm = processMetrics{reg: pm.reg}
		callerOpts = callerOpts[:1]
	}
	if d.caller, err = streams.NewCaller(ctx, d.Brokers, namer, "dev-"+streams.Instance(), cfg.Log, callerOpts...); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	if d.registry, err = followRegistry(ctx, runCtx, registry.Config{Brokers: d.Brokers, Namer: namer, Store: store, Log: cfg.Log}); err != nil {
		return nil, err
	}
	fw, err := followStatus(runCtx, d.Brokers, namer, Env{Log: cfg.Log})
	if err != nil {
		return nil, err
	}
	trail, auditDone, err := openAudit(ctx, runCtx, d.Brokers, namer, "dev-"+streams.Instance(), cfg.Log)
	if err != nil {
		return nil, err
	}
	d.auditDone = auditDone
	cacheDir, err := d.modelCacheDir(cfg)
	if err != nil {
		return nil, err
	}
	d.replicaArgs = func(app, dep, slot, revision string) []string {
		args := []string{"replica", "--brokers", strings.Join(d.Brokers, ","), "--prefix", namer.Prefix(),
			"--app", app, "--deployment", dep, "--slot", slot, "--revision", revision,
			"--code-cache", filepath.Join(cacheDir, "code"), "--model-cache", filepath.Join(cacheDir, app, dep, slot)}
		args = append(args, claimArgs(cmp.Or(cfg.ClaimThreshold, claim.DefaultThreshold), claimMax)...)
		if cfg.S3.Endpoint != "" {
			return append(args, "--s3-endpoint", cfg.S3.Endpoint, "--s3-bucket", cfg.S3.Bucket, "--s3-prefix", cfg.S3.Prefix, "--s3-tls="+strconv.FormatBool(cfg.S3.TLS), "--s3-ca-file", cfg.S3.CAFile)
		}
		return append(args, "--blob-dir", d.blobDir)
	}
	mf := &models.Factory{Brokers: d.Brokers, Namer: namer, Catalog: d.registry, Runtimes: runtimes(), CacheDir: cacheDir, Log: cfg.Log, Metrics: pm.models}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("dev: cannot find this binary to run bundle replicas: %w", err)
	}
	ctl, err := openControl(ctx, runCtx, d.Brokers, namer, resolver(cfg.Registry, d.registry, true), d.registry, fw, Env{Log: cfg.Log})
	if err != nil {
		return nil, err
	}
	d.control = ctl
	pub, err := replicas.NewPublisher(ctx, d.Brokers, namer.Status(), cfg.Log)
	if err != nil {
		return nil, err
	}
	// Replicas are goroutines of this process (Local); the autoscaler
	// sizes every deployment; the placer holds GPU capacity on this
	// machine, whose node agent reports it.
	d.local = controller.NewLocal(controller.LocalConfig{
		Brokers: d.Brokers, Namer: namer, Registry: cfg.Registry, Caller: d.caller, Claims: d.claims, Publisher: pub, Models: mf, Log: cfg.Log, Replica: pm.replica, Metrics: pm.reg,
		Held: func(d spec.Deployment) bool { return d.Resources.GPU > 0 },
		Command: func(app, dep, slot, revision string) *exec.Cmd {
			cmd := exec.Command(self, d.replicaArgs(app, dep, slot, revision)...)
			cmd.Env = append(append(os.Environ(), kafkaEnv(d.Brokers)...), "SLUICE_S3_ACCESS_KEY="+cfg.S3.AccessKey, "SLUICE_S3_SECRET_KEY="+cfg.S3.SecretKey, localCodeEnv+"=1",
				metrics.AddrEnv+"=127.0.0.1:0") // its /metrics, named in its report
			return cmd
		},
	})
	agent, err := node.New(ctx, node.Config{
		Brokers: d.Brokers, Status: namer.Status(), CPU: -1, Memory: -1,
		ModelCache: cacheDir, Runner: node.Counted{Actuator: d.local}, Log: cfg.Log,
	})
	if err != nil {
		return nil, err
	}
	placer, err := placement.NewPlacer(ctx, placement.PlacerConfig{Brokers: d.Brokers, Status: namer.Status(), Local: agent, Log: cfg.Log})
	if err != nil {
		return nil, err
	}
	scaler, err := autoscaler.New(ctx, autoscaler.Config{
		Brokers: d.Brokers, Status: namer.Status(), Actuator: placer, Ongoing: d.local.Ongoing, Log: cfg.Log,
	})
	if err != nil {
		return nil, err
	}
	pm.reg.MustRegister(scaler)
	if d.reconciler, err = ctl.reconcile(ctx, d.Brokers, namer, Env{Log: cfg.Log}, func(ctx context.Context, apps []appstore.Applied) {
		d.local.Apply(ctx, apps)
		placer.SetRequests(controller.PlacementRequests(namer, specs(apps), true))
		scaler.Set(controller.ScaleTargets(namer, specs(apps)))
	}); err != nil {
		return nil, err
	}
	d.stopped = make(chan struct{})
	ctlDone := make(chan error, 1)
	go func() {
		defer close(d.stopped)
		var wg sync.WaitGroup
		for _, run := range []func(context.Context) error{scaler.Run, placer.Run, agent.Run} {
			wg.Go(func() { _ = run(runCtx) })
		}
		wg.Go(func() { sweepClaims(runCtx, d.claims, cfg.Limits.WithDefaults().MaxTimeout, cfg.Log) })
		pubCtx, stopPub := context.WithCancel(context.Background())
		pubDone := make(chan struct{})
		go func() { defer close(pubDone); pub.Run(pubCtx) }()
		<-runCtx.Done()
		wg.Wait()
		d.reconciler.Close()
		d.local.Close() // its replicas withdraw their reports: the publisher stops after
		stopPub()
		<-pubDone
		ctlDone <- nil
	}()

	// Bind now (a busy port fails fast) but serve only after the deploy, so
	// an early request waits in the backlog instead of finding no route.
	hl, gl, err := listen(cfg.HTTPAddr, cfg.GRPCAddr)
	if err != nil {
		return nil, err
	}
	d.Addr, d.GRPCAddr = hl.Addr().String(), gl.Addr().String()
	gw := gateway.New(gateway.Config{Caller: d.caller, Namer: namer, Control: ctl.status, Models: d.registry, Reports: fw.reports, Nodes: fw.nodes, Limits: cfg.Limits, Log: cfg.Log, AccessLog: cfg.AccessLog, Auth: cfg.Auth, JWT: cfg.JWT, Audit: trail, Metrics: pm.reg})
	apps := cfg.Apps
	if cfg.Builtin && cfg.Registry != nil {
		for _, a := range cfg.Registry.Apps() {
			apps = append(apps, a.Spec())
		}
	}
	if len(apps) > 0 {
		// Each application's topics are created as its record is applied
		// (about a second each on a broker that just started): the bound
		// grows with how many there are.
		dctx, dcancel := context.WithTimeout(ctx, 60*time.Second+time.Duration(len(apps))*3*time.Second)
		defer dcancel()
		if _, err := ctl.store.Deploy(dctx, apps...); err != nil {
			hl.Close()
			gl.Close()
			return nil, err
		}
		// Serve once the applications deployed at start answer: their
		// replicas start in the background (GPU ones wait to be placed).
		for _, a := range apps {
			for dctx.Err() == nil {
				if _, ready := ctl.status.Ready(a.Name); ready || slices.ContainsFunc(a.Deployments, func(d spec.Deployment) bool { return d.Resources.GPU > 0 }) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	registryAPI := registry.NewService(d.registry, gateway.GRPCError)
	if d.front, err = startFront(ctx, gw, hl, gl, cfg.TLS, registryAPI.Register); err != nil {
		return nil, err
	}
	go func() {
		select {
		case err := <-d.front.done:
			d.done <- err
		case err := <-ctlDone:
			d.done <- err
		}
	}()
	d.front.setReady(true)
	cfg.Log.Info("platform ready", "http", d.Addr, "grpc", d.GRPCAddr, "brokers", d.Brokers, "apps", len(apps))
	return d, nil
}

// Store is where the platform keeps model weights and claim checks.
func (d *Dev) Store() blob.Store { return d.store }

// Done reports a failure of the server or the controller.
func (d *Dev) Done() <-chan error { return d.done }

// Close stops the platform: HTTP first, then replicas (drained), the
// caller and the embedded broker.
func (d *Dev) Close() { d.shutdown() }

func (d *Dev) shutdown() {
	if d.front != nil {
		d.front.close()
	}
	if d.cancel != nil {
		d.cancel()
		if d.stopped != nil {
			select { // controller.Run returns after its replicas drained
			case <-d.stopped:
			case <-time.After(30 * time.Second):
			}
		}
		if d.auditDone != nil {
			<-d.auditDone // bounded by its flush
		}
	}
	if d.caller != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		d.caller.Close(ctx)
		cancel()
	}
	if d.embedded != nil {
		if d.stopTrim != nil {
			d.stopTrim()
		}
		d.embedded.Close()
	}
	for _, dir := range d.tmpDirs {
		os.RemoveAll(dir)
	}
}

// modelCacheDir is where model replicas download weights: <DataDir>/models,
// kept across restarts, or a temporary directory.
func (d *Dev) modelCacheDir(cfg DevConfig) (string, error) {
	if cfg.ModelCacheDir != "" {
		return cfg.ModelCacheDir, nil
	}
	if cfg.DataDir != "" {
		return filepath.Join(cfg.DataDir, "models"), nil
	}
	tmp, err := os.MkdirTemp("", "sluice-models-")
	if err != nil {
		return "", fmt.Errorf("model cache: %w", err)
	}
	d.tmpDirs = append(d.tmpDirs, tmp)
	return tmp, nil
}

// openStore opens the model store: MinIO/S3 when configured, else a local
// directory under the data dir (or a temporary one). Claims live there too.
func (d *Dev) openStore(ctx context.Context, cfg DevConfig) (blob.Store, error) {
	if cfg.S3.Endpoint != "" {
		return blob.NewS3(ctx, cfg.S3, cfg.Log)
	}
	dir := cfg.BlobDir
	switch {
	case dir != "":
	case cfg.DataDir != "":
		dir = filepath.Join(cfg.DataDir, "blobs")
	default:
		tmp, err := os.MkdirTemp("", "sluice-blobs-")
		if err != nil {
			return nil, err
		}
		d.tmpDirs, dir = append(d.tmpDirs, tmp), tmp
	}
	d.blobDir = dir
	return blob.NewDir(dir)
}

func runDev(ctx context.Context, args []string, env Env) error {
	fs := newFlags("dev", env)
	httpAddr := fs.envString("http", "HTTP_ADDR", "127.0.0.1:8000", "REST listen address (gRPC is served there too)")
	grpcAddr := fs.envString("grpc", "GRPC_ADDR", "127.0.0.1:9000", "gRPC listen address")
	brokers := fs.envString("brokers", "SLUICE_BROKERS", "", "Kafka brokers to use instead of the embedded one, comma-separated")
	port := fs.Int("kafka-port", 0, "port of the embedded broker (0: a free port)")
	dataDir := fs.String("data-dir", "", "keep the embedded broker's data in this directory across restarts")
	retention := fs.Duration("retention", streams.EmbeddedRetention.Time, "the embedded broker deletes records older than this from topics that are not compacted (0: no bound)")
	keepConsumed := fs.Bool("keep-consumed", false, "keep records every consumer group has processed in the embedded broker (by default they are deleted within seconds; retention still bounds the rest)")
	retentionBytes := fs.String("retention-bytes", spec.Bytes(streams.EmbeddedRetention.Bytes).String(), "the embedded broker keeps at most this much of each partition of a topic that is not compacted, e.g. 64MiB (0: no bound)")
	prefix := fs.String("prefix", "", "prefix of every topic and group name (default sluice)")
	builtin := fs.Bool("builtin", true, "deploy the applications built into this binary")
	stdinStops := fs.Bool("stop-on-stdin-close", false, "stop, as on SIGTERM, when standard input reaches its end: a parent holding the other end of a pipe stops it by exiting, however it exits")
	var files listFlag
	fs.Var(&files, "f", "deploy the applications of this YAML file at start (repeatable)")
	s3 := s3Flags(fs)
	blobDir := fs.String("blob-dir", "", "local directory for model weights (and claim checks) when no S3 endpoint is set")
	claimThreshold := claimFlags(fs)
	limits := limitFlags(fs)
	security := securityFlags(fs)
	secure := kafkaFlags(fs) // for --brokers; the embedded broker is plaintext
	accessLog := accessLogFlag(fs, env)
	if err := parse(fs, args); err != nil {
		return err
	}
	if bs := splitBrokers(*brokers); len(bs) > 0 {
		if err := secure(bs); err != nil {
			return err
		}
	} else {
		var given error
		fs.Visit(func(f *flag.Flag) {
			if strings.HasPrefix(f.Name, "kafka-") && f.Name != "kafka-port" {
				given = usageError("dev: --%s applies to --brokers; the embedded broker is plaintext", f.Name)
			}
		})
		if given != nil {
			return given
		}
	}
	sec, err := security() // a file that does not load refuses to start
	if err != nil {
		return err
	}
	if err := sec.checkExposure("dev", env.Log, *httpAddr, *grpcAddr); err != nil {
		return err
	}
	maxBytes, err := spec.ParseBytes(*retentionBytes)
	if err != nil {
		return usageError("dev: --retention-bytes: %v", err)
	}
	if *retention < 0 {
		return usageError("dev: --retention: must not be negative, got %s", *retention)
	}
	if *brokers != "" && (fs.isSet("retention") || fs.isSet("retention-bytes")) {
		return usageError("dev: --retention and --retention-bytes bound the embedded broker; with --brokers, set retention on that broker")
	}
	apps, err := readSpecs(files)
	if err != nil {
		return err
	}
	d, err := StartDev(ctx, DevConfig{
		HTTPAddr:       *httpAddr,
		GRPCAddr:       *grpcAddr,
		Brokers:        splitBrokers(*brokers),
		KafkaPort:      *port,
		DataDir:        *dataDir,
		Retention:      &streams.Retention{Time: *retention, Bytes: int64(maxBytes)},
		TrimConsumed:   !*keepConsumed,
		Prefix:         *prefix,
		Builtin:        *builtin,
		S3:             withS3Env(*s3, env),
		BlobDir:        *blobDir,
		ClaimThreshold: *claimThreshold,
		Apps:           apps,
		Registry:       env.Registry,
		Limits:         limits(),
		Log:            env.Log,
		AccessLog:      accessLog(),
		Auth:           sec.tokens,
		JWT:            sec.jwt,
		TLS:            sec.tls,
	})
	if err != nil {
		if errors.Is(err, appstore.ErrInvalid) {
			return &ExitError{Code: 2, Err: err}
		}
		return err
	}
	defer d.Close()
	wctx, cancel := context.WithCancel(ctx)
	authDone := sec.watch(wctx, env.Log)
	defer func() { cancel(); <-authDone }()
	fmt.Fprintf(env.Stdout, "sluice dev: REST on %s://%s, gRPC on %s (brokers %v)\n", sec.scheme(), d.Addr, d.GRPCAddr, d.Brokers)
	var stdinClosed chan struct{} // nil: never
	if *stdinStops {
		stdinClosed = make(chan struct{})
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			close(stdinClosed)
		}()
	}
	select {
	case <-ctx.Done():
		return nil
	case <-stdinClosed:
		env.Log.Info("standard input closed: stopping (--stop-on-stdin-close)")
		return nil
	case err := <-d.Done():
		return err
	}
}

// readSpecs parses YAML files; any error is exit code 2 with file, line
// and field.
func readSpecs(files []string) ([]*spec.App, error) {
	var apps []*spec.App
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, &ExitError{Code: 2, Err: err}
		}
		as, err := spec.Parse(f, data)
		if err != nil {
			return nil, &ExitError{Code: 2, Err: err}
		}
		apps = append(apps, as...)
	}
	return apps, nil
}

// withS3Env fills the credentials from the environment; they never come
// from flags, so they stay out of process lists.
func withS3Env(c blob.S3Config, env Env) blob.S3Config {
	c.AccessKey = env.Getenv("SLUICE_S3_ACCESS_KEY")
	c.SecretKey = env.Getenv("SLUICE_S3_SECRET_KEY")
	return c
}
