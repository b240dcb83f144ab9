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
	Command func(t Target, r Replica) *exec.Cmd
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
	deps   map[Target]*dep
	closed bool
	exits  sync.WaitGroup
}

// Replica is one replica process to run: its ID among the target's, what
// its environment adds (its devices, its share of them), and the revision
// of its deployment it runs. A replica whose revision or environment
// changes rolls: the new process starts, and the old one stops once the
// new one is ready — or, with NoSurge (it holds GPU shares the device
// cannot give twice), the old one stops first.
type Replica struct {
	ID       string
	Env      []string
	Revision string
	NoSurge  bool
}

// ReadyFD is the file descriptor a replica process writes a byte to once
// it is ready (holds partitions, or joined its group with none to hold);
// its environment names it in ReadyEnv.
const (
	ReadyFD  = 3
	ReadyEnv = "SLUICE_READY_FD"
)

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
	tail     *Tail
	stopping bool
	ready    bool        // the process said it is ready
	kill     *time.Timer // SIGKILL after StopTimeout, once stopping
}

// same reports whether p runs r as asked.
func (p *proc) same(r Replica) bool {
	return p.replica.Revision == r.Revision && slices.Equal(p.replica.Env, r.Env)
}

// Target names what a set of processes runs: a deployment of an
// application. (The package is a leaf: it knows processes, not specs.)
type Target struct{ App, Deployment string }

// Size is what runs of a target: replicas started, replicas that said
// they are ready, and why starts fail when they do.
type Size struct {
	Current int
	Ready   int
	Problem string
}

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
	return &Actuator{cfg: cfg, deps: map[Target]*dep{}}
}

// Scale asks for n replica processes of t, with IDs 0 to n-1 and nothing
// added to their environment.
func (a *Actuator) Scale(_ context.Context, t Target, n int) error {
	want := make([]Replica, max(n, 0))
	for i := range want {
		want[i].ID = strconv.Itoa(i)
	}
	return a.Set(t, want)
}

// Set asks for exactly these replica processes of t: a running process
// whose ID is not among them, or whose environment changed, is stopped;
// missing ones are started.
func (a *Actuator) Set(t Target, want []Replica) error {
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
func (a *Actuator) Size(t Target) Size {
	a.mu.Lock()
	defer a.mu.Unlock()
	d := a.deps[t]
	if d == nil {
		return Size{}
	}
	sz := Size{Problem: d.problem}
	ids := map[string]bool{}
	ready := map[string]bool{}
	for _, p := range d.procs {
		if p.stopping {
			continue
		}
		ids[p.replica.ID] = true
		ready[p.replica.ID] = ready[p.replica.ID] || p.ready
	}
	sz.Current = len(ids)
	for _, ok := range ready {
		if ok {
			sz.Ready++
		}
	}
	return sz
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
// starts wait for the backoff of earlier failures. A replica whose
// process runs another revision or environment rolls; one replica of a
// deployment rolls at a time.
func (a *Actuator) reconcileLocked(t Target, d *dep) {
	wanted := map[string]Replica{}
	for _, r := range d.want {
		wanted[r.ID] = r
	}
	current := map[string]*proc{} // the process running each wanted replica as asked
	var old []*proc               // processes of wanted replicas running something else
	for _, p := range d.procs {
		if p.stopping {
			continue
		}
		r, ok := wanted[p.replica.ID]
		switch {
		case !ok || current[p.replica.ID] != nil && p.same(r):
			a.stopLocked(p) // not wanted, or a duplicate
		case p.same(r):
			current[p.replica.ID] = p
		default:
			old = append(old, p)
		}
	}
	// rolling counts the replicas in the middle of a roll: a new process
	// not ready while the old one runs, or a no-surge replica waiting for
	// its old process to exit. One replica rolls at a time.
	rolling := 0
	for _, p := range old {
		if c := current[p.replica.ID]; c != nil && c.ready {
			a.stopLocked(p) // its replacement is ready
		} else if c != nil {
			rolling++
		}
	}
	for _, r := range d.want {
		if r.NoSurge && current[r.ID] == nil && !slices.ContainsFunc(old, func(p *proc) bool { return p.replica.ID == r.ID }) &&
			slices.ContainsFunc(d.procs, func(p *proc) bool { return p.replica.ID == r.ID && p.stopping }) {
			rolling++
		}
	}
	for _, r := range d.want {
		if current[r.ID] != nil || a.closed {
			continue
		}
		i := slices.IndexFunc(old, func(p *proc) bool { return p.replica.ID == r.ID && !p.stopping })
		if i >= 0 {
			if rolling > 0 {
				continue // one roll at a time
			}
			if r.NoSurge {
				a.stopLocked(old[i]) // the new one starts when it has exited
				rolling++
				continue
			}
		}
		if i < 0 && slices.ContainsFunc(d.procs, func(p *proc) bool { return p.replica.ID == r.ID && r.NoSurge }) {
			continue // the old process of a no-surge replica is still stopping
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
		if i >= 0 {
			rolling++
		}
	}
}

func (a *Actuator) startLocked(t Target, d *dep, r Replica) error {
	cmd := a.cfg.Command(t, r)
	p := &proc{replica: r, cmd: cmd, tail: &Tail{}}
	cmd.Stdout = a.cfg.Output
	cmd.Stderr = multi{a.cfg.Output, p.tail}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("readiness pipe: %w", err)
	}
	cmd.ExtraFiles = []*os.File{readyW} // fd 3 in the child
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, ReadyEnv+"="+strconv.Itoa(ReadyFD))
	err = cmd.Start()
	readyW.Close()
	if err != nil {
		readyR.Close()
		return fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	p.started = time.Now()
	d.procs = append(d.procs, p)
	a.exits.Add(2)
	go a.wait(t, d, p)
	go a.awaitReady(t, d, p, readyR)
	return nil
}

// awaitReady marks p ready when it writes to its readiness pipe; the
// pipe closes when the process exits.
func (a *Actuator) awaitReady(t Target, d *dep, p *proc, r *os.File) {
	defer a.exits.Done()
	defer r.Close()
	var b [1]byte
	if n, _ := r.Read(b[:]); n == 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	p.ready = true
	if !p.stopping {
		a.reconcileLocked(t, d)
	}
}

// wait reaps p; a process that exits on its own is replaced.
func (a *Actuator) wait(t Target, d *dep, p *proc) {
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
		a.reconcileLocked(t, d) // a replica that waited for this one to stop (NoSurge) starts
		return
	}
	why := "exited"
	if err != nil {
		why = err.Error()
	}
	if last := p.tail.Last(); last != "" {
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

// Tail keeps the last bytes a process wrote to stderr (give it as, or
// beside, cmd.Stderr); Last is its last line.
type Tail struct {
	mu  sync.Mutex
	buf []byte
}

func (t *Tail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if len(t.buf) > tailBytes {
		t.buf = t.buf[len(t.buf)-tailBytes:]
	}
	return len(b), nil
}

// Last returns the last non-empty line written.
func (t *Tail) Last() string {
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
