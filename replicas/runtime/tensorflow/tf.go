//go:build tensorflow

package tensorflow

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	tf "github.com/wamuir/graft/tensorflow"
)

// ServeTag is the MetaGraph tag Load asks for.
const ServeTag = "serve"

// DefaultSignature is the signature used when sluice-signature.json is absent.
const DefaultSignature = "serving_default"

// tfTypes maps the OIP datatypes this runtime supports to TensorFlow's.
// FP16 and BF16 are left out: the bindings have no Go type for them.
var tfTypes = map[string]tf.DataType{
	"BOOL":   tf.Bool,
	"UINT8":  tf.Uint8,
	"UINT16": tf.Uint16,
	"UINT32": tf.Uint32,
	"UINT64": tf.Uint64,
	"INT8":   tf.Int8,
	"INT16":  tf.Int16,
	"INT32":  tf.Int32,
	"INT64":  tf.Int64,
	"FP32":   tf.Float,
	"FP64":   tf.Double,
	"BYTES":  tf.String,
}

func oipType(dt tf.DataType) (string, bool) {
	for name, t := range tfTypes {
		if t == dt {
			return name, true
		}
	}
	return "", false
}

// Model is a SavedModel loaded into a TensorFlow session. Infer may be called
// concurrently; Close waits for running calls.
type Model struct {
	dir string
	sig Signature

	mu      sync.RWMutex
	sm      *tf.SavedModel // nil once closed
	inputs  map[string]boundTensor
	outputs []boundTensor // in sig.Outputs order
}

type boundTensor struct {
	spec TensorSpec
	out  tf.Output
}

// Load loads the SavedModel in dir with tag "serve" and binds the inputs and
// outputs listed in dir/sluice-signature.json (or, without that file, in
// the model's "serving_default" signature) to its graph tensors. On a GPU
// the session keeps to the share of device memory the environment gives
// (SLUICE_GPU_MEMORY_FRACTION; see sessionConfig).
func Load(dir string) (*Model, error) {
	if st, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("tensorflow: load %s: %w", dir, err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("tensorflow: load %s: not a SavedModel directory", dir)
	}
	cfg, err := sessionConfig()
	if err != nil {
		return nil, fmt.Errorf("tensorflow: load %s: %w", dir, err)
	}
	var opts *tf.SessionOptions
	if cfg != nil {
		opts = &tf.SessionOptions{Config: cfg}
	}
	sm, err := tf.LoadSavedModel(dir, []string{ServeTag}, opts)
	if err != nil {
		return nil, fmt.Errorf("tensorflow: load %s: %w", dir, err)
	}
	m := &Model{dir: dir, sm: sm}
	if err := m.bind(); err != nil {
		_ = sm.Session.Close()
		return nil, fmt.Errorf("tensorflow: load %s: %w", dir, err)
	}
	return m, nil
}

func (m *Model) bind() error {
	sig, err := readSignature(m.dir, m.sm)
	if err != nil {
		return err
	}
	if len(sig.Inputs) == 0 || len(sig.Outputs) == 0 {
		return errors.New("signature has no inputs or no outputs")
	}
	m.sig = sig
	m.inputs = make(map[string]boundTensor, len(sig.Inputs))
	for _, spec := range sig.Inputs {
		if _, dup := m.inputs[spec.Name]; dup {
			return fmt.Errorf("input %q listed twice", spec.Name)
		}
		b, err := m.bindOne("input", spec)
		if err != nil {
			return err
		}
		m.inputs[spec.Name] = b
	}
	seen := map[string]bool{}
	for _, spec := range sig.Outputs {
		if seen[spec.Name] {
			return fmt.Errorf("output %q listed twice", spec.Name)
		}
		seen[spec.Name] = true
		b, err := m.bindOne("output", spec)
		if err != nil {
			return err
		}
		m.outputs = append(m.outputs, b)
	}
	return nil
}

