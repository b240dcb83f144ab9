package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/replicas"
	"github.com/sluice-serve/sluice/streams"
)

// Failover of replica processes under `sluice node`: a killed replica's
// slot comes back as a static group member and takes its partitions back
// at once; a frozen one loses them a session timeout later. These tests
// are not parallel: they time what they measure, and run alone (the
// parallel tests of the package wait for them).

// failoverYAML is two deployments, two replica processes each: the Front
// (the chain example's Ingress) calls the Adder and forwards its future
// to the Adder again, so x becomes x+2 in three hops, and a Front's
// in-flight slots wait on Adder replicas.
const failoverYAML = `name: %[1]s
route_prefix: /%[1]s
ingress: Front
deployments:
  - name: Front
    handler: Ingress
    args: [{handle: Adder}, {handle: Adder}]
    replicas: {min: 2, initial: 2, max: 2}
  - name: Adder
    args: [1]
    replicas: {min: 2, initial: 2, max: 2}
`

// failoverNode starts a node and its gateway, deploys failoverYAML as
// app, and waits until both deployments have two stable static members
// with four partitions each. Replica processes left behind by a failed
// test are killed at its end.
func failoverNode(t *testing.T, app string) *testNode {
	t.Helper()
	var n *testNode
	t.Cleanup(func() { // registered first, so it runs after the node's own cleanup
		if n == nil {
			return
		}
		for _, pid := range replicaPIDs(n.prefix, "") {
			_ = syscall.Kill(pid, syscall.SIGCONT)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	n = startNode(t)
	spec := writeFile(t, app+".yaml", fmt.Sprintf(failoverYAML, app))
	if b, err := exec.Command(n.bin, "deploy", "-f", spec, "--addr", n.addr).CombinedOutput(); err != nil {
		t.Fatalf("deploy: %v\n%s", err, b)
	}
	for _, dep := range []string{"Front", "Adder"} {
		waitGroupSplit(t, n, app, dep, map[string]int{app + "." + dep + ".0": 4, app + "." + dep + ".1": 4})
	}
	return n
}

// waitGroupSplit waits (30s at most) until the deployment's group is
// stable with exactly the members want names, each owning as many
// partitions as want says.
func waitGroupSplit(t *testing.T, n *testNode, app, dep string, want map[string]int) {
	t.Helper()
	nm, err := streams.NewNamer(n.prefix)
	if err != nil {
		t.Fatal(err)
	}
	group := nm.Group(app, dep)
	cl, err := kgo.NewClient(seed()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var last string
	for deadline := time.Now().Add(30 * time.Second); ; {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		gs, err := adm.DescribeGroups(ctx, group)
		cancel()
		got := map[string]int{}
		if err == nil && gs[group].State == "Stable" {
			for _, m := range gs[group].Members {
				if a, ok := m.Assigned.AsConsumer(); ok && m.InstanceID != nil {
					slot := *m.InstanceID // app.deployment.slot.revision
					slot = slot[:max(strings.LastIndex(slot, "."), 0)]
					for _, tp := range a.Topics {
						got[slot] += len(tp.Partitions)
					}
				}
			}
			if len(got) == len(gs[group].Members) && maps.Equal(got, want) {
				return
			}
		}
		last = fmt.Sprintf("%v %s %v", err, gs[group].State, got)
		if time.Now().After(deadline) {
			t.Fatalf("group %s: not split %v within 30s; last %s\nnode stderr:\n%s", group, want, last, n.errw.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// replicaPIDs returns the live `sluice replica` processes under prefix
// of slot instance, app.deployment.slot (any, when empty), from /proc.
func replicaPIDs(prefix, instance string) []int {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var out []int
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil || len(b) == 0 { // gone, or a zombie
			continue
		}
		args := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
		if len(args) < 2 || args[1] != "replica" || flagOf(args, "--prefix") != prefix {
			continue
		}
		if instance != "" && flagOf(args, "--app")+"."+flagOf(args, "--deployment")+"."+flagOf(args, "--slot") != instance {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(d)); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

func flagOf(args []string, name string) string {
	if i := slices.Index(args, name); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

// processStart returns when pid started, to the kernel's clock tick
// (10ms): its start time since boot from /proc/<pid>/stat, and the boot
// time from /proc/uptime.
func processStart(pid int) (time.Time, error) {
	now := time.Now()
	up, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return time.Time{}, err
	}
	upSec, err := strconv.ParseFloat(strings.Fields(string(up))[0], 64)
	if err != nil {
		return time.Time{}, err
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return time.Time{}, err
	}
	s := string(st)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]) // from field 3, state
	ticks, err := strconv.ParseInt(fields[22-3], 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	boot := now.Add(-time.Duration(upSec * float64(time.Second)))
	return boot.Add(time.Duration(ticks) * time.Second / 100), nil // USER_HZ is 100 on Linux
}

// assignedAt returns the time of the first "partitions assigned" line an
// instance logged at or after since (its replica's own clock, to the
// millisecond), and the partitions it then owned.
func assignedAt(logs, instance string, since time.Time) (time.Time, int, bool) {
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, `msg="partitions assigned"`) || !strings.Contains(line, " instance="+instance+".") {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, logField(line, "time"))
		if err != nil || at.Before(since.Truncate(time.Millisecond)) {
			continue
		}
		owned, _ := strconv.Atoi(logField(line, "owned"))
		return at, owned, true
	}
	return time.Time{}, 0, false
}

func logField(line, key string) string {
	i := strings.Index(line, " "+key+"=")
	if strings.HasPrefix(line, key+"=") {
		i = -1
	} else if i < 0 {
		return ""
	}
	v := line[i+len(key)+2:]
	if j := strings.IndexByte(v, ' '); j >= 0 {
		v = v[:j]
	}
	return v
}

// pollUntil polls cond every 5ms until it holds, failing after d.
func pollUntil(t *testing.T, d time.Duration, what string, n *testNode, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v\nnode stderr:\n%s", what, d, n.errw.String())
		}
	}
}

// killed is what killing a replica process showed.
type killed struct {
	at        time.Time     // SIGKILL sent
	restarted time.Duration // kill to the replacement process's start (to 10ms)
	reassign  time.Duration // the replacement's start to its partitions assigned (to 10ms)
	owned     int
}

// killReplica kills the replica process of instance with SIGKILL and
// waits for node to start its replacement and the replacement to log its
// partitions assigned.
func killReplica(t *testing.T, n *testNode, instance string) killed {
	t.Helper()
	pids := replicaPIDs(n.prefix, instance)
	if len(pids) != 1 {
		t.Fatalf("replica processes of %s: %v, want one", instance, pids)
	}
	// The node restarts a replica that ran for 10s or more at once, and
	// one that did not after a backoff (a failing start): kill one that
	// has been running, as a user's would have.
	if began, err := processStart(pids[0]); err == nil {
		time.Sleep(time.Until(began.Add(11 * time.Second)))
	}
	k := killed{at: time.Now()}
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var next int
	pollUntil(t, 15*time.Second, "a replacement process of "+instance, n, func() bool {
		for _, p := range replicaPIDs(n.prefix, instance) {
			if p != pids[0] {
				next = p
				return true
			}
		}
		return false
	})
	started, err := processStart(next)
	if err != nil {
		t.Fatal(err)
	}
	var assigned time.Time
	pollUntil(t, 15*time.Second, "the replacement of "+instance+" assigned", n, func() bool {
		var ok bool
		assigned, k.owned, ok = assignedAt(n.errw.String(), instance, started)
		return ok
	})
	// The start is known to the tick: a replacement started within 10ms
	// of the kill may show a start a little before it.
	k.restarted, k.reassign = max(started.Sub(k.at), 0), assigned.Sub(started)
	return k
}

// frozenReplica is a replica process stopped with SIGSTOP.
type frozenReplica struct {
	pid   int
	at    time.Time // SIGSTOP sent
	moved time.Time // the survivor logged the frozen one's partitions assigned
	owned int       // the survivor's partitions then
}

// freezeReplica stops the replica process of instance with SIGSTOP (a
// replica that does not come back: the node does not restart a process
// that did not exit) and waits until survivor, the other member of its
// group, is assigned its partitions.
func freezeReplica(t *testing.T, n *testNode, instance, survivor string) *frozenReplica {
	t.Helper()
	pids := replicaPIDs(n.prefix, instance)
	if len(pids) != 1 {
		t.Fatalf("replica processes of %s: %v, want one", instance, pids)
	}
	f := &frozenReplica{pid: pids[0], at: time.Now()}
	if err := syscall.Kill(f.pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, replicas.DefaultSessionTimeout+15*time.Second, survivor+" assigned the partitions of frozen "+instance, n, func() bool {
		var ok bool
		f.moved, f.owned, ok = assignedAt(n.errw.String(), survivor, f.at)
		return ok
	})
	return f
}

// thaw resumes the frozen process (SIGCONT).
func (f *frozenReplica) thaw(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(f.pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
}

// sample is one request of a load.
type sample struct {
	start time.Time
	took  time.Duration
	err   string // "" when answered right
}

// syncLoad posts x and expects x+2, from conc callers, until stopped.
type syncLoad struct {
	mu      sync.Mutex
	samples []sample
	stop    chan struct{}
	wg      sync.WaitGroup
}

func startSyncLoad(addr, path string, conc int) *syncLoad {
	l := &syncLoad{stop: make(chan struct{})}
	hc := &http.Client{Timeout: 90 * time.Second} // the gateway's own default (30s) answers first
	for w := range conc {
		l.wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				x := w*10_000_000 + i
				s := sample{start: time.Now()}
				resp, err := hc.Post("http://"+addr+path, "application/json", strings.NewReader(strconv.Itoa(x)))
				if err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 || string(b) != strconv.Itoa(x+2) {
						s.err = fmt.Sprintf("%d: %d %q", x, resp.StatusCode, b)
					}
				} else {
					s.err = err.Error()
				}
				s.took = time.Since(s.start)
				l.mu.Lock()
				l.samples = append(l.samples, s)
				l.mu.Unlock()
			}
		})
	}
	return l
}

// end stops the callers and waits for their requests in flight.
func (l *syncLoad) end() []sample {
	close(l.stop)
	l.wg.Wait()
	return l.samples
}

// window summarises the requests started in [from, to).
type window struct {
	n, failed       int
	p50, p99, worst time.Duration
}

func summarize(ss []sample, from, to time.Time) window {
	var w window
	var took []time.Duration
	for _, s := range ss {
		if s.start.Before(from) || !s.start.Before(to) {
			continue
		}
		w.n++
		if s.err != "" {
			w.failed++
		}
		took = append(took, s.took)
	}
	if len(took) == 0 {
		return w
	}
	slices.Sort(took)
	w.p50, w.p99, w.worst = took[len(took)*50/100], took[min(len(took)*99/100, len(took)-1)], took[len(took)-1]
	return w
}

func (w window) String() string {
	return fmt.Sprintf("%d requests, %d failed, p50 %v, p99 %v, max %v", w.n, w.failed,
		w.p50.Round(time.Millisecond), w.p99.Round(time.Millisecond), w.worst.Round(time.Millisecond))
}

// Sync load at concurrency 8 through a standalone gateway while replica
// processes of `sluice node` fail: a Front (ingress) replica killed, then
// an Adder (downstream) replica killed, each restarted by the node and
// taking its partitions back as the same static member; then an Adder
// replica frozen (SIGSTOP), whose partitions move to the other Adder a
// session timeout later. No request may fail.
func TestNodeFailoverSync(t *testing.T) {
	const app = "failsync"
	n := failoverNode(t, app)
	load := startSyncLoad(n.addr, "/"+app, 8)
	loadOpen := true
	defer func() {
		if loadOpen {
			load.end()
		}
	}()
	time.Sleep(2 * time.Second) // warm

	const event = 6 * time.Second // the window after each kill whose requests are summarised
	type phase struct {
		name string
		k    killed
	}
	var phases []phase
	for _, dep := range []string{"Front", "Adder"} {
		inst := app + "." + dep + ".0"
		k := killReplica(t, n, inst)
		phases = append(phases, phase{inst, k})
		time.Sleep(time.Until(k.at.Add(event)))
		waitGroupSplit(t, n, app, dep, map[string]int{inst: 4, app + "." + dep + ".1": 4})
	}

	// A replica that does not come back: freeze Adder.1. Its partitions
	// stay its own until its session times out, then move to Adder.0.
	frozen, survivor := app+".Adder.1", app+".Adder.0"
	f := freezeReplica(t, n, frozen, survivor)
	stoppedAt, moved, owned := f.at, f.moved, f.owned
	time.Sleep(time.Until(moved.Add(2 * time.Second)))
	frozenEnd := time.Now()
	contAt := time.Now()
	f.thaw(t)
	// Thawed, it finds itself out of the group, rejoins and gets its
	// share back.
	waitGroupSplit(t, n, app, "Adder", map[string]int{survivor: 4, frozen: 4})
	back := time.Since(contAt)
	time.Sleep(time.Second)

	samples := load.end()
	loadOpen = false
	for _, p := range phases {
		w := summarize(samples, p.k.at, p.k.at.Add(event))
		t.Logf("kill -9 %s: replacement started %v after the kill, its %d partitions assigned %v after its start; the %v after the kill: %s",
			p.name, p.k.restarted.Round(time.Millisecond), p.k.owned, p.k.reassign.Round(time.Millisecond), event, w)
		if p.k.reassign > 2*time.Second {
			t.Errorf("%s: the replacement's partitions were assigned %v after its start; want at most 2s", p.name, p.k.reassign)
		}
		if w.p99 > 3*time.Second {
			t.Errorf("%s: p99 %v in the %v after the kill; want at most 3s", p.name, w.p99, event)
		}
	}
	fw := summarize(samples, stoppedAt, frozenEnd)
	t.Logf("SIGSTOP %s: %s assigned its partitions (owning %d) %v after the freeze (session timeout %v); back to 4+4 %v after SIGCONT; the freeze: %s",
		frozen, survivor, owned, moved.Sub(stoppedAt).Round(time.Millisecond), replicas.DefaultSessionTimeout, back.Round(time.Millisecond), fw)
	if d := moved.Sub(stoppedAt); d > replicas.DefaultSessionTimeout+4*time.Second {
		t.Errorf("the frozen replica's partitions moved %v after the freeze; want within the session timeout (%v) and a few heartbeats", d, replicas.DefaultSessionTimeout)
	}
	all := summarize(samples, time.Time{}, time.Now())
	t.Logf("whole run: %s", all)
	for _, s := range samples {
		if s.err != "" {
			t.Errorf("failed request at %s (took %v): %s", s.start.Format("15:04:05.000"), s.took.Round(time.Millisecond), s.err)
		}
	}
	n.stop(t)
}

// 20,000 keyed records produced to the ingress topic and answered offline
// (results on the output topic) while an Adder (downstream) replica
// process is killed with a quarter of the results out, a Front (ingress)
// one at 60%, and the other Adder frozen at 80% (thawed once its
// partitions moved): every key comes out with its right value, none is
// dead-lettered; duplicates (at-least-once across a kill) are counted.
func TestNodeFailoverOffline(t *testing.T) {
	const app, total = "failoff", 20_000
	n := failoverNode(t, app)
	nm, err := streams.NewNamer(n.prefix)
	if err != nil {
		t.Fatal(err)
	}
	// Kill replicas that have been running, as a user's would have (see
	// killReplica); wait now so that the kills land where they are meant to.
	for _, pid := range replicaPIDs(n.prefix, "") {
		if began, err := processStart(pid); err == nil {
			time.Sleep(time.Until(began.Add(11 * time.Second)))
		}
	}

	cons, err := kgo.NewClient(append(seed(), kgo.ConsumeTopics(nm.Output(app)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var (
		mu       sync.Mutex
		seen     = map[string]int{}
		arrivals []time.Time // one per poll that brought a new key
		wrong    []string
	)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		for ctx.Err() == nil {
			fs := cons.PollFetches(ctx)
			now := time.Now()
			mu.Lock()
			fresh := false
			fs.EachRecord(func(r *kgo.Record) {
				k := string(r.Key)
				i, _ := strconv.Atoi(strings.TrimPrefix(k, "k"))
				if string(r.Value) != strconv.Itoa(i+2) && len(wrong) < 10 {
					wrong = append(wrong, fmt.Sprintf("%s=%s", k, r.Value))
				}
				fresh = fresh || seen[k] == 0
				seen[k]++
			})
			if fresh {
				arrivals = append(arrivals, now)
			}
			done := len(seen) == total
			mu.Unlock()
			if done {
				return
			}
		}
	}()
	out := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(seen)
	}

	prod, err := kgo.NewClient(seed()...)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	began := time.Now()
	var produceErr error
	var pmu sync.Mutex
	for i := range total {
		prod.Produce(ctx, &kgo.Record{Topic: nm.Ingress(app), Key: fmt.Appendf(nil, "k%d", i), Value: strconv.AppendInt(nil, int64(i), 10)},
			func(_ *kgo.Record, err error) {
				if err != nil {
					pmu.Lock()
					produceErr = err
					pmu.Unlock()
				}
			})
	}
	if err := prod.Flush(ctx); err != nil || produceErr != nil {
		t.Fatalf("produce: %v %v", err, produceErr)
	}
	produced := time.Since(began)

	type kill struct {
		name string
		k    killed
		out  int
	}
	var kills []kill
	for _, step := range []struct {
		inst string
		at   int
	}{{app + ".Adder.0", total / 4}, {app + ".Front.1", total * 6 / 10}} {
		pollUntil(t, time.Minute, fmt.Sprintf("%d results out", step.at), n, func() bool { return out() >= step.at })
		o := out()
		kills = append(kills, kill{step.inst, killReplica(t, n, step.inst), o})
	}
	// And one that does not come back: the Adders' partitions all wait
	// on the frozen one until its session times out.
	pollUntil(t, time.Minute, fmt.Sprintf("%d results out", total*8/10), n, func() bool { return out() >= total*8/10 })
	frozenOut := out()
	f := freezeReplica(t, n, app+".Adder.1", app+".Adder.0")
	f.thaw(t)
	select {
	case <-consumed:
	case <-ctx.Done():
	}
	took := time.Since(began)

	mu.Lock()
	defer mu.Unlock()
	records, dups := 0, 0
	for _, c := range seen {
		records += c
		dups += c - 1
	}
	dlq := 0
	if offs, err := kadm.NewClient(prod).ListEndOffsets(context.Background(), nm.DeadLetter(app)); err == nil {
		offs.Each(func(o kadm.ListedOffset) { dlq += int(o.Offset) })
	} else {
		t.Errorf("dead-letter end offsets: %v", err)
	}
	// The longest time without a new key from an event to the next.
	pause := func(from, to time.Time) time.Duration {
		var worst time.Duration
		prev := from
		for _, a := range arrivals {
			if a.Before(from) || !a.Before(to) {
				continue
			}
			worst = max(worst, a.Sub(prev))
			prev = a
		}
		return worst
	}
	ends := []time.Time{kills[1].k.at, f.at, time.Now()}
	for i, k := range kills {
		t.Logf("kill -9 %s at %d results out: replacement started %v after the kill, its %d partitions assigned %v after its start; longest time without a new result until the next event %v",
			k.name, k.out, k.k.restarted.Round(time.Millisecond), k.k.owned, k.k.reassign.Round(time.Millisecond), pause(k.k.at, ends[i]).Round(time.Millisecond))
	}
	t.Logf("SIGSTOP %s.Adder.1 at %d results out: %s.Adder.0 assigned its partitions %v after the freeze (session timeout %v); longest time without a new result after the freeze %v",
		app, frozenOut, app, f.moved.Sub(f.at).Round(time.Millisecond), replicas.DefaultSessionTimeout, pause(f.at, ends[2]).Round(time.Millisecond))
	t.Logf("%d keys produced in %v; %d of %d out %v after the first produce (%.0f/s); %d output records, %d duplicates; %d dead-lettered",
		total, produced.Round(time.Millisecond), len(seen), total, took.Round(time.Millisecond), float64(len(seen))/took.Seconds(), records, dups, dlq)
	if missing := total - len(seen); missing != 0 {
		t.Errorf("%d of %d keys missing from the output topic after %v", missing, total, took)
	}
	if len(wrong) > 0 {
		t.Errorf("wrong results: %v", wrong)
	}
	if dlq != 0 {
		t.Errorf("%d records dead-lettered", dlq)
	}
	for _, k := range kills {
		if k.k.reassign > 2*time.Second {
			t.Errorf("%s: the replacement's partitions were assigned %v after its start; want at most 2s", k.name, k.k.reassign)
		}
	}
	if d := f.moved.Sub(f.at); d > replicas.DefaultSessionTimeout+4*time.Second {
		t.Errorf("the frozen replica's partitions moved %v after the freeze; want within the session timeout (%v) and a few heartbeats", d, replicas.DefaultSessionTimeout)
	}
	n.stop(t)
}
