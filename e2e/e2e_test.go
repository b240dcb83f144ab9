// Package e2e runs the platform end to end: against the embedded broker by
// default, and against a real Kafka broker when SLUICE_TEST_BROKERS names
// one (make test runs both).
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/examples/chain"
	"github.com/sluice-serve/sluice/examples/hello"
	"github.com/sluice-serve/sluice/examples/stream"
	"github.com/sluice-serve/sluice/examples/tensors"
	"github.com/sluice-serve/sluice/platform/cli"
	"github.com/sluice-serve/sluice/platform/serve"
	"github.com/sluice-serve/sluice/registry/blob"
	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/kafkaauth"
	"github.com/sluice-serve/sluice/streams/protocol"
)

var (
	plat     *cli.Dev
	namer    streams.Namer
	registry *serve.Registry
	testLog  = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
)

// brokers returns the real brokers under test, or nil for the embedded one.
func brokers() []string {
	var out []string
	for _, b := range strings.Split(os.Getenv("SLUICE_TEST_BROKERS"), ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// s3Config names the real MinIO under test (SLUICE_TEST_S3_*; with
// SLUICE_TEST_S3_CA_FILE, one serving HTTPS with that CA), or none: the
// platform then keeps model weights in a local directory.
func s3Config(prefix string) blob.S3Config {
	return blob.S3Config{
		Endpoint:  os.Getenv("SLUICE_TEST_S3_ENDPOINT"),
		AccessKey: os.Getenv("SLUICE_TEST_S3_ACCESS_KEY"),
		SecretKey: os.Getenv("SLUICE_TEST_S3_SECRET_KEY"),
		CAFile:    os.Getenv("SLUICE_TEST_S3_CA_FILE"),
		Bucket:    "sluice-e2e",
		Prefix:    prefix,
	}
}

// s3Process is how a sluice process a test starts reaches the store s3
// names: its flags (with the CA file when MinIO serves HTTPS) and the
// environment holding its keys.
func s3Process(s3 blob.S3Config) (flags, env []string) {
	flags = []string{"--s3-endpoint", s3.Endpoint, "--s3-bucket", s3.Bucket, "--s3-prefix", s3.Prefix}
	if s3.CAFile != "" {
		flags = append(flags, "--s3-ca-file", s3.CAFile)
	}
	return flags, []string{"SLUICE_S3_ACCESS_KEY=" + s3.AccessKey, "SLUICE_S3_SECRET_KEY=" + s3.SecretKey}
}

// environ is a Getenv of the KEY=value pairs kv, for a command run in
// this process.
func environ(kv []string) func(string) string {
	return func(k string) string {
		for _, e := range kv {
			if name, v, _ := strings.Cut(e, "="); name == k {
				return v
			}
		}
		return ""
	}
}

func TestMain(m *testing.M) {
	var err error
	registry, err = serve.NewRegistry(
		append(append(append([]*serve.Application{hello.App(), chain.App(), stream.App(), faultsApp(), fanApp(), webApp()}, tensors.Apps()...), callPathApps()...), claimApps()...),
		echo, upper, batchSizer, greeterD, modelCallerD,
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// A fresh prefix per run keeps runs apart on a shared real broker.
	prefix := "t" + streams.Instance()
	namer, _ = streams.NewNamer(prefix)
	embedded, kafka, cleanup, err := kafkaSecurity()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kafka security:", err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute) // a fresh real broker creates ~25 applications' topics
	plat, err = cli.StartDev(ctx, cli.DevConfig{
		HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0", Brokers: brokers(), Prefix: prefix, Builtin: true, Registry: registry, Log: testLog,
		S3: s3Config(prefix), Embedded: embedded, Kafka: kafka,
	})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "platform:", err)
		os.Exit(1)
	}
	code := m.Run()
	removeBinary()
	plat.Close()
	cleanup()
	os.Exit(code)
}

// seed are the options of a test's own client of the brokers under test:
// their addresses and the security the platform connects with.
func seed() []kgo.Opt {
	return append([]kgo.Opt{kgo.SeedBrokers(plat.Brokers...)}, streams.SecurityOptions(plat.Brokers)...)
}

// kafkaSecurity is the security of the suite's Kafka connections. With
// SLUICE_TEST_KAFKA_SECURE=1 and the embedded broker, the broker's
// listener is TLS with a fresh self-signed CA and takes SCRAM-SHA-512
// only, and every process connects so: the platform of this process
// (cli.DevConfig.Kafka), and the sluice processes tests start (node,
// gateway, replicas), which read it from the SLUICE_KAFKA_* environment
// set here. Against real brokers the environment says it
// (SLUICE_KAFKA_*, as scripts/kafka.sh start-secure prints).
func kafkaSecurity() (embedded []streams.EmbeddedOpt, cfg kafkaauth.Config, cleanup func(), err error) {
	cleanup = func() {}
	if len(brokers()) > 0 {
		if os.Getenv("SLUICE_TEST_KAFKA_SECURE") != "" {
			return nil, cfg, cleanup, errors.New("SLUICE_TEST_KAFKA_SECURE secures the embedded broker, and SLUICE_TEST_BROKERS names real ones: set one of them")
		}
		cfg, err = kafkaauth.Resolve("", os.Getenv, kafkaauth.Config{})
		return nil, cfg, cleanup, err
	}
	if os.Getenv("SLUICE_TEST_KAFKA_SECURE") == "" {
		return nil, cfg, cleanup, nil
	}
	dir, err := os.MkdirTemp("", "sluice-kafka-tls-")
	if err != nil {
		return nil, cfg, cleanup, err
	}
	cleanup = func() { os.RemoveAll(dir) }
	files, err := kafkaauth.SelfSigned(dir, "127.0.0.1", "localhost")
	if err != nil {
		return nil, cfg, cleanup, err
	}
	tlsOpt, err := streams.WithTLS(files.Cert, files.Key, "")
	if err != nil {
		return nil, cfg, cleanup, err
	}
	password := "pw-" + streams.Instance()
	cfg = kafkaauth.Config{
		TLS:  kafkaauth.TLS{Enabled: true, CAFile: files.CA},
		SASL: kafkaauth.SASL{Mechanism: kafkaauth.ScramSHA512, Username: "sluice", Password: password},
	}
	for _, kv := range cfg.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v)
	}
	return []streams.EmbeddedOpt{tlsOpt, streams.WithSASLUser(kafkaauth.ScramSHA512, "sluice", password)}, cfg, cleanup, nil
}