func (m *Model) bindOne(kind string, spec TensorSpec) (boundTensor, error) {
	dt, ok := tfTypes[spec.Datatype]
	if !ok {
		return boundTensor{}, fmt.Errorf("%s %q: unsupported datatype %q", kind, spec.Name, spec.Datatype)
	}
	opName, idx, err := parseTensorName(spec.Tensor)
	if err != nil {
		return boundTensor{}, fmt.Errorf("%s %q: %w", kind, spec.Name, err)
	}
	op := m.sm.Graph.Operation(opName)
	if op == nil {
		return boundTensor{}, fmt.Errorf("%s %q: tensor %q: no operation %q in the graph", kind, spec.Name, spec.Tensor, opName)
	}
	if idx >= op.NumOutputs() {
		return boundTensor{}, fmt.Errorf("%s %q: tensor %q: operation has %d outputs", kind, spec.Name, spec.Tensor, op.NumOutputs())
	}
	out := op.Output(idx)
	if got := out.DataType(); got != dt {
		name, _ := oipType(got)
		if name == "" {
			name = "TF dtype " + strconv.Itoa(int(got))
		}
		return boundTensor{}, fmt.Errorf("%s %q: tensor %q is %s in the graph, signature says %s", kind, spec.Name, spec.Tensor, name, spec.Datatype)
	}
	return boundTensor{spec: spec, out: out}, nil
}

// parseTensorName splits "op:1" into ("op", 1); "op" means output 0.
func parseTensorName(s string) (string, int, error) {
	name, idx := s, 0
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		n, err := strconv.Atoi(s[i+1:])
		if err != nil || n < 0 {
			return "", 0, fmt.Errorf("bad tensor name %q (want op:index)", s)
		}
		name, idx = s[:i], n
	}
	if name == "" {
		return "", 0, fmt.Errorf("bad tensor name %q (want op:index)", s)
	}
	return name, idx, nil
}

func readSignature(dir string, sm *tf.SavedModel) (Signature, error) {
	raw, err := os.ReadFile(filepath.Join(dir, SignatureFile))
	if err == nil {
		var sig Signature
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&sig); err != nil {
			return Signature{}, fmt.Errorf("%s: %w", SignatureFile, err)
		}
		return sig, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return Signature{}, err
	}
	def, ok := sm.Signatures[DefaultSignature]
	if !ok {
		return Signature{}, fmt.Errorf("no %s and no %q signature in the SavedModel", SignatureFile, DefaultSignature)
	}
	conv := func(kind string, m map[string]tf.TensorInfo) ([]TensorSpec, error) {
		var specs []TensorSpec
		for name, info := range m {
			dt, ok := oipType(info.DType)
			if !ok {
				return nil, fmt.Errorf("%s %q: unsupported TF dtype %d", kind, name, info.DType)
			}
			var shape []int64
			if n := info.Shape.NumDimensions(); n >= 0 {
				shape = make([]int64, n)
				for i := range shape {
					shape[i] = info.Shape.Size(i)
				}
			}
			specs = append(specs, TensorSpec{Name: name, Tensor: info.Name, Datatype: dt, Shape: shape})
		}
		sort.Slice(specs, func(i, j int) bool { return specs[i].Name < specs[j].Name })
		return specs, nil
	}
	sig := Signature{Signature: DefaultSignature}
	if sig.Inputs, err = conv("input", def.Inputs); err != nil {
		return Signature{}, err
	}
	if sig.Outputs, err = conv("output", def.Outputs); err != nil {
		return Signature{}, err
	}
	return sig, nil
}

// Inputs describes the model's inputs.
func (m *Model) Inputs() []TensorSpec { return cloneSpecs(m.sig.Inputs) }

// Outputs describes the model's outputs.
func (m *Model) Outputs() []TensorSpec { return cloneSpecs(m.sig.Outputs) }

