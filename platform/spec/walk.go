package spec

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Field paths look like "deployments[1].replicas.max"; the root is "".

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func indexPath(parent string, i int) string {
	return parent + "[" + strconv.Itoa(i) + "]"
}

// parentPath strips the last ".key" or "[i]" from path.
func parentPath(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

// deref follows an alias to the node it names.
func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names the type and value of n for error messages, such as
// `string "x"`, "integer 3" or "a list".
func describe(n *yaml.Node) string {
	n = deref(n)
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
	default:
		return "an alias"
	}
	v := n.Value
	if utf8.RuneCountInString(v) > 40 {
		v = string([]rune(v)[:37]) + "..."
	}
	switch tag := n.ShortTag(); tag {
	case "!!str":
		return fmt.Sprintf("string %q", v)
	case "!!int":
		return "integer " + v
	case "!!float":
		return "number " + v
	case "!!bool":
		return "boolean " + v
	case "!!null":
		return "null"
	case "!!timestamp":
		return "timestamp " + v
	default:
		return fmt.Sprintf("%s %q", tag, v)
	}
}

// at remembers the position of the node given for path.
func (d *decoder) at(n *yaml.Node, path string) {
	d.src.fields[path] = fieldInfo{line: n.Line, col: n.Column}
}

// ok marks path as set by the YAML.
func (d *decoder) ok(path string) {
	f := d.src.fields[path]
	f.set = true
	d.src.fields[path] = f
}

// fail records a decoding error at node n for the value of path, and marks
// path bad so that validation does not report it again.
func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.report(n, path, format, args...)
	d.bad = append(d.bad, path)
}

// report records an error at node n for path, such as a bad key, that
// leaves the value of path alone.
func (d *decoder) report(n *yaml.Node, path, format string, args ...any) {
	d.errs = append(d.errs, &Error{
		File: d.file, Line: n.Line, Column: n.Column, Field: path,
		Msg: fmt.Sprintf(format, args...),
	})
}

// spend takes one node from the budget, reporting once when it runs out.
func (d *decoder) spend(n *yaml.Node, path string) bool {
	if d.budget > 0 {
		d.budget--
		return true
	}
	if !d.exhausted {
		d.exhausted = true
		d.fail(n, path, "document too large: more than %d nodes, counting each use of an alias", maxValueNodes)
	}
	return false
}

// fields walks mapping n at path. For each key in known it remembers the
// value's position and calls f; other keys, duplicate keys and merge keys
// are errors. A null n counts as an empty mapping.
func (d *decoder) fields(n *yaml.Node, path string, known []string, f func(key string, v *yaml.Node, p string)) {
	t := deref(n)
	if isNull(t) {
		return
	}
	if t.Kind != yaml.MappingNode {
		d.fail(n, path, "must be a mapping, got %s", describe(t))
		return
	}
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(t.Content); i += 2 {
		k, v := deref(t.Content[i]), t.Content[i+1]
		if !d.spend(k, path) {
			return
		}
		key, ok := d.key(k, path)
		if !ok {
			continue
		}
		p := joinPath(path, key)
		if first, dup := seen[key]; dup {
			d.report(k, p, "duplicate key %q (first at line %d)", key, first.Line)
			continue
		}
		seen[key] = k
		if !slices.Contains(known, key) {
			d.report(k, p, "unknown field %q%s", key, suggest(key, known))
			continue
		}
		d.at(v, p)
		f(key, v, p)
	}
}

// key returns the text of mapping key k, refusing keys that are not
// scalars and merge keys.
func (d *decoder) key(k *yaml.Node, path string) (string, bool) {
	if k.Kind != yaml.ScalarNode {
		d.report(k, path, "a key must be a scalar, got %s", describe(k))
		return "", false
	}
	if k.ShortTag() == "!!merge" {
		d.report(k, path, "merge keys (<<) are not supported")
		return "", false
	}
	return k.Value, true
}

