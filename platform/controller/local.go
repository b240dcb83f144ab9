package controller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-serve/sluice/autoscaler"
	"github.com/sluice-serve/sluice/platform/appstore"
	"github.com/sluice-serve/sluice/platform/serve"
	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/replicas"
	"github.com/sluice-serve/sluice/replicas/procs"
	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/claim"
)

// LocalConfig configures a Local actuator.
type LocalConfig struct {
	Brokers  []string
	Namer    streams.Namer
	Registry *serve.Registry
	Caller   *streams.Caller // handle calls of the replicas it starts
	Claims   *claim.Claims   // large values of the replicas it starts; nil: none
	// Publisher publishes the replicas' reports on the status topic.
	Publisher *replicas.Publisher
	// Models builds the handlers of `kind: model` deployments; nil: this
	// process serves none (their replicas fail to start, saying why).
	Models ModelBuilder
	// Held, when set and true for a deployment, starts none of its
	// replicas when it appears: the placer starts them once placed (GPU
	// replicas of `sluice dev`, which may have no room).
	Held func(spec.Deployment) bool
	// Command is the command of a replica process of a deployment whose
	// code is a bundle (it runs as a process of its own): `sluice replica`
	// of this binary, which becomes the bundle. Nil: such deployments
	// fail to start, saying why.
	Command      func(app, deployment, slot, revision string) *exec.Cmd
	DrainTimeout time.Duration // per replica on stop; default 20s
	// RollTimeout bounds how long a roll waits for a new replica to be
	// ready before it stops the one it replaces anyway; default 30s.
	RollTimeout time.Duration
	Log         *slog.Logger
	// Replica, when set, completes each replica's configuration (the
	// process's metrics) before the replica starts.
	Replica func(*replicas.Config)
	// Metrics, when set, is where deployments register their own metrics
	// (serve.Metrics).
	Metrics prometheus.Registerer
}

// Local runs replicas as goroutines of this process: the actuator of
// `sluice dev`. Apply gives it the applications (after their topics
// exist); Scale sizes each deployment. A deployment whose revision
// changes rolls: the new replicas start, and the old ones stop once the
// new are ready, so an upgrade drops nothing.
type Local struct {
	cfg LocalConfig

	mu       sync.Mutex
	deps     map[autoscaler.Target]*depRun
	draining sync.WaitGroup // replicas being stopped
	stopped  bool
}

type depRun struct {
	app      appstore.Applied
	spec     spec.Deployment
	revision string
	replicas []*replicaRun
	err      error // why replicas could not start

	// Scaling (under Local.mu): the size asked for, whether a resize
	// pass runs, and the backoff of failed starts.
	want     int
	resizing bool
	failures int
	retryAt  time.Time
	retired  bool // replaced or deleted
	slots    int  // the next replica's slot number
}

// replicaRun is one replica: a goroutine of this process (rep, h), or a
// process of its own (a deployment whose code is a bundle).
type replicaRun struct {
	rep    *replicas.Replica
	h      replicas.Handler
	ready  <-chan struct{} // closed once it holds partitions (or joined with none to hold)
	cancel context.CancelFunc
	done   chan struct{}
	last   func() string // a process's last line on stderr
}

func (r *replicaRun) stats() replicas.Stats {
	if r.rep == nil {
		return replicas.Stats{} // a process reports itself on the status topic
	}
	return r.rep.Stats()
}

// Start failures are retried after a backoff doubling from startBackoff
// up to maxStartBackoff; a replica's Reconfigure hook has
// reconfigureTimeout to take a new user_config.
const (
	startBackoff       = 500 * time.Millisecond
	maxStartBackoff    = 30 * time.Second
	reconfigureTimeout = 30 * time.Second
)

var _ autoscaler.Actuator = (*Local)(nil)

// NewLocal returns an actuator running nothing.
func NewLocal(cfg LocalConfig) *Local {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 20 * time.Second
	}
	if cfg.RollTimeout <= 0 {
		cfg.RollTimeout = 30 * time.Second
	}
	return &Local{cfg: cfg, deps: map[autoscaler.Target]*depRun{}}
}

