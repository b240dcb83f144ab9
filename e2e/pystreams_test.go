package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/sluice-serve/sluice/streams"
)

// goStreams is testdata/gostreams, an SDK binary of streaming Go
// deployments pushed as a go-binary bundle.
var goStreams = &goProgram{name: "gostreams", pkg: "./testdata/gostreams"}

// Streams across languages, on `sluice dev` with its replicas as
// processes: a Go deployment (a go-binary bundle) streams a Python
// generator, sync and async, through its handle and relays each item;
// a Python deployment streams a Go one with options(stream=True),
// relaying with async for, or collecting with for in a thread. Every
// item arrives in order, and an error raised midway on the callee
// reaches the caller as an error after the items before it.
func TestPythonStreamsDev(t *testing.T) {
	needPython(t)
	t.Parallel()
	envs := "SLUICE_PYTHON_ENVS=" + t.TempDir()
	testPythonStreams(t, startDevProcessWith(t, nil, []string{envs}), envs)
}

// The same on the production topology: `sluice gateway` + `sluice node`,
// the Go and Python replicas processes the node places, both bundles in
// the real tier's MinIO.
func TestPythonStreamsNode(t *testing.T) {
	needPython(t)
	s3 := nodeS3(t)
	t.Parallel()
	envs := "SLUICE_PYTHON_ENVS=" + t.TempDir()
	n := startS3Node(t, s3, "pystreams-"+streams.Instance(), envs)
	testPythonStreams(t, platformUnderTest{bin: n.bin, addr: n.addr, logs: n.stderr.String}, envs)
}

func testPythonStreams(t *testing.T, p platformUnderTest, envs string) {
	cli := func(args ...string) {
		t.Helper()
		cmd := exec.Command(p.bin, append(args, "--addr", p.addr)...)
		cmd.Env = append(os.Environ(), envs)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("sluice %s: %v\n%s\nlogs:\n%s", strings.Join(args, " "), err, out, tail(p.logs(), 6000))
		}
	}
	id := streams.Instance()[:6]
	gob, pyb, pyc := "gs"+id, "ps"+id, "pc"+id
	cli("code", "push", gob, goStreams.binary(t))
	cli("code", "push", pyb, "testdata/pystreams", "--import-path", "streams:app")
	// A bundle's manifest gives the arguments of the deployments its
	// application binds: Collect's handle is bound by another one.
	cli("code", "push", pyc, "testdata/pystreams", "--import-path", "streams:collect")
	deploy := func(app, ingress string, deployments ...string) {
		t.Helper()
		yaml := "name: " + app + "\nroute_prefix: /" + app + "\ningress: " + ingress + "\ndeployments:\n"
		for _, d := range deployments {
			yaml += "  - " + d + "\n"
		}
		cli("deploy", "-f", writeFile(t, app+".yaml", yaml), "--timeout", "4m")
	}
	goCount := "{name: GoCount, handler: GoCount, code: " + gob + "@1}"
	for _, c := range []struct {
		app, ingress string
		deployments  []string
		n            int
		items        []string // each line of the gateway's NDJSON answer
		err          string   // the last line's error, "" for none
	}{
		// A Go deployment relays a Python generator: each square plus one.
		{"gsq" + id, "GoRelay", []string{"{name: GoRelay, handler: GoRelay, code: " + gob + "@1, args: [{handle: Squares}]}",
			"{name: Squares, handler: Squares, code: " + pyb + "@1}"}, 5, []string{"1", "2", "5", "10", "17"}, ""},
		{"gsf" + id, "GoRelay", []string{"{name: GoRelay, handler: GoRelay, code: " + gob + "@1, args: [{handle: Squares}]}",
			"{name: Squares, handler: Squares, code: " + pyb + "@1}"}, -4, []string{"1", "2", "5", "10"}, "ValueError: squares failed after 4 items"},
		// ... an async generator.
		{"gcu" + id, "GoRelay", []string{"{name: GoRelay, handler: GoRelay, code: " + gob + "@1, args: [{handle: Cubes}]}",
			"{name: Cubes, handler: Cubes, code: " + pyb + "@1}"}, 4, []string{"1", "2", "9", "28"}, ""},
		{"gcf" + id, "GoRelay", []string{"{name: GoRelay, handler: GoRelay, code: " + gob + "@1, args: [{handle: Cubes}]}",
			"{name: Cubes, handler: Cubes, code: " + pyb + "@1}"}, -3, []string{"1", "2", "9"}, "ValueError: cubes failed after 3 items"},
		// A Python deployment relays Go's stream with async for: each
		// number plus two.
		{"prl" + id, "Relay", []string{"{name: Relay, handler: Relay, code: " + pyb + "@1, args: [{handle: GoCount}]}", goCount},
			4, []string{"2", "12", "22", "32"}, ""},
		{"prf" + id, "Relay", []string{"{name: Relay, handler: Relay, code: " + pyb + "@1, args: [{handle: GoCount}]}", goCount},
			-3, []string{"2", "12", "22"}, "go count failed after 3 items"},
	} {
		deploy(c.app, c.ingress, c.deployments...)
		code, body := postTo(t, p.addr, "/"+c.app, fmt.Sprint(c.n))
		lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
		want := strings.Join(c.items, "\n")
		if c.err == "" {
			if code != 200 || strings.Join(lines, "\n") != want {
				t.Fatalf("%s(%d): %d %q, want the items %q\nlogs:\n%s", c.ingress, c.n, code, body, c.items, tail(p.logs(), 6000))
			}
			continue
		}
		var last struct{ Error, Code string }
		if code != 200 || len(lines) != len(c.items)+1 || strings.Join(lines[:len(c.items)], "\n") != want ||
			json.Unmarshal([]byte(lines[len(lines)-1]), &last) != nil || !strings.Contains(last.Error, c.err) || last.Code != "internal" {
			t.Fatalf("%s(%d): %d %q, want the items %q then the error %q\nlogs:\n%s", c.ingress, c.n, code, body, c.items, c.err, tail(p.logs(), 6000))
		}
	}

	// A Python deployment collects Go's stream with a blocking for (its
	// sync __call__ runs in a thread): the items, then the error raised
	// where the stream failed, with its code.
	col := "pco" + id
	deploy(col, "Collect", "{name: Collect, handler: Collect, code: "+pyc+"@1, args: [{handle: GoCount}]}", goCount)
	for _, c := range []struct{ in, want string }{
		{"5", `{"items":[0,10,20,30,40]}`},
		{"0", `{"items":[]}`},
		{"-2", `{"items":[0,10],"error":"SluiceError: go count failed after 2 items","code":"internal"}`},
	} {
		if code, body := postTo(t, p.addr, "/"+col, c.in); code != 200 || body != c.want {
			t.Fatalf("Collect(%s): %d %s, want %s\nlogs:\n%s", c.in, code, body, c.want, tail(p.logs(), 6000))
		}
	}
}
