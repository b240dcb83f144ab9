package replicas

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestConfigInstanceID(t *testing.T) {
	t.Parallel()
	base := Config{Brokers: []string{"x"}, Group: "g", Topics: []string{"a"}, Output: "o", DeadLetter: "d"}
	for _, id := range []string{"app dep 0", "app/dep/0", "é", strings.Repeat("x", 250)} {
		cfg := base
		cfg.InstanceID = id
		if _, err := New(context.Background(), cfg, upper); err == nil || !strings.Contains(err.Error(), "instance id") {
			t.Errorf("instance id %q: err = %v; want one naming the instance id", id, err)
		}
	}
}

// crash stops x the way kill -9 stops a process, as far as the group can
// tell: its client closes, which for a static member sends no leave, and
// it never heartbeats again. (Run then finds its client closed and
// returns; its final commit and leave fail on the closed client.)
func (x *running) crash(t *testing.T) {
	t.Helper()
	x.cl.Close()
	x.stop(t)
}

// staticPair starts two static members, A and B, of one deployment with 8
// partitions and waits until they share the partitions.
func staticPair(t *testing.T, session time.Duration) (f fixture, cfgA Config, a, b *running) {
	t.Helper()
	f = newFixture(t, 8)
	cfgA, cfgB := f.config(), f.config()
	cfgA.InstanceID, cfgB.InstanceID = "app.dep.0", "app.dep.1"
	cfgA.SessionTimeout, cfgB.SessionTimeout = session, session
	a, b = start(t, cfgA, upper), start(t, cfgB, upper)
	waitFor(t, wait, "A and B to share the partitions", func() bool {
		pa, pb := a.Stats().Partitions, b.Stats().Partitions
		return pa > 0 && pb > 0 && pa+pb == 8
	})
	return f, cfgA, a, b
}

// A static replica that stops softly leaves the group after its final
// commit: its partitions move at once, not a session timeout later.
func TestStaticMemberLeavesOnStop(t *testing.T) {
	t.Parallel()
	const session = 30 * time.Second
	_, _, a, b := staticPair(t, session)
	began := time.Now()
	a.stop(t)
	waitFor(t, 10*time.Second, "B to own every partition", func() bool { return b.Stats().Partitions == 8 })
	took := time.Since(began)
	t.Logf("static member stopped softly: its partitions moved %v after the stop began (session timeout %v)", took.Round(time.Millisecond), session)
	if took > 5*time.Second {
		t.Fatalf("partitions moved %v after a soft stop; the leave should move them within a few heartbeats", took)
	}
}

// A static replica that dies is replaced by one with the same instance
// ID: the replacement gets the dead member's partitions back at once,
// with no session timeout and no partition of B moving.
func TestStaticMemberRestartTakesPartitionsBack(t *testing.T) {
	t.Parallel()
	_, cfgA, a, b := staticPair(t, 30*time.Second)
	hadA, hadB := a.Stats().Partitions, b.Stats().Partitions
	a.crash(t)
	began := time.Now()
	a2 := start(t, cfgA, upper)
	waitFor(t, 10*time.Second, "the restarted A to own its partitions again", func() bool { return a2.Stats().Partitions == hadA })
	took := time.Since(began)
	t.Logf("static member killed and restarted: %d partitions back %v after the restart (session timeout 30s)", hadA, took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Fatalf("the restarted member took %v to get its partitions back", took)
	}
	if got := b.Stats().Partitions; got != hadB {
		t.Fatalf("B owns %d partitions after A's restart, had %d", got, hadB)
	}
}

// A static replica that dies and does not come back loses its partitions
// one session timeout after its last heartbeat.
func TestStaticMemberDeadMovesAfterSessionTimeout(t *testing.T) {
	t.Parallel()
	const session = DefaultSessionTimeout
	_, _, a, b := staticPair(t, session)
	a.crash(t)
	began := time.Now()
	waitFor(t, session+10*time.Second, "B to own every partition", func() bool { return b.Stats().Partitions == 8 })
	took := time.Since(began)
	t.Logf("static member killed, not restarted: its partitions moved %v after the kill (session timeout %v)", took.Round(time.Millisecond), session)
	if took < session-time.Second {
		t.Fatalf("partitions moved %v after the kill, before the session timeout: did the dead member leave?", took)
	}
}
