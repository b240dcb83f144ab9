// Command sluice-load drives an HTTP endpoint on this machine and prints
// what it measured: a closed loop of -c workers, or an open loop of -rate
// requests per second.
//
//	sluice-load -url http://127.0.0.1:8000/noop -body '{"x":1}' -c 16 -duration 10s -warmup 2s -json
//
// With -models N, each request names one of N models m0..m<N-1> (a Zipf
// mix with -zipf S), put in place of {model} in -url and -header values:
//
//	sluice-load -url 'http://127.0.0.1:8000/v2/models/{model}/infer' -models 50 -zipf 1.1 ...
//	sluice-load -url http://127.0.0.1:8000/multiplex -header 'serve_multiplexed_model_id: {model}' -models 50 -zipf 1.1 ...
//
// With -json it prints one JSON object (requests, errors, dropped,
// elapsed_s, rps, p50_ms, p90_ms, p99_ms, p999_ms, max_ms, first_error);
// otherwise one line for people. Exit status: 0, 1 when a request failed
// (with -fail-on-error, the default) or the run was interrupted, 2 for
// usage errors.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-serve/sluice/bench/load"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are what the flags set besides the load.Config.
type options struct {
	json        bool
	failOnError bool
}

// errUsage is wrapped by errors in the command line.
var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, opts, err := parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "sluice-load:", err)
		return 2
	}
	res, err := load.Run(ctx, cfg)
	var ce *load.ConfigError
	if errors.As(err, &ce) {
		fmt.Fprintln(stderr, "sluice-load:", err)
		return 2
	}
	if opts.json {
		b, jerr := json.Marshal(res)
		if jerr != nil {
			fmt.Fprintln(stderr, "sluice-load:", jerr)
			return 1
		}
		fmt.Fprintln(stdout, string(b))
	} else {
		fmt.Fprintln(stdout, human(res))
	}
	if err != nil {
		fmt.Fprintln(stderr, "sluice-load: interrupted:", err)
		return 1
	}
	if res.Errors > 0 {
		fmt.Fprintf(stderr, "sluice-load: %d of %d requests failed; first: %s\n", res.Errors, res.Requests, res.FirstError)
		if opts.failOnError {
			return 1
		}
	}
	return 0
}

// parse reads the command line into a load configuration.
func parse(args []string, stderr io.Writer) (load.Config, options, error) {
	var (
		cfg                 load.Config
		opts                options
		body, bodyFile, exp string
	)
	fs := flag.NewFlagSet("sluice-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.URL, "url", "", "URL to drive, on a loopback host (required)")
	fs.StringVar(&cfg.Method, "method", load.DefaultMethod, "HTTP method")
	fs.StringVar(&body, "body", "", "request body")
	fs.StringVar(&bodyFile, "body-file", "", "file holding the request body")
	fs.StringVar(&cfg.ContentType, "content-type", load.DefaultContentType, "Content-Type of the body")
	fs.IntVar(&cfg.Concurrency, "c", 1, "closed loop: this many workers, each sending when answered")
	fs.Float64Var(&cfg.Rate, "rate", 0, "open loop: requests per second on a fixed schedule (instead of -c)")
	fs.IntVar(&cfg.MaxInFlight, "max-in-flight", load.DefaultMaxInFlight, "open loop: outstanding requests beyond which scheduled ones are dropped")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "measured phase")
	fs.DurationVar(&cfg.Warmup, "warmup", 2*time.Second, "warm-up phase, sent but not recorded")
	fs.IntVar(&cfg.MaxRequests, "max", 0, "stop after this many recorded requests (0: no bound)")
	fs.DurationVar(&cfg.Timeout, "timeout", load.DefaultTimeout, "per-request timeout")
	fs.IntVar(&cfg.Models, "models", 0, "spread requests over this many models m0..m<N-1>, substituted for {model} in -url and -header values")
	fs.Float64Var(&cfg.Zipf, "zipf", 0, "with -models: Zipf exponent s > 1 of the mix, m0 the most frequent (0: uniform)")
	fs.Var(headerFlag{&cfg.Headers}, "header", "request header 'Name: value' (repeatable; {model} in the value is substituted)")
	fs.StringVar(&exp, "expect", "", "substring every answer's body must contain (with a 2xx status)")
	fs.BoolVar(&opts.json, "json", false, "print the result as one JSON object")
	fs.BoolVar(&opts.failOnError, "fail-on-error", true, "exit 1 when any request failed")
	if err := fs.Parse(args); err != nil {
		return cfg, opts, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case fs.NArg() > 0:
		return cfg, opts, fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	case cfg.URL == "":
		return cfg, opts, fmt.Errorf("%w: -url is required", errUsage)
	case set["body"] && set["body-file"]:
		return cfg, opts, fmt.Errorf("%w: -body and -body-file exclude each other", errUsage)
	case set["rate"] && set["c"]:
		return cfg, opts, fmt.Errorf("%w: -c and -rate exclude each other", errUsage)
	}
	if set["rate"] {
		cfg.Concurrency = 0
	}
	switch {
	case set["body"]:
		cfg.Body = []byte(body)
	case set["body-file"]:
		b, err := os.ReadFile(bodyFile)
		if err != nil {
			return cfg, opts, fmt.Errorf("%w: -body-file: %w", errUsage, err)
		}
		cfg.Body = b
	}
	if exp != "" {
		want := []byte(exp)
		cfg.Expect = func(status int, body []byte) error {
			if status/100 != 2 {
				return fmt.Errorf("status %d: %.200s", status, body)
			}
			if !bytes.Contains(body, want) {
				return fmt.Errorf("body %.200q does not contain %q", body, exp)
			}
			return nil
		}
	}
	return cfg, opts, nil
}

// headerFlag collects repeated -header 'Name: value' flags.
type headerFlag struct{ h *map[string]string }

func (f headerFlag) String() string {
	if f.h == nil || *f.h == nil {
		return ""
	}
	return fmt.Sprint(*f.h)
}

func (f headerFlag) Set(s string) error {
	name, value, ok := strings.Cut(s, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" {
		return fmt.Errorf("want 'Name: value', got %q", s)
	}
	if *f.h == nil {
		*f.h = map[string]string{}
	}
	(*f.h)[name] = strings.TrimSpace(value)
	return nil
}

// human is the one-line summary for people.
func human(r load.Result) string {
	s := fmt.Sprintf("requests %d errors %d rps %.1f p50 %s p90 %s p99 %s p999 %s max %s",
		r.Requests, r.Errors, r.RPS, ms(r.P50), ms(r.P90), ms(r.P99), ms(r.P999), ms(r.Max))
	if r.Dropped > 0 {
		s += fmt.Sprintf(" dropped %d", r.Dropped)
	}
	return s
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }
