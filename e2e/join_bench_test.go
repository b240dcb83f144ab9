package e2e

import (
	"context"
	"fmt"
	"testing"

	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/protocol"
)

// joinBenchYAML is the joined diamond without its mirror, and chainBenchYAML
// a chain of the same depth (three deployments on every path): the join
// costs what its second input's arrival adds, about one hop, not a window.
const joinBenchYAML = `name: %[1]s
route_prefix: /%[1]s
ingress: In
deployments:
  - {name: In, kind: cel}
  - {name: Plus1, handler: Adder, args: [1]}
  - {name: Times10, handler: Multiplier, args: [10]}
  - {name: Final, kind: cel, transform: 'int(body.Plus1) + int(body.Times10)', join: {type: inner}}
edges:
  - {from: In, to: Plus1}
  - {from: In, to: Times10}
  - {from: Plus1, to: Final}
  - {from: Times10, to: Final}
`

const chainBenchYAML = `name: %[1]s
route_prefix: /%[1]s
ingress: In
deployments:
  - {name: In, kind: cel}
  - {name: Plus1, handler: Adder, args: [1]}
  - {name: Final, kind: cel, transform: 'int(body) + 1'}
edges:
  - {from: In, to: Plus1}
  - {from: Plus1, to: Final}
`

// BenchmarkJoin compares a sync call through the joined diamond with one
// through the chain of the same depth, at concurrency 1, in the same run:
// x_chain_p50 is the diamond's p50 over the chain's.
func BenchmarkJoin(b *testing.B) {
	c, err := streams.NewCaller(context.Background(), plat.Brokers, namer, "benchjoin-"+streams.Instance(), testLog)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(context.Background())
	for _, a := range []struct{ name, yaml string }{{"benchchain", chainBenchYAML}, {"benchdiamond", joinBenchYAML}} {
		if code, out := run(b, "deploy", "-f", writeFile(b, a.name+".yaml", fmt.Sprintf(a.yaml, a.name))); code != 0 {
			b.Fatalf("deploy %s: %s", a.name, out)
		}
	}
	var chainP50 float64
	for _, w := range []struct{ name, app, want string }{{"chain", "benchchain", "7"}, {"diamond", "benchdiamond", diamondWant(5)}} {
		b.Run(w.name+"/c1", func(b *testing.B) {
			p50, p99, rps := load(b, 1, func(ctx context.Context) error {
				rep, err := c.Call(ctx, &protocol.Request{Topic: namer.Ingress(w.app), Value: []byte("5")})
				if err == nil && string(rep.Value) != w.want {
					err = fmt.Errorf("%s answered %q, want %q", w.app, rep.Value, w.want)
				}
				return err
			})
			b.ReportMetric(p50, "p50_ms")
			b.ReportMetric(p99, "p99_ms")
			b.ReportMetric(rps, "req/s")
			if w.name == "chain" {
				chainP50 = p50
			} else if chainP50 > 0 {
				b.ReportMetric(p50/chainP50, "x_chain_p50")
			}
		})
	}
}
