// Package procs runs replicas as processes of this machine: the actuator
// of `sluice node`. A replica that exits on its own is started again,
// after a backoff when it did not last, and its last words are reported.
package procs

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sluice-serve/sluice/autoscaler"
)

// A process that exits within shortLived of its start counts as a failed
// start: the next one waits a backoff doubling from backoff up to
// maxBackoff.
const (
	shortLived = 10 * time.Second
	backoff    = 500 * time.Millisecond
	maxBackoff = 30 * time.Second
	tailBytes  = 2048
)

// Config configures an Actuator.
type Config struct {
	// Command returns the command that runs replica r of t.
	Command func(t autoscaler.Target, r Replica) *exec.Cmd
	// StopTimeout bounds a replica's drain after SIGTERM; then SIGKILL.
	// Default 30s.
	StopTimeout time.Duration
	// Output receives the replicas' stdout and stderr (default os.Stderr).
	Output *os.File
	Log    *slog.Logger
}

// Actuator starts and stops replica processes.
type Actuator struct {
	cfg Config

	mu     sync.Mutex
	deps   map[autoscaler.Target]*dep
	closed bool
	exits  sync.WaitGroup
}

// Replica is one replica process to run: its ID among the target's and
// what its environment adds (its devices, its share of them).
type Replica struct {
	ID  string
	Env []string
}

type dep struct {
	want     []Replica
	procs    []*proc
	failures int
	retryAt  time.Time
	retry    *time.Timer
	problem  string
}

type proc struct {
	replica  Replica
	cmd      *exec.Cmd
	started  time.Time
	tail     *tail
	stopping bool
	kill     *time.Timer // SIGKILL after StopTimeout, once stopping
}

var _ autoscaler.Actuator = (*Actuator)(nil)

// New returns an actuator running nothing.
func New(cfg Config) *Actuator {
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 30 * time.Second
	}
	if cfg.Output == nil {
		cfg.Output = os.Stderr
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Actuator{cfg: cfg, deps: map[autoscaler.Target]*dep{}}
}

// Scale asks for n replica processes of t, with IDs 0 to n-1 and nothing
// added to their environment.
func (a *Actuator) Scale(_ context.Context, t autoscaler.Target, n int) error {
	want := make([]Replica, max(n, 0))
	for i := range want {
		want[i].ID = strconv.Itoa(i)
	}
	return a.Set(t, want)
}

// Set asks for exactly these replica processes of t: a running process
// whose ID is not among them, or whose environment changed, is stopped;
// missing ones are started.
func (a *Actuator) Set(t autoscaler.Target, want []Replica) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return fmt.Errorf("node is stopping")
	}
	d := a.deps[t]
	if d == nil {
		d = &dep{}
		a.deps[t] = d
	}
	d.want = slices.Clone(want)
	a.reconcileLocked(t, d)
	return nil
}

// Size reports t's processes: started, running for a second or more, and
// why starts fail when they do.
func (a *Actuator) Size(_ context.Context, t autoscaler.Target) (autoscaler.Size, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	d := a.deps[t]
	if d == nil {
		return autoscaler.Size{}, nil
	}
	sz := autoscaler.Size{Problem: d.problem}
	for _, p := range d.procs {
		if p.stopping {
			continue
		}
		sz.Current++
		if time.Since(p.started) >= time.Second {
			sz.Ready++
		}
	}
	return sz, nil
}

// Close stops every process (drained, then killed after StopTimeout) and
// waits for them.
func (a *Actuator) Close() {
	a.mu.Lock()
	a.closed = true
	for _, d := range a.deps {
		d.want = nil
		if d.retry != nil {
			d.retry.Stop()
		}
		for _, p := range d.procs {
			a.stopLocked(p)
		}
	}
	a.mu.Unlock()
	a.exits.Wait()
}

// reconcileLocked starts or stops processes until t has what it wants;
// starts wait for the backoff of earlier failures.
func (a *Actuator) reconcileLocked(t autoscaler.Target, d *dep) {
	running := map[string]bool{}
	for _, p := range d.procs {
		if p.stopping {
			continue
		}
		i := slices.IndexFunc(d.want, func(r Replica) bool { return r.ID == p.replica.ID })
		if i < 0 || running[p.replica.ID] || !slices.Equal(d.want[i].Env, p.replica.Env) {
			a.stopLocked(p)
			continue
		}
		running[p.replica.ID] = true
	}
	for _, r := range d.want {
		if running[r.ID] || a.closed {
			continue
		}
		if wait := time.Until(d.retryAt); wait > 0 {
			if d.retry == nil {
				d.retry = time.AfterFunc(wait, func() {
					a.mu.Lock()
					defer a.mu.Unlock()
					d.retry = nil
					a.reconcileLocked(t, d)
				})
			}
			return
		}
		if err := a.startLocked(t, d, r); err != nil {
			a.failedLocked(d, err.Error())
			continue
		}
		running[r.ID] = true
	}
}

func (a *Actuator) startLocked(t autoscaler.Target, d *dep, r Replica) error {
	cmd := a.cfg.Command(t, r)
	p := &proc{replica: r, cmd: cmd, tail: &tail{}}
	cmd.Stdout = a.cfg.Output
	cmd.Stderr = multi{a.cfg.Output, p.tail}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	p.started = time.Now()
	d.procs = append(d.procs, p)
	a.exits.Add(1)
	go a.wait(t, d, p)
	return nil
}

// wait reaps p; a process that exits on its own is replaced.
func (a *Actuator) wait(t autoscaler.Target, d *dep, p *proc) {
	defer a.exits.Done()
	err := p.cmd.Wait()
	a.mu.Lock()
	defer a.mu.Unlock()
	if p.kill != nil {
		p.kill.Stop()
	}
	for i, q := range d.procs {
		if q == p {
			d.procs = append(d.procs[:i], d.procs[i+1:]...)
			break
		}
	}
	if p.stopping {
		return
	}
	why := "exited"
	if err != nil {
		why = err.Error()
	}
	if last := p.tail.last(); last != "" {
		why += ": " + last
	}
	a.cfg.Log.Warn("replica process exited; starting another", "app", t.App, "deployment", t.Deployment, "after", time.Since(p.started).Round(time.Millisecond), "why", why)
	if time.Since(p.started) < shortLived {
		a.failedLocked(d, why)
	} else {
		d.failures, d.problem = 0, ""
	}
	a.reconcileLocked(t, d)
}

func (a *Actuator) failedLocked(d *dep, why string) {
	d.failures++
	wait := min(backoff<<min(d.failures-1, 10), maxBackoff)
	d.retryAt = time.Now().Add(wait)
	d.problem = fmt.Sprintf("replica failed %d times in a row (next try in %v): %s", d.failures, wait, why)
}

// stopLocked sends SIGTERM (the replica drains) and SIGKILL after
// StopTimeout.
func (a *Actuator) stopLocked(p *proc) {
	if p.stopping {
		return
	}
	p.stopping = true
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	p.kill = time.AfterFunc(a.cfg.StopTimeout, func() { _ = p.cmd.Process.Kill() })
}

// tail keeps the last bytes a process wrote to stderr.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if len(t.buf) > tailBytes {
		t.buf = t.buf[len(t.buf)-tailBytes:]
	}
	return len(b), nil
}

// last returns the last non-empty line written.
func (t *tail) last() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(string(t.buf)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// multi writes to both writers; a failing first writer (a closed
// terminal) does not stop the tail.
type multi [2]interface{ Write([]byte) (int, error) }

func (m multi) Write(b []byte) (int, error) {
	_, _ = m[0].Write(b)
	return m[1].Write(b)
}
