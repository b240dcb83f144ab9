package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"

	"github.com/sluice-serve/sluice/platform/appstore"
	"github.com/sluice-serve/sluice/platform/bundle"
	"github.com/sluice-serve/sluice/platform/code"
	"github.com/sluice-serve/sluice/platform/controller"
	"github.com/sluice-serve/sluice/platform/spec"
	sluicev1 "github.com/sluice-serve/sluice/protos/gen/sluice/v1"
	"github.com/sluice-serve/sluice/registry"
	"github.com/sluice-serve/sluice/registry/blob"
	"github.com/sluice-serve/sluice/streams"
)

// DefaultPythonDescribeTimeout bounds `python -m sluice describe` at
// `sluice deploy --python` (imports of ML libraries take seconds); the
// environment's preparation before it is bounded apart
// (code.DefaultPythonBuildTimeout).
const DefaultPythonDescribeTimeout = time.Minute

// pythonEnvsVar overrides where Python environments are kept.
const pythonEnvsVar = "SLUICE_PYTHON_ENVS"

// pythonEnvs is where python-project bundles' environments are prepared
// and kept: $SLUICE_PYTHON_ENVS, else sluice/code under the user cache
// directory. Not the replica's --code-cache: an environment takes
// seconds to minutes of pip to build, and `sluice dev`'s code cache lives
// as long as the dev process; this one is shared by pushes and replicas
// of every run on the machine.
func pythonEnvs() (code.PythonEnv, error) {
	if d := os.Getenv(pythonEnvsVar); d != "" {
		return code.PythonEnv{Dir: d}, nil
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return code.PythonEnv{}, fmt.Errorf("no user cache directory for Python environments (%v): set %s", err, pythonEnvsVar)
	}
	return code.PythonEnv{Dir: filepath.Join(base, "sluice", "code")}, nil
}

