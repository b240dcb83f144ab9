package spec

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"

	"gopkg.in/yaml.v3"
)

// value converts the YAML value n to JSON. Mapping keys become strings;
// non-finite numbers, non-scalar keys, merge keys, duplicate keys, unknown
// tags and self-containing aliases are errors.
func (d *decoder) value(n *yaml.Node, path string) (json.RawMessage, bool) {
	var buf bytes.Buffer
	if !d.writeJSON(&buf, n, path) {
		return nil, false
	}
	return buf.Bytes(), true
}

func (d *decoder) writeJSON(buf *bytes.Buffer, n *yaml.Node, path string) bool {
	if !d.spend(n, path) {
		return false
	}
	switch n.Kind {
	case yaml.AliasNode:
		return d.writeAlias(buf, n, path)
	case yaml.MappingNode:
		return d.writeObject(buf, n, path)
	case yaml.SequenceNode:
		return d.writeArray(buf, n, path)
	case yaml.ScalarNode:
		return d.writeScalar(buf, n, path)
	}
	d.fail(n, path, "unexpected YAML node")
	return false
}

func (d *decoder) writeAlias(buf *bytes.Buffer, n *yaml.Node, path string) bool {
	target := n.Alias
	if target == nil {
		d.fail(n, path, "unknown alias *%s", n.Value)
		return false
	}
	if d.active[target] {
		d.fail(n, path, "alias *%s contains itself", n.Value)
		return false
	}
	return d.writeJSON(buf, target, path)
}

// enter marks a collection as being converted, so that an alias inside it
// to itself is caught; leave unmarks it.
func (d *decoder) enter(n *yaml.Node) { d.active[n] = true }
func (d *decoder) leave(n *yaml.Node) { delete(d.active, n) }

func (d *decoder) writeObject(buf *bytes.Buffer, n *yaml.Node, path string) bool {
	d.enter(n)
	defer d.leave(n)
	seen := map[string]int{}
	buf.WriteByte('{')
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := deref(n.Content[i])
		key, ok := d.key(k, path)
		if !ok {
			return false
		}
		p := joinPath(path, key)
		if line, dup := seen[key]; dup {
			d.fail(k, p, "duplicate key %q (first at line %d)", key, line)
			return false
		}
		seen[key] = k.Line
		if i > 0 {
			buf.WriteByte(',')
		}
		writeString(buf, key)
		buf.WriteByte(':')
		if !d.writeJSON(buf, n.Content[i+1], p) {
			return false
		}
	}
	buf.WriteByte('}')
	return true
}

func (d *decoder) writeArray(buf *bytes.Buffer, n *yaml.Node, path string) bool {
	d.enter(n)
	defer d.leave(n)
	buf.WriteByte('[')
	for i, item := range n.Content {
		if i > 0 {
			buf.WriteByte(',')
		}
		if !d.writeJSON(buf, item, indexPath(path, i)) {
			return false
		}
	}
	buf.WriteByte(']')
	return true
}

func (d *decoder) writeScalar(buf *bytes.Buffer, n *yaml.Node, path string) bool {
	switch tag := n.ShortTag(); tag {
	case "!!null":
		buf.WriteString("null")
	case "!!str", "!!timestamp", "!!binary":
		writeString(buf, n.Value)
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			d.fail(n, path, "bad boolean %q", n.Value)
			return false
		}
		buf.WriteString(strconv.FormatBool(b))
	case "!!int":
		var v any
		if err := n.Decode(&v); err != nil {
			d.fail(n, path, "bad integer %q", n.Value)
			return false
		}
		return d.writeNumber(buf, n, path, v)
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			d.fail(n, path, "bad number %q", n.Value)
			return false
		}
		return d.writeNumber(buf, n, path, f)
	default:
		d.fail(n, path, "unsupported tag %s", tag)
		return false
	}
	return true
}

func (d *decoder) writeNumber(buf *bytes.Buffer, n *yaml.Node, path string, v any) bool {
	switch x := v.(type) {
	case int:
		buf.WriteString(strconv.FormatInt(int64(x), 10))
	case int64:
		buf.WriteString(strconv.FormatInt(x, 10))
	case uint64:
		buf.WriteString(strconv.FormatUint(x, 10))
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			d.fail(n, path, "number %s has no JSON form: use a finite number", n.Value)
			return false
		}
		b, _ := json.Marshal(x)
		buf.Write(b)
	default:
		d.fail(n, path, "bad number %q", n.Value)
		return false
	}
	return true
}

func writeString(buf *bytes.Buffer, s string) {
	b, _ := json.Marshal(s)
	buf.Write(b)
}