// Apply makes the deployments of apps what runs: a deployment whose
// revision is unchanged keeps its replicas (a change of user_config alone
// is handed to their Reconfigure hook when they have one); a new or
// changed one starts its replicas before the ones it replaces stop.
func (l *Local) Apply(ctx context.Context, apps []appstore.Applied) {
	type roll struct {
		t        autoscaler.Target
		old, new *depRun
	}
	var rolls []roll
	seen := map[autoscaler.Target]bool{}
	for _, a := range apps {
		topo := Compile(l.cfg.Namer, a.Spec)
		for _, d := range a.Spec.Deployments {
			t := autoscaler.Target{App: a.Spec.Name, Deployment: d.Name}
			seen[t] = true
			rev := Revision(topo, d)
			l.mu.Lock()
			prev := l.deps[t]
			l.mu.Unlock()
			if prev != nil && l.keep(ctx, prev, a, d, rev) {
				continue
			}
			dr := &depRun{app: a, spec: d, revision: rev, want: max(d.Replicas.Initial, 0)}
			if prev != nil {
				l.mu.Lock()
				dr.want, dr.slots = max(len(prev.replicas), prev.want), prev.slots
				l.mu.Unlock()
			}
			if l.cfg.Held != nil && l.cfg.Held(d) && prev == nil {
				dr.want = 0
			}
			rolls = append(rolls, roll{t, prev, dr})
		}
	}
	var wg sync.WaitGroup
	for _, r := range rolls {
		wg.Go(func() { l.roll(r.t, r.old, r.new) })
	}
	wg.Wait()
	l.mu.Lock()
	var gone []*depRun
	for t, d := range l.deps {
		if !seen[t] {
			d.retired = true
			gone = append(gone, d)
			delete(l.deps, t)
		}
	}
	l.mu.Unlock()
	for _, d := range gone {
		l.stopDep(d)
	}
}

// roll starts next's replicas, waits (bounded) until they are ready,
// then puts next in old's place and stops old's replicas.
func (l *Local) roll(t autoscaler.Target, old, next *depRun) {
	var started []*replicaRun
	for range next.want {
		rr, err := l.startReplica(next)
		if err != nil {
			next.err, next.failures, next.retryAt = err, 1, time.Now().Add(startBackoff)
			l.cfg.Log.Error("replica not started", "app", t.App, "deployment", t.Deployment, "revision", next.revision, "err", err)
			break
		}
		started = append(started, rr)
	}
	l.mu.Lock()
	oldServes := old != nil && len(old.replicas) > 0
	l.mu.Unlock()
	failed := func() {
		// The new revision does not start: the old one keeps serving.
		l.stopAll(started)
		l.mu.Lock()
		old.err, old.failures, old.retryAt = next.err, next.failures, next.retryAt
		l.mu.Unlock()
	}
	if oldServes && len(started) < next.want {
		failed()
		return
	}
	timeout := time.After(l.cfg.RollTimeout)
wait:
	for _, rr := range started {
		select {
		case <-rr.ready:
		case <-rr.done: // a process that exited before it was ready
			why := "exited before it was ready"
			if rr.last != nil && rr.last() != "" {
				why += ": " + rr.last()
			}
			next.err, next.failures, next.retryAt = fmt.Errorf("replica of revision %s %s", next.revision, why), 1, time.Now().Add(startBackoff)
			l.cfg.Log.Error("replica not started", "app", t.App, "deployment", t.Deployment, "revision", next.revision, "why", why)
			if oldServes {
				failed()
				return
			}
			l.stopAll(started)
			started = nil
			time.AfterFunc(startBackoff, func() {
				l.mu.Lock()
				defer l.mu.Unlock()
				l.resizeLocked(next)
			})
			break wait
		case <-timeout:
		}
	}
	next.replicas = started
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		l.stopAll(started)
		return
	}
	l.deps[t] = next
	if old != nil {
		old.retired = true
	}
	l.resizeLocked(next)
	l.mu.Unlock()
	if old != nil {
		l.stopDep(old)
		l.cfg.Log.Info("deployment rolled", "app", t.App, "deployment", t.Deployment, "revision", next.revision, "replicas", len(started))
	}
}

