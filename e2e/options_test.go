package e2e

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-serve/sluice/streams"
)

const batchYAML = `name: batched
route_prefix: /batched
ingress: B
deployments:
  - name: B
    handler: BatchSizer
    max_ongoing_requests: 16
    batching: {max_batch_size: 8, batch_wait_timeout: 200ms}
`

// Concurrent requests to a batch deployment run together, and each still
// gets its own answer.
func TestBatching(t *testing.T) {
	t.Parallel()
	if code, out := run(t, "deploy", "-f", writeFile(t, "b.yaml", batchYAML)); code != 0 {
		t.Fatalf("deploy: %s", out)
	}
	defer run(t, "delete", "batched")
	var wg sync.WaitGroup
	sizes := make([]int, 8)
	for i := range 8 {
		wg.Go(func() {
			code, got := post(t, "/batched", fmt.Sprint("r", i))
			name, size, ok := strings.Cut(got, "/")
			if code != 200 || !ok || name != fmt.Sprint("r", i) {
				t.Errorf("request r%d: %d %q", i, code, got)
				return
			}
			sizes[i], _ = strconv.Atoi(size)
		})
	}
	wg.Wait()
	biggest := 0
	for _, s := range sizes {
		biggest = max(biggest, s)
	}
	if biggest < 2 {
		t.Fatalf("batch sizes %v: 8 concurrent requests never shared a batch", sizes)
	}
}

const greeterYAML = `name: greet
route_prefix: /greet
ingress: G
deployments:
  - {name: G, handler: Greeter, user_config: {greeting: %s}, replicas: {min: 2, initial: 2, max: 2}}
`

// A change of user_config alone reaches the Reconfigure hook of the live
// replicas: answers change, nothing is rebuilt.
func TestHotReconfigure(t *testing.T) {
	t.Parallel()
	if code, out := run(t, "deploy", "-f", writeFile(t, "g.yaml", fmt.Sprintf(greeterYAML, "Hi"))); code != 0 {
		t.Fatalf("deploy: %s", out)
	}
	defer run(t, "delete", "greet")
	if code, got := post(t, "/greet", "Ana"); code != 200 || got != "Hi Ana" {
		t.Fatalf("greet = %d %q", code, got)
	}
	built := greeterBuilt.Load()
	if code, out := run(t, "deploy", "-f", writeFile(t, "g.yaml", fmt.Sprintf(greeterYAML, "Yo"))); code != 0 {
		t.Fatalf("redeploy: %s", out)
	}
	for range 10 { // both replicas answer with the new greeting
		if code, got := post(t, "/greet", "Ana"); code != 200 || got != "Yo Ana" {
			t.Fatalf("after reconfigure = %d %q", code, got)
		}
	}
	if n := greeterBuilt.Load(); n != built {
		t.Fatalf("reconfigure rebuilt %d replicas; it should reconfigure them in place", n-built)
	}
}

// A broker that is down at start is a clear error after a bounded wait,
// not a hang.
func TestBrokerDownAtStart(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	start := time.Now()
	code, out := run(t, "dev", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0", "--brokers", dead)
	if code != 1 || !strings.Contains(out, "no kafka broker answered at "+dead) {
		t.Fatalf("dev with a dead broker: exit %d:\n%s", code, out)
	}
	if took := time.Since(start); took > streams.DialTimeout+5*time.Second {
		t.Fatalf("gave up after %s, want about %s", took, streams.DialTimeout)
	}
}