// suggest returns ` (did you mean "x"?)` for the known key closest to key,
// or "" when none is close.
func suggest(key string, known []string) string {
	norm := func(s string) string {
		return strings.NewReplacer("_", "", "-", "").Replace(strings.ToLower(s))
	}
	best, bestDist := "", 3
	for _, k := range known {
		dist := editDistance(norm(key), norm(k))
		if dist < bestDist {
			best, bestDist = k, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return len(a) + len(b)
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// items walks list n at path, calling f for each item with its path. A null
// n counts as an empty list.
func (d *decoder) items(n *yaml.Node, path string, f func(item *yaml.Node, p string)) {
	t := deref(n)
	if isNull(t) {
		return
	}
	if t.Kind != yaml.SequenceNode {
		d.fail(n, path, "must be a list, got %s", describe(t))
		return
	}
	for i, item := range t.Content {
		if !d.spend(item, path) {
			return
		}
		p := indexPath(path, i)
		d.at(item, p)
		f(item, p)
	}
}

// scalar returns the node n names if it is a scalar with one of tags, and
// reports an error saying what was wanted otherwise.
func (d *decoder) scalar(n *yaml.Node, path, want string, tags ...string) (*yaml.Node, bool) {
	t := deref(n)
	if t.Kind == yaml.ScalarNode && slices.Contains(tags, t.ShortTag()) {
		return t, true
	}
	hint := ""
	if want == "a string" && t.Kind == yaml.ScalarNode && !isNull(t) {
		hint = fmt.Sprintf(" (quote it to make it one: %q)", t.Value)
	}
	d.fail(n, path, "must be %s, got %s%s", want, describe(t), hint)
	return nil, false
}

func (d *decoder) str(n *yaml.Node, path string, out *string) {
	if t, ok := d.scalar(n, path, "a string", "!!str"); ok {
		*out = t.Value
		d.ok(path)
	}
}

func (d *decoder) bool(n *yaml.Node, path string, out *bool) {
	t, ok := d.scalar(n, path, "a boolean (true or false)", "!!bool")
	if !ok {
		return
	}
	if err := t.Decode(out); err != nil {
		d.fail(n, path, "must be a boolean (true or false), got %s", describe(t))
		return
	}
	d.ok(path)
}

// integer decodes an integer in [lo, hi], the range of the Go type.
func (d *decoder) integer(n *yaml.Node, path string, lo, hi int64) (int64, bool) {
	t, ok := d.scalar(n, path, "an integer", "!!int")
	if !ok {
		return 0, false
	}
	var v int64
	if err := t.Decode(&v); err != nil || v < lo || v > hi {
		d.fail(n, path, "integer %s out of range", t.Value)
		return 0, false
	}
	d.ok(path)
	return v, true
}

func (d *decoder) int(n *yaml.Node, path string, out *int) {
	if v, ok := d.integer(n, path, math.MinInt, math.MaxInt); ok {
		*out = int(v)
	}
}

func (d *decoder) int32(n *yaml.Node, path string, out *int32) {
	if v, ok := d.integer(n, path, math.MinInt32, math.MaxInt32); ok {
		*out = int32(v)
	}
}

func (d *decoder) float(n *yaml.Node, path string, out *float64) {
	t, ok := d.scalar(n, path, "a number", "!!int", "!!float")
	if !ok {
		return
	}
	var v float64
	if err := t.Decode(&v); err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		d.fail(n, path, "must be a finite number, got %s", t.Value)
		return
	}
	*out = v
	d.ok(path)
}

func (d *decoder) duration(n *yaml.Node, path string, out *Duration) {
	t, ok := d.scalar(n, path, `a duration like "30s"`, "!!str", "!!int", "!!float")
	if !ok {
		return
	}
	v, err := ParseDuration(t.Value)
	if err != nil {
		d.fail(n, path, "%v", err)
		return
	}
	*out = v
	d.ok(path)
}

func (d *decoder) bytes(n *yaml.Node, path string, out *Bytes) {
	t, ok := d.scalar(n, path, `a size like "512MiB"`, "!!str", "!!int", "!!float")
	if !ok {
		return
	}
	var v Bytes
	var err error
	if t.ShortTag() == "!!int" {
		var i int64
		switch {
		case t.Decode(&i) != nil:
			err = fmt.Errorf("bad size %s: too large (at most 8EiB)", t.Value)
		case i < 0:
			err = fmt.Errorf("bad size %s: must not be negative", t.Value)
		}
		v = Bytes(i)
	} else {
		v, err = ParseBytes(t.Value)
	}
	if err != nil {
		d.fail(n, path, "%v", err)
		return
	}
	*out = v
	d.ok(path)
}
