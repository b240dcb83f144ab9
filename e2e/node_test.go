package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-serve/sluice/streams"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// sluiceBinary builds cmd/sluice once per run.
func sluiceBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sluice-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "sluice")
		if out, err := exec.Command("go", "build", "-o", binPath, "../cmd/sluice").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// removeBinary deletes what sluiceBinary built; TestMain calls it.
func removeBinary() {
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
}

const nodeHelloYAML = `name: nodehello
route_prefix: /nodehello
ingress: LanguageClassifier
deployments:
  - name: LanguageClassifier
    handler: LanguageClassifier
    args: [{handle: SpanishResponder}, {handle: FrenchResponder}]
    replicas: {min: 0, initial: 0, max: 2}
  - name: SpanishResponder
    replicas: {min: 0, initial: 0, max: 2}
  - name: FrenchResponder
    replicas: {min: 0, initial: 0, max: 2}
`

// `sluice node` scales deployments as replica processes of the stock
// binary: with a standalone `sluice gateway` in front, an application whose
// deployments all start at zero answers (each hop wakes the next), and the
// autoscaler's decisions show in `sluice status` through the gateway.
func TestNodeRunsReplicaProcesses(t *testing.T) {
	t.Parallel()
	bin := sluiceBinary(t)
	prefix := "n" + streams.Instance() // apart from the platform under test
	bs := strings.Join(plat.Brokers, ",")

	gw := exec.Command(bin, "gateway", "--brokers", bs, "--prefix", prefix, "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0")
	out, err := gw.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = gw.Process.Signal(syscall.SIGTERM); _ = gw.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("gateway did not start: %v", err)
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	addr := strings.TrimSuffix(strings.Fields(strings.SplitN(line, "http://", 2)[1])[0], ",")

	node := exec.Command(bin, "node", "--brokers", bs, "--prefix", prefix, "--app", "nodehello")
	var nodeErr strings.Builder
	node.Stderr = &syncWriter{w: &nodeErr}
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	nodeDone := make(chan error, 1)
	go func() { nodeDone <- node.Wait() }()
	defer func() {
		select {
		case <-nodeDone:
		default:
			_ = node.Process.Kill()
		}
	}()

	spec := writeFile(t, "nodehello.yaml", nodeHelloYAML)
	if b, err := exec.Command(bin, "deploy", "-f", spec, "--addr", addr).CombinedOutput(); err != nil {
		t.Fatalf("deploy: %v\n%s", err, b)
	}
	start := time.Now()
	resp, err := http.Post("http://"+addr+"/nodehello", "application/json", strings.NewReader(`{"language":"spanish","name":"Node"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "Hola Node" {
		t.Fatalf("through node replicas: %d %q\nnode stderr:\n%s", resp.StatusCode, body, nodeErr.String())
	}
	t.Logf("first answer through two deployments woken from zero as processes: %v", time.Since(start).Round(time.Millisecond))

	b, err := exec.Command(bin, "status", "--json", "--addr", addr, "nodehello").CombinedOutput()
	if err != nil {
		t.Fatalf("status: %v\n%s", err, b)
	}
	var st struct {
		Applications []struct {
			Deployments []autoscalerView `json:"deployments"`
		} `json:"applications"`
	}
	if err := json.Unmarshal(b, &st); err != nil || len(st.Applications) != 1 {
		t.Fatalf("status: %v\n%s", err, b)
	}
	woken := 0
	for _, d := range st.Applications[0].Deployments {
		if h := d.Autoscaler.History; len(h) > 0 && strings.Contains(h[0].Reason, "woken") {
			woken++
		}
	}
	if woken < 2 { // the classifier and the Spanish responder; French may sleep on
		t.Fatalf("woken deployments in the status: %d, want 2\n%s", woken, b)
	}

	// The node stops its replicas (drained) when it stops.
	if err := node.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-nodeDone:
		if err != nil {
			t.Fatalf("node exit: %v\n%s", err, nodeErr.String())
		}
	case <-time.After(40 * time.Second):
		t.Fatalf("node did not stop\n%s", nodeErr.String())
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}
