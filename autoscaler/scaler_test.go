package autoscaler

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/streams"
)

// fakeActuator records what it is asked; its size is what it was last
// asked for, unless pinned.
type fakeActuator struct {
	mu      sync.Mutex
	size    map[Target]int
	calls   []int
	problem string
	sizeErr error
}

func (f *fakeActuator) Scale(_ context.Context, t Target, n int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.size[t] = n
	f.calls = append(f.calls, n)
	return nil
}

func (f *fakeActuator) Size(_ context.Context, t Target) (Size, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return Size{Current: f.size[t], Problem: f.problem}, f.sizeErr
}

func (f *fakeActuator) asked() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int(nil), f.calls...)
}

func startScaler(t *testing.T, k *lagKafka, act Actuator, deps ...Deployment) (*Scaler, string) {
	t.Helper()
	status := k.topic(t, "status", 1)
	s, err := New(lagCtx(t), Config{Brokers: k.brokers, Status: status, Actuator: act, Log: lagQuiet})
	if err != nil {
		t.Fatal(err)
	}
	s.Set(deps)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return s, status
}

func waitStatus(t *testing.T, s *Scaler, tg Target, what string, ok func(Status) bool) Status {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, found := s.Status(tg)
		if found && ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: last status %+v (found %v)", what, st, found)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func zeroOptions() Options {
	return Options{Min: 0, Max: 4, TargetLag: 10, ActivationLag: 1, UpDelay: 0, DownDelay: time.Minute, ZeroAfter: time.Minute}
}

// The first record written to a deployment at zero wakes it at once, not
// at its next poll (an hour away here), and the decision is published on
// the status topic with its reason.
func TestScalerWakesOnFirstRecord(t *testing.T) {
	k := newLagKafka(t)
	in := k.topic(t, "wake-in", 4)
	tg := Target{App: "a", Deployment: "d"}
	act := &fakeActuator{size: map[Target]int{}}
	s, status := startScaler(t, k, act, Deployment{Target: tg, Group: k.group(t, "wake"), Inputs: []string{in}, Options: zeroOptions(), Poll: time.Hour})
	waitStatus(t, s, tg, "idle at zero", func(st Status) bool { return strings.Contains(st.Last.Reason, "idle at zero") })

	start := time.Now()
	k.produce(t, in, 2, 1)
	st := waitStatus(t, s, tg, "woken", func(st Status) bool { return st.Current == 1 })
	took := time.Since(start)
	if took > 5*time.Second || st.Changed == nil || !strings.Contains(st.Changed.Reason, "woken: lag 1") {
		t.Fatalf("woken after %v with %+v", took, st)
	}
	t.Logf("woken %v after the record", took.Round(time.Millisecond))
	if got := act.asked(); len(got) != 1 || got[0] != 1 {
		t.Fatalf("actuator asked %v, want [1]", got)
	}

	// The status topic carries it, for other processes.
	followed := NewStatuses()
	opts := append([]kgo.Opt{kgo.SeedBrokers(k.brokers...)}, streams.SecurityOptions(k.brokers)...)
	cl, err := kgo.NewClient(append(opts, kgo.ConsumeTopics(status), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := lagCtx(t)
	for {
		if got, ok := followed.Get(tg); ok && got.Current == 1 && len(got.History) == 1 {
			break
		}
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("no published status with the wake-up")
		}
		fs.EachRecord(func(r *kgo.Record) { followed.Apply(ctx, r) })
	}
}

// A lag that cannot be read keeps the size, says why, and never scales to
// zero, however long it lasts; the actuator's problem is reported too.
func TestScalerKeepsSizeWhenLagUnreadable(t *testing.T) {
	k := newLagKafka(t)
	tg := Target{App: "a", Deployment: "gone"}
	act := &fakeActuator{size: map[Target]int{tg: 2}, problem: "replica failed 3 times"}
	o := zeroOptions()
	o.DownDelay, o.ZeroAfter = 0, 0 // would go to zero at once on a lag of 0
	s, _ := startScaler(t, k, act, Deployment{Target: tg, Group: k.group(t, "gone"), Inputs: []string{k.name("missing-topic")}, Options: o, Poll: 50 * time.Millisecond})
	st := waitStatus(t, s, tg, "lag error", func(st Status) bool { return st.LagError != "" })
	time.Sleep(500 * time.Millisecond) // about ten polls
	st, _ = s.Status(tg)
	if got := act.asked(); len(got) != 0 {
		t.Fatalf("actuator asked %v while the lag was unreadable", got)
	}
	if st.Current != 2 || !strings.Contains(st.LagError, "missing-topic") || !strings.Contains(st.Last.Reason, "keeping 2") ||
		st.Problem != "replica failed 3 times" {
		t.Fatalf("status %+v", st)
	}
}

// An actuator that cannot tell the size is reported and nothing is decided.
func TestScalerReportsActuatorError(t *testing.T) {
	k := newLagKafka(t)
	in := k.topic(t, "act-in", 1)
	tg := Target{App: "a", Deployment: "d"}
	act := &fakeActuator{size: map[Target]int{}, sizeErr: errors.New("workload a-d not found in namespace x")}
	s, _ := startScaler(t, k, act, Deployment{Target: tg, Group: k.group(t, "act"), Inputs: []string{in}, Options: zeroOptions(), Poll: 50 * time.Millisecond})
	waitStatus(t, s, tg, "problem", func(st Status) bool { return strings.Contains(st.Problem, "not found in namespace x") })
	if got := act.asked(); len(got) != 0 {
		t.Fatalf("actuator asked %v without a known size", got)
	}
}

// With add_partitions, demand above the partitions grows the input topic
// first, then asks for the replicas.
func TestScalerAddsPartitions(t *testing.T) {
	k := newLagKafka(t)
	in := k.topic(t, "grow-in", 2)
	tg := Target{App: "a", Deployment: "grow"}
	act := &fakeActuator{size: map[Target]int{tg: 1}}
	o := zeroOptions()
	o.Min, o.Max, o.AddPartitions = 1, 6, true
	k.produce(t, in, 0, 40) // 40 records at 10 per replica: 4 replicas, 2 partitions
	s, _ := startScaler(t, k, act, Deployment{Target: tg, Group: k.group(t, "grow"), Inputs: []string{in}, Options: o, Poll: 50 * time.Millisecond})
	st := waitStatus(t, s, tg, "grown", func(st Status) bool { return st.Current >= 4 })
	if !strings.Contains(st.Changed.Reason, "input topics grown to") {
		t.Fatalf("reason %q", st.Changed.Reason)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		td, err := k.adm.ListTopics(lagCtx(t), in)
		if err == nil && len(td[in].Partitions) == st.Current {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic partitions for %d replicas: %v %v", st.Current, td[in].Partitions.Numbers(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