func cloneSpecs(in []TensorSpec) []TensorSpec {
	out := make([]TensorSpec, len(in))
	for i, s := range in {
		s.Shape = slices.Clone(s.Shape)
		out[i] = s
	}
	return out
}

// Infer runs the model once. inputs must hold exactly the model's inputs,
// each with the signature's datatype and a shape that fits it (the batch
// dimension included); every output of the signature is returned.
func (m *Model) Infer(inputs map[string]Input) (map[string]Output, error) {
	for name := range inputs {
		if _, ok := m.inputs[name]; !ok {
			return nil, fmt.Errorf("tensorflow: unknown input %q (model inputs: %s)", name, m.inputNames())
		}
	}
	feeds := make(map[tf.Output]*tf.Tensor, len(m.inputs))
	for name, b := range m.inputs {
		in, ok := inputs[name]
		if !ok {
			return nil, fmt.Errorf("tensorflow: missing input %q", name)
		}
		if in.Datatype != b.spec.Datatype {
			return nil, fmt.Errorf("tensorflow: input %q: datatype %s, model wants %s", name, in.Datatype, b.spec.Datatype)
		}
		if !shapeMatches(b.spec.Shape, in.Shape) {
			return nil, fmt.Errorf("tensorflow: input %q: shape %v does not fit the model's %v", name, in.Shape, b.spec.Shape)
		}
		t, err := toTensor(in)
		if err != nil {
			return nil, fmt.Errorf("tensorflow: input %q: %w", name, err)
		}
		feeds[b.out] = t
	}
	fetches := make([]tf.Output, len(m.outputs))
	for i, b := range m.outputs {
		fetches[i] = b.out
	}

	m.mu.RLock()
	if m.sm == nil {
		m.mu.RUnlock()
		return nil, errors.New("tensorflow: model is closed")
	}
	res, err := m.sm.Session.Run(feeds, fetches, nil)
	m.mu.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("tensorflow: run: %w", err)
	}

	outs := make(map[string]Output, len(res))
	for i, t := range res {
		o, err := fromTensor(t)
		if err != nil {
			return nil, fmt.Errorf("tensorflow: output %q: %w", m.outputs[i].spec.Name, err)
		}
		outs[m.outputs[i].spec.Name] = o
	}
	return outs, nil
}

func (m *Model) inputNames() string {
	names := make([]string, 0, len(m.inputs))
	for n := range m.inputs {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// Close releases the session (and with it the model's variables); it waits
// for running Infer calls. Later calls to Infer fail; Close is idempotent.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sm == nil {
		return nil
	}
	err := m.sm.Session.Close()
	m.sm = nil
	if err != nil {
		return fmt.Errorf("tensorflow: close: %w", err)
	}
	return nil
}

// toTensor converts OIP contents to a tensor. Fixed-size datatypes are
// copied as they are (TensorFlow's in-memory layout is the host's, little
// endian on every platform Sluice builds the tag for).
func toTensor(in Input) (*tf.Tensor, error) {
	n, err := numElements(in.Shape)
	if err != nil {
		return nil, err
	}
	shape := slices.Clone(in.Shape)
	switch in.Datatype {
	case "BYTES":
		strs, err := decodeBytes(in.Data, n)
		if err != nil {
			return nil, err
		}
		return newTensor(nest(reflect.ValueOf(strs), shape), shape)
	case "UINT32", "UINT64":
		// The bindings cannot ReadTensor these two; go through Go slices.
		if err := checkLen(in, n); err != nil {
			return nil, err
		}
		var flat reflect.Value
		if in.Datatype == "UINT32" {
			v := make([]uint32, n)
			for i := range v {
				v[i] = binary.LittleEndian.Uint32(in.Data[4*i:])
			}
			flat = reflect.ValueOf(v)
		} else {
			v := make([]uint64, n)
			for i := range v {
				v[i] = binary.LittleEndian.Uint64(in.Data[8*i:])
			}
			flat = reflect.ValueOf(v)
		}
		return newTensor(nest(flat, shape), shape)
	}
	dt, ok := tfTypes[in.Datatype]
	if !ok {
		return nil, fmt.Errorf("unsupported datatype %q", in.Datatype)
	}
	if err := checkLen(in, n); err != nil {
		return nil, err
	}
	data := in.Data
	if in.Datatype == "BOOL" {
		data = make([]byte, len(in.Data))
		for i, b := range in.Data {
			if b != 0 {
				data[i] = 1
			}
		}
	}
	return tf.ReadTensor(dt, shape, bytes.NewReader(data))
}

