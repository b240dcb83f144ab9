package spec

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration that reads and writes as a Go duration string
// such as "10ms" or "30s", in YAML and in JSON alike.
type Duration time.Duration

// String returns the duration in time.Duration's notation, e.g. "30s".
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText implements encoding.TextMarshaler (and so JSON and YAML output).
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler (and so JSON input).
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := ParseDuration(string(text))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// UnmarshalYAML implements yaml.Unmarshaler for yaml.v3 decoding into a struct.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: a duration must be a scalar like \"30s\"", n.Line)
	}
	return d.UnmarshalText([]byte(n.Value))
}

// ParseDuration parses a duration in time.ParseDuration's notation
// ("10ms", "1m30s"). A bare "0" is accepted; other bare numbers are not.
func ParseDuration(s string) (Duration, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, errors.New("empty duration: use a number with a unit, like \"30s\" or \"10ms\"")
	}
	v, err := time.ParseDuration(t)
	if err != nil {
		return 0, fmt.Errorf("bad duration %q: use a number with a unit, like \"30s\" or \"10ms\"", s)
	}
	return Duration(v), nil
}

// Bytes is a size in bytes. It reads numbers with an optional unit: decimal
// (B, K/KB, M/MB, G/GB, T/TB, P/PB, E/EB: powers of 1000) or binary (Ki/KiB,
// Mi/MiB, Gi/GiB, Ti/TiB, Pi/PiB, Ei/EiB: powers of 1024), with a fraction
// where the result is a whole number of bytes ("1.5Gi"). It writes the
// shortest exact binary form ("8GiB", "1536B").
type Bytes int64

// String returns the size with the largest binary unit that divides it
// exactly, e.g. "8GiB", "512MiB", "1000B", "0B".
func (b Bytes) String() string {
	if b < 0 {
		if b == math.MinInt64 {
			return "-8EiB"
		}
		return "-" + (-b).String()
	}
	units := [...]struct {
		name string
		size int64
	}{
		{"EiB", 1 << 60}, {"PiB", 1 << 50}, {"TiB", 1 << 40},
		{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	}
	for _, u := range units {
		if b != 0 && int64(b)%u.size == 0 {
			return fmt.Sprintf("%d%s", int64(b)/u.size, u.name)
		}
	}
	return fmt.Sprintf("%dB", int64(b))
}

// MarshalText implements encoding.TextMarshaler (and so JSON and YAML output).
func (b Bytes) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler (and so JSON input).
func (b *Bytes) UnmarshalText(text []byte) error {
	v, err := ParseBytes(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// UnmarshalJSON accepts a JSON string ("8GiB") or a JSON number of bytes.
func (b *Bytes) UnmarshalJSON(data []byte) error {
	s := strings.TrimSpace(string(data))
	if s == "null" {
		return nil
	}
	if strings.HasPrefix(s, `"`) {
		var str string
		if err := json.Unmarshal(data, &str); err != nil {
			return err
		}
		s = str
	}
	return b.UnmarshalText([]byte(s))
}

// UnmarshalYAML implements yaml.Unmarshaler for yaml.v3 decoding into a struct.
func (b *Bytes) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: a size must be a scalar like \"8GiB\"", n.Line)
	}
	return b.UnmarshalText([]byte(n.Value))
}

// unitSize returns the size in bytes of an accepted unit.
func unitSize(unit string) (int64, bool) {
	switch unit {
	case "", "B":
		return 1, true
	case "k", "K", "kB", "KB":
		return 1e3, true
	case "M", "MB":
		return 1e6, true
	case "G", "GB":
		return 1e9, true
	case "T", "TB":
		return 1e12, true
	case "P", "PB":
		return 1e15, true
	case "E", "EB":
		return 1e18, true
	case "Ki", "KiB":
		return 1 << 10, true
	case "Mi", "MiB":
		return 1 << 20, true
	case "Gi", "GiB":
		return 1 << 30, true
	case "Ti", "TiB":
		return 1 << 40, true
	case "Pi", "PiB":
		return 1 << 50, true
	case "Ei", "EiB":
		return 1 << 60, true
	}
	return 0, false
}

// ParseBytes parses a size such as "512MiB", "8GiB", "1.5Gi", "4G", "10KiB"
// or "1000" (bytes). Negative sizes and sizes that are not a whole number of
// bytes are errors.
func ParseBytes(s string) (Bytes, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, errors.New("empty size: use a number with an optional unit, like \"512MiB\" or \"8GiB\"")
	}
	if strings.HasPrefix(t, "-") {
		return 0, fmt.Errorf("bad size %q: must not be negative", s)
	}
	t = strings.TrimPrefix(t, "+")
	num, unit := splitNumber(t)
	if num == "" {
		return 0, fmt.Errorf("bad size %q: must start with a number, like \"512MiB\"", s)
	}
	unit = strings.TrimSpace(unit)
	size, ok := unitSize(unit)
	if !ok {
		return 0, fmt.Errorf("bad size %q: unknown unit %q (use B, KB, MB, GB, TB, PB, EB or KiB, MiB, GiB, TiB, PiB, EiB)", s, unit)
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, fmt.Errorf("bad size %q: bad number %q", s, num)
	}
	r.Mul(r, new(big.Rat).SetInt64(size))
	if !r.IsInt() {
		return 0, fmt.Errorf("bad size %q: not a whole number of bytes", s)
	}
	n := r.Num()
	if !n.IsInt64() {
		return 0, fmt.Errorf("bad size %q: too large (at most 8EiB)", s)
	}
	return Bytes(n.Int64()), nil
}

// splitNumber splits t into a leading decimal number (digits with at most
// one '.' and at least one digit) and the rest.
func splitNumber(t string) (num, rest string) {
	i, digits, dot := 0, 0, false
	for ; i < len(t); i++ {
		c := t[i]
		if c >= '0' && c <= '9' {
			digits++
			continue
		}
		if c == '.' && !dot {
			dot = true
			continue
		}
		break
	}
	if digits == 0 {
		return "", t
	}
	return t[:i], t[i:]
}
