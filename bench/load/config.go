package load

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Defaults of the zero fields of Config.
const (
	DefaultMethod      = http.MethodPost
	DefaultContentType = "application/json"
	DefaultTimeout     = 10 * time.Second
	DefaultMaxInFlight = 10000
)

// Config is one load run. Exactly one of Concurrency and Rate is set.
type Config struct {
	URL         string // http or https, on a loopback host
	Method      string // default POST
	Body        []byte
	ContentType string // default application/json; sent only with a body

	// Concurrency runs a closed loop: this many workers, each sending its
	// next request as soon as the previous one is answered.
	Concurrency int
	// Rate runs an open loop: requests per second on a fixed schedule.
	// A request's latency counts from its scheduled time, so a server that
	// stalls shows in the latencies instead of slowing the schedule down
	// (coordinated omission).
	Rate float64
	// MaxInFlight bounds the open loop's outstanding requests (default
	// 10000); a request scheduled while that many are outstanding is not
	// sent and counts as dropped.
	MaxInFlight int

	Duration time.Duration // the measured phase
	// Warmup precedes the measured phase: its requests are sent, not
	// recorded.
	Warmup time.Duration
	// MaxRequests stops the run once this many requests are recorded
	// (0: no bound).
	MaxRequests int
	Timeout     time.Duration // per request, default 10s

	// Headers are sent with every request, after Content-Type (which one
	// of them may override). "{model}" in a value is replaced like in URL.
	Headers map[string]string

	// Models, if > 0, spreads the requests over that many models: each
	// request picks a model index i in [0, Models) and "{model}" in URL and
	// in the header values becomes ModelName(i) (default "m<i>"). Zipf, if
	// set, is the exponent s > 1 of a Zipf mix in which model 0 is the most
	// frequent (P(i) ∝ (1+i)^-s); 0 picks uniformly. The picks come from a
	// fixed seed, so runs of equal length send the same mix.
	Models    int
	ModelName func(i int) string
	Zipf      float64

	// Expect, if set, checks each answer; an error it returns counts the
	// request as failed. When nil, any status outside 2xx is a failure;
	// when set, Expect alone decides.
	Expect func(status int, body []byte) error
}

// ModelPlaceholder is replaced by a model's name in Config.URL and in the
// values of Config.Headers.
const ModelPlaceholder = "{model}"

// DefaultModelName names model i "m<i>".
func DefaultModelName(i int) string { return "m" + strconv.Itoa(i) }

// ErrNotLoopback is wrapped by the error for a URL whose host is not a
// loopback address: the load generator only drives local servers.
var ErrNotLoopback = errors.New("host is not loopback (127.0.0.0/8, ::1, localhost)")

// ConfigError names the field of a Config that cannot run.
type ConfigError struct {
	Field string
	Err   error
}

func (e *ConfigError) Error() string { return "load config: " + e.Field + ": " + e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

func invalid(field, format string, args ...any) error {
	return &ConfigError{Field: field, Err: fmt.Errorf(format, args...)}
}

// Validate reports the first field that cannot run, as a *ConfigError.
// Zero fields that have defaults are valid.
func (c *Config) Validate() error {
	u, err := url.Parse(c.URL)
	if err != nil {
		return &ConfigError{Field: "URL", Err: err}
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return invalid("URL", "scheme must be http or https, got %q", u.Scheme)
	}
	if !loopback(u.Hostname()) {
		return &ConfigError{Field: "URL", Err: fmt.Errorf("%q: %w", u.Hostname(), ErrNotLoopback)}
	}
	switch {
	case c.Concurrency < 0:
		return invalid("Concurrency", "must be >= 0, got %d", c.Concurrency)
	case c.Rate < 0:
		return invalid("Rate", "must be >= 0, got %g", c.Rate)
	case (c.Concurrency > 0) == (c.Rate > 0):
		return invalid("Concurrency", "exactly one of Concurrency and Rate must be > 0, got %d and %g", c.Concurrency, c.Rate)
	case c.MaxInFlight < 0:
		return invalid("MaxInFlight", "must be >= 0, got %d", c.MaxInFlight)
	case c.Duration <= 0:
		return invalid("Duration", "must be > 0, got %s", c.Duration)
	case c.Warmup < 0:
		return invalid("Warmup", "must be >= 0, got %s", c.Warmup)
	case c.MaxRequests < 0:
		return invalid("MaxRequests", "must be >= 0, got %d", c.MaxRequests)
	case c.Timeout < 0:
		return invalid("Timeout", "must be >= 0, got %s", c.Timeout)
	case c.Models < 0:
		return invalid("Models", "must be >= 0, got %d", c.Models)
	case c.Zipf != 0 && !(c.Zipf > 1):
		return invalid("Zipf", "must be > 1 (or 0 for a uniform mix), got %g", c.Zipf)
	case c.Zipf != 0 && c.Models == 0:
		return invalid("Zipf", "needs Models > 0")
	}
	for name := range c.Headers {
		if name == "" || strings.ContainsAny(name, ": \t\r\n") {
			return invalid("Headers", "bad header name %q", name)
		}
	}
	return nil
}

// withDefaults returns a copy with the zero fields that have defaults set.
func (c Config) withDefaults() Config {
	if c.Method == "" {
		c.Method = DefaultMethod
	}
	if c.ContentType == "" {
		c.ContentType = DefaultContentType
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.Models > 0 && c.ModelName == nil {
		c.ModelName = DefaultModelName
	}
	return c
}

// loopback reports whether host names this machine without a lookup.
func loopback(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
