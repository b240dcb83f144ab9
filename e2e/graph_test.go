package e2e

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/sluice-serve/sluice/gateway/oip"
	"github.com/sluice-serve/sluice/streams"
)

// The diamond a user measured (a cel node fanning out to Plus1 and
// Times10, both into Final), and its kin, are refused at deploy with exit
// 2, the file:line of the field and what to write instead; nothing runs.
// An unknown handler that the deployment's name stands for points at the
// deployment.
func TestGraphDeployRefusals(t *testing.T) {
	t.Parallel()
	const head = `name: %s
route_prefix: /%s
ingress: In
deployments:
  - {name: In, kind: cel%s}
  - {name: Plus1, handler: Adder, args: [1]}
  - {name: Times10, handler: Multiplier, args: [10]}
`
	for _, tc := range []struct{ app, routing, rest, want string }{
		{"diamond", "", `  - {name: Final, handler: Adder, args: [1000]}
edges:
  - {from: In, to: Plus1}
  - {from: In, to: Times10}
  - {from: Plus1, to: Final}
  - {from: Times10, to: Final}
`, "diamond.yaml:8:5: deployments[3]: deployment Final has 2 incoming dataflow edges (edges[2] from Plus1, edges[3] from Times10) and no join"},
		{"fanout", "", `edges:
  - {from: In, to: Plus1}
  - {from: In, to: Times10}
`, "fanout.yaml:5:5: deployments[0].routing: In (routing all) sends each output down edges[0] (to Plus1) and edges[1] (to Times10), which answer from Plus1 and Times10"},
		{"shadowed", ", routing: first", `edges:
  - {from: In, to: Plus1}
  - {from: In, to: Times10, when: 'body == 2'}
`, "shadowed.yaml:10:5: edges[1]: edge In -> Times10 is never taken: under routing first, edges[0] (to Plus1) has no when"},
		{"unknownhandler", "", `  - {name: Final}
edges:
  - {from: In, to: Plus1}
  - {from: Plus1, to: Times10}
  - {from: Times10, to: Final}
`, `unknownhandler.yaml:8:5: deployments[3].handler: unknown handler "Final"`},
		{"tensorclash", "", `  - name: Final
    kind: cel
    join: {type: inner}
edges:
  - {from: In, to: Plus1}
  - {from: In, to: Times10}
  - {from: Plus1, to: Final}
  - {from: Times10, to: Final}
`, `tensorclash.yaml:10:11: deployments[3].join: tensor "y" would come from both Plus1 (its declared outputs) and Times10 (its declared outputs), and a joined inference request takes each name once: set join.tensors: prefix on Final`},
	} {
		t.Run(tc.app, func(t *testing.T) {
			t.Parallel()
			yaml := fmt.Sprintf(head, tc.app, tc.app, tc.routing) + tc.rest
			if tc.app == "tensorclash" { // both answer a tensor y
				yaml = strings.ReplaceAll(yaml, "args: [1", "outputs: [{name: y, datatype: FP32, shape: [-1]}], args: [1")
			}
			code, out := run(t, "deploy", "-f", writeFile(t, tc.app+".yaml", yaml))
			if code != 2 || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, want 2 with %q:\n%s", code, tc.want, out)
			}
			if code, _ := post(t, "/"+tc.app, "5"); code != 404 {
				t.Fatalf("a refused application answers %d, want 404", code)
			}
		})
	}
}

// Two model deployments that serve the same registry model, joined by
// tensor name, are refused at deploy naming the model's output and its
// version as the registry has them; joined with tensors: prefix they
// deploy, and a request answered by version 1 (y = 2x + 1) and version 2
// (y = 3x + 1) of the model gets one inference request with both
// outputs, each named after its upstream. On `sluice dev` as a process.
func TestTensorJoinDev(t *testing.T) {
	t.Parallel()
	testTensorJoin(t, startDevProcess(t))
}

// The same on `sluice node` + `sluice gateway`, replicas as processes,
// weights from S3.
func TestTensorJoinNode(t *testing.T) {
	s3 := nodeS3(t)
	t.Parallel()
	n := startS3Node(t, s3, "tjoin-"+streams.Instance())
	testTensorJoin(t, platformUnderTest{bin: n.bin, addr: n.addr, logs: n.stderr.String})
}

func testTensorJoin(t *testing.T, p platformUnderTest) {
	model := "tj" + streams.Instance()[:6]
	p.cli(t, "models", "push", model, "../examples/models/affine-v1") // y = 2x + 1
	p.cli(t, "models", "push", model, "../examples/models/affine-v2") // y = 3x + 1
	const y = `name: %[1]s
route_prefix: /%[1]s
ingress: In
deployments:
  - {name: In, kind: cel}
  - {name: V1, kind: model, model: {names: [%[3]s], default_version: "1"}}
  - {name: V2, kind: model, model: {names: [%[3]s], default_version: "2"}}
  - {name: Both, kind: cel, join: {type: inner%[2]s}}
edges:
  - {from: In, to: V1}
  - {from: In, to: V2}
  - {from: V1, to: Both}
  - {from: V2, to: Both}
`
	out, err := exec.Command(p.bin, "deploy", "-f", writeFile(t, "tensorjoin.yaml", fmt.Sprintf(y, model+"a", "", model)), "--addr", p.addr).CombinedOutput()
	want := fmt.Sprintf(`tensorjoin.yaml:8:35: deployments[3].join: tensor "y" would come from both V1 (model %[1]s version 1) and V2 (model %[1]s version 2)`, model)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), want) {
		t.Fatalf("%v, want exit 2 with %q:\n%s", err, want, out)
	}
	p.cli(t, "deploy", "-f", writeFile(t, "tensorjoin2.yaml", fmt.Sprintf(y, model+"b", ", tensors: prefix", model)))
	t.Cleanup(func() { _ = exec.Command(p.bin, "delete", model+"b", "--addr", p.addr).Run() })

	// The payload form in, as a gRPC or OIP caller's request travels:
	// each model answers in it, and the join merges the tensors.
	req := oip.InferRequest{ID: "r7", Inputs: []oip.Tensor{{Name: "x", Datatype: "FP32", Shape: []int64{1, 1}, Data: binary.LittleEndian.AppendUint32(nil, math.Float32bits(3))}}}
	payload, err := req.MarshalBinary()
	must(t, err)
	resp, body := do(t, http.MethodPost, "http://"+p.addr+"/"+model+"b", string(payload), http.Header{"Content-Type": {oip.ContentType}, "Sluice-Model": {model}})
	var got oip.InferRequest
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != oip.ContentType || got.UnmarshalBinary([]byte(body)) != nil {
		t.Fatalf("joined answer: %d %q %q\nlogs:\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body, p.logs())
	}
	var names []string
	for _, in := range got.Inputs {
		var ys []float32
		for d := in.Data; len(d) >= 4; d = d[4:] {
			ys = append(ys, math.Float32frombits(binary.LittleEndian.Uint32(d)))
		}
		names = append(names, fmt.Sprint(in.Name, "=", ys))
	}
	if strings.Join(names, " ") != "V1.y=[7] V2.y=[10]" || got.ID != "r7" {
		t.Fatalf("joined request %s (id %q), want V1.y=[7] V2.y=[10]", names, got.ID)
	}
}
