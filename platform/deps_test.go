package platform

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// allowed is every package's direct imports among the project's own, as
// docs/ARCHITECTURE.md draws them ("Dependencies"). An import not listed
// here fails the test: add it only with the picture changed to match, and
// only if it points down the layers. The leaves stay leaves: processes
// (replicas/procs), GPUs (replicas/gpu), the record protocol
// (streams/protocol), Kafka plumbing (streams, on the protocol), the
// blob stores and the OIP data model import nothing of the platform, so
// a replica supervisor never links the CEL compiler or gRPC.
var allowed = map[string][]string{
	"streams/protocol":                 {},
	"streams/claim":                    {"streams/protocol"},
	"streams/kafkaauth":                {},
	"streams/tracing":                  {},
	"streams":                          {"streams/claim", "streams/kafkaauth", "streams/protocol", "streams/tracing"},
	"replicas/procs":                   {},
	"replicas/gpu":                     {},
	"registry/blob":                    {},
	"autoscaler/kube/workload":         {},
	"protos/gen/inference":             {},
	"protos/gen/sluice/v1":             {},
	"protos":                           {}, // the embedded OpenAPI document
	"deploy/helm":                      {}, // the chart's test (no Go code)
	"deploy/grafana":                   {}, // the dashboard's PromQL names
	"platform/metrics":                 {}, // the process's registry, /metrics, kprom
	"gateway/oip":                      {"protos/gen/inference"},
	"gateway/auth":                     {},
	"gateway/auth/authtest":            {}, // test JWKS and JWTs
	"gateway/certs":                    {},
	"gateway/certs/certstest":          {}, // test certificates
	"gateway/audit":                    {"streams"},
	"cel":                              {"gateway/oip"},
	"platform/spec":                    {"cel"},
	"platform/bundle":                  {"cel", "platform/spec"},
	"python":                           {},
	"platform/code":                    {"platform/bundle", "platform/spec", "python", "registry"},
	"replicas":                         {"streams", "streams/claim", "streams/protocol", "streams/tracing"},
	"platform/appstore":                {"platform/spec", "streams"},
	"platform/dlq":                     {"cel", "streams", "streams/protocol"},
	"autoscaler":                       {"platform/spec", "streams"},
	"autoscaler/sim":                   {"autoscaler", "platform/spec"},
	"autoscaler/sim/cmd/autoscale-sim": {"autoscaler/sim"},
	"autoscaler/kube":                  {"autoscaler", "autoscaler/kube/workload"},
	"autoscaler/kube/manifest":         {"autoscaler", "autoscaler/kube/workload", "platform/spec", "replicas/gpu"},
	"autoscaler/placement":             {"autoscaler", "replicas/gpu", "streams"},
	"autoscaler/keda":                  {"autoscaler", "autoscaler/kube/workload", "platform/controller", "platform/spec"},
	"registry":                         {"platform/spec", "protos/gen/sluice/v1", "registry/blob", "streams"},
	"replicas/models":                  {"gateway/oip", "platform/spec", "registry", "replicas", "streams", "streams/protocol"},
	"replicas/runtime/tensorflow":      {"gateway/oip", "registry", "replicas/gpu", "replicas/models", "streams"},
	"replicas/node":                    {"autoscaler", "autoscaler/placement", "replicas/gpu", "replicas/procs", "streams"},
	"platform/serve":                   {"gateway/oip", "platform/bundle", "platform/spec", "replicas", "streams", "streams/protocol", "streams/tracing"},
	"platform/controller":              {"autoscaler", "autoscaler/placement", "cel", "gateway/oip", "platform/appstore", "platform/serve", "platform/spec", "replicas", "replicas/models", "replicas/procs", "streams", "streams/claim", "streams/protocol"},
	"gateway": {"autoscaler", "autoscaler/placement", "cel", "gateway/audit", "gateway/auth", "gateway/oip", "platform/appstore", "platform/controller", "platform/spec",
		"protos", "protos/gen/inference", "protos/gen/sluice/v1", "registry", "replicas/gpu", "replicas/models", "streams", "streams/protocol", "streams/tracing"},
	"platform/cli": {"autoscaler", "autoscaler/keda", "autoscaler/kube", "autoscaler/kube/manifest", "autoscaler/kube/workload", "autoscaler/placement",
		"cel", "gateway", "gateway/audit", "gateway/auth", "gateway/certs", "platform/appstore", "platform/bundle", "platform/code", "platform/controller", "platform/metrics", "platform/dlq", "platform/serve", "platform/spec", "protos/gen/sluice/v1", "registry", "registry/blob",
		"replicas", "replicas/models", "replicas/node", "replicas/procs", "replicas/runtime/tensorflow", "streams", "streams/claim", "streams/kafkaauth", "streams/tracing"},
}

// TestDependencyArrows fails when a package imports against the arrows
// of docs/ARCHITECTURE.md.
func TestDependencyArrows(t *testing.T) {
	const module = "github.com/sluice-serve/sluice/"
	for _, tags := range []string{"", "kubernetes,tensorflow"} {
		out, err := exec.Command("go", "list", "-tags", tags, "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", module+"...").Output()
		if err != nil {
			t.Fatalf("go list: %v", err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			fields := strings.Fields(strings.ReplaceAll(line, module, ""))
			pkg := fields[0]
			if strings.HasPrefix(pkg, "e2e") || strings.HasPrefix(pkg, "examples") || strings.HasPrefix(pkg, "bench") || pkg == "cmd/sluice" || pkg == "platform" {
				continue // the suite, user code and the binaries may import anything
			}
			allow, known := allowed[pkg]
			if !known {
				t.Errorf("package %s is not in the dependency table: add it here and to docs/ARCHITECTURE.md", pkg)
				continue
			}
			for _, imp := range fields[1:] {
				if strings.Contains(imp, ".") || !strings.Contains(line, module+imp) {
					continue // the standard library and other modules
				}
				if !slices.Contains(allow, imp) {
					t.Errorf("%s imports %s, against the arrows of docs/ARCHITECTURE.md", pkg, imp)
				}
			}
		}
	}
}
