package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"

	"github.com/sluice-serve/sluice/gateway"
	sluicev1 "github.com/sluice-serve/sluice/protos/gen/sluice/v1"
	"github.com/sluice-serve/sluice/registry"
)

// runCLI runs `sluice args...` with only vars in the environment.
func runCLI(t *testing.T, vars map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = Run(t.Context(), args, Env{
		Stdout: &out, Stderr: &errOut, Log: slog.New(slog.DiscardHandler),
		Getenv: func(k string) string { return vars[k] },
	})
	return out.String(), errOut.String(), err
}

// fakePlatform answers the REST calls of deploy, status and delete and
// the registry's gRPC calls, and records each call.
type fakePlatform struct {
	rest, grpc string // addresses

	mu    sync.Mutex
	calls []string
}

const pulled = "weights"

func startFakePlatform(t *testing.T) *fakePlatform {
	t.Helper()
	p := &fakePlatform{}
	rest := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.record(r.Method + " " + r.URL.Path)
		w.Header().Set("Content-Type", "application/json")
		switch name, one := strings.CutPrefix(r.URL.Path, "/sluice/v1/apps/"); {
		case r.Method == http.MethodPost:
			fmt.Fprint(w, `{"deployed": ["hello"]}`)
		case r.Method == http.MethodGet && one:
			fmt.Fprintf(w, `{"name": %q}`, name)
		default:
			fmt.Fprint(w, `{}`)
		}
	})
	srv := grpc.NewServer(append(registry.BulkServerOptions(), grpc.MaxRecvMsgSize(registry.MaxChunk))...)
	sluicev1.RegisterModelsServer(srv, fakeModels{p: p})
	sluicev1.RegisterCodeServer(srv, fakeCode{p: p})
	t.Cleanup(srv.Stop)
	// As the platform does: REST and gRPC on one address, gRPC alone on
	// the other.
	hl, gl := listenLocal(t), listenLocal(t)
	hs := newHTTPServer(grpcOrREST(srv, rest), gateway.Limits{})
	go hs.Serve(hl)
	t.Cleanup(func() { hs.Close() })
	go srv.Serve(gl)
	p.rest, p.grpc = hl.Addr().String(), gl.Addr().String()
	return p
}

func listenLocal(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (p *fakePlatform) record(call string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, call)
}

func (p *fakePlatform) called() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.calls)
}

type fakeModels struct {
	sluicev1.UnimplementedModelsServer
	p *fakePlatform
}

func (f fakeModels) ListModels(context.Context, *sluicev1.ListModelsRequest) (*sluicev1.ListModelsResponse, error) {
	f.p.record("ListModels")
	return &sluicev1.ListModelsResponse{Models: []*sluicev1.Model{{Name: "m"}}}, nil
}

func (f fakeModels) GetModel(_ context.Context, r *sluicev1.GetModelRequest) (*sluicev1.Model, error) {
	f.p.record("GetModel " + r.GetName())
	return &sluicev1.Model{Name: r.GetName()}, nil
}

func (f fakeModels) SetAlias(_ context.Context, r *sluicev1.SetAliasRequest) (*sluicev1.Model, error) {
	f.p.record(fmt.Sprintf("SetAlias %s %s %s", r.GetModel(), r.GetAlias(), r.GetVersion()))
	return &sluicev1.Model{Name: r.GetModel()}, nil
}

func (f fakeModels) DeleteVersion(_ context.Context, r *sluicev1.DeleteVersionRequest) (*sluicev1.Model, error) {
	f.p.record(fmt.Sprintf("DeleteVersion %s %s force=%t", r.GetModel(), r.GetVersion(), r.GetForce()))
	return &sluicev1.Model{Name: r.GetModel()}, nil
}

