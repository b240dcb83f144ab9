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

	"github.com/sluice-serve/sluice/registry/blob"
	"github.com/sluice-serve/sluice/streams"
)

var (
	buildOnce sync.Once
	binPath   string
	prebuilt  bool
	buildErr  error
)

// sluiceBinary builds cmd/sluice once per run.
func sluiceBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if pre := os.Getenv("SLUICE_TEST_BINARY"); pre != "" { // built elsewhere (a machine without Go)
			binPath, prebuilt = pre, true
			return
		}
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

// removeBinary deletes what sluiceBinary, greeterBinaries and the
// goPrograms built; TestMain calls it.
func removeBinary() {
	if binPath != "" && !prebuilt {
		os.RemoveAll(filepath.Dir(binPath))
	}
	for _, bin := range []string{greeterBins["Hello"], goStreams.path, predict.path} {
		if bin != "" {
			os.RemoveAll(filepath.Dir(bin))
		}
	}
}

// goProgram is a Go program the suite builds once per run, into a
// directory of its own that removeBinary deletes.
type goProgram struct {
	name, pkg string // the binary's name, the package to build
	dir       string // where to build it (a module of its own); "": this one
	once      sync.Once
	path      string
	err       error
}

func (p *goProgram) binary(t testing.TB) string {
	t.Helper()
	p.once.Do(func() {
		dir, err := os.MkdirTemp("", "sluice-e2e-"+p.name+"-")
		if err != nil {
			p.err = err
			return
		}
		p.path = filepath.Join(dir, p.name)
		cmd := exec.Command("go", "build", "-o", p.path, p.pkg)
		cmd.Dir = p.dir
		if out, err := cmd.CombinedOutput(); err != nil {
			p.err = fmt.Errorf("build %s: %v\n%s", p.name, err, out)
		}
	})
	if p.err != nil {
		t.Fatal(p.err)
	}
	return p.path
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
	n := startNode(t)
	spec := writeFile(t, "nodehello.yaml", nodeHelloYAML)
	if b, err := exec.Command(n.bin, "deploy", "-f", spec, "--addr", n.addr).CombinedOutput(); err != nil {
		t.Fatalf("deploy: %v\n%s", err, b)
	}
	bin, addr, nodeErr := n.bin, n.addr, n.stderr
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
	n.stop(t)
}

// testNode is a `sluice node` behind a standalone `sluice gateway`, on
// a topic prefix of its own.
type testNode struct {
	bin, addr, prefix string
	stderr            *strings.Builder // the nodes' and their replicas' logs, written through errw
	errw              *syncWriter
	node              *exec.Cmd
	done              chan error
	env               []string // more environment of the gateway and the nodes
}

func startNode(t testing.TB, nodeArgs ...string) *testNode {
	t.Helper()
	return startNodeWith(t, nil, nil, nodeArgs...)
}

// startNodeWith is startNode with more flags for both the gateway and the
// node (an S3 store, say), and more environment for both.
func startNodeWith(t testing.TB, both, env []string, nodeArgs ...string) *testNode {
	t.Helper()
	n := &testNode{bin: sluiceBinary(t), prefix: "n" + streams.Instance(), stderr: &strings.Builder{}, env: env}
	n.errw = &syncWriter{w: n.stderr}
	bs := strings.Join(plat.Brokers, ",")
	gw := exec.Command(n.bin, append([]string{"gateway", "--brokers", bs, "--prefix", n.prefix, "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"}, both...)...)
	gw.Stderr = n.errw
	gw.Env = append(os.Environ(), env...)
	out, err := gw.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gw.Process.Signal(syscall.SIGTERM); _ = gw.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("gateway did not start: %v\n%s", err, n.stderr.String())
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	n.addr = strings.TrimSuffix(strings.Fields(strings.SplitN(line, "http://", 2)[1])[0], ",")

	n.node, n.done = n.start(t, append(append([]string{"--model-cache", t.TempDir()}, both...), nodeArgs...)...)
	return n
}

// start starts one more `sluice node` process on n's brokers and prefix,
// its stderr into n's; it is killed at the end of the test if still
// running.
func (n *testNode) start(t testing.TB, args ...string) (*exec.Cmd, chan error) {
	t.Helper()
	cmd := exec.Command(n.bin, append([]string{"node", "--brokers", strings.Join(plat.Brokers, ","), "--prefix", n.prefix}, args...)...)
	cmd.Stderr = n.errw
	cmd.Env = append(os.Environ(), n.env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		err := cmd.Wait()
		close(exited)
		done <- err
	}()
	t.Cleanup(func() {
		// Stop it as an operator would, so it stops its replica processes
		// (SIGKILL would leave them running against the broker).
		select {
		case <-exited:
			return
		default:
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(40 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	return cmd, done
}

// stop stops the node, which drains its replicas, and checks it exits 0.
func (n *testNode) stop(t testing.TB) { n.stopProcess(t, n.node, n.done) }

func (n *testNode) stopProcess(t testing.TB, cmd *exec.Cmd, done chan error) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("node exit: %v\n%s", err, n.stderr.String())
		}
	case <-time.After(40 * time.Second):
		t.Fatalf("node did not stop\n%s", n.stderr.String())
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

// String returns what was written, when w is a fmt.Stringer.
func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.w.(fmt.Stringer); ok {
		return st.String()
	}
	return ""
}

// nodeS3 is the real tier's MinIO, where nodes fetch code bundles (and
// model weights) from; it skips t without one.
func nodeS3(t *testing.T) blob.S3Config {
	t.Helper()
	s3 := s3Config("")
	if s3.Endpoint == "" {
		t.Skip("needs the real tier's MinIO (SLUICE_TEST_S3_*): nodes fetch bundles and weights from S3")
	}
	return s3
}

// startS3Node is startNodeWith on s3 under prefix (bundles, weights,
// claims), with a code cache of its own and env added to both processes.
func startS3Node(t *testing.T, s3 blob.S3Config, prefix string, env ...string) *testNode {
	t.Helper()
	s3.Prefix = prefix
	flags, keys := s3Process(s3)
	return startNodeWith(t, flags, append(keys, env...), "--code-cache", t.TempDir())
}
