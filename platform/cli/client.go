package cli

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-serve/sluice/platform/appstore"
	"github.com/sluice-serve/sluice/platform/controller"
	"github.com/sluice-serve/sluice/platform/metrics"
	"github.com/sluice-serve/sluice/platform/serve"
	"github.com/sluice-serve/sluice/platform/spec"
	sluicev1 "github.com/sluice-serve/sluice/protos/gen/sluice/v1"
	"github.com/sluice-serve/sluice/registry"
	"github.com/sluice-serve/sluice/replicas"
	"github.com/sluice-serve/sluice/replicas/procs"
	"github.com/sluice-serve/sluice/streams"
)

// addrFlag registers --addr, where every client command finds the
// platform: REST, and gRPC for the models commands, on one address.
func addrFlag(fs *flagSet) *string {
	return fs.envString("addr", "SLUICE_ADDR", "127.0.0.1:8000", "platform address, host:port or a URL")
}

func baseURL(addr string) string {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return strings.TrimRight(addr, "/")
}

// apiCall sends one request to the applications API, with env's
// SLUICE_TOKEN as its bearer token, and decodes the protojson answer
// into out; an error answer becomes an error with its
// message (exit code 2 when the spec is at fault).
func apiCall(ctx context.Context, env Env, method, u string, in, out proto.Message) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = protojson.Marshal(in); err != nil {
			return err
		}
	}
	data, err := apiRequest(ctx, env, method, u, body)
	if err != nil {
		return err
	}
	return protojson.Unmarshal(data, out)
}