func (f fakeModels) PushVersion(stream grpc.ClientStreamingServer[sluicev1.PushVersionRequest, sluicev1.ModelVersion]) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	h := first.GetHeader()
	var n int
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		n += len(msg.GetChunk())
	}
	f.p.record(fmt.Sprintf("PushVersion %s alias=%s labels=%v bytes=%d", h.GetModel(), h.GetAlias(), h.GetLabels(), n))
	return stream.SendAndClose(&sluicev1.ModelVersion{Model: h.GetModel(), Version: "1", Size: int64(n)})
}

func (f fakeModels) PullVersion(r *sluicev1.PullVersionRequest, stream grpc.ServerStreamingServer[sluicev1.PullVersionResponse]) error {
	f.p.record(fmt.Sprintf("PullVersion %s %s", r.GetModel(), r.GetVersion()))
	sum := sha256.Sum256([]byte(pulled))
	v := &sluicev1.ModelVersion{Model: r.GetModel(), Version: "2", Size: int64(len(pulled)),
		Files: []*sluicev1.ArtifactFile{{Path: "w.bin", Size: int64(len(pulled)), Sha256: hex.EncodeToString(sum[:])}}}
	if err := stream.Send(&sluicev1.PullVersionResponse{Part: &sluicev1.PullVersionResponse_Header{Header: v}}); err != nil {
		return err
	}
	return stream.Send(&sluicev1.PullVersionResponse{Part: &sluicev1.PullVersionResponse_Chunk{Chunk: []byte(pulled)}})
}

type fakeCode struct {
	sluicev1.UnimplementedCodeServer
	p *fakePlatform
}

func (f fakeCode) ListBundles(context.Context, *sluicev1.ListBundlesRequest) (*sluicev1.ListBundlesResponse, error) {
	f.p.record("ListBundles")
	return &sluicev1.ListBundlesResponse{Bundles: []*sluicev1.Bundle{{Name: "b"}}}, nil
}

func (f fakeCode) GetBundle(_ context.Context, r *sluicev1.GetBundleRequest) (*sluicev1.Bundle, error) {
	f.p.record("GetBundle " + r.GetName())
	return &sluicev1.Bundle{Name: r.GetName()}, nil
}

func (f fakeCode) SetBundleAlias(_ context.Context, r *sluicev1.SetBundleAliasRequest) (*sluicev1.Bundle, error) {
	f.p.record(fmt.Sprintf("SetBundleAlias %s %s %s", r.GetName(), r.GetAlias(), r.GetVersion()))
	return &sluicev1.Bundle{Name: r.GetName(), Aliases: map[string]string{r.GetAlias(): r.GetVersion()}}, nil
}

func (f fakeCode) DeleteBundleVersion(_ context.Context, r *sluicev1.DeleteBundleVersionRequest) (*sluicev1.Bundle, error) {
	f.p.record(fmt.Sprintf("DeleteBundleVersion %s %s force=%t", r.GetName(), r.GetVersion(), r.GetForce()))
	return &sluicev1.Bundle{Name: r.GetName()}, nil
}

func (f fakeCode) PushBundle(stream grpc.ClientStreamingServer[sluicev1.PushBundleRequest, sluicev1.BundleVersion]) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	h := first.GetHeader()
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("an image push sent content: %v", err)
	}
	f.p.record(fmt.Sprintf("PushBundle %s %s %s alias=%s", h.GetName(), h.GetFormat(), h.GetImage(), h.GetAlias()))
	return stream.SendAndClose(&sluicev1.BundleVersion{Name: h.GetName(), Version: "1", Format: h.GetFormat(), Image: h.GetImage()})
}

