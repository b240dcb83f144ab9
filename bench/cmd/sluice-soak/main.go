// Command sluice-soak measures how the memory of the dev platform grows
// over a long run of small requests: it starts `sluice dev` in its own
// process (cli.StartDev, the embedded broker, the built-in hello
// application), sends -requests requests to /hello with -c workers, and
// prints the process's RSS (VmRSS after runtime.GC) at the start, after
// -checkpoint requests and at the end, with the ratio end/checkpoint, and
// how many records the embedded broker holds at each point. It prints
// figures and asserts none.
//
// By default it runs twice, each run in a process of its own (itself with
// -single): the embedded broker with retention off (-retention 0
// -retention-bytes 0, every record kept) and with its defaults, and prints
// both, so the ratios compare within one invocation on one machine.
//
//	go run ./bench/cmd/sluice-soak                       # 200k requests, RSS at 20k and 200k, off and on
//	go run ./bench/cmd/sluice-soak -single -retention 1m -retention-bytes 16MiB
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/bench/load"
	"github.com/sluice-serve/sluice/examples/hello"
	"github.com/sluice-serve/sluice/platform/cli"
	"github.com/sluice-serve/sluice/platform/serve"
	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/streams"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "sluice-soak:", err)
		os.Exit(1)
	}
}

type options struct {
	requests, checkpoint, workers int
	json, single                  bool
	retention                     time.Duration
	trim                          bool
	retentionBytes                string
}

