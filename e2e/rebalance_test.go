package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/platform/cli"
	"github.com/sluice-serve/sluice/platform/serve"
	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/protocol"
)

const scaledYAML = `name: scaled
route_prefix: /scaled
ingress: F
deployments:
  - {name: F, handler: Faults, replicas: {initial: %d, max: 4}, max_ongoing_requests: 16}
`

// Scaling a deployment 1 -> 3 -> 1 under load rebalances its group twice;
// no request may fail or lose its reply.
func TestRebalanceLosesNothing(t *testing.T) {
	t.Parallel()
	if code, out := run(t, "deploy", "-f", writeFile(t, "s.yaml", fmt.Sprintf(scaledYAML, 1))); code != 0 {
		t.Fatalf("deploy: %s", out)
	}
	defer run(t, "delete", "scaled")
	// Warm: the group has joined and serves before load and rebalances start.
	if code, got := post(t, "/scaled", `{"echo":"warm"}`); code != 200 || got != "warm" {
		t.Fatalf("warm-up: %d %q", code, got)
	}

	stop := echoLoad(t, "/scaled", 8, 2)
	time.Sleep(500 * time.Millisecond)
	for _, n := range []int{3, 1} {
		if code, out := run(t, "deploy", "-f", writeFile(t, "s.yaml", fmt.Sprintf(scaledYAML, n))); code != 0 {
			t.Errorf("scale to %d: %s", n, out)
		}
		time.Sleep(1500 * time.Millisecond)
	}
	sent, ok := stop()
	// The invariant is that none fails; the floor only proves load ran
	// through both rebalances (a real broker's rebalance pauses for seconds).
	if ok < 16 || ok != sent {
		t.Fatalf("%d of %d requests succeeded across two rebalances", ok, sent)
	}
	t.Logf("%d requests, all answered, across scale 1 -> 3 -> 1", ok)
}

// `sluice replica` runs the same replica code as its own process: it joins
// the deployment's group, serves, and stops softly on SIGTERM.
func TestReplicaProcess(t *testing.T) {
	t.Parallel()
	bin := sluiceBinary(t)
	cmd := exec.Command(bin, "replica", "--app", "hello", "--deployment", "SpanishResponder",
		"--brokers", strings.Join(plat.Brokers, ","), "--prefix", namer.Prefix())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	group := namer.Group("hello", "SpanishResponder")
	cl, err := kgo.NewClient(seed()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(30 * time.Second)
	for {
		gs, err := adm.DescribeGroups(context.Background(), group)
		if err == nil && len(gs[group].Members) == 2 && gs[group].State == "Stable" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s never had 2 stable members: %v %+v\nreplica stderr:\n%s", group, err, gs, stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i := range 20 {
		name := "P" + strconv.Itoa(i)
		if code, got := post(t, "/hello", `{"language":"spanish","name":"`+name+`"}`); code != 200 || got != "Hola "+name {
			t.Fatalf("with a replica process: %d %q", code, got)
		}
	}
	time.Sleep(time.Second) // idle
	if rss, err := rssKiB(cmd.Process.Pid); err == nil {
		t.Logf("idle replica process RSS: %d KiB", rss)
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("replica exit: %v\n%s", err, stderr.String())
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("soft stop took %s", took)
	}
}

func rssKiB(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			return strconv.Atoi(f[1])
		}
	}
	return 0, fmt.Errorf("no VmRSS")
}

// The embedded broker keeps applications, topics and offsets in its data
// directory: a restarted `sluice dev` serves what was deployed before.
func TestDevSurvivesRestart(t *testing.T) {
	t.Parallel()
	if len(brokers()) > 0 {
		t.Skip("data-dir persistence is a property of the embedded broker; this tier uses a real one")
	}
	dir := t.TempDir()
	reg, err := serve.NewRegistry(nil, upper)
	if err != nil {
		t.Fatal(err)
	}
	start := func() *cli.Dev {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		d, err := cli.StartDev(ctx, cli.DevConfig{HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0", DataDir: dir, Registry: reg, Log: testLog})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	d := start()
	var out strings.Builder
	err = cli.Run(context.Background(), []string{"deploy", "--addr", d.Addr, "-f", writeFile(t, "t.yaml", fmt.Sprintf(pipelineYAML, "b"))},
		cli.Env{Stdout: &out, Stderr: &out, Log: testLog, Registry: reg})
	if err != nil {
		t.Fatalf("deploy: %v %s", err, out.String())
	}
	d.Close()

	d = start()
	defer d.Close()
	c, err := streams.NewCaller(context.Background(), d.Brokers, streams.Namer{}, "restart-"+streams.Instance(), testLog)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := c.Call(ctx, &protocol.Request{Topic: streams.Namer{}.Ingress("tags"), Value: []byte("r")})
	if err != nil || string(rep.Value) != "c[b[a[r]]]" {
		t.Fatalf("after restart: %q %v", rep.Value, err)
	}
}