func url(path string) string { return "http://" + plat.Addr + path }

// post calls a route and returns status and body.
func post(t testing.TB, path, body string) (int, string) {
	t.Helper()
	return postTo(t, plat.Addr, path, body)
}

// postTo posts JSON to the gateway at addr.
func postTo(t testing.TB, addr, path, body string) (int, string) {
	t.Helper()
	resp, err := http.Post("http://"+addr+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return resp.StatusCode, string(b)
}

func TestExamples(t *testing.T) {
	t.Parallel()
	tests := []struct {
		path, body, want string
	}{
		{"/hello", `{"language":"spanish","name":"Dora"}`, "Hola Dora"},
		{"/hello", `{"language":"french","name":"Dora"}`, "Bonjour Dora"},
		{"/hello", `{"language":"Spanish","name":"Ana"}`, "Hola Ana"},
		{"/hello", `{"language":"german","name":"Dora"}`, "Please try again."},
		{"/chain", `5`, "12"},
		{"/chain", `-1`, "0"},
		{"/chain/extra/path", `0`, "2"},
	}
	for _, tc := range tests {
		t.Run(tc.path+" "+tc.body, func(t *testing.T) {
			t.Parallel()
			code, got := post(t, tc.path, tc.body)
			if code != http.StatusOK || got != tc.want {
				t.Fatalf("POST %s %s = %d %q, want 200 %q", tc.path, tc.body, code, got, tc.want)
			}
		})
	}
}

func TestStreamArrivesAsProduced(t *testing.T) {
	t.Parallel()
	resp, err := http.Post(url("/stream"), "application/json", strings.NewReader("10"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Fatalf("content type %q, want application/x-ndjson", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	var got []string
	var first, last time.Time
	for sc.Scan() {
		if first.IsZero() {
			first = time.Now()
		}
		last = time.Now()
		got = append(got, sc.Text())
	}
	if want := "0 1 2 3 4 5 6 7 8 9"; strings.Join(got, " ") != want {
		t.Fatalf("stream = %q, want %q", got, want)
	}
	// The Streamer pauses 50ms between items: if the lines came at once,
	// the stream was buffered rather than relayed as produced.
	if gap := last.Sub(first); gap < 300*time.Millisecond {
		t.Fatalf("first to last line took %s: items were not flushed as they arrived", gap)
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, method, path, body string
		code                     int
		contains                 string
	}{
		{"undecodable body", "POST", "/hello", `{"language":`, 400, "decode hello.Request"},
		{"wrong type", "POST", "/chain", `"five"`, 400, "decode int"},
		{"unknown route", "POST", "/nowhere", `1`, 404, "no application serves /nowhere"},
		{"GET on an app", "GET", "/hello", ``, 405, "use POST"},
		{"handler error", "POST", "/faults", `{"fail":"bad thing"}`, 400, "asked to fail: bad thing"},
		{"panic", "POST", "/faults", `{"panic":true}`, 500, "panicked: asked to panic"},
		{"deadline", "POST", "/faults?timeout=200ms", `{"sleep_ms":3000}`, 504, "deadline"},
		{"bad timeout", "POST", "/faults?timeout=soon", `{}`, 400, "is not a positive duration"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req, _ := http.NewRequest(tc.method, url(tc.path), strings.NewReader(tc.body))
			start := time.Now()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code || !strings.Contains(string(b), tc.contains) {
				t.Fatalf("%s %s = %d %s, want %d containing %q", tc.method, tc.path, resp.StatusCode, b, tc.code, tc.contains)
			}
			if tc.code == 504 && time.Since(start) > 2*time.Second {
				t.Fatalf("deadline answered after %s, want about 200ms", time.Since(start))
			}
		})
	}
	// The replica that panicked keeps serving.
	if code, got := post(t, "/faults", `{"echo":"still here"}`); code != 200 || got != "still here" {
		t.Fatalf("after panic: %d %q", code, got)
	}
}

func TestExpiredWorkIsSkipped(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := newCaller(t)
	// A deadline already past: the replica must answer without running it.
	_, err := c.Call(ctx, &protocol.Request{
		Topic: namer.Ingress("faults"),
		Env:   protocol.Envelope{Deadline: time.Now().Add(-time.Second)},
		Value: []byte(`{"echo":"ran anyway"}`),
	})
	if streams.CodeOf(err) != streams.CodeDeadlineExceeded || !strings.Contains(err.Error(), "before processing") {
		t.Fatalf("expired request: err = %v, want deadline_exceeded before processing", err)
	}
}

func newCaller(t *testing.T) *streams.Caller {
	t.Helper()
	c, err := streams.NewCaller(context.Background(), plat.Brokers, namer, "test-"+streams.Instance(), testLog)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.Close(ctx)
	})
	return c
}

// Several callers at once each get exactly their own replies.
func TestRepliesReachTheirCaller(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	callers := []*streams.Caller{newCaller(t), newCaller(t), newCaller(t)}
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for ci, c := range callers {
		for w := range 8 {
			wg.Go(func() {
				for i := range 25 {
					want := fmt.Sprintf("c%d-w%d-%d", ci, w, i)
					rep, err := c.Call(ctx, &protocol.Request{Topic: namer.Ingress("faults"), Value: fmt.Appendf(nil, `{"echo":%q}`, want)})
					if err != nil {
						errs <- err
						return
					}
					if string(rep.Value) != want {
						errs <- fmt.Errorf("caller %d got %q, want %q", ci, rep.Value, want)
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestOfflineBatch(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(append(seed(), kgo.ProducerLinger(0))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// Plain records, no Sluice headers: any Kafka client can do this. The
	// poison record shares its key, so its partition, with good ones after
	// it: the partition must keep moving.
	var recs []*kgo.Record
	want := map[string]string{}
	for i := range 10 {
		key := fmt.Sprintf("key-%d", i)
		if i >= 5 {
			key = "same"
		}
		if i == 5 {
			recs = append(recs, &kgo.Record{Topic: namer.Ingress("chain"), Key: []byte("same"), Value: []byte("not a number")})
		}
		recs = append(recs, &kgo.Record{Topic: namer.Ingress("chain"), Key: []byte(key), Value: fmt.Appendf(nil, "%d", i)})
		want[fmt.Sprintf("%s=%d", key, (i+1)*2)] = ""
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	// Other tests call chain too, and an answer nobody waits for any more
	// reaches its output topic: only this batch's keys count.
	out := consumeWhere(ctx, t, namer.Output("chain"), 10, func(r *kgo.Record) bool {
		return strings.HasPrefix(string(r.Key), "key-") || string(r.Key) == "same"
	})
	got := map[string]string{}
	for _, r := range out {
		got[fmt.Sprintf("%s=%s", r.Key, r.Value)] = ""
	}
	for k := range want {
		if _, ok := got[k]; !ok {
			t.Errorf("output topic lacks %s; got %v", k, keys(got))
		}
	}
	dl := consumeN(ctx, t, namer.DeadLetter("chain"), 1)[0]
	if string(dl.Value) != "not a number" || string(dl.Key) != "same" {
		t.Fatalf("dead letter = %s=%q, want same=\"not a number\"", dl.Key, dl.Value)
	}
	if status := string(protocol.Header(dl.Headers, protocol.HeaderStatus)); status != string(streams.CodeInvalidArgument) {
		t.Errorf("dead letter status %q, want invalid_argument", status)
	}
	if msg := string(protocol.Header(dl.Headers, protocol.HeaderError)); !strings.Contains(msg, "decode int") {
		t.Errorf("dead letter error header %q does not say what failed", msg)
	}
	if src := string(protocol.Header(dl.Headers, protocol.HeaderSource)); !strings.HasPrefix(src, namer.Ingress("chain")+"/") {
		t.Errorf("dead letter source %q", src)
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// consumeN reads n records from the start of topic.
func consumeN(ctx context.Context, t *testing.T, topic string, n int) []*kgo.Record {
	t.Helper()
	return consumeWhere(ctx, t, topic, n, func(*kgo.Record) bool { return true })
}

// consumeWhere reads topic from its start until n records keep says to
// keep came, bounded by ctx.
func consumeWhere(ctx context.Context, t *testing.T, topic string, n int, keep func(*kgo.Record) bool) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append(seed(), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("topic %s: got %d records before timeout, want %d", topic, len(out), n)
		}
		for _, r := range fs.Records() {
			if keep(r) {
				out = append(out, r)
			}
		}
	}
	return out
}

// run runs a CLI command in process and returns its exit code and output.
func run(t testing.TB, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	err := cli.Run(context.Background(), args, cli.Env{Stdout: &out, Stderr: &out, Log: testLog, Registry: registry,
		Getenv: func(k string) string {
			if k == "SLUICE_ADDR" {
				return plat.Addr
			}
			return ""
		}})
	if err != nil {
		fmt.Fprintln(&out, err)
	}
	return cli.ExitCode(err), out.String()
}

func writeFile(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const pipelineYAML = `name: tags
route_prefix: /tags
ingress: A
deployments:
  - {name: A, handler: Tag, args: [a]}
  - {name: B, handler: Tag, args: [%s]}
  - {name: C, handler: Tag, args: [c], replicas: {min: 2, initial: 2, max: 2}}
edges:
  - {from: A, to: B}
  - {from: B, to: C}
`

// A YAML dataflow graph: deploy, call, upgrade, status, delete.
func TestYAMLLifecycle(t *testing.T) {
	t.Parallel()
	f := writeFile(t, "tags.yaml", fmt.Sprintf(pipelineYAML, "b"))
	if code, out := run(t, "deploy", "-f", f); code != 0 || !strings.Contains(out, "deployed tags") {
		t.Fatalf("deploy: exit %d: %s", code, out)
	}
	if code, got := post(t, "/tags", "x"); code != 200 || got != "c[b[a[x]]]" {
		t.Fatalf("tags = %d %q, want c[b[a[x]]]", code, got)
	}
	// Upgrade B alone; the others keep running.
	f2 := writeFile(t, "tags.yaml", fmt.Sprintf(pipelineYAML, "B2"))
	if code, out := run(t, "deploy", "-f", f2); code != 0 {
		t.Fatalf("upgrade: exit %d: %s", code, out)
	}
	if code, got := post(t, "/tags", "y"); code != 200 || got != "c[B2[a[y]]]" {
		t.Fatalf("after upgrade = %d %q, want c[B2[a[y]]]", code, got)
	}
	code, out := run(t, "status", "tags")
	if code != 0 || !strings.Contains(out, "tags") || !strings.Contains(out, "2/2") {
		t.Fatalf("status: exit %d: %s", code, out)
	}
	if code, out := run(t, "delete", "tags"); code != 0 {
		t.Fatalf("delete: exit %d: %s", code, out)
	}
	if code, _ := post(t, "/tags", "z"); code != 404 {
		t.Fatalf("after delete: %d, want 404", code)
	}
	if code, out := run(t, "delete", "tags"); code != 1 || !strings.Contains(out, "no such application") {
		t.Fatalf("second delete: exit %d: %s", code, out)
	}
}

func TestBadSpecsExitTwo(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml, contains string
	}{
		{"unknown field", "name: x\nroute_prefix: /x\ningress: A\ndeployments:\n  - name: A\n    replica: 2\n", "bad.yaml:6:5"},
		{"edge to nowhere", "name: x\nroute_prefix: /x\ningress: A\ndeployments:\n  - name: A\nedges:\n  - {from: A, to: Z}\n", "edges[0].to"},
		{"unknown handler", "name: x\nroute_prefix: /x\ningress: A\ndeployments:\n  - name: A\n    handler: Nope\n", "bad.yaml:6:14: deployments[0].handler: unknown handler \"Nope\""},
		{"arg type", "name: x\nroute_prefix: /x\ningress: A\ndeployments:\n  - name: A\n    handler: Adder\n    args: [one]\n", "bad.yaml:7:12: deployments[0]: args[0]: value \"one\" does not fit parameter type int"},
		{"malformed", "name: [x\n", "bad.yaml:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := writeFile(t, "bad.yaml", tc.yaml)
			code, out := run(t, "deploy", "-f", f)
			if code != 2 || !strings.Contains(out, tc.contains) {
				t.Fatalf("deploy: exit %d, want 2 with %q:\n%s", code, tc.contains, out)
			}
		})
	}
}

func TestStatusJSON(t *testing.T) {
	t.Parallel()
	code, out := run(t, "status", "--json", "hello")
	if code != 0 {
		t.Fatalf("status: %d %s", code, out)
	}
	var st struct {
		Applications []struct {
			Name        string `json:"name"`
			Deployments []struct {
				Name     string `json:"name"`
				Replicas int    `json:"replicas"`
			} `json:"deployments"`
		} `json:"applications"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	apps := st.Applications
	if len(apps) != 1 || apps[0].Name != "hello" || len(apps[0].Deployments) != 3 || apps[0].Deployments[0].Replicas != 1 {
		t.Fatalf("status = %+v", st)
	}
}

// The pipeline example: handlers of the chain example wired by YAML edges,
// no code of its own.
func TestPipelineExample(t *testing.T) {
	t.Parallel()
	if code, out := run(t, "deploy", "-f", "../examples/chain/pipeline.yaml"); code != 0 {
		t.Fatalf("deploy: %s", out)
	}
	defer run(t, "delete", "pipeline")
	if code, got := post(t, "/pipeline", "5"); code != 200 || got != "45" {
		t.Fatalf("pipeline 5 = %d %q, want 45", code, got)
	}
}