// apiRequest sends one request to the platform's API and returns the
// body of a 200 answer; any other answer becomes an error with its
// message.
func apiRequest(ctx context.Context, env Env, method, u string, body []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if t := strings.TrimSpace(env.Getenv(tokenEnv)); t != "" {
		req.Header.Set("Authorization", "Bearer "+t)
	}
	client, err := httpClient(env)
	if err != nil {
		return nil, err
	}
	// A client per request: its connection goes when the answer is read,
	// not kept idle for minutes (waitRolled asks four times a second).
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("platform not reachable: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
			Code  string `json:"code"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			if e.Code == string(streams.CodeInvalidArgument) {
				return nil, &ExitError{Code: 2, Err: errors.New(e.Error)}
			}
			return nil, errors.New(e.Error)
		}
		return nil, fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(data))
	}
	return data, nil
}

func runDeploy(ctx context.Context, args []string, env Env) error {
	fs := newFlags("deploy", env)
	addr := addrFlag(fs)
	file := fs.String("f", "", "YAML file with one or more applications (required)")
	noWait := fs.Bool("no-wait", false, "return once the specs are stored, without waiting for the replicas to roll")
	timeout := fs.Duration("timeout", 5*time.Minute, "how long to wait for the replicas to roll")
	var py pythonDeploy
	fs.StringVar(&py.dir, "python", "", "deploy a Python application: push DIR as a python-project code bundle (its next version) and deploy the application --import-path names")
	fs.StringVar(&py.importPath, "import-path", "", "with --python: MODULE:ATTR of the application (a deployment's .bind())")
	fs.StringVar(&py.name, "name", "", "with --python: the application's name, and its bundle's (default: ATTR, '_' as '-')")
	fs.StringVar(&py.routePrefix, "route-prefix", "", "with --python: the application's route prefix (default: /NAME)")
	if err := parse(fs, args); err != nil {
		return err
	}
	var in *sluicev1.DeployRequest
	switch {
	case py.dir != "" && *file != "":
		return usageError("deploy: -f FILE and --python DIR are two ways to deploy: give one")
	case py.dir != "":
		if py.importPath == "" {
			return usageError("deploy: --python needs --import-path MODULE:ATTR")
		}
		var err error
		if in, err = py.request(ctx, *addr, env); err != nil {
			return err
		}
	case *file == "":
		return usageError("deploy: -f FILE (or --python DIR) is required")
	default:
		data, err := os.ReadFile(*file)
		if err != nil {
			return &ExitError{Code: 2, Err: err}
		}
		if _, err := readSpecs([]string{*file}); err != nil { // local check: file, line, field
			return err
		}
		in = &sluicev1.DeployRequest{FileName: filepath.Base(*file), Yaml: data}
	}
	var out sluicev1.DeployResponse
	if err := apiCall(ctx, env, http.MethodPost, baseURL(*addr)+"/sluice/v1/apps", in, &out); err != nil {
		return err
	}
	for i, n := range out.GetDeployed() {
		fmt.Fprintf(env.Stdout, "deployed %s (generation %d)\n", n, generation(&out, i))
	}
	if *noWait {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	for i, n := range out.GetDeployed() {
		if err := waitRolled(wctx, baseURL(*addr), n, generation(&out, i), env); err != nil {
			return err
		}
	}
	return nil
}

func generation(out *sluicev1.DeployResponse, i int) int64 {
	if gs := out.GetGenerations(); i < len(gs) {
		return gs[i]
	}
	return -1
}

// A deployment that reports the same problem for problemGrace while its
// roll makes no progress cannot roll: deploy gives up with the reason.
const problemGrace = 15 * time.Second

// waitRolled waits until every deployment of app runs the revision of
// generation gen on all its replicas (none of an older one left), printing
// progress as it changes. It fails naming the deployment and the reason
// when the roll cannot finish (replicas failing, no room) or ctx ends.
func waitRolled(ctx context.Context, base, app string, gen int64, env Env) error {
	var last string
	stuck := map[string]time.Time{} // deployment: since when its problem stands
	for {
		var st sluicev1.ApplicationStatus
		err := apiCall(ctx, env, http.MethodGet, base+"/sluice/v1/apps/"+url.PathEscape(app), nil, &st)
		switch {
		case err != nil && ctx.Err() != nil:
			return fmt.Errorf("deploy: application %s: the roll did not finish in time (%s)", app, last)
		case err != nil:
		case st.GetRejected() != nil && st.GetRejected().GetGeneration() >= gen:
			return fmt.Errorf("deploy: application %s: generation %d was refused: %s", app, gen, st.GetRejected().GetReason())
		case st.GetGeneration() >= gen:
			done, progress := rollProgress(&st)
			if progress != last {
				fmt.Fprintf(env.Stdout, "%s: %s\n", app, progress)
				last = progress
				clear(stuck) // progress: a problem counts from now
			}
			if done {
				fmt.Fprintf(env.Stdout, "rolled %s (generation %d)\n", app, st.GetGeneration())
				return nil
			}
			for _, d := range st.GetDeployments() {
				if why := rollProblem(d); why == "" {
					delete(stuck, d.GetName())
				} else if since, ok := stuck[d.GetName()]; !ok {
					stuck[d.GetName()] = time.Now()
				} else if time.Since(since) >= problemGrace {
					return fmt.Errorf("deploy: application %s, deployment %s cannot roll: %s", app, d.GetName(), why)
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("deploy: application %s: the roll did not finish in time (%s)", app, last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// rollProgress says how far each deployment's roll is, and whether all
// are done: no replica of another revision left, and as many ready
// replicas of the new one as are asked for.
func rollProgress(st *sluicev1.ApplicationStatus) (bool, string) {
	done := true
	parts := make([]string, 0, len(st.GetDeployments()))
	for _, d := range st.GetDeployments() {
		if d.GetOutdated() > 0 || d.GetUpdated() < d.GetTarget() {
			done = false
		}
		parts = append(parts, fmt.Sprintf("%s %d/%d updated, %d outdated", d.GetName(), d.GetUpdated(), d.GetTarget(), d.GetOutdated()))
	}
	return done, strings.Join(parts, "; ")
}

// rollProblem is why a deployment's replicas do not start or wait, when
// its roll is not done.
func rollProblem(d *sluicev1.DeploymentStatus) string {
	if d.GetOutdated() == 0 && d.GetUpdated() >= d.GetTarget() {
		return ""
	}
	return d.GetError()
}

func runDelete(ctx context.Context, args []string, env Env) error {
	fs := newFlags("delete", env)
	addr := addrFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError("delete: give exactly one application name")
	}
	name := fs.Arg(0)
	var out sluicev1.DeleteResponse
	if err := apiCall(ctx, env, http.MethodDelete, baseURL(*addr)+"/sluice/v1/apps/"+url.PathEscape(name), nil, &out); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "deleted %s\n", name)
	return nil
}

func runStatus(ctx context.Context, args []string, env Env) error {
	fs := newFlags("status", env)
	addr := addrFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	var apps []*sluicev1.ApplicationStatus
	var nodes []*sluicev1.NodeStatus
	u := baseURL(*addr) + "/sluice/v1/apps"
	if fs.NArg() == 1 {
		var one sluicev1.ApplicationStatus
		if err := apiCall(ctx, env, http.MethodGet, u+"/"+url.PathEscape(fs.Arg(0)), nil, &one); err != nil {
			return err
		}
		apps = append(apps, &one)
	} else {
		var list sluicev1.ListResponse
		if err := apiCall(ctx, env, http.MethodGet, u, nil, &list); err != nil {
			return err
		}
		apps, nodes = list.GetApplications(), list.GetNodes()
	}
	if *asJSON {
		opts := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true, Multiline: true}
		b, err := opts.Marshal(&sluicev1.ListResponse{Applications: apps, Nodes: nodes})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(env.Stdout, string(b))
		return err
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "APP\tROUTE\tGEN\tDEPLOYMENT\tREVISION\tREPLICAS\tROLL\tPARTITIONS\tPROCESSED\tFAILED\tONGOING\tLAG\tERROR")
	for _, a := range apps {
		for _, d := range a.GetDeployments() {
			lag := "?"
			if d.GetLag() >= 0 {
				lag = fmt.Sprint(d.GetLag())
			}
			roll := "done"
			if d.GetOutdated() > 0 || d.GetUpdated() < d.GetTarget() {
				roll = fmt.Sprintf("%d/%d updated, %d outdated", d.GetUpdated(), d.GetTarget(), d.GetOutdated())
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%d/%d\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n",
				a.GetName(), a.GetRoutePrefix(), a.GetGeneration(), d.GetName(), d.GetRevision(), d.GetReplicas(), d.GetTarget(), roll,
				d.GetPartitionsAssigned(), d.GetProcessed(), d.GetFailed(), d.GetOngoing(), lag, d.GetError())
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, a := range apps {
		if r := a.GetRejected(); r != nil {
			kept := fmt.Sprintf("generation %d keeps running", a.GetGeneration())
			if a.GetGeneration() < 0 {
				kept = "nothing runs"
			}
			fmt.Fprintf(env.Stdout, "\n%s: generation %d was refused (%s); %s: %s\n",
				a.GetName(), r.GetGeneration(), shortTime(r.GetTime()), kept, r.GetReason())
		}
	}
	if err := printAutoscaler(env.Stdout, apps); err != nil {
		return err
	}
	if err := printPlacements(env.Stdout, apps); err != nil {
		return err
	}
	if err := printNodes(env.Stdout, nodes); err != nil {
		return err
	}
	return printModelReplicas(env.Stdout, apps)
}

// printPlacements lists the replicas placed on GPUs: node, devices and
// shares.
func printPlacements(w io.Writer, apps []*sluicev1.ApplicationStatus) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	header := false
	for _, a := range apps {
		for _, d := range a.GetDeployments() {
			for _, p := range d.GetPlacements() {
				if len(p.GetGpus()) == 0 {
					continue
				}
				if !header {
					fmt.Fprintln(tw, "\nGPU REPLICA\tNODE\tDEVICES")
					header = true
				}
				var devs []string
				for _, g := range p.GetGpus() {
					devs = append(devs, fmt.Sprintf("%s ×%g (%s)", g.GetUuid(), g.GetFraction(), gibs(g.GetMemoryBytes())))
				}
				fmt.Fprintf(tw, "%s/%s#%d\t%s\t%s\n", a.GetName(), d.GetName(), p.GetId(), p.GetNode(), strings.Join(devs, ", "))
			}
		}
	}
	return tw.Flush()
}

// printNodes lists the nodes, a line per GPU (MIG instances indented),
// with what replicas hold of each.
func printNodes(w io.Writer, nodes []*sluicev1.NodeStatus) error {
	if len(nodes) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nNODE\tCPU\tMEMORY\tGPU\tMEMORY FREE/TOTAL\tBUSY\tPLACED\tPROBLEM")
	for _, n := range nodes {
		cpu, mem := "-", "-" // `sluice dev` offers GPUs only
		if n.GetCpu() > 0 {
			cpu = fmt.Sprint(n.GetCpu())
		}
		if n.GetMemoryBytes() > 0 {
			mem = gibs(n.GetMemoryBytes())
		}
		head := n.GetName() + "\t" + cpu + "\t" + mem
		if len(n.GetGpus()) == 0 {
			fmt.Fprintf(tw, "%s\t-\t\t\t\t%s\n", head, n.GetGpuProblem())
			continue
		}
		var row func(g *sluicev1.GpuDevice, indent string)
		row = func(g *sluicev1.GpuDevice, indent string) {
			busy := "-"
			if g.GetUtilization() >= 0 {
				busy = fmt.Sprintf("%d%%", g.GetUtilization())
			}
			placed := "-"
			switch {
			case g.GetMig():
				placed = "MIG: on its instances"
			case g.GetPlacedFraction() > 0:
				placed = fmt.Sprintf("%g, %s", math.Round(g.GetPlacedFraction()*1000)/1000, gibs(g.GetPlacedMemoryBytes()))
			}
			fmt.Fprintf(tw, "%s\t%s%s %s\t%s/%s\t%s\t%s\t%s\n", head, indent, g.GetUuid(), g.GetName(),
				gibs(g.GetMemoryFreeBytes()), gibs(g.GetMemoryTotalBytes()), busy, placed, g.GetProblem())
			head = "\t\t"
			for _, in := range g.GetInstances() {
				row(in, indent+"  ")
			}
		}
		for _, g := range n.GetGpus() {
			row(g, "")
		}
	}
	return tw.Flush()
}

// gibs writes bytes in GiB with one decimal (MiB below 1 GiB).
func gibs(b int64) string {
	if b < 1<<30 {
		return fmt.Sprintf("%dMiB", b>>20)
	}
	return fmt.Sprintf("%.1fGiB", float64(b)/(1<<30))
}

// printAutoscaler lists what the autoscaler sees of each deployment and
// its latest decision with the reason.
func printAutoscaler(w io.Writer, apps []*sluicev1.ApplicationStatus) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	header := false
	for _, a := range apps {
		for _, d := range a.GetDeployments() {
			s := d.GetAutoscaler()
			if s == nil {
				continue
			}
			if !header {
				fmt.Fprintln(tw, "\nAUTOSCALER\tREADY/ASKED\tMIN-MAX\tLAG\tLAST CHANGE\tNOW")
				header = true
			}
			lag := fmt.Sprint(s.GetLag())
			if s.GetLagError() != "" {
				lag = "? (" + s.GetLagError() + ")"
			}
			change := "-"
			if h := s.GetHistory(); len(h) > 0 {
				c := h[len(h)-1]
				change = fmt.Sprintf("%s %d→%d: %s", shortTime(c.GetTime()), c.GetFrom(), c.GetTo(), c.GetReason())
			}
			now := s.GetLast().GetReason()
			if s.GetProblem() != "" {
				now = "PROBLEM: " + s.GetProblem() + "; " + now
			}
			fmt.Fprintf(tw, "%s/%s\t%d/%d\t%d-%d\t%s\t%s\t%s\n", a.GetName(), d.GetName(), s.GetReady(), s.GetCurrent(),
				s.GetMinReplicas(), s.GetMaxReplicas(), lag, change, now)
		}
	}
	return tw.Flush()
}

// shortTime keeps the clock part of an RFC 3339 time.
func shortTime(t string) string {
	if p, err := time.Parse(time.RFC3339Nano, t); err == nil {
		return p.Local().Format("15:04:05")
	}
	return t
}

// printModelReplicas lists what each replica of a model deployment holds.
func printModelReplicas(w io.Writer, apps []*sluicev1.ApplicationStatus) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	header := false
	for _, a := range apps {
		for _, d := range a.GetDeployments() {
			for _, r := range d.GetModelReplicas() {
				if !header {
					fmt.Fprintln(tw, "\nMODEL REPLICA\tLOADED\tMEMORY\tHITS\tMISSES\tLOADS\tEVICTIONS\tFAILED")
					header = true
				}
				var failed []string
				for k, why := range r.GetFailed() {
					failed = append(failed, k+": "+why)
				}
				slices.Sort(failed)
				fmt.Fprintf(tw, "%s/%s/%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", a.GetName(), d.GetName(), r.GetReplica(),
					strings.Join(append(slices.Clone(r.GetLoaded()), prefixed("loading ", r.GetLoading())...), ","), humanBytes(r.GetMemoryBytes()),
					r.GetHits(), r.GetMisses(), r.GetLoads(), r.GetEvictions(), strings.Join(failed, "; "))
			}
		}
	}
	return tw.Flush()
}

func prefixed(p string, ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = p + s
	}
	return out
}

// runReplica runs one replica of a deployment as this process, against
// any brokers: the same replica code `sluice dev` runs as goroutines. It
// runs the application's latest valid spec, reports itself on the status
// topic, and tells the process that started it when it is ready.
func runReplica(ctx context.Context, args []string, env Env) error {
	fs := newFlags("replica", env)
	app := fs.String("app", "", "application name (required)")
	dep := fs.String("deployment", "", "deployment name (required)")
	slot := fs.String("slot", "", "this replica's slot among the deployment's, stable across its restarts: a static group member that a restart gives its partitions back at once (default: a dynamic member)")
	session := fs.Duration("session-timeout", replicas.DefaultSessionTimeout, "how long the brokers wait for a silent replica before its partitions move")
	cluster := clusterFlags(fs)
	s3 := s3Flags(fs)
	cacheDir := fs.String("model-cache", "", "model deployments: download cache directory (default: a temporary one, removed at exit)")
	revision := fs.String("revision", "", "run this revision of the deployment: wait for the spec that has it (default: the latest spec)")
	generation := fs.Int64("generation", -1, "run the application's spec of this generation (a bundle started by the platform's own replica command)")
	blobDir := fs.String("blob-dir", "", "where the registry keeps files, when it is a local directory (sluice dev) rather than S3")
	codeCache := fs.String("code-cache", "", "where code bundles are cached by content (default: sluice/code under the user cache directory)")
	claimThreshold := claimFlags(fs)
	claimLimit := claimLimitFlag(fs)
	metricsAddr := fs.envString("metrics-addr", metrics.AddrEnv, "", "serve this replica's /metrics at host:port (port 0: any free one), reported on the status topic; a node sets it for its replicas (default: none)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *app == "" || *dep == "" {
		return usageError("replica: --app and --deployment are required")
	}
	if *session <= 0 {
		return usageError("replica: --session-timeout must be positive")
	}
	bs, namer, err := cluster()
	if err != nil {
		return err
	}
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// The platform's stores checked the spec against its code's manifest;
	// a replica runs the revision its node asks for, whatever the code.
	var want func(appstore.Applied) bool
	switch {
	case *generation >= 0:
		want = func(a appstore.Applied) bool { return a.Generation == *generation }
	case *revision != "":
		want = func(a appstore.Applied) bool {
			d, ok := deploymentOf(a.Spec, *dep)
			return ok && controller.Revision(controller.Compile(namer, a.Spec), d) == *revision
		}
	}
	applied, err := appstore.Load(lctx, appstore.Config{Brokers: bs, Namer: namer, Log: env.Log}, *app, want)
	if err != nil {
		return err
	}
	appSpec := applied.Spec
	d, ok := deploymentOf(appSpec, *dep)
	if !ok {
		return fmt.Errorf("application %s has no deployment %s", *app, *dep)
	}
	if pin := d.Bundle; pin != nil && pin.Image != "" {
		return fmt.Errorf("deployment %s runs the image %s (bundle %s@%s): image bundles run as pods on Kubernetes (sluice render --workloads), not as processes", *dep, pin.Image, pin.Name, pin.Version)
	}
	if pin := d.Bundle; pin != nil && pin.Path != "" && env.Getenv(localCodeEnv) == "" {
		return fmt.Errorf("deployment %s runs the local binary %s: only replicas that sluice dev starts run local binaries", *dep, pin.Path)
	}
	if pin := d.Bundle; pin != nil && pin.Format == registry.FormatPythonProject {
		return execPython(ctx, pin, pythonReplica{brokers: bs, namer: namer, applied: applied, dep: d, slot: *slot, revision: *revision,
			session: *session, drain: 20 * time.Second, metricsAddr: *metricsAddr, registryEnv: pythonRegistryEnv(bs, namer, withS3Env(*s3, env), *blobDir, *cacheDir),
			claimThreshold: *claimThreshold, claimLimit: *claimLimit}, bundleSource{brokers: bs, namer: namer, s3: withS3Env(*s3, env), blobDir: *blobDir, cache: *codeCache}, env)
	}
	if pin := d.Bundle; pin != nil && env.Getenv(bundleEnv) != pin.SHA256 {
		// The deployment runs a code bundle: this process becomes it.
		return execBundle(ctx, pin, append(slices.Clone(args), "--generation", strconv.FormatInt(applied.Generation, 10)), bundleSource{brokers: bs, namer: namer, s3: withS3Env(*s3, env), blobDir: *blobDir, cache: *codeCache}, env)
	}
	claims, err := replicaClaims(ctx, withS3Env(*s3, env), *blobDir, *claimThreshold, *claimLimit, env)
	if err != nil {
		return err
	}
	caller, err := streams.NewCaller(ctx, bs, namer, "replica-"+streams.Instance(), env.Log, streams.WithClaims(claims))
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		caller.Close(cctx)
		cancel()
	}()
	pm := newProcessMetrics()
	var mb controller.ModelBuilder
	if d.Kind == spec.KindModel {
		f, closeModels, err := replicaModels(ctx, bs, namer, *s3, *cacheDir, env)
		if err != nil {
			return err
		}
		defer closeModels()
		f.Metrics = pm.models
		mb = f
	}
	// The revision asked for is the one reported: a bundle's SDK may hash
	// specs differently from the platform that asked.
	rev := cmp.Or(*revision, controller.Revision(controller.Compile(namer, appSpec), d))
	instance := controller.Instance(*app, *dep, cmp.Or(*slot, streams.Instance()), rev)
	h, err := controller.BuildHandler(serve.WithMetrics(ctx, pm.reg, *app, *dep, instance), env.Registry, mb, appSpec, d, caller, namer)
	if err != nil {
		return err
	}
	if c, ok := h.(io.Closer); ok {
		defer c.Close()
	}
	rc, err := controller.ReplicaConfig(bs, namer, applied, d, instance, 20*time.Second, env.Log)
	if err != nil {
		return err
	}
	if *slot != "" {
		rc.InstanceID = instance
	}
	rc.SessionTimeout = *session
	rc.Claims = claims
	rc.Revision = rev
	pm.replica(&rc)
	addr, stopMetrics, err := serveMetrics(*metricsAddr, pm.reg, env.Log)
	if err != nil {
		return err
	}
	defer stopMetrics()
	rc.MetricsAddr = addr
	rep, err := replicas.New(ctx, rc, h)
	if err != nil {
		return err
	}
	pub, err := replicas.NewPublisher(ctx, bs, namer.Status(), env.Log)
	if err != nil {
		return err
	}
	pub.Add(rep)
	pctx, stopReports := context.WithCancel(context.Background())
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		pub.Run(pctx)
	}()
	go tellReady(rep.Ready(), env)
	env.Log.Info("replica running", "app", *app, "deployment", *dep, "instance", instance, "generation", applied.Generation)
	err = rep.Run(ctx)
	rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
	pub.Remove(rctx, rep)
	rcancel()
	stopReports()
	<-pubDone
	return err
}

// tellReady writes one byte to the readiness descriptor the process that
// started this one passed (procs.ReadyEnv) once ready is closed.
func tellReady(ready <-chan struct{}, env Env) {
	fd, err := strconv.Atoi(env.Getenv(procs.ReadyEnv))
	if err != nil {
		return
	}
	<-ready
	f := os.NewFile(uintptr(fd), "ready")
	if f == nil {
		return
	}
	_, _ = f.Write([]byte{1})
	_ = f.Close()
}
