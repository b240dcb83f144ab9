package procs

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-serve/sluice/autoscaler"
)

var target = autoscaler.Target{App: "a", Deployment: "d"}

func quiet() *os.File {
	f, _ := os.Open(os.DevNull)
	return f
}

func newActuator(t *testing.T, script string) *Actuator {
	t.Helper()
	a := New(Config{
		Command: func(_ autoscaler.Target, r Replica) *exec.Cmd {
			cmd := exec.Command("sh", "-c", script)
			cmd.Env = append(os.Environ(), r.Env...)
			return cmd
		},
		StopTimeout: 2 * time.Second, Output: quiet(), Log: slog.New(slog.DiscardHandler),
	})
	t.Cleanup(a.Close)
	return a
}

func waitSize(t *testing.T, a *Actuator, what string, ok func(autoscaler.Size) bool) autoscaler.Size {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		sz, err := a.Size(context.Background(), target)
		if err != nil {
			t.Fatal(err)
		}
		if ok(sz) {
			return sz
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: last size %+v", what, sz)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Processes start and stop on Scale; a stopped one gets SIGTERM and may
// drain (the script traps it and exits 0).
func TestScaleUpAndDown(t *testing.T) {
	a := newActuator(t, `trap 'exit 0' TERM; while :; do sleep 0.05; done`)
	if err := a.Scale(context.Background(), target, 3); err != nil {
		t.Fatal(err)
	}
	waitSize(t, a, "three ready", func(s autoscaler.Size) bool { return s.Current == 3 && s.Ready == 3 })
	if err := a.Scale(context.Background(), target, 1); err != nil {
		t.Fatal(err)
	}
	sz := waitSize(t, a, "one left", func(s autoscaler.Size) bool { return s.Current == 1 })
	if sz.Problem != "" {
		t.Fatalf("a scale down is no problem: %q", sz.Problem)
	}
	a.mu.Lock()
	n := len(a.deps[target].procs)
	a.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for n > 1 && time.Now().Before(deadline) { // the two stopped ones are reaped
		time.Sleep(20 * time.Millisecond)
		a.mu.Lock()
		n = len(a.deps[target].procs)
		a.mu.Unlock()
	}
	if n != 1 {
		t.Fatalf("%d processes tracked after scaling to 1", n)
	}
}

// A replica that keeps failing to start is retried with a growing backoff,
// reported with its last words, and never counted ready.
func TestFailingStartBacksOff(t *testing.T) {
	a := newActuator(t, `echo "cannot reach brokers" >&2; exit 3`)
	if err := a.Scale(context.Background(), target, 1); err != nil {
		t.Fatal(err)
	}
	sz := waitSize(t, a, "a reported failure", func(s autoscaler.Size) bool { return s.Problem != "" })
	if sz.Ready != 0 || !strings.Contains(sz.Problem, "exit status 3: cannot reach brokers") {
		t.Fatalf("size %+v", sz)
	}
	time.Sleep(1200 * time.Millisecond)
	a.mu.Lock()
	failures := a.deps[target].failures
	a.mu.Unlock()
	// Backoffs of 0.5s and 1s: about 2–3 tries in 1.2s, not hundreds.
	if failures < 2 || failures > 4 {
		t.Fatalf("%d failed starts in about 1.2s, want 2–4 with the backoff", failures)
	}
}

// A replica that dies after running a while is replaced at once.
func TestCrashedReplicaIsReplaced(t *testing.T) {
	a := newActuator(t, `trap 'exit 0' TERM; while :; do sleep 0.05; done`)
	if err := a.Scale(context.Background(), target, 1); err != nil {
		t.Fatal(err)
	}
	waitSize(t, a, "one", func(s autoscaler.Size) bool { return s.Current == 1 })
	a.mu.Lock()
	first := a.deps[target].procs[0].cmd.Process
	a.mu.Unlock()
	if err := first.Kill(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		a.mu.Lock()
		ps := a.deps[target].procs
		replaced := len(ps) == 1 && ps[0].cmd.Process.Pid != first.Pid
		a.mu.Unlock()
		if replaced {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the killed replica was not replaced")
		}
		time.Sleep(20 * time.Millisecond)
	}
	sz, _ := a.Size(context.Background(), target)
	if !strings.Contains(sz.Problem, "signal: killed") {
		t.Fatalf("a replica dying within %v is reported: %+v", shortLived, sz)
	}
}

// Set runs replicas by ID with their own environment: a changed
// environment restarts that replica alone, a missing ID stops it.
func TestSetRestartsOnlyWhatChanged(t *testing.T) {
	dir := t.TempDir()
	// Each start appends "<id>=<device>" to a file, then runs until stopped.
	a := newActuator(t, `echo "$ID=$DEV" >> `+dir+`/starts; trap 'exit 0' TERM; while :; do sleep 0.05; done`)
	rep := func(id, dev string) Replica { return Replica{ID: id, Env: []string{"ID=" + id, "DEV=" + dev}} }
	starts := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			b, _ := os.ReadFile(dir + "/starts")
			lines := strings.Fields(string(b))
			slices.Sort(lines)
			if got := strings.Join(lines, " "); got == want {
				return
			} else if time.Now().After(deadline) {
				t.Fatalf("starts %q, want %q", got, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if err := a.Set(target, []Replica{rep("0", "GPU-a"), rep("1", "GPU-b")}); err != nil {
		t.Fatal(err)
	}
	starts("0=GPU-a 1=GPU-b")
	_ = os.Remove(dir + "/starts")
	if err := a.Set(target, []Replica{rep("0", "GPU-a"), rep("1", "GPU-c")}); err != nil {
		t.Fatal(err)
	}
	starts("1=GPU-c")
	waitSize(t, a, "two again", func(s autoscaler.Size) bool { return s.Current == 2 })
	if err := a.Set(target, []Replica{rep("1", "GPU-c")}); err != nil {
		t.Fatal(err)
	}
	waitSize(t, a, "one", func(s autoscaler.Size) bool { return s.Current == 1 })
	time.Sleep(200 * time.Millisecond)
	starts("1=GPU-c") // nothing else started
	a.mu.Lock()
	var ids []string
	for _, p := range a.deps[target].procs {
		if !p.stopping {
			ids = append(ids, p.replica.ID)
		}
	}
	a.mu.Unlock()
	if !slices.Equal(ids, []string{"1"}) {
		t.Fatalf("running %v, want [1]", ids)
	}
}
