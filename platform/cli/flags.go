package cli

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Flags are parsed by the standard library's flag package with three
// additions: flags may come before or after the positional arguments
// (`--` ends them), a flag may name the environment variable it falls
// back to, and -h/--help prints the command's usage to stdout. The
// standard package, not a GNU-style library such as pflag, keeps every
// spelling that worked before (-addr and --addr alike, -f FILE).

// commandHelp is what a command's usage says besides its flags.
type commandHelp struct {
	name    string // "status", "models push"
	args    string // synopsis of the positional arguments
	minArgs int
	maxArgs int
	summary string
}

// commandHelps is every command's help, in the order `sluice help`
// lists them; the models and code subcommands are listed by `sluice
// models help` and `sluice code help`.
var commandHelps = []commandHelp{
	{name: "dev", summary: "run the platform in one process: embedded broker, controller, replicas, REST and gRPC"},
	{name: "replica", summary: "run one replica of a deployment against any brokers"},
	{name: "gateway", summary: "run a gateway instance (REST and gRPC) against any brokers"},
	{name: "node", summary: "autoscale deployments as replica processes of this machine"},
	{name: "autoscaler", summary: "autoscale deployments as Kubernetes workloads (--kubernetes)"},
	{name: "models", args: "<command>", summary: "publish, list, alias, delete and download model versions"},
	{name: "code", args: "<command>", summary: "publish, list, alias, delete and download code bundles (your SDK binary)"},
	{name: "deploy", summary: "deploy applications from a YAML file to a running platform"},
	{name: "status", args: "[NAME]", maxArgs: 1, summary: "show applications (or the application NAME), deployments, replicas and lag"},
	{name: "delete", args: "NAME", minArgs: 1, maxArgs: 1, summary: "delete an application"},
	{name: "audit", summary: "show the latest admin actions: who deployed, deleted, pushed or removed what, and how it ended"},
	{name: "render", summary: "print Kubernetes objects for applications (a KEDA ScaledObject per deployment)"},
	{name: "describe", summary: "print what this binary offers: its handlers (kinds, types, constructor arguments) and built-in applications"},
	{name: "dlq", args: "<command>", summary: "list an application's dead letters and replay them to where they failed (talks to Kafka: --brokers)"},

	{name: "models push", args: "NAME PATH", minArgs: 2, maxArgs: 2, summary: "publish a file or directory as a new version"},
	{name: "models ls", args: "[NAME]", maxArgs: 1, summary: "list models, or one model's versions"},
	{name: "models alias", args: "NAME ALIAS VERSION", minArgs: 3, maxArgs: 3, summary: "point an alias at a version"},
	{name: "models rm", args: "NAME VERSION", minArgs: 2, maxArgs: 2, summary: "delete a version"},
	{name: "models pull", args: "NAME[:VERSION|@ALIAS] DIR", minArgs: 2, maxArgs: 2, summary: "download a version, checksums verified"},
	{name: "models fetch", args: "NAME[@VERSION|@ALIAS]", minArgs: 1, maxArgs: 1, summary: "from a replica: fetch a version into a cache by the brokers and the store, print JSON (the Python SDK's loader)"},

	{name: "code push", args: "NAME PATH", minArgs: 2, maxArgs: 2, summary: "publish a binary, a Python project or an image reference as a new version, checked first"},
	{name: "code ls", args: "[NAME]", maxArgs: 1, summary: "list code bundles, or one bundle's versions"},
	{name: "code alias", args: "NAME ALIAS VERSION", minArgs: 3, maxArgs: 3, summary: "point an alias at a version"},
	{name: "code rm", args: "NAME VERSION", minArgs: 2, maxArgs: 2, summary: "delete a version"},
	{name: "code pull", args: "NAME[@VERSION|@ALIAS] DIR", minArgs: 2, maxArgs: 2, summary: "download a version, checksums verified"},

	{name: "dlq ls", args: "APP", minArgs: 1, maxArgs: 1, summary: "count an application's dead letters not yet replayed, by failing deployment and code: the latest error, the first and last time"},
	{name: "dlq replay", args: "APP", minArgs: 1, maxArgs: 1, summary: "re-produce an application's dead letters to the topic and deployment each failed at, each once (a replay marker in the same transaction)"},
}

func helpOf(name string) commandHelp {
	for _, h := range commandHelps {
		if h.name == name {
			return h
		}
	}
	return commandHelp{name: name}
}

// errHelp ends a command that printed its usage because it was asked to;
// Run returns nil for it.
var errHelp = flag.ErrHelp

// flagSet is a command's flags and, once parsed, its positional arguments.
type flagSet struct {
	*flag.FlagSet
	help commandHelp
	env  Env
	envs map[string]string // flag name → the environment variable it falls back to
	args []string
}

