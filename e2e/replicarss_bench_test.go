package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-serve/sluice/streams"
)

// BenchmarkIdleReplicaRSS measures idle replica processes of `sluice
// dev` in one run: the Python replicas of examples/python/hello.py (a
// python-project bundle, `python -m sluice.replica` in the environment
// the platform builds) and the Go replicas of examples/greeter (a
// go-binary bundle). Each application answers one request, then after
// SLUICE_BENCH_IDLE (default 30s) with nothing to do it reports each
// process's RSS, its private memory (Private_Clean + Private_Dirty) and
// PSS from /proc/PID/smaps_rollup, and Python's mean over Go's.
//
//	go test ./e2e -run '^$' -bench IdleReplicaRSS -benchtime 1x
func BenchmarkIdleReplicaRSS(b *testing.B) {
	if pythonForTests() == "" {
		b.Skip("needs python3 >= 3.10 (or SLUICE_PYTHON) with pip and an index for starlette and uvloop")
	}
	idle := 30 * time.Second
	if s := os.Getenv("SLUICE_BENCH_IDLE"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			b.Fatalf("SLUICE_BENCH_IDLE=%s: %v", s, err)
		}
		idle = d
	}
	envs := "SLUICE_PYTHON_ENVS=" + b.TempDir()
	p := startDevProcessWith(b, []string{"--builtin=false"}, []string{envs})
	cli := func(args ...string) {
		b.Helper()
		cmd := exec.Command(p.bin, append(args, "--addr", p.addr)...)
		cmd.Env = append(os.Environ(), envs)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("sluice %s: %v\n%s\nlogs:\n%s", strings.Join(args, " "), err, out, tail(p.logs(), 4000))
		}
	}
	id := streams.Instance()[:6]
	py, gr := "rp"+id, "rg"+id
	cli("deploy", "--python", "../examples/python", "--import-path", "hello:app", "--name", py, "--timeout", "5m")
	yaml, err := os.ReadFile("../examples/greeter/app.yaml")
	if err != nil {
		b.Fatal(err)
	}
	local := filepath.Join(b.TempDir(), "greeter")
	if err := os.Link(greeterBinaries(b)["Hello"], local); err != nil {
		b.Fatal(err)
	}
	cli("deploy", "-f", writeFile(b, "g.yaml", strings.NewReplacer("name: greeter", "name: "+gr, "route_prefix: /greeter", "route_prefix: /"+gr,
		"code: greeter@production", "code: "+local).Replace(string(yaml))))
	if code, body := postTo(b, p.addr, "/"+py, `{"language":"spanish","name":"Dora"}`); code != 200 || body != "Hola Dora" {
		b.Fatalf("hello.py: %d %s", code, body)
	}
	if code, body := postTo(b, p.addr, "/"+gr, "Lee"); code != 200 || body != "Hello, Lee!" {
		b.Fatalf("greeter: %d %s", code, body)
	}
	time.Sleep(idle)

	var load string
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	b.Logf("idle replica processes of sluice dev, %s after one request each; load average %s", idle, load)
	b.Logf("%-6s %-20s %8s %9s %8s %9s", "lang", "deployment", "pid", "RSS MiB", "PSS MiB", "priv MiB")
	mean := map[string][3]float64{}
	for _, app := range []struct{ lang, name string }{{"python", py}, {"go", gr}} {
		procs := replicaProcesses(b, app.name)
		if len(procs) == 0 {
			b.Fatalf("no replica process of %s found", app.name)
		}
		var sum [3]float64
		for _, pr := range procs {
			m, err := smapsRollup(pr.pid)
			if err != nil {
				b.Fatal(err)
			}
			rss, pss, priv := m["Rss"]/1024, m["Pss"]/1024, (m["Private_Clean"]+m["Private_Dirty"])/1024
			b.Logf("%-6s %-20s %8d %9.1f %8.1f %9.1f", app.lang, pr.deployment, pr.pid, rss, pss, priv)
			sum[0], sum[1], sum[2] = sum[0]+rss, sum[1]+pss, sum[2]+priv
		}
		n := float64(len(procs))
		mean[app.lang] = [3]float64{sum[0] / n, sum[1] / n, sum[2] / n}
	}
	pm, gm := mean["python"], mean["go"]
	b.ReportMetric(pm[0], "py-RSS-MiB")
	b.ReportMetric(pm[2], "py-private-MiB")
	b.ReportMetric(gm[0], "go-RSS-MiB")
	b.ReportMetric(gm[2], "go-private-MiB")
	b.ReportMetric(pm[0]/gm[0], "py/go-RSS")
	b.ReportMetric(pm[2]/gm[2], "py/go-private")
}

type replicaProcess struct {
	pid        int
	deployment string
}

// replicaProcesses finds the replica processes of an application by
// their command line (`... replica --app NAME --deployment D`, or
// `python -m sluice.replica --app NAME ...`), sorted by deployment.
func replicaProcesses(b *testing.B, app string) []replicaProcess {
	var found []replicaProcess
	for _, p := range processes(b) {
		args := p.args
		if !slices.Contains(args, "replica") && !slices.Contains(args, "sluice.replica") {
			continue
		}
		if i := slices.Index(args, "--app"); i < 0 || i+1 >= len(args) || args[i+1] != app {
			continue
		}
		dep := ""
		if i := slices.Index(args, "--deployment"); i >= 0 && i+1 < len(args) {
			dep = args[i+1]
		}
		found = append(found, replicaProcess{pid: p.pid, deployment: dep})
	}
	slices.SortFunc(found, func(a, b replicaProcess) int { return strings.Compare(a.deployment, b.deployment) })
	return found
}

// smapsRollup is /proc/PID/smaps_rollup's sizes in KiB by field.
func smapsRollup(pid int) (map[string]float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return nil, err
	}
	m := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[2] == "kB" {
			v, err := strconv.ParseFloat(f[1], 64)
			if err == nil {
				m[strings.TrimSuffix(f[0], ":")] = v
			}
		}
	}
	if _, ok := m["Rss"]; !ok {
		return nil, fmt.Errorf("/proc/%d/smaps_rollup has no Rss", pid)
	}
	return m, nil
}