// point is what was measured at one moment of the run.
type point struct {
	Requests  int64   `json:"requests"`
	RSSMiB    float64 `json:"rss_mib"`       // after runtime.GC
	Scavenged float64 `json:"scavenged_mib"` // then after debug.FreeOSMemory
	HeapMiB   float64 `json:"heap_mib"`      // Go heap in use
	Records   int64   `json:"records"`       // held by the broker, all topics
	RPS       float64 `json:"rps"`           // of the phase that ended here
	Errors    int64   `json:"errors"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("sluice-soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.requests, "requests", 200000, "requests in all")
	fs.IntVar(&o.checkpoint, "checkpoint", 20000, "requests after which the first RSS is taken")
	fs.IntVar(&o.workers, "c", 32, "concurrent workers")
	fs.BoolVar(&o.json, "json", false, "print the points as JSON")
	fs.BoolVar(&o.single, "single", false, "one run in this process, with -retention, -retention-bytes and -trim")
	fs.BoolVar(&o.trim, "trim", false, "with -single: delete what every consumer group has processed (sluice dev's default)")
	fs.DurationVar(&o.retention, "retention", streams.EmbeddedRetention.Time, "with -single: the embedded broker's retention (0: none)")
	fs.StringVar(&o.retentionBytes, "retention-bytes", spec.Bytes(streams.EmbeddedRetention.Bytes).String(), "with -single: the embedded broker's retention per partition (0: none)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.checkpoint <= 0 || o.requests <= o.checkpoint || o.workers <= 0 {
		return errors.New("want 0 < -checkpoint < -requests and -c > 0")
	}
	if o.single {
		pts, err := soak(ctx, o)
		if err != nil {
			return err
		}
		if o.json {
			return json.NewEncoder(stdout).Encode(pts)
		}
		table(stdout, fmt.Sprintf("retention %s, %s per partition", o.retention, o.retentionBytes), pts)
		return nil
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	defaults := fmt.Sprintf("retention %s, %s per partition", streams.EmbeddedRetention.Time, spec.Bytes(streams.EmbeddedRetention.Bytes))
	variants := []struct {
		name, retention, bytes string
		trim                   bool
	}{
		{"retention off", "0", "0", false},
		{defaults, streams.EmbeddedRetention.Time.String(), spec.Bytes(streams.EmbeddedRetention.Bytes).String(), false},
		{defaults + ", processed records trimmed (sluice dev's defaults)", streams.EmbeddedRetention.Time.String(), spec.Bytes(streams.EmbeddedRetention.Bytes).String(), true},
	}
	for _, v := range variants {
		cmd := exec.CommandContext(ctx, self, "-single", "-json", "-requests", strconv.Itoa(o.requests), "-checkpoint", strconv.Itoa(o.checkpoint),
			"-c", strconv.Itoa(o.workers), "-retention", v.retention, "-retention-bytes", v.bytes, "-trim="+strconv.FormatBool(v.trim))
		cmd.Stderr = stderr
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("%s: %w", v.name, err)
		}
		var pts []point
		if err := json.Unmarshal(out, &pts); err != nil {
			return fmt.Errorf("%s: %w", v.name, err)
		}
		table(stdout, v.name, pts)
	}
	return nil
}

// table prints one run's points and its ratio.
func table(w io.Writer, name string, pts []point) {
	fmt.Fprintf(w, "%s\n  requests  rss_mib  scavenged_mib  heap_mib  records    rps  errors\n", name)
	for _, p := range pts {
		fmt.Fprintf(w, "  %8d  %7.1f  %13.1f  %8.1f  %7d  %5.0f  %6d\n", p.Requests, p.RSSMiB, p.Scavenged, p.HeapMiB, p.Records, p.RPS, p.Errors)
	}
	fmt.Fprintf(w, "  rss at %d / at %d = %.2fx (scavenged %.2fx)\n", pts[2].Requests, pts[1].Requests,
		pts[2].RSSMiB/pts[1].RSSMiB, pts[2].Scavenged/pts[1].Scavenged)
}

// soak runs the platform and the load in this process and returns the
// points at the start, the checkpoint and the end.
func soak(ctx context.Context, o options) ([]point, error) {
	reg, err := serve.NewRegistry([]*serve.Application{hello.App()})
	if err != nil {
		return nil, err
	}
	maxBytes, err := spec.ParseBytes(o.retentionBytes)
	if err != nil {
		return nil, fmt.Errorf("-retention-bytes: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	d, err := cli.StartDev(sctx, cli.DevConfig{
		HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0", Builtin: true, Registry: reg, Log: log,
		Retention: &streams.Retention{Time: o.retention, Bytes: int64(maxBytes)}, TrimConsumed: o.trim,
	})
	cancel()
	if err != nil {
		return nil, err
	}
	defer d.Close()
	adm, err := kgo.NewClient(kgo.SeedBrokers(d.Brokers...))
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	records := func() int64 { return heldRecords(ctx, kadm.NewClient(adm)) }

	pts := []point{measure(0, records())}
	cfg := load.Config{
		URL:         "http://" + d.Addr + "/hello",
		Body:        []byte(`{"language":"spanish","name":"Dora"}`),
		Concurrency: o.workers,
		Duration:    time.Hour,
		Expect: func(status int, body []byte) error {
			if status != 200 || !strings.Contains(string(body), "Hola Dora") {
				return fmt.Errorf("status %d: %.100s", status, body)
			}
			return nil
		},
	}
	var done int64
	for _, n := range []int{o.checkpoint, o.requests - o.checkpoint} {
		cfg.MaxRequests = n
		res, err := load.Run(ctx, cfg)
		if err != nil {
			return nil, err
		}
		done += res.Requests
		p := measure(done, records())
		p.RPS, p.Errors = res.RPS, res.Errors
		pts = append(pts, p)
	}
	return pts, nil
}

// measure collects garbage and reads the process's resident set, then
// returns the free heap to the system and reads it again.
func measure(requests int64, records int64) point {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	p := point{Requests: requests, RSSMiB: mib(vmRSS()), HeapMiB: mib(int64(ms.HeapInuse)), Records: records}
	debug.FreeOSMemory()
	p.Scavenged = mib(vmRSS())
	return p
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// vmRSS is VmRSS of /proc/self/status in bytes (0 where unreadable).
func vmRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// heldRecords is the number of offsets between log start and end over every
// topic of the broker (-1 where it could not be read); on a compacted topic
// it counts the offsets compaction emptied too.
func heldRecords(ctx context.Context, adm *kadm.Client) int64 {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		return -1
	}
	names := topics.Names()
	starts, err := adm.ListStartOffsets(ctx, names...)
	if err != nil {
		return -1
	}
	ends, err := adm.ListEndOffsets(ctx, names...)
	if err != nil {
		return -1
	}
	var n int64
	ends.Each(func(e kadm.ListedOffset) {
		if s, ok := starts.Lookup(e.Topic, e.Partition); ok && e.Err == nil && s.Err == nil {
			n += e.Offset - s.Offset
		}
	})
	return n
}