// newTensor makes a tensor of nested Go slices. The bindings infer the shape
// from the slices, which loses inner dimensions when one is 0: put it back.
func newTensor(v reflect.Value, shape []int64) (*tf.Tensor, error) {
	t, err := tf.NewTensor(v.Interface())
	if err != nil {
		return nil, err
	}
	if !slices.Equal(t.Shape(), shape) {
		if err := t.Reshape(shape); err != nil {
			return nil, fmt.Errorf("empty tensor of shape %v: %w", shape, err)
		}
	}
	return t, nil
}

func checkLen(in Input, n int) error {
	if want := n * elemSize[in.Datatype]; len(in.Data) != want {
		return fmt.Errorf("%d bytes of %s contents, shape %v needs %d", len(in.Data), in.Datatype, in.Shape, want)
	}
	return nil
}

// nest reshapes a flat slice into nested slices of the given shape (a
// scalar for an empty shape), the form tf.NewTensor takes.
func nest(flat reflect.Value, shape []int64) reflect.Value {
	if len(shape) == 0 {
		return flat.Index(0)
	}
	if len(shape) == 1 {
		return flat
	}
	inner := 1
	for _, d := range shape[1:] {
		inner *= int(d)
	}
	sub := flat.Type().Elem() // the type of one element of out
	for range shape[1:] {
		sub = reflect.SliceOf(sub)
	}
	out := reflect.MakeSlice(reflect.SliceOf(sub), int(shape[0]), int(shape[0]))
	for i := 0; i < int(shape[0]); i++ {
		out.Index(i).Set(nest(flat.Slice(i*inner, (i+1)*inner), shape[1:]))
	}
	return out
}

// fromTensor converts a tensor to OIP contents.
func fromTensor(t *tf.Tensor) (Output, error) {
	name, ok := oipType(t.DataType())
	if !ok {
		return Output{}, fmt.Errorf("unsupported TF dtype %d", t.DataType())
	}
	o := Output{Datatype: name, Shape: slices.Clone(t.Shape())}
	if o.Shape == nil {
		o.Shape = []int64{}
	}
	switch name {
	case "BYTES":
		var strs []string
		flatten(reflect.ValueOf(t.Value()), func(v reflect.Value) { strs = append(strs, v.String()) })
		o.Data = encodeBytes(strs)
	case "UINT32":
		flatten(reflect.ValueOf(t.Value()), func(v reflect.Value) {
			o.Data = binary.LittleEndian.AppendUint32(o.Data, uint32(v.Uint()))
		})
	case "UINT64":
		flatten(reflect.ValueOf(t.Value()), func(v reflect.Value) {
			o.Data = binary.LittleEndian.AppendUint64(o.Data, v.Uint())
		})
	default:
		var buf bytes.Buffer
		if _, err := t.WriteContentsTo(&buf); err != nil {
			return Output{}, err
		}
		o.Data = buf.Bytes()
	}
	if o.Data == nil {
		o.Data = []byte{}
	}
	return o, nil
}

// flatten calls fn on every leaf of nested slices, in row-major order.
func flatten(v reflect.Value, fn func(reflect.Value)) {
	if v.Kind() == reflect.Slice {
		for i := 0; i < v.Len(); i++ {
			flatten(v.Index(i), fn)
		}
		return
	}
	fn(v)
}