func (f fakeCode) PullBundle(r *sluicev1.PullBundleRequest, stream grpc.ServerStreamingServer[sluicev1.PullBundleResponse]) error {
	f.p.record(fmt.Sprintf("PullBundle %s %s", r.GetName(), r.GetVersion()))
	sum := sha256.Sum256([]byte(pulled))
	v := &sluicev1.BundleVersion{Name: r.GetName(), Version: "2", Format: "go-binary", Size: int64(len(pulled)),
		Files: []*sluicev1.ArtifactFile{{Path: "w.bin", Size: int64(len(pulled)), Sha256: hex.EncodeToString(sum[:])}}}
	if err := stream.Send(&sluicev1.PullBundleResponse{Part: &sluicev1.PullBundleResponse_Header{Header: v}}); err != nil {
		return err
	}
	return stream.Send(&sluicev1.PullBundleResponse{Part: &sluicev1.PullBundleResponse_Chunk{Chunk: []byte(pulled)}})
}

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Flags work before and after the positional arguments of every client
// command and models subcommand; a flag ignored after a positional would
// send the call to the default address, where nothing answers.
func TestFlagsAfterPositionals(t *testing.T) {
	t.Parallel()
	spec := writeTemp(t, "app.yaml", "name: hello\nroute_prefix: /hello\ningress: greeter\ndeployments:\n  - name: greeter\n")
	weights := writeTemp(t, "w.bin", "0123456789")
	const (
		rest = "{rest}"
		dir  = "{dir}"
	)
	for _, tc := range []struct {
		name     string
		args     []string
		call     string
		inStdout string
	}{
		{"status NAME --json --addr", []string{"status", "hello", "--json", "--addr", rest}, "GET /sluice/v1/apps/hello", `"applications"`},
		{"status --json NAME --addr=", []string{"status", "--json", "hello", "--addr=" + rest}, "GET /sluice/v1/apps/hello", `"applications"`},
		{"status --addr NAME -json", []string{"status", "--addr", rest, "hello", "-json"}, "GET /sluice/v1/apps/hello", `"applications"`},
		{"status --addr", []string{"status", "--addr", rest}, "GET /sluice/v1/apps", "APP"},
		{"delete NAME --addr", []string{"delete", "hello", "--addr", rest}, "DELETE /sluice/v1/apps/hello", "deleted hello"},
		{"delete --addr NAME", []string{"delete", "-addr", rest, "hello"}, "DELETE /sluice/v1/apps/hello", "deleted hello"},
		{"deploy -f FILE --addr", []string{"deploy", "-f", spec, "--addr", rest, "--no-wait"}, "POST /sluice/v1/apps", "deployed hello"},
		{"deploy --addr -f FILE", []string{"deploy", "--no-wait", "--addr", rest, "-f", spec}, "POST /sluice/v1/apps", "deployed hello"},
		{"models ls --addr", []string{"models", "ls", "--addr", rest}, "ListModels", "MODEL"},
		{"models ls NAME --addr", []string{"models", "ls", "m", "--addr", rest}, "GetModel m", "VERSION"},
		{"models --addr ls NAME", []string{"models", "--addr", rest, "ls", "m"}, "GetModel m", "VERSION"},
		{"models alias NAME ALIAS V --addr", []string{"models", "alias", "m", "prod", "2", "--addr", rest}, "SetAlias m prod 2", "m@prod → 2"},
		{"models alias NAME --addr ALIAS V", []string{"models", "alias", "m", "--addr", rest, "prod", "2"}, "SetAlias m prod 2", "m@prod → 2"},
		{"models rm NAME V --force --addr", []string{"models", "rm", "m", "1", "--force", "--addr", rest}, "DeleteVersion m 1 force=true", "deleted m version 1"},
		{"models push NAME PATH --alias --label --addr", []string{"models", "push", "m", weights, "--alias", "prod", "--label", "k=v", "--addr", rest},
			"PushVersion m alias=prod labels=map[k:v] bytes=10", "pushed m version 1"},
		{"models pull NAME@ALIAS DIR --addr", []string{"models", "pull", "m@prod", dir, "--addr", rest}, "PullVersion m @prod", "checksums verified"},
		{"code ls --addr", []string{"code", "ls", "--addr", rest}, "ListBundles", "BUNDLE"},
		{"code --addr ls NAME", []string{"code", "--addr", rest, "ls", "b"}, "GetBundle b", "VERSION"},
		{"code alias NAME --addr ALIAS V", []string{"code", "alias", "b", "--addr", rest, "prod", "2"}, "SetBundleAlias b prod 2", "b@prod → 2"},
		{"code rm NAME V --force --addr", []string{"code", "rm", "b", "1", "--force", "--addr", rest}, "DeleteBundleVersion b 1 force=true", "deleted b version 1"},
		{"code push NAME REF --format --alias --addr", []string{"code", "push", "b", "nginx:1.27", "--format", "image", "--alias", "prod", "--addr", rest},
			"PushBundle b image nginx:1.27 alias=prod", "pushed b version 1 (image, nginx:1.27)"},
		{"code pull NAME@ALIAS DIR --addr", []string{"code", "pull", "b@prod", dir, "--addr", rest}, "PullBundle b @prod", "checksums verified"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := startFakePlatform(t)
			out := t.TempDir()
			args := slices.Clone(tc.args)
			for i, a := range args {
				args[i] = strings.NewReplacer(rest, p.rest, dir, out).Replace(a)
			}
			stdout, stderr, err := runCLI(t, nil, args...)
			if err != nil {
				t.Fatalf("sluice %s: %v\n%s", strings.Join(args, " "), err, stderr)
			}
			if got := p.called(); !slices.Equal(got, []string{tc.call}) {
				t.Errorf("calls %q, want %q", got, tc.call)
			}
			if !strings.Contains(stdout, tc.inStdout) {
				t.Errorf("stdout lacks %q:\n%s", tc.inStdout, stdout)
			}
			if strings.HasPrefix(tc.call, "PullVersion") {
				if b, err := os.ReadFile(filepath.Join(out, "w.bin")); err != nil || string(b) != pulled {
					t.Errorf("pulled file: %q, %v", b, err)
				}
			}
		})
	}
}

