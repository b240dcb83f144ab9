package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/streams"
)

// A broker restart under load on `sluice node` + `sluice gateway`, the
// real tier only (scripts/kafka.sh restart: the same port and data):
// sync load at concurrency 8 and an offline batch of 5,000 keyed records
// in flight while the broker goes down and comes back. Requests caught
// in the outage may fail (the broker is gone), but the platform recovers
// by itself, within 30 s of the broker serving the deployments' groups
// again, and no offline record is lost.
func TestNodeBrokerRestart(t *testing.T) {
	state := os.Getenv("KAFKA_STATE_DIR")
	if os.Getenv("SLUICE_TEST_BROKER_RESTART") == "" || os.Getenv("SLUICE_TEST_BROKERS") == "" || state == "" {
		// It restarts the shared broker: the real tier runs it alone, after
		// the rest (scripts/test.sh real).
		t.Skip("restarts the broker: run by the real tier alone, with SLUICE_TEST_BROKER_RESTART=1, SLUICE_TEST_BROKERS and KAFKA_STATE_DIR")
	}
	const app, total = "brokerrestart", 5_000
	n := failoverNode(t, app)
	nm, err := streams.NewNamer(n.prefix)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()

	// Offline: every key must come out, however often.
	cons, err := kgo.NewClient(append(seed(), kgo.ConsumeTopics(nm.Output(app)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var mu sync.Mutex
	seen := map[string]int{}
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		for ctx.Err() == nil {
			fs := cons.PollFetches(ctx)
			mu.Lock()
			fs.EachRecord(func(r *kgo.Record) { seen[string(r.Key)]++ })
			done := len(seen) == total
			mu.Unlock()
			if done {
				return
			}
		}
	}()
	load := startSyncLoad(n.addr, "/"+app, 8)
	time.Sleep(2 * time.Second)
	prod, err := kgo.NewClient(append(seed(), kgo.RecordRetries(1000), kgo.RecordDeliveryTimeout(2*time.Minute))...)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	var perr error
	var pmu sync.Mutex
	for i := range total {
		prod.Produce(ctx, &kgo.Record{Topic: nm.Ingress(app), Key: fmt.Appendf(nil, "k%d", i), Value: strconv.AppendInt(nil, int64(i), 10)},
			func(_ *kgo.Record, err error) {
				if err != nil {
					pmu.Lock()
					perr = err
					pmu.Unlock()
				}
			})
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	rewriteSCRAMUser(ctx, t)
	down := time.Now()
	restart := exec.Command("../scripts/kafka.sh", "restart")
	restart.Env = append(os.Environ(), "KAFKA_STATE_DIR="+state)
	b, err := restart.CombinedOutput()
	if err != nil {
		t.Fatalf("kafka.sh restart: %v\n%s", err, b)
	}
	t.Logf("kafka.sh restart (%v):\n%s", time.Since(down).Round(100*time.Millisecond), b)
	up := time.Now()
	// The broker serves the deployments' groups only once it leads their
	// coordinator partitions again, which a broker holding many partitions
	// takes long to do on a busy machine: the platform's recovery counts
	// from then.
	serving := waitCoordinators(t, nm.Group(app, "Front"), nm.Group(app, "Adder"))
	// Recovered: the first request started after that which succeeds, and
	// every later one.
	var recovered time.Time
	for deadline := serving.Add(90 * time.Second); recovered.IsZero(); time.Sleep(200 * time.Millisecond) {
		if code, body := postTo(t, n.addr, "/"+app, "1"); code == 200 && body == "3" {
			recovered = time.Now()
		} else if time.Now().After(deadline) {
			t.Fatalf("no answer 90 s after the broker served the groups again: %d %q\nnode stderr:\n%s", code, body, n.errw.String())
		}
	}
	time.Sleep(5 * time.Second)
	samples := load.end()
	after := summarize(samples, recovered, time.Now())
	during := summarize(samples, down, recovered)
	select {
	case <-consumed:
	case <-ctx.Done():
	}
	mu.Lock()
	out, dups := len(seen), 0
	for _, c := range seen {
		dups += c - 1
	}
	mu.Unlock()
	t.Logf("broker restart: down to back %v; groups served again %v later; first answer %v after that; during the outage: %v; after recovery: %v",
		up.Sub(down).Round(time.Millisecond), serving.Sub(up).Round(time.Millisecond), recovered.Sub(serving).Round(time.Millisecond), during, after)
	t.Logf("offline: %d of %d keys out, %d duplicates", out, total, dups)
	if perr != nil {
		t.Fatalf("producing the offline batch: %v", perr)
	}
	if out != total {
		t.Fatalf("offline: %d of %d keys out", out, total)
	}
	if after.failed > 0 {
		t.Fatalf("%d requests failed after the platform recovered", after.failed)
	}
	if recovered.Sub(serving) > 30*time.Second {
		t.Fatalf("recovery took %v after the broker served the groups again", recovered.Sub(serving))
	}
}

// waitCoordinators waits (three minutes at most) until the broker's group
// coordinator answers for every one of groups, and returns when it did.
// rewriteSCRAMUser writes the SCRAM credentials of the suite's SASL user
// again through the Admin API, with the password it has. scripts/kafka.sh
// makes the user when it formats the broker's storage (kafka-storage
// format --add-scram); twice in CI the restarted broker then refused it as
// "invalid credentials" for minutes, every client alike. Written by the
// API, the credentials are ordinary records of the metadata log. Nothing
// to do on a broker without SCRAM.
func rewriteSCRAMUser(ctx context.Context, t *testing.T) {
	t.Helper()
	user, file := os.Getenv("SLUICE_KAFKA_SASL_USERNAME"), os.Getenv("SLUICE_KAFKA_SASL_PASSWORD_FILE")
	if user == "" || file == "" || !strings.HasPrefix(os.Getenv("SLUICE_KAFKA_SASL_MECHANISM"), "SCRAM") {
		return
	}
	pw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(seed()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// One mechanism a request: Kafka refuses a user named twice in one.
	for _, m := range []kadm.ScramMechanism{kadm.ScramSha512, kadm.ScramSha256} {
		up := kadm.UpsertSCRAM{User: user, Mechanism: m, Iterations: 4096, Password: strings.TrimSpace(string(pw))}
		res, err := kadm.NewClient(cl).AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{up})
		if err == nil {
			err = res.Error()
		}
		if err != nil {
			t.Fatalf("writing the %v credentials of %s again: %v", m, user, err)
		}
	}
}

func waitCoordinators(t *testing.T, groups ...string) time.Time {
	t.Helper()
	cl, err := kgo.NewClient(seed()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var last error
	for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		gs, err := adm.DescribeGroups(ctx, groups...)
		cancel()
		if err == nil {
			err = gs.Error()
		}
		if err == nil {
			return time.Now()
		}
		last = err
	}
	t.Fatalf("the broker's group coordinator did not answer for %v within 5 minutes of its restart: %v", groups, last)
	return time.Time{}
}