// stopDep stops a retired deployment's replicas, drained, in the background.
func (l *Local) stopDep(d *depRun) {
	l.mu.Lock()
	rs := d.replicas
	d.replicas = nil
	l.mu.Unlock()
	l.draining.Go(func() { l.stopAll(rs) })
}

// keep reports whether prev's replicas can serve d of a as they are: the
// same revision, or one that differs only in user_config, which every
// replica took through its Reconfigure hook (no restart, nothing dropped).
func (l *Local) keep(ctx context.Context, prev *depRun, a appstore.Applied, d spec.Deployment, rev string) bool {
	l.mu.Lock()
	if prev.revision == rev {
		if prev.spec.Replicas.Initial != d.Replicas.Initial && (l.cfg.Held == nil || !l.cfg.Held(d)) {
			prev.want = d.Replicas.Initial // a new initial size is asked for now
			l.resizeLocked(prev)
		}
		prev.app, prev.spec = a, d
		l.mu.Unlock()
		return true
	}
	was := prev.spec
	was.UserConfig = d.UserConfig
	running := slices.Clone(prev.replicas)
	l.mu.Unlock()
	if Revision(Compile(l.cfg.Namer, prev.app.Spec), was) != Revision(Compile(l.cfg.Namer, a.Spec), d) || len(running) == 0 {
		return false
	}
	for _, r := range running {
		if r.rep == nil {
			return false // a process: it reads its user_config at start
		}
		rctx, cancel := context.WithTimeout(ctx, reconfigureTimeout)
		ok, err := serve.Reconfigure(rctx, r.h, d.UserConfig)
		cancel()
		if !ok || err != nil {
			if err != nil {
				l.cfg.Log.Warn("reconfigure failed; rolling replicas", "deployment", d.Name, "err", err)
			}
			return false
		}
	}
	l.mu.Lock()
	prev.app, prev.spec, prev.revision = a, d, rev
	for _, r := range running {
		r.rep.SetRevision(rev, a.Generation)
	}
	l.mu.Unlock()
	l.cfg.Log.Info("deployment reconfigured in place", "deployment", d.Name, "revision", rev)
	return true
}

func (l *Local) startReplica(dr *depRun) (*replicaRun, error) {
	ctx := context.Background()
	l.mu.Lock()
	slot := dr.slots
	dr.slots++
	l.mu.Unlock()
	if dr.spec.Bundle != nil {
		return l.startProcess(dr, strconv.Itoa(slot))
	}
	instance := Instance(dr.app.Spec.Name, dr.spec.Name, strconv.Itoa(slot), dr.revision)
	ctx = serve.WithMetrics(ctx, l.cfg.Metrics, dr.app.Spec.Name, dr.spec.Name, instance)
	h, err := BuildHandler(ctx, l.cfg.Registry, l.cfg.Models, dr.app.Spec, dr.spec, l.cfg.Caller, l.cfg.Namer)
	if err != nil {
		return nil, err
	}
	rc, err := ReplicaConfig(l.cfg.Brokers, l.cfg.Namer, dr.app, dr.spec, instance, l.cfg.DrainTimeout, l.cfg.Log)
	if err != nil {
		closeHandler(h)
		return nil, err
	}
	rc.Claims = l.cfg.Claims
	rc.InstanceID = instance // slots are never reused, so no two live members share one
	if l.cfg.Replica != nil {
		l.cfg.Replica(&rc)
	}
	rep, err := replicas.New(ctx, rc, h)
	if err != nil {
		closeHandler(h)
		return nil, err
	}
	if l.cfg.Publisher != nil {
		l.cfg.Publisher.Add(rep)
	}
	rctx, cancel := context.WithCancel(context.Background())
	rr := &replicaRun{rep: rep, h: h, ready: rep.Ready(), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(rr.done)
		if err := rep.Run(rctx); err != nil {
			l.cfg.Log.Error("replica stopped", "app", dr.app.Spec.Name, "deployment", dr.spec.Name, "err", err)
			if l.cfg.Publisher != nil {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				l.cfg.Publisher.Remove(ctx, rep)
				cancel()
			}
		}
	}()
	return rr, nil
}