// describePython prepares the environment of the python-project of files
// (cached) and runs `python -m sluice describe` in it, returning the
// manifest of the application at importPath, named name ("" for the
// SDK's default), compacted.
func describePython(ctx context.Context, files []artifactFile, importPath, name string, timeout time.Duration, env Env) (json.RawMessage, error) {
	envs, err := pythonEnvs()
	if err != nil {
		return nil, err
	}
	listed := make([]registry.File, len(files))
	for i, f := range files {
		listed[i] = registry.File{Path: f.rel, SHA256: f.sha256}
	}
	start := time.Now()
	pe, err := envs.Get(ctx, code.ProjectSHA256(listed), func(_ context.Context, dir string) error {
		for _, f := range files {
			if err := copyFile(f.abs, filepath.Join(dir, filepath.FromSlash(f.rel))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if pe.Built {
		fmt.Fprintf(env.Stderr, "sluice: prepared the Python environment in %s\n", time.Since(start).Round(100*time.Millisecond))
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	args := []string{"-m", "sluice", "describe", "--json", "--import-path", importPath, "--app-dir", pe.Project}
	if name != "" {
		args = append(args, "--name", name)
	}
	cmd := exec.CommandContext(ctx, pe.Python, args...)
	cmd.Dir = pe.Project
	stdout, stderr := &capped{max: registry.MaxManifest}, &capped{max: 8 << 10}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("python -m sluice describe --import-path %s did not answer within %s", importPath, timeout)
		}
		if msg := strings.TrimSpace(string(stderr.b)); msg != "" {
			return nil, errors.New(msg)
		}
		return nil, fmt.Errorf("python -m sluice describe --import-path %s: %w", importPath, err)
	}
	// The SDK states what the application sets; the platform's defaults
	// fill the rest, as a Go binary's specs come defaulted.
	var m bundle.Manifest
	if err := json.Unmarshal(stdout.b, &m); err != nil {
		return nil, fmt.Errorf("python -m sluice describe printed no manifest (%v): %s", err, strings.TrimSpace(string(stdout.b)))
	}
	for _, a := range m.Apps {
		if a != nil {
			a.Default()
		}
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("python -m sluice describe --import-path %s: %w", importPath, err)
	}
	b, err := m.Encode()
	if err != nil {
		return nil, err
	}
	return registry.CompactManifest(b)
}

func copyFile(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// pythonReplica is what `sluice replica` knows of the replica it runs
// that the Python runtime takes as flags.
type pythonReplica struct {
	brokers        []string
	namer          streams.Namer
	applied        appstore.Applied
	dep            spec.Deployment
	slot, revision string
	session        time.Duration
	drain          time.Duration
	registryEnv    []string // what its model loaders and claim checks need of the store (pythonRegistryEnv)
	metricsAddr    string   // where it serves /metrics (--metrics-addr, SLUICE_METRICS_ADDR); "" none
	claimThreshold int      // values over it travel as claim checks
	claimLimit     int64    // the largest value a claim carries
}

// pythonRegistryEnv is what a Python replica's model loaders need to run
// `sluice models fetch` (sluice.serve.models): this binary, the brokers
// and prefix, the store weights are read from (S3 credentials are in the
// environment already) and the replica's model cache. Its claim checks
// (sluice.claim) are kept in the same store.
func pythonRegistryEnv(bs []string, namer streams.Namer, s3 blob.S3Config, blobDir, cache string) []string {
	self, err := os.Executable()
	if err != nil {
		return nil // the loaders then say that they cannot find sluice
	}
	e := []string{"SLUICE_BIN=" + self, "SLUICE_BROKERS=" + strings.Join(bs, ","), "SLUICE_PREFIX=" + namer.Prefix()}
	if cache != "" {
		e = append(e, "SLUICE_MODEL_CACHE="+cache)
	}
	switch {
	case s3.Endpoint != "":
		e = append(e, "SLUICE_S3_ENDPOINT="+s3.Endpoint, "SLUICE_S3_BUCKET="+s3.Bucket, "SLUICE_S3_PREFIX="+s3.Prefix, "SLUICE_S3_TLS="+strconv.FormatBool(s3.TLS || s3.CAFile != ""))
		if s3.CAFile != "" {
			e = append(e, "SLUICE_S3_CA_FILE="+s3.CAFile)
		}
	case blobDir != "":
		e = append(e, "SLUICE_BLOB_DIR="+blobDir)
	}
	return e
}

// execPython runs a replica of a deployment whose code is a
// python-project bundle: it prepares the bundle's environment (cached by
// content and SDK, built from the registry's files the first time),
// resolves what the replica reads and writes as the platform's own
// replicas do (controller.ReplicaConfig), and replaces this process with
// `python -m sluice.replica`, which keeps its pid, environment and
// descriptors (the readiness pipe, SLUICE_READY_FD, among them).
func execPython(ctx context.Context, pin *spec.BundlePin, pr pythonReplica, src bundleSource, env Env) error {
	envs, err := pythonEnvs()
	if err != nil {
		return err
	}
	v, closeReg, err := src.resolve(ctx, pin, env)
	if err != nil {
		return err
	}
	defer closeReg()
	m, err := bundle.Decode(v.Manifest)
	if err != nil {
		return fmt.Errorf("bundle %s@%s: %w", pin.Name, pin.Version, err)
	}
	if m.SDK.Language != bundle.LanguagePython || m.SDK.Entry == "" {
		return fmt.Errorf("bundle %s@%s: its manifest names no Python application (sdk.entry): push it with --import-path", pin.Name, pin.Version)
	}
	start := time.Now()
	pe, err := envs.Get(ctx, pin.SHA256, func(ctx context.Context, dir string) error {
		for _, f := range v.Files {
			if err := src.download(ctx, v, f, filepath.Join(dir, filepath.FromSlash(f.Path))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("bundle %s@%s: %w", pin.Name, pin.Version, err)
	}
	rc, err := controller.ReplicaConfig(pr.brokers, pr.namer, pr.applied, pr.dep, "", pr.drain, env.Log)
	if err != nil {
		return err
	}
	if rc.Router != nil {
		return fmt.Errorf("deployment %s: its edges have rules (when, transform, routing): Python replicas do not route outputs yet", pr.dep.Name)
	}
	rev := cmp.Or(pr.revision, rc.Revision)
	instance := controller.Instance(pr.applied.Spec.Name, pr.dep.Name, cmp.Or(pr.slot, streams.Instance()), rev)
	args := []string{pe.Python, "-m", "sluice.replica",
		"--brokers", strings.Join(pr.brokers, ","), "--prefix", pr.namer.Prefix(),
		"--app", pr.applied.Spec.Name, "--deployment", pr.dep.Name, "--group", rc.Group,
		"--output", rc.Output, "--dead-letter", rc.DeadLetter, "--status-topic", pr.namer.Status(),
		"--instance", instance, "--revision", rev, "--generation", strconv.FormatInt(pr.applied.Generation, 10),
		"--session-timeout", strconv.FormatFloat(pr.session.Seconds(), 'f', -1, 64),
		"--drain-timeout", strconv.FormatFloat(pr.drain.Seconds(), 'f', -1, 64),
		"--import-path", m.SDK.Entry, "--app-dir", pe.Project, "--handler", pr.dep.Handler,
		"--claim-threshold", strconv.Itoa(pr.claimThreshold), "--claim-limit", strconv.FormatInt(pr.claimLimit, 10)}
	if len(pr.dep.UserConfig) > 0 {
		// The spec's user_config, which a new one rolls (a new revision):
		// the process hands it to reconfigure after construction.
		args = append(args, "--user-config", string(pr.dep.UserConfig))
	}
	if len(pr.dep.Args) > 0 {
		// The spec's constructor arguments, which a deployment its
		// module's graph does not bind is constructed with.
		b, err := json.Marshal(pr.dep.Args)
		if err != nil {
			return fmt.Errorf("deployment %s: args: %w", pr.dep.Name, err)
		}
		args = append(args, "--args", string(b))
	}
	if pr.dep.MaxOngoingRequests > 0 {
		args = append(args, "--max-ongoing", strconv.Itoa(pr.dep.MaxOngoingRequests))
	}
	if pr.slot != "" {
		args = append(args, "--instance-id", instance)
	}
	if pr.metricsAddr != "" {
		args = append(args, "--metrics-addr", pr.metricsAddr)
	}
	for _, t := range rc.Topics {
		args = append(args, "--topic", t)
	}
	for _, t := range rc.Successors {
		args = append(args, "--successor", t)
	}
	env.Log.Info("running python bundle", "bundle", pin.Name, "version", pin.Version, "entry", m.SDK.Entry,
		"env", filepath.Dir(pe.Project), "built", pe.Built, "prepared_in", time.Since(start).Round(time.Millisecond))
	if err := os.Chdir(pe.Project); err != nil {
		return err
	}
	return syscall.Exec(pe.Python, args, append(append(append(os.Environ(), pr.registryEnv...), kafkaEnv(pr.brokers)...), bundleEnv+"="+pin.SHA256, "PYTHONUNBUFFERED=1"))
}

// pythonDeploy is `sluice deploy --python DIR --import-path MOD:ATTR`.
type pythonDeploy struct {
	dir, importPath, name, routePrefix string
}

// pythonAppName is the default name of the application at importPath:
// its ATTR, '_' as '-', lower case (as python -m sluice describe names it).
func pythonAppName(importPath string) string {
	_, attr, _ := strings.Cut(importPath, ":")
	if i := strings.LastIndex(attr, "."); i >= 0 {
		attr = attr[i+1:]
	}
	return strings.ToLower(strings.ReplaceAll(attr, "_", "-"))
}

// request pushes the project as the next version of the bundle named as
// the application, and returns the deploy of the application its
// manifest describes, with its code pinned to that version.
func (p pythonDeploy) request(ctx context.Context, addr string, env Env) (*sluicev1.DeployRequest, error) {
	name := cmp.Or(p.name, pythonAppName(p.importPath))
	if err := streams.ValidSegment(name); err != nil {
		return nil, usageError("deploy: --name %q: %v", name, err)
	}
	target, creds, err := grpcTarget(addr, env)
	if err != nil {
		return nil, err
	}
	dial := append(registry.BulkDialOptions(), grpc.WithTransportCredentials(creds))
	conn, err := grpc.NewClient(target, append(dial, tokenDialOptions(env)...)...)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	opts := bundleOptions{format: registry.FormatPythonProject, timeout: DefaultPythonDescribeTimeout, importPath: p.importPath, appName: name}
	v, err := pushBundleVersion(ctx, conn, name, p.dir, "", opts, env)
	if err != nil {
		return nil, rpcError(err)
	}
	m, err := bundle.Decode([]byte(v.GetManifest()))
	if err != nil {
		return nil, fmt.Errorf("deploy: bundle %s@%s: %w", name, v.GetVersion(), err)
	}
	if len(m.Apps) == 0 {
		return nil, usageError("deploy: %s names deployments outside its graph (serve.get_deployment_handle): it is part of an application; deploy that with -f, its Python deployments with code: %s@%s", p.importPath, name, v.GetVersion())
	}
	if len(m.Apps) != 1 {
		return nil, fmt.Errorf("deploy: bundle %s@%s describes %d applications, want one", name, v.GetVersion(), len(m.Apps))
	}
	app := m.Apps[0]
	app.Name, app.Code = name, name+"@"+v.GetVersion()
	if p.routePrefix != "" {
		app.RoutePrefix = p.routePrefix
	}
	data, err := json.Marshal(app) // JSON is YAML
	if err != nil {
		return nil, err
	}
	return &sluicev1.DeployRequest{FileName: p.importPath, Yaml: data}, nil
}
