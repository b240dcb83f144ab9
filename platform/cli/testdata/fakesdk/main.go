// Command fakesdk stands in for a binary built with the Sluice SDK in the
// tests of `sluice code push`: `describe --json` prints a manifest. Copied
// under another name it misbehaves as the name says: "hangs" never
// answers, "garbage" prints no JSON, "fails" exits with status 2.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

const manifest = `{
  "sdk": "go",
  "handlers": [
    {"name": "echo", "kind": "func", "input": "string", "output": "string"}
  ]
}
`

func main() {
	if len(os.Args) < 3 || os.Args[1] != "describe" || os.Args[2] != "--json" {
		fmt.Fprintln(os.Stderr, "usage: fakesdk describe --json")
		os.Exit(2)
	}
	switch filepath.Base(os.Args[0]) {
	case "hangs":
		fmt.Print(`{"handlers": [`)
		time.Sleep(time.Hour)
	case "garbage":
		fmt.Println("usage: sluice <command> [arguments] [flags]")
	case "fails":
		fmt.Fprintln(os.Stderr, `sluice: unknown command "describe"`)
		os.Exit(2)
	default:
		fmt.Print(manifest)
	}
}
