package main

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/sluice-serve/sluice/platform/bundle"
)

// runMain makes the test binary the sluice binary when the test runs it
// again (TestDescribeBinary).
const runMain = "SLUICE_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMain) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// The stock binary describes itself as sluice code push will ask it to:
// `BINARY describe --json` under a timeout, the manifest alone on stdout.
func TestDescribeBinary(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "describe", "--json")
	cmd.Env = append(os.Environ(), runMain+"=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("describe --json: %v", err)
	}
	m, err := bundle.Decode(out)
	if err != nil {
		t.Fatalf("the manifest does not decode: %v\n%s", err, out)
	}
	reg, err := registry()
	if err != nil {
		t.Fatal(err)
	}
	want, err := reg.Manifest().Encode()
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := m.Encode(); string(got) != string(want) {
		t.Fatalf("the binary's manifest is not its registry's:\n%s\n---\n%s", got, want)
	}
	for _, name := range []string{"Adder", "Multiplier", "Ingress", "LanguageClassifier", "Caller", "Streamer", "Noop", "Doubler"} {
		if m.Handler(name) == nil {
			t.Errorf("no handler %s", name)
		}
	}
}
