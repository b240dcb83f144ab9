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
)

var target = Target{App: "a", Deployment: "d"}

func quiet() *os.File {
	f, _ := os.Open(os.DevNull)
	return f
}

// newActuator runs script as every replica; the process says it is ready
// (a byte on ReadyFD) as it starts, unless the script sets NOT_READY.
func newActuator(t *testing.T, script string) *Actuator {
	t.Helper()
	a := New(Config{
		Command: func(_ Target, r Replica) *exec.Cmd {
			cmd := exec.Command("sh", "-c", `[ -n "$NOT_READY" ] || printf r >&3; `+script)
			cmd.Env = append(os.Environ(), r.Env...)
			return cmd
		},
		StopTimeout: 2 * time.Second, Output: quiet(), Log: slog.New(slog.DiscardHandler),
	})
	t.Cleanup(a.Close)
	return a
}

func waitSize(t *testing.T, a *Actuator, what string, ok func(Size) bool) Size {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		sz := a.Size(target)
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
	waitSize(t, a, "three ready", func(s Size) bool { return s.Current == 3 && s.Ready == 3 })
	if err := a.Scale(context.Background(), target, 1); err != nil {
		t.Fatal(err)
	}
	sz := waitSize(t, a, "one left", func(s Size) bool { return s.Current == 1 })
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
	sz := waitSize(t, a, "a reported failure", func(s Size) bool { return s.Problem != "" })
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
	waitSize(t, a, "one", func(s Size) bool { return s.Current == 1 })
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
	sz := a.Size(target)
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
	waitSize(t, a, "two again", func(s Size) bool { return s.Current == 2 })
	if err := a.Set(target, []Replica{rep("1", "GPU-c")}); err != nil {
		t.Fatal(err)
	}
	waitSize(t, a, "one", func(s Size) bool { return s.Current == 1 })
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

// A new revision rolls: the new process starts beside the old one, which
// stops only once the new one is ready; a new process that never gets
// ready leaves the old one serving. One replica rolls at a time.
func TestRollStartsNewBeforeStoppingOld(t *testing.T) {
	a := newActuator(t, `trap 'exit 0' TERM; while :; do sleep 0.05; done`)
	running := func() map[string][]string {
		a.mu.Lock()
		defer a.mu.Unlock()
		out := map[string][]string{}
		for _, p := range a.deps[target].procs {
			if !p.stopping {
				out[p.replica.ID] = append(out[p.replica.ID], p.replica.Revision)
			}
		}
		return out
	}
	if err := a.Set(target, []Replica{{ID: "0", Revision: "r1"}, {ID: "1", Revision: "r1"}}); err != nil {
		t.Fatal(err)
	}
	waitSize(t, a, "two ready", func(s Size) bool { return s.Ready == 2 })

	// r2 never gets ready: the old processes keep running, one roll at a time.
	if err := a.Set(target, []Replica{{ID: "0", Revision: "r2", Env: []string{"NOT_READY=1"}}, {ID: "1", Revision: "r2", Env: []string{"NOT_READY=1"}}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	got := running()
	if !slices.Equal(got["0"], []string{"r1", "r2"}) || !slices.Equal(got["1"], []string{"r1"}) {
		t.Fatalf("while r2 is not ready: running %v, want 0: r1 and r2, 1: r1 alone", got)
	}
	if sz := a.Size(target); sz.Current != 2 || sz.Ready != 2 {
		t.Fatalf("size during a roll counts replicas, not processes: %+v", sz)
	}

	// r3 gets ready: every old process stops, after its replacement.
	if err := a.Set(target, []Replica{{ID: "0", Revision: "r3"}, {ID: "1", Revision: "r3"}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got = running()
		if slices.Equal(got["0"], []string{"r3"}) && slices.Equal(got["1"], []string{"r3"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after r3 got ready: running %v", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// No-surge replicas roll one at a time too: never both stopped at once.
func TestRollWithoutSurgeOneAtATime(t *testing.T) {
	a := newActuator(t, `trap 'sleep 0.3; exit 0' TERM; while :; do sleep 0.05; done`)
	set := func(rev string) {
		if err := a.Set(target, []Replica{{ID: "0", Revision: rev, NoSurge: true}, {ID: "1", Revision: rev, NoSurge: true}}); err != nil {
			t.Fatal(err)
		}
	}
	set("r1")
	waitSize(t, a, "two ready", func(s Size) bool { return s.Ready == 2 })
	set("r2")
	deadline := time.Now().Add(10 * time.Second)
	for {
		a.mu.Lock()
		stopping, r2 := 0, 0
		for _, p := range a.deps[target].procs {
			if p.stopping {
				stopping++
			} else if p.replica.Revision == "r2" && p.ready {
				r2++
			}
		}
		a.mu.Unlock()
		if stopping > 1 {
			t.Fatalf("%d no-surge replicas stopping at once", stopping)
		}
		if r2 == 2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the roll did not finish")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A replica holding GPU shares (NoSurge) stops before its new revision
// starts: the device cannot hold both.
func TestRollWithoutSurgeStopsFirst(t *testing.T) {
	dir := t.TempDir()
	a := newActuator(t, `echo "$REV" >> `+dir+`/log; trap 'echo "stop $REV" >> `+dir+`/log; exit 0' TERM; while :; do sleep 0.05; done`)
	set := func(rev string) {
		if err := a.Set(target, []Replica{{ID: "0", Revision: rev, Env: []string{"REV=" + rev}, NoSurge: true}}); err != nil {
			t.Fatal(err)
		}
	}
	set("r1")
	waitSize(t, a, "ready", func(s Size) bool { return s.Ready == 1 })
	set("r2")
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(dir + "/log")
		if got := strings.Fields(strings.ReplaceAll(string(b), "stop ", "stop-")); slices.Equal(got, []string{"r1", "stop-r1", "r2"}) {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("order %v, want r1 stop-r1 r2", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
