package oip

import (
	"fmt"
	"strconv"
)

// jsonTensor is a tensor as read from JSON, its data not yet decoded.
type jsonTensor struct {
	Tensor
	index      int
	seen       uint64 // the fields read
	dataAt     int    // where "data" starts, when decoded after the object
	decoded    bool   // whether Data holds "data" decoded
	count      int64  // how many elements "data" held
	binarySize int64  // the binary_data_size parameter, or -1
}

// label names the tensor in errors.
func (t *jsonTensor) label(role string) string { return tensorLabel(role, t.index, t.Name) }

// wrap prefixes err, if any, with the tensor's label (built only then:
// this is the hot path).
func (t *jsonTensor) wrap(role string, err error) error {
	if err == nil {
		return nil
	}
	return within(t.label(role), err)
}

// tensorLabel names the i-th input or output (role) in errors: by its
// name, or by its index when it has none.
func tensorLabel(role string, i int, name string) string {
	if name == "" {
		return fmt.Sprintf("%ss[%d]", role, i)
	}
	return role + " " + name
}

// tensors reads an array of tensors.
func (s *scanner) tensors(role string) ([]jsonTensor, error) {
	ts := []jsonTensor{}
	err := s.array(func() error {
		t, err := s.tensor(role, len(ts))
		ts = append(ts, t)
		return err
	})
	return ts, err
}

// tensor reads one tensor object.
func (s *scanner) tensor(role string, index int) (jsonTensor, error) {
	t := jsonTensor{index: index, binarySize: -1}
	var err error
	t.seen, err = s.fields(func() string { return t.label(role) }, tensorFields, func(i int) error {
		switch i {
		case tensorName:
			name, err := s.str()
			t.Name = string(name)
			return err
		case tensorDatatype:
			dt, err := s.str()
			t.Datatype = datatypeOf(dt)
			return err
		case tensorShape:
			shape, err := s.shape()
			t.Shape = shape
			return t.wrap(role, err)
		case tensorParameters:
			params, err := s.params(func(key []byte) (bool, error) { return t.binaryDataSize(s, key) })
			t.Parameters = params
			return t.wrap(role, err)
		default: // tensorData
			return t.data(s, role)
		}
	})
	return t, err
}

// data reads the tensor's data array. When its name and datatype came
// first (as clients write them), it decodes the data in place; otherwise
// it notes where the data is, for finishTensors to decode.
func (t *jsonTensor) data(s *scanner, role string) error {
	if t.Name == "" || t.Datatype.Size() < 0 {
		s.peek()
		t.dataAt = s.pos
		return s.skipArray()
	}
	want := int64(-1)
	if has(t.seen, tensorShape) {
		if n, err := elements(t.Shape); err == nil {
			want = n
		}
	}
	var err error
	t.Data, t.count, err = decodeData(s, t.Datatype, want)
	t.decoded = true
	return t.wrap(role, err)
}

// binaryDataSize is the params hook that takes a tensor's
// binary_data_size parameter out of its parameters, since it describes
// the encoding, not the tensor.
func (t *jsonTensor) binaryDataSize(s *scanner, key []byte) (bool, error) {
	if string(key) != ParamBinaryDataSize {
		return false, nil
	}
	if t.binarySize >= 0 {
		return true, errorf("parameter %s given twice", key)
	}
	v, err := s.param(ParamBinaryDataSize)
	if err != nil {
		return true, err
	}
	if n, ok := v.(int64); ok && n >= 0 {
		t.binarySize = n
		return true, nil
	}
	return true, errorf("parameter %s: want a non-negative integer, got %v", key, v)
}

// datatypeOf returns the datatype named b, without allocating for the
// known ones.
func datatypeOf(b []byte) Datatype {
	for _, dt := range datatypes {
		if string(b) == string(dt) {
			return dt
		}
	}
	return Datatype(b)
}

var datatypes = [...]Datatype{FP32, Int64, Bytes, FP16, FP64, Int32, Bool, Uint8, Int8, Uint16, Int16, Uint32, Uint64}

// shape reads a shape: an array of integers.
func (s *scanner) shape() ([]int64, error) {
	shape := make([]int64, 0, 4)
	err := s.array(func() error {
		tok, err := s.number()
		if err != nil {
			return err
		}
		d, err := strconv.ParseInt(string(tok), 10, 64)
		if err != nil {
			return errorf("shape: %s is not an int64", short(tok))
		}
		shape = append(shape, d)
		return nil
	})
	return shape, err
}

// params reads a parameters object: bare bools, numbers and strings.
// Integer literals that fit int64 become int64s, other numbers float64s.
// hook, when not nil, may read a parameter itself instead, reporting that
// it did.
func (s *scanner) params(hook func(key []byte) (bool, error)) (map[string]any, error) {
	var p map[string]any
	err := s.object(func(key []byte) error {
		if hook != nil {
			if done, err := hook(key); done || err != nil {
				return err
			}
		}
		k := string(key)
		if _, dup := p[k]; dup {
			return errorf("parameter %s given twice", k)
		}
		v, err := s.param(k)
		if err != nil {
			return err
		}
		if p == nil {
			p = make(map[string]any)
		}
		p[k] = v
		return nil
	})
	return p, err
}