// `--` ends the flags: what follows is positional even when it looks like
// a flag.
func TestDoubleDash(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		call string
		code int
	}{
		{"status -- --json", []string{"status", "--addr", "{rest}", "--", "--json"}, "GET /sluice/v1/apps/--json", 0},
		{"delete -- -x", []string{"delete", "--addr", "{rest}", "--", "-x"}, "DELETE /sluice/v1/apps/-x", 0},
		{"delete NAME -- --addr", []string{"delete", "hello", "--addr", "{rest}", "--", "--addr"}, "", 2},
		{"models rm -- NAME -1", []string{"models", "rm", "--addr", "{rest}", "--", "m", "-1"}, "DeleteVersion m -1 force=false", 0},
		{"-- after --", []string{"status", "--addr", "{rest}", "--", "--"}, "GET /sluice/v1/apps/--", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := startFakePlatform(t)
			args := slices.Clone(tc.args)
			for i, a := range args {
				args[i] = strings.ReplaceAll(a, "{rest}", p.rest)
			}
			stdout, _, err := runCLI(t, nil, args...)
			if code := ExitCode(err); code != tc.code {
				t.Fatalf("exit code %d (%v), want %d", code, err, tc.code)
			}
			var want []string
			if tc.call != "" {
				want = []string{tc.call}
			}
			if got := p.called(); !slices.Equal(got, want) {
				t.Errorf("calls %q, want %q", got, want)
			}
			if strings.Contains(stdout, "{") {
				t.Errorf("--json after -- must not print JSON:\n%s", stdout)
			}
		})
	}
}

