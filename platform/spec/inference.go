package spec

import (
	"math"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Inference is how an application presents itself on the Open Inference
// Protocol endpoints (/v2/models/{name}): its platform, the versions it
// serves, and its tensor signature. An application without it still
// serves OIP inference under its name, with an empty signature.
type Inference struct {
	Platform string       `json:"platform,omitempty"`
	Versions []string     `json:"versions,omitempty"`
	Inputs   []TensorSpec `json:"inputs,omitempty"`
	Outputs  []TensorSpec `json:"outputs,omitempty"`
}

// TensorSpec is one named tensor of a signature; -1 in Shape is a
// dimension of any size.
type TensorSpec struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

// Datatypes are the element types the protocol names.
var Datatypes = []string{"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"}

// ServesVersion reports whether version (empty: any) is one the
// application serves; without declared versions it serves only "1".
func (in *Inference) ServesVersion(version string) bool {
	if version == "" {
		return true
	}
	if in == nil || len(in.Versions) == 0 {
		return version == "1"
	}
	return slices.Contains(in.Versions, version)
}

func (d *decoder) inference(n *yaml.Node, path string) *Inference {
	in := &Inference{}
	d.fields(n, path, []string{"platform", "versions", "inputs", "outputs"}, func(key string, v *yaml.Node, p string) {
		switch key {
		case "platform":
			d.str(v, p, &in.Platform)
		case "versions":
			in.Versions = d.strings(v, p)
		case "inputs":
			in.Inputs = d.tensors(v, p)
		case "outputs":
			in.Outputs = d.tensors(v, p)
		}
	})
	return in
}

// strings decodes a list of strings.
func (d *decoder) strings(n *yaml.Node, path string) []string {
	var out []string
	d.items(n, path, func(n *yaml.Node, p string) {
		var s string
		d.str(n, p, &s)
		out = append(out, s)
	})
	return out
}

func (d *decoder) tensors(n *yaml.Node, path string) []TensorSpec {
	var ts []TensorSpec
	d.items(n, path, func(n *yaml.Node, p string) {
		var t TensorSpec
		d.fields(n, p, []string{"name", "datatype", "shape"}, func(key string, v *yaml.Node, p string) {
			switch key {
			case "name":
				d.str(v, p, &t.Name)
			case "datatype":
				d.str(v, p, &t.Datatype)
			case "shape":
				t.Shape = []int64{}
				d.items(v, p, func(n *yaml.Node, p string) {
					if x, ok := d.integer(n, p, math.MinInt64, math.MaxInt64); ok {
						t.Shape = append(t.Shape, x)
					}
				})
			}
		})
		ts = append(ts, t)
	})
	return ts
}

func (v *validator) inference(in *Inference) {
	if in == nil {
		return
	}
	seen := map[string]bool{}
	for i, ver := range in.Versions {
		p := indexPath("inference.versions", i)
		switch {
		case ver == "" || strings.ContainsAny(ver, "/?#") || len(ver) > 64:
			v.add(p, "version %q must be 1..64 characters without '/', '?' or '#'", ver)
		case seen[ver]:
			v.add(p, "duplicate version %q", ver)
		}
		seen[ver] = true
	}
	v.tensorSpecs("inference.inputs", in.Inputs)
	v.tensorSpecs("inference.outputs", in.Outputs)
}

func (v *validator) tensorSpecs(path string, ts []TensorSpec) {
	seen := map[string]bool{}
	for i, t := range ts {
		p := indexPath(path, i)
		switch {
		case t.Name == "":
			v.add(p+".name", "a tensor needs a name")
		case seen[t.Name]:
			v.add(p+".name", "duplicate tensor name %q", t.Name)
		}
		seen[t.Name] = true
		if !slices.Contains(Datatypes, t.Datatype) {
			v.add(p+".datatype", "unknown datatype %q (one of %s)", t.Datatype, strings.Join(Datatypes, ", "))
		}
		for j, dim := range t.Shape {
			if dim < -1 {
				v.add(indexPath(p+".shape", j), "dimension %d: use -1 for any size, or a size >= 0", dim)
			}
		}
	}
}

func (in *Inference) clone() *Inference {
	if in == nil {
		return nil
	}
	c := *in
	c.Versions = slices.Clone(in.Versions)
	c.Inputs = cloneTensors(in.Inputs)
	c.Outputs = cloneTensors(in.Outputs)
	return &c
}

func cloneTensors(ts []TensorSpec) []TensorSpec {
	out := slices.Clone(ts)
	for i := range out {
		out[i].Shape = slices.Clone(ts[i].Shape)
	}
	return out
}

func equalInference(a, b *Inference) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Platform == b.Platform && slices.Equal(a.Versions, b.Versions) &&
		slices.EqualFunc(a.Inputs, b.Inputs, equalTensor) && slices.EqualFunc(a.Outputs, b.Outputs, equalTensor)
}

func equalTensor(x, y TensorSpec) bool {
	return x.Name == y.Name && x.Datatype == y.Datatype && slices.Equal(x.Shape, y.Shape)
}