// param reads one parameter value.
func (s *scanner) param(key string) (any, error) {
	switch c := s.peek(); {
	case c == '"':
		v, err := s.str()
		return string(v), err
	case s.literal("true"):
		return true, nil
	case s.literal("false"):
		return false, nil
	case c == '-' || '0' <= c && c <= '9':
		tok, err := s.number()
		if err != nil {
			return nil, err
		}
		return numberParam(key, tok)
	}
	return nil, errorf("parameter %s: want a bool, number or string", key)
}

// numberParam converts a parameter's number.
func numberParam(key string, tok []byte) (any, error) {
	if isIntLiteral(tok) {
		if v, err := strconv.ParseInt(string(tok), 10, 64); err == nil {
			return v, nil
		}
	}
	f, err := strconv.ParseFloat(string(tok), 64)
	if err != nil {
		return nil, errorf("parameter %s: %s is out of range", key, short(tok))
	}
	return f, nil
}

// isIntLiteral reports whether a JSON number has no fraction or exponent.
func isIntLiteral(tok []byte) bool {
	for _, c := range tok {
		if c == '.' || c == 'e' || c == 'E' {
			return false
		}
	}
	return true
}

// requestedOutputs reads the "outputs" of a request.
func (s *scanner) requestedOutputs() ([]RequestedOutput, error) {
	outs := []RequestedOutput{}
	err := s.array(func() error {
		var o RequestedOutput
		i := len(outs)
		label := func() string { return tensorLabel("output", i, o.Name) }
		seen, err := s.fields(label, requestedOutputFields, func(i int) error {
			if i == outputName {
				name, err := s.str()
				o.Name = string(name)
				return err
			}
			params, err := s.params(nil)
			o.Parameters = params
			if err != nil {
				return within(label(), err)
			}
			return nil
		})
		if err == nil && !has(seen, outputName) {
			err = errorf("outputs[%d]: missing name", i)
		}
		outs = append(outs, o)
		return err
	})
	return outs, err
}

// finishTensors checks the tensors read from js and gives them their data:
// decoded from their JSON "data", or, for those with a binary_data_size
// parameter, the next that many bytes of bin, which they must use up.
func finishTensors(js []byte, role string, ts []jsonTensor, bin []byte) ([]Tensor, error) {
	out := make([]Tensor, len(ts))
	for i := range ts {
		var err error
		if bin, err = ts[i].finish(js, role, bin); err != nil {
			return nil, err
		}
		out[i] = ts[i].Tensor
	}
	if len(bin) > 0 {
		return nil, errorf("binary data has %d bytes beyond those the %ss' %s take", len(bin), role, ParamBinaryDataSize)
	}
	return out, nil
}

// finish checks the tensor and gives it its data, from js or from the
// binary data bin, returning what is left of bin.
func (t *jsonTensor) finish(js []byte, role string, bin []byte) ([]byte, error) {
	if err := t.header(role); err != nil {
		return nil, err
	}
	n, err := elements(t.Shape)
	if err != nil {
		return nil, t.wrap(role, err)
	}
	hasData, size := has(t.seen, tensorData), t.binarySize
	switch {
	case hasData && size >= 0:
		return nil, errorf("%s: both data and %s given", t.label(role), ParamBinaryDataSize)
	case hasData:
		if !t.decoded {
			s := scanner{buf: js, pos: t.dataAt}
			if t.Data, t.count, err = decodeData(&s, t.Datatype, n); err != nil {
				return nil, t.wrap(role, err)
			}
		}
		if t.count != n {
			return nil, errorf("%s: shape %v holds %d elements, data has %d", t.label(role), t.Shape, n, t.count)
		}
		return bin, nil
	case size >= 0:
		if size > int64(len(bin)) {
			return nil, errorf("%s: %s %d beyond the %d bytes of binary data left", t.label(role), ParamBinaryDataSize, size, len(bin))
		}
		t.Data = bin[:size:size]
		return bin[size:], nil
	}
	return nil, errorf("%s: missing data", t.label(role))
}

// header checks that a tensor read from JSON has a name, a known datatype
// and a shape.
func (t *jsonTensor) header(role string) error {
	switch {
	case t.Name == "":
		return errorf("%ss[%d]: missing name", role, t.index)
	case !has(t.seen, tensorDatatype):
		return errorf("%s: missing datatype", t.label(role))
	case !has(t.seen, tensorShape):
		return errorf("%s: missing shape", t.label(role))
	}
	_, err := ParseDatatype(string(t.Datatype))
	return t.wrap(role, err)
}