// Every command and subcommand answers -h, --help and `sluice help CMD`
// with its usage and flags on stdout, exit code 0, starting nothing.
func TestHelp(t *testing.T) {
	t.Parallel()
	type variant struct {
		name string
		args func(cmd []string) []string
		leaf bool // only for commands with flags, not groups (models, code)
	}
	variants := []variant{
		{"-h", func(cmd []string) []string { return append(cmd, "-h") }, false},
		{"--help", func(cmd []string) []string { return append(cmd, "--help") }, false},
		{"-help", func(cmd []string) []string { return append(cmd, "-help") }, false},
		{"help CMD", func(cmd []string) []string { return append([]string{"help"}, cmd...) }, false},
		{"after a positional", func(cmd []string) []string { return append(cmd, "x", "--help") }, true},
		{"as --help=true", func(cmd []string) []string { return append(cmd, "--help=true") }, true},
	}
	for _, h := range commandHelps {
		cmd := strings.Fields(h.name)
		for _, v := range variants {
			if v.leaf && isGroup(h.name) {
				continue
			}
			t.Run(h.name+"/"+v.name, func(t *testing.T) {
				t.Parallel()
				args := v.args(slices.Clone(cmd))
				stdout, stderr, err := runCLI(t, nil, args...)
				if err != nil || ExitCode(err) != 0 {
					t.Fatalf("sluice %s: %v (exit code %d)", strings.Join(args, " "), err, ExitCode(err))
				}
				if stderr != "" {
					t.Errorf("stderr: %q", stderr)
				}
				if !strings.HasPrefix(stdout, "usage: sluice "+h.name) || h.summary == "" {
					t.Errorf("stdout:\n%s", stdout)
				}
				if !isGroup(h.name) && !strings.Contains(stdout, "flags") {
					t.Errorf("no flags listed:\n%s", stdout)
				}
			})
		}
	}
	for _, args := range [][]string{
		{"help"}, {"-h"}, {"--help"}, {"help", "help"}, {"help", "--help"}, {"--help", "-h"},
		{"models", "help"}, {"help", "models"}, {"models", "--help"}, {"models", "help", "help"}, {"help", "models", "help"}, {"models", "-h", "--help"},
		{"code", "help"}, {"help", "code"}, {"code", "--help"}, {"code", "help", "help"}, {"help", "code", "help"}, {"code", "help", "push"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			stdout, stderr, err := runCLI(t, nil, args...)
			if err != nil || stderr != "" || !strings.HasPrefix(stdout, "usage: sluice ") {
				t.Fatalf("err %v, stderr %q, stdout:\n%s", err, stderr, stdout)
			}
		})
	}
}

// isGroup reports whether a command is a group of subcommands.
func isGroup(name string) bool {
	for _, h := range commandHelps {
		if strings.HasPrefix(h.name, name+" ") {
			return true
		}
	}
	return false
}

