// Command autoscale-sim replays the load traces of package sim through
// Sluice's autoscaling policy and the KEDA and Ray Serve defaults, writes
// a plot per trace (autoscale-<trace>.png) and prints a Markdown table,
// then whether our policy meets its target on each trace.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/sluice-serve/sluice/autoscaler/sim"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "autoscale-sim:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("autoscale-sim", flag.ContinueOnError)
	out := fs.String("out", "", "directory for the PNG plots (none if empty)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	m := sim.DefaultModel()
	var runs [][]sim.Result
	for _, tr := range sim.Traces() {
		rs, err := sim.RunAll(tr, m, sim.Contenders())
		if err != nil {
			return err
		}
		runs = append(runs, rs)
		if *out != "" {
			if err := writePlot(filepath.Join(*out, "autoscale-"+tr.Name+".png"), tr, m, rs); err != nil {
				return err
			}
		}
	}
	if err := sim.Table(stdout, runs); err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	for _, rs := range runs {
		if err := sim.Check(rs); err != nil {
			fmt.Fprintf(stdout, "- target missed on %s\n", strings.ReplaceAll(err.Error(), "\n", "\n- target missed on "))
		} else {
			fmt.Fprintf(stdout, "- target met on %s\n", rs[0].Trace)
		}
	}
	return nil
}

func writePlot(path string, tr sim.Trace, m sim.Model, rs []sim.Result) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := sim.Plot(f, tr, m, rs); err != nil {
		f.Close()
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return f.Close()
}