// Instance names one replica: its deployment, its slot among the
// deployment's replicas, and the revision it runs. Two revisions of a
// slot run side by side during a roll, so the revision is part of it.
func Instance(app, deployment, slot, revision string) string {
	return app + "." + deployment + "." + slot + "." + revision
}

// stopAll stops replicas softly and in parallel, waiting for all, and
// withdraws their reports.
func (l *Local) stopAll(rs []*replicaRun) {
	stopAll(rs)
	if l.cfg.Publisher == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, r := range rs {
		if r.rep != nil {
			l.cfg.Publisher.Remove(ctx, r.rep)
		}
	}
}

func stopAll(rs []*replicaRun) {
	for _, r := range rs {
		r.cancel()
	}
	for _, r := range rs {
		<-r.done
		if r.h != nil {
			closeHandler(r.h)
		}
	}
}

// Close stops every replica, drained, and waits for them.
func (l *Local) Close() {
	l.mu.Lock()
	l.stopped = true
	var all []*depRun
	for t, d := range l.deps {
		d.retired = true
		all = append(all, d)
		delete(l.deps, t)
	}
	l.mu.Unlock()
	for _, d := range all {
		l.stopDep(d)
	}
	l.draining.Wait()
}

// Scale asks for n replicas of t. Replicas start or stop (drained) in the
// background; a replica that fails to start is retried with a backoff
// and reported by Size, never counted.
func (l *Local) Scale(_ context.Context, t autoscaler.Target, n int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	dr, err := l.findLocked(t)
	if err != nil {
		return err
	}
	dr.want = max(n, 0)
	l.resizeLocked(dr)
	return nil
}

// resizeLocked starts a resize pass of dr unless one runs.
func (l *Local) resizeLocked(dr *depRun) {
	if !dr.resizing && !dr.retired && dr.want != len(dr.replicas) {
		dr.resizing = true
		go l.resize(dr)
	}
}

// Size reports the replicas of t running here.
func (l *Local) Size(_ context.Context, t autoscaler.Target) (autoscaler.Size, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	dr, err := l.findLocked(t)
	if err != nil {
		return autoscaler.Size{}, err
	}
	sz := autoscaler.Size{Current: len(dr.replicas)}
	for _, r := range dr.replicas {
		if isDone(r.ready) {
			sz.Ready++
		}
	}
	if dr.err != nil {
		sz.Problem = fmt.Sprintf("replica failed to start (%d times): %v", dr.failures, dr.err)
		if wait := time.Until(dr.retryAt); wait > 0 && dr.want > len(dr.replicas) {
			sz.Problem = fmt.Sprintf("replica failed to start (%d times, next try in %v): %v", dr.failures, wait.Round(time.Millisecond), dr.err)
		}
	}
	return sz, nil
}

// Ongoing reports the requests in flight over t's replicas.
func (l *Local) Ongoing(t autoscaler.Target) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	dr, err := l.findLocked(t)
	if err != nil {
		return 0
	}
	var n int64
	for _, r := range dr.replicas {
		n += r.stats().Ongoing
	}
	return n
}

func (l *Local) findLocked(t autoscaler.Target) (*depRun, error) {
	dr := l.deps[t]
	if dr == nil {
		return nil, fmt.Errorf("%w: %s/%s", appstore.ErrNotFound, t.App, t.Deployment)
	}
	return dr, nil
}