func newFlags(name string, env Env) *flagSet {
	fs := &flagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), help: helpOf(name), env: env, envs: map[string]string{}}
	fs.SetOutput(io.Discard) // parse reports errors; usage goes to stdout on -h only
	return fs
}

// envString declares a string flag that, when not given or empty, takes
// the value of the environment variable envVar if it is not empty, else
// def.
func (fs *flagSet) envString(name, envVar, def, usage string) *string {
	p := new(string)
	fs.envStringVar(p, name, envVar, def, usage)
	return p
}

// envStringVar is envString storing into p.
func (fs *flagSet) envStringVar(p *string, name, envVar, def, usage string) {
	fs.StringVar(p, name, def, usage)
	fs.envs[name] = envVar
}

// Args are the positional arguments.
func (fs *flagSet) Args() []string { return fs.args }

// NArg is the number of positional arguments.
func (fs *flagSet) NArg() int { return len(fs.args) }

// Arg is the i'th positional argument, or "" when there is none.
func (fs *flagSet) Arg(i int) string {
	if i < 0 || i >= len(fs.args) {
		return ""
	}
	return fs.args[i]
}

// given reports whether the flag name was on the command line (not taken
// from the environment).
func (fs *flagSet) given(name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}

// parse parses args, flags anywhere before a `--`, then fills the flags not
// given from their environment variables and checks the number of
// positional arguments. -h or --help prints the usage to stdout and
// returns errHelp; any other mistake is an ExitError with code 2 that
// names it.
func parse(fs *flagSet, args []string) error {
	flags, pos, err := fs.split(args)
	if err != nil {
		return err
	}
	if err := fs.Parse(flags); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.usage(fs.env.Stdout)
			return errHelp
		}
		return fs.usageError("%v", err)
	}
	fs.args = pos
	for name, envVar := range fs.envs {
		// An empty value counts as unset, on the command line as in the
		// environment (`--http "$HTTP"` with HTTP empty).
		f := fs.Lookup(name)
		if f.Value.String() != "" && fs.given(name) {
			continue
		}
		v := cmp.Or(fs.env.Getenv(envVar), f.DefValue)
		// Value.Set, not fs.Set: Visit keeps reporting only what the
		// command line gave.
		if err := f.Value.Set(v); err != nil {
			return fs.usageError("%s=%q: %v", envVar, v, err)
		}
	}
	h := fs.help
	switch {
	case len(pos) > h.maxArgs:
		return fs.usageError("unexpected argument %q", pos[h.maxArgs])
	case len(pos) < h.minArgs:
		return fs.usageError("missing arguments: want %s", h.args)
	}
	return nil
}

// split separates flags (with their values) from positional arguments,
// as the flag package would read them if it did not stop at the first
// positional one. Everything after `--` is positional.
func (fs *flagSet) split(args []string) (flags, pos []string, err error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return flags, append(pos, args[i+1:]...), nil
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name, _, hasValue := strings.Cut(strings.TrimPrefix(a[1:], "-"), "=")
		if name == "h" || name == "help" || name == "" || name[0] == '-' {
			continue // the flag package answers these
		}
		f := fs.Lookup(name)
		if f == nil {
			return nil, nil, fs.usageError("unknown flag %s", a)
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			continue
		}
		if !hasValue && i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	return flags, pos, nil
}

func (fs *flagSet) usageError(format string, args ...any) error {
	return usageError("%s: %s (see 'sluice %s --help')", fs.help.name, fmt.Sprintf(format, args...), fs.help.name)
}

// usage writes the synopsis, the summary and every flag with its
// environment variable and default.
func (fs *flagSet) usage(w io.Writer) {
	h := fs.help
	synopsis := "sluice " + h.name
	if h.args != "" {
		synopsis += " " + h.args
	}
	fmt.Fprintf(w, "usage: %s [flags]\n\n", synopsis)
	if h.summary != "" {
		fmt.Fprintf(w, "%s%s.\n\n", strings.ToUpper(h.summary[:1]), h.summary[1:])
	}
	fmt.Fprintln(w, "flags (before or after the arguments; -- ends them):")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fs.VisitAll(func(f *flag.Flag) {
		typ, text := flag.UnquoteUsage(f)
		if _, ok := f.Value.(*listFlag); ok {
			typ = "string"
		}
		dash := "--"
		if len(f.Name) == 1 {
			dash = "-"
		}
		var notes []string
		if e := fs.envs[f.Name]; e != "" {
			notes = append(notes, "env "+e)
		}
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "[]" {
			notes = append(notes, "default "+f.DefValue)
		}
		if len(notes) > 0 {
			text += " (" + strings.Join(notes, ", ") + ")"
		}
		left := dash + f.Name
		if typ != "" {
			left += " " + typ
		}
		fmt.Fprintf(tw, "  %s\t%s\n", left, text)
	})
	tw.Flush()
}

// isSet reports whether the command line set the flag name.
func (fs *flagSet) isSet(name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