// Each environment variable is shown beside its flag in the help.
func TestHelpShowsEnv(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ cmd, flag, env string }{
		{"dev", "--http", "HTTP_ADDR"},
		{"dev", "--grpc", "GRPC_ADDR"},
		{"dev", "--brokers", "SLUICE_BROKERS"},
		{"dev", "--s3-endpoint", "SLUICE_S3_ENDPOINT"},
		{"gateway", "--http", "HTTP_ADDR"},
		{"gateway", "--grpc", "GRPC_ADDR"},
		{"gateway", "--brokers", "SLUICE_BROKERS"},
		{"replica", "--brokers", "SLUICE_BROKERS"},
		{"replica", "--s3-endpoint", "SLUICE_S3_ENDPOINT"},
		{"node", "--brokers", "SLUICE_BROKERS"},
		{"node", "--s3-endpoint", "SLUICE_S3_ENDPOINT"},
		{"autoscaler", "--brokers", "SLUICE_BROKERS"},
		{"replica", "--metrics-addr", "SLUICE_METRICS_ADDR"},
		{"node", "--metrics-addr", "SLUICE_NODE_METRICS_ADDR"},
		{"node", "--replica-metrics-host", "SLUICE_REPLICA_METRICS_HOST"},
		{"autoscaler", "--metrics-addr", "SLUICE_AUTOSCALER_METRICS_ADDR"},
		{"render", "--brokers", "SLUICE_BROKERS"},
		{"deploy", "--addr", "SLUICE_ADDR"},
		{"status", "--addr", "SLUICE_ADDR"},
		{"delete", "--addr", "SLUICE_ADDR"},
		{"models push", "--addr", "SLUICE_ADDR"},
		{"models ls", "--addr", "SLUICE_ADDR"},
		{"models alias", "--addr", "SLUICE_ADDR"},
		{"models rm", "--addr", "SLUICE_ADDR"},
		{"models pull", "--addr", "SLUICE_ADDR"},
		{"models pull", "--grpc-addr", "SLUICE_GRPC_ADDR"},
		{"code push", "--addr", "SLUICE_ADDR"},
		{"code ls", "--addr", "SLUICE_ADDR"},
		{"code alias", "--addr", "SLUICE_ADDR"},
		{"code rm", "--addr", "SLUICE_ADDR"},
		{"code pull", "--addr", "SLUICE_ADDR"},
	} {
		t.Run(tc.cmd+" "+tc.flag, func(t *testing.T) {
			t.Parallel()
			stdout, _, err := runCLI(t, nil, append(strings.Fields(tc.cmd), "--help")...)
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range strings.Split(stdout, "\n") {
				if strings.HasPrefix(strings.TrimSpace(line), tc.flag+" ") {
					if !strings.Contains(line, "env "+tc.env) {
						t.Errorf("%q does not name %s", line, tc.env)
					}
					return
				}
			}
			t.Errorf("no %s in:\n%s", tc.flag, stdout)
		})
	}
}

// A flag beats its environment variable, which beats the default; an
// empty flag or variable counts as unset. Values taken from the environment are
// not reported as given on the command line.
func TestEnvPrecedence(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		vars  map[string]string
		args  []string
		want  string
		given bool
	}{
		{"default", nil, nil, "127.0.0.1:8000", false},
		{"env", map[string]string{"SLUICE_ADDR": "env:1"}, nil, "env:1", false},
		{"empty env", map[string]string{"SLUICE_ADDR": ""}, nil, "127.0.0.1:8000", false},
		{"flag over env", map[string]string{"SLUICE_ADDR": "env:1"}, []string{"--addr", "flag:1"}, "flag:1", true},
		{"flag after positional over env", map[string]string{"SLUICE_ADDR": "env:1"}, []string{"NAME", "--addr=flag:1"}, "flag:1", true},
		{"empty flag: env", map[string]string{"SLUICE_ADDR": "env:1"}, []string{"--addr="}, "env:1", true},
		{"empty flag: default", nil, []string{"--addr", ""}, "127.0.0.1:8000", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fs := newFlags("status", Env{Stdout: io.Discard, Getenv: func(k string) string { return tc.vars[k] }})
			addr := addrFlag(fs)
			if err := parse(fs, tc.args); err != nil {
				t.Fatal(err)
			}
			if *addr != tc.want || fs.given("addr") != tc.given {
				t.Errorf("addr %q given %t, want %q given %t", *addr, fs.given("addr"), tc.want, tc.given)
			}
		})
	}
	// Through a whole command: render writes the brokers it resolved.
	file := writeTemp(t, "app.yaml", "name: shop\nroute_prefix: /shop\ningress: front\ndeployments:\n  - name: front\n    replicas: {min: 0, max: 4}\n")
	env := map[string]string{"SLUICE_BROKERS": "env-broker:9092"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"render", "-f", file}, "env-broker:9092"},
		{[]string{"render", "-f", file, "--brokers", "flag-broker:9092"}, "flag-broker:9092"},
	} {
		stdout, _, err := runCLI(t, env, tc.args...)
		if err != nil || !strings.Contains(stdout, tc.want) || strings.Contains(stdout, "env-broker") != (tc.want == "env-broker:9092") {
			t.Errorf("sluice %s: %v\n%s", strings.Join(tc.args, " "), err, stdout)
		}
	}
}