// resize starts or stops replicas of dr until it has what it wants, one
// at a time, and stops at a start failure (the next Scale after the
// backoff tries again).
func (l *Local) resize(dr *depRun) {
	l.mu.Lock()
	defer func() {
		dr.resizing = false
		l.mu.Unlock()
	}()
	for !dr.retired {
		have := len(dr.replicas)
		switch {
		case dr.want < have:
			// Stop (drain) in the background: a start asked for meanwhile
			// does not wait for it. Close waits for these.
			stopping := dr.replicas[dr.want:]
			dr.replicas = dr.replicas[:dr.want:dr.want]
			l.draining.Go(func() { l.stopAll(stopping) })
		case dr.want > have && !time.Now().Before(dr.retryAt):
			l.mu.Unlock()
			rr, err := l.startReplica(dr)
			l.mu.Lock()
			if err != nil {
				dr.err, dr.failures = err, dr.failures+1
				dr.retryAt = time.Now().Add(min(startBackoff<<min(dr.failures-1, 10), maxStartBackoff))
				l.cfg.Log.Error("replica not started", "app", dr.app.Spec.Name, "deployment", dr.spec.Name, "failures", dr.failures, "err", err)
				return
			}
			if dr.retired {
				l.mu.Unlock()
				l.stopAll([]*replicaRun{rr})
				l.mu.Lock()
				return
			}
			dr.replicas = append(dr.replicas, rr)
			if dr.spec.Bundle == nil { // a process says so once ready
				dr.err, dr.failures = nil, 0
			}
		default:
			return
		}
	}
}

func isDone(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// startProcess starts a replica of dr as a process of its own: its code
// is a bundle, which this process cannot run. It is ready when it says so
// on its readiness pipe; it stops on SIGTERM (drained), or is killed
// after the drain timeout.
func (l *Local) startProcess(dr *depRun, slot string) (*replicaRun, error) {
	if l.cfg.Command == nil {
		return nil, errors.New("this platform runs no replica processes, so no code bundle")
	}
	cmd := l.cfg.Command(dr.app.Spec.Name, dr.spec.Name, slot, dr.revision)
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.ExtraFiles = []*os.File{w}
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, procs.ReadyEnv+"="+strconv.Itoa(procs.ReadyFD))
	tail := &procs.Tail{}
	cmd.Stderr = io.MultiWriter(os.Stderr, tail)
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("start replica process: %w", err)
	}
	ready := make(chan struct{})
	go func() {
		defer r.Close()
		var b [1]byte
		if n, _ := r.Read(b[:]); n > 0 {
			close(ready)
			l.mu.Lock()
			dr.err, dr.failures = nil, 0 // it started: what failed before is over
			l.mu.Unlock()
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	rr := &replicaRun{ready: ready, cancel: cancel, done: make(chan struct{}), last: tail.Last}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	go func() {
		defer close(rr.done)
		select {
		case err := <-exited:
			why := fmt.Sprint(err)
			if last := tail.Last(); last != "" {
				why += ": " + last
			}
			l.cfg.Log.Warn("replica process exited", "app", dr.app.Spec.Name, "deployment", dr.spec.Name, "why", why)
			l.exited(dr, rr, why)
			return
		case <-ctx.Done():
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(l.cfg.DrainTimeout + 5*time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	return rr, nil
}

// exited takes out of dr a replica process that exited on its own,
// records why as dr's problem with a backoff, and starts another after it.
func (l *Local) exited(dr *depRun, rr *replicaRun, why string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := slices.Index(dr.replicas, rr)
	if i < 0 || dr.retired {
		return
	}
	dr.replicas = slices.Delete(dr.replicas, i, i+1)
	dr.failures++
	wait := min(startBackoff<<min(dr.failures-1, 10), maxStartBackoff)
	dr.err, dr.retryAt = fmt.Errorf("replica process exited: %s", why), time.Now().Add(wait)
	time.AfterFunc(wait, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.resizeLocked(dr)
	})
}
