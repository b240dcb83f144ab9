package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sluice-serve/sluice/platform/controller"
	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/replicas"
	"github.com/sluice-serve/sluice/streams"
)

// addrFlag registers --addr on fs.
func addrFlag(fs interface {
	String(name, value, usage string) *string
}) *string {
	return fs.String("addr", "", "platform address (env SLUICE_ADDR; default 127.0.0.1:8000)")
}

func baseURL(addr string, env Env) string {
	a := orEnv(addr, env, "SLUICE_ADDR", "127.0.0.1:8000")
	if !strings.Contains(a, "://") {
		a = "http://" + a
	}
	return strings.TrimRight(a, "/")
}

// apiCall sends one request to the applications API and decodes the JSON
// answer into out; an error answer becomes an error with its message.
func apiCall(ctx context.Context, method, u string, body []byte, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("platform not reachable: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
			Code  string `json:"code"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			if e.Code == string(streams.CodeInvalidArgument) {
				return &ExitError{Code: 2, Err: fmt.Errorf("%s", e.Error)}
			}
			return fmt.Errorf("%s", e.Error)
		}
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(data))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(data, out)
}

func runDeploy(ctx context.Context, args []string, env Env) error {
	fs := newFlags("deploy", env)
	addr := addrFlag(fs)
	file := fs.String("f", "", "YAML file with one or more applications (required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *file == "" {
		return usageError("deploy: -f FILE is required")
	}
	data, err := os.ReadFile(*file)
	if err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	if _, err := readSpecs([]string{*file}); err != nil { // local check: file, line, field
		return err
	}
	var out struct {
		Deployed []string `json:"deployed"`
	}
	u := baseURL(*addr, env) + "/sluice/v1/apps?file=" + url.QueryEscape(filepath.Base(*file))
	if err := apiCall(ctx, http.MethodPost, u, data, &out); err != nil {
		return err
	}
	for _, n := range out.Deployed {
		fmt.Fprintf(env.Stdout, "deployed %s\n", n)
	}
	return nil
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
	if err := apiCall(ctx, http.MethodDelete, baseURL(*addr, env)+"/sluice/v1/apps/"+url.PathEscape(name), nil, nil); err != nil {
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
	var apps []controller.AppStatus
	u := baseURL(*addr, env) + "/sluice/v1/apps"
	if fs.NArg() == 1 {
		var one controller.AppStatus
		if err := apiCall(ctx, http.MethodGet, u+"/"+url.PathEscape(fs.Arg(0)), nil, &one); err != nil {
			return err
		}
		apps = append(apps, one)
	} else if err := apiCall(ctx, http.MethodGet, u, nil, &apps); err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(apps)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "APP\tROUTE\tDEPLOYMENT\tREPLICAS\tPARTITIONS\tPROCESSED\tFAILED\tONGOING\tLAG\tERROR")
	for _, a := range apps {
		for _, d := range a.Deployments {
			lag := "?"
			if d.Lag >= 0 {
				lag = fmt.Sprint(d.Lag)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%d\t%d\t%d\t%d\t%s\t%s\n",
				a.Name, a.RoutePrefix, d.Name, d.Replicas, d.Target, d.Partitions, d.Processed, d.Failed, d.Ongoing, lag, d.Error)
		}
	}
	return tw.Flush()
}

// runReplica runs one replica of a deployment as this process, against
// any brokers: the same replica code `sluice dev` runs as goroutines.
func runReplica(ctx context.Context, args []string, env Env) error {
	fs := newFlags("replica", env)
	app := fs.String("app", "", "application name (required)")
	dep := fs.String("deployment", "", "deployment name (required)")
	brokers := fs.String("brokers", "", "Kafka brokers, comma-separated (env SLUICE_BROKERS; required)")
	prefix := fs.String("prefix", "", "prefix of every topic and group name (default sluice)")
	if err := parse(fs, args); err != nil {
		return err
	}
	bs := splitBrokers(orEnv(*brokers, env, "SLUICE_BROKERS", ""))
	if *app == "" || *dep == "" || len(bs) == 0 {
		return usageError("replica: --app, --deployment and --brokers are required")
	}
	namer, err := streams.NewNamer(*prefix)
	if err != nil {
		return usageError("--prefix: %v", err)
	}
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	appSpec, err := controller.LoadApp(lctx, bs, namer, *app, env.Log)
	if err != nil {
		return err
	}
	caller, err := streams.NewCaller(ctx, bs, namer, "replica-"+streams.Instance(), env.Log)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		caller.Close(cctx)
		cancel()
	}()
	h, err := env.Registry.Build(ctx, appSpec, *dep, caller, namer)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(appSpec.Deployments, func(d spec.Deployment) bool { return d.Name == *dep })
	topo := controller.Compile(namer, appSpec)
	rep, err := replicas.New(ctx, controller.ReplicaConfig(bs, topo, appSpec.Deployments[i], 20*time.Second, env.Log), h)
	if err != nil {
		return err
	}
	env.Log.Info("replica running", "app", *app, "deployment", *dep)
	return rep.Run(ctx)
}