// An unknown flag, wherever it is, is a usage error (exit code 2) that
// names it as typed; nothing is printed to stdout and nothing is called.
func TestUnknownFlag(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"status", "--nope"}, "--nope"},
		{[]string{"status", "hello", "--nope"}, "--nope"},
		{[]string{"delete", "hello", "-bogus=1"}, "-bogus"},
		{[]string{"deploy", "-f", "x.yaml", "--nope"}, "--nope"},
		{[]string{"dev", "--nope"}, "--nope"},
		{[]string{"gateway", "--brokers", "b:9092", "--nope"}, "--nope"},
		{[]string{"replica", "--nope"}, "--nope"},
		{[]string{"node", "--nope"}, "--nope"},
		{[]string{"autoscaler", "--nope"}, "--nope"},
		{[]string{"render", "--nope"}, "--nope"},
		{[]string{"models", "push", "m", "dir", "--nope"}, "--nope"},
		{[]string{"models", "ls", "-x"}, "-x"},
		{[]string{"models", "alias", "m", "a", "1", "--nope"}, "--nope"},
		{[]string{"models", "rm", "m", "1", "--nope"}, "--nope"},
		{[]string{"models", "pull", "m", "dir", "--nope"}, "--nope"},
		{[]string{"code", "push", "b", "app", "--nope"}, "--nope"},
		{[]string{"code", "ls", "-x"}, "-x"},
		{[]string{"code", "alias", "b", "a", "1", "--nope"}, "--nope"},
		{[]string{"code", "rm", "b", "1", "--nope"}, "--nope"},
		{[]string{"code", "pull", "b", "dir", "--nope"}, "--nope"},
		{[]string{"code", "push", "b", "app", "--grpc-addr", "x"}, "--grpc-addr"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			stdout, _, err := runCLI(t, nil, tc.args...)
			if ExitCode(err) != 2 || !strings.Contains(err.Error(), "unknown flag "+tc.want) || stdout != "" {
				t.Fatalf("err %v (exit code %d), stdout %q", err, ExitCode(err), stdout)
			}
		})
	}
}

// Other usage mistakes are exit code 2 too: a flag without its value, a
// bad value, too many or too few arguments.
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"status", "--addr"}, "flag needs an argument"},
		{[]string{"node", "--cpu", "many"}, "invalid value"},
		{[]string{"status", "a", "b"}, `unexpected argument "b"`},
		{[]string{"deploy", "app.yaml"}, `unexpected argument "app.yaml"`},
		{[]string{"dev", "-f", "a.yaml", "b.yaml"}, `unexpected argument "b.yaml"`},
		{[]string{"delete"}, "missing arguments: want NAME"},
		{[]string{"models", "alias", "m", "prod"}, "missing arguments: want NAME ALIAS VERSION"},
		{[]string{"models", "pull", "m", "dir", "extra"}, `unexpected argument "extra"`},
		{[]string{"models"}, "no command given"},
		{[]string{"models", "--addr", "x"}, "no command given"},
		{[]string{"models", "nope"}, `unknown command "nope"`},
		{[]string{"help", "nope"}, `unknown command "nope"`},
		{[]string{"models", "help", "nope"}, `unknown command "nope"`},
		{[]string{"help", "models", "nope"}, `unknown command "nope"`},
		{[]string{"code"}, "code: no command given"},
		{[]string{"code", "nope"}, `code: unknown command "nope"`},
		{[]string{"code", "push", "b"}, "missing arguments: want NAME PATH"},
		{[]string{"code", "pull", "b", "dir", "extra"}, `unexpected argument "extra"`},
		{[]string{"code", "push", "b", "app", "--describe-timeout", "soon"}, "invalid value"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			_, _, err := runCLI(t, nil, tc.args...)
			if ExitCode(err) != 2 || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v (exit code %d), want %q", err, ExitCode(err), tc.want)
			}
		})
	}
}
