package oip

import (
	"strconv"
	"strings"
)

// sizeHint guesses the length of the JSON for tensors, with the data of
// those binary does not select inline, so that it is usually written
// without growing its buffer.
func sizeHint(ts []Tensor, binary func(string) bool) int {
	n := 128
	for i := range ts {
		t := &ts[i]
		n += 96 + len(t.Name) + 8*len(t.Shape) + 32*len(t.Parameters)
		if binary != nil && binary(t.Name) {
			continue
		}
		switch t.Datatype.Size() {
		case 0: // BYTES: the strings, quoted
			n += len(t.Data)
		case 1: // BOOL, INT8, UINT8: "false," "-128,"
			n += 6 * len(t.Data)
		default: // about a digit per significant decimal digit, and a comma
			n += 3 * len(t.Data)
		}
	}
	return n
}

// appendRequest appends req's JSON form; the inputs binary (which may be
// nil) selects have no "data" but a binary_data_size parameter.
func appendRequest(dst []byte, req *InferRequest, binary func(string) bool) ([]byte, error) {
	var err error
	dst = append(dst, '{')
	if req.ID != "" {
		if dst, err = appendField(dst, "id", req.ID); err != nil {
			return nil, within("request", err)
		}
		dst = append(dst, ',')
	}
	if len(req.Parameters) > 0 {
		dst = append(dst, `"parameters":`...)
		if dst, err = appendParams(dst, req.Parameters); err != nil {
			return nil, within("request", err)
		}
		dst = append(dst, ',')
	}
	dst = append(dst, `"inputs":`...)
	if dst, err = appendTensors(dst, "input", req.Inputs, binary); err != nil {
		return nil, err
	}
	if len(req.Outputs) > 0 {
		dst = append(dst, `,"outputs":[`...)
		for i := range req.Outputs {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = appendRequestedOutput(dst, &req.Outputs[i]); err != nil {
				return nil, err
			}
		}
		dst = append(dst, ']')
	}
	return append(dst, '}'), nil
}

func appendRequestedOutput(dst []byte, o *RequestedOutput) ([]byte, error) {
	dst, err := appendField(append(dst, '{'), "name", o.Name)
	if err != nil {
		return nil, err
	}
	if len(o.Parameters) > 0 {
		dst = append(dst, `,"parameters":`...)
		if dst, err = appendParams(dst, o.Parameters); err != nil {
			return nil, within("output "+o.Name, err)
		}
	}
	return append(dst, '}'), nil
}

// appendResponse appends resp's JSON form; the outputs binary (which may
// be nil) selects have no "data" but a binary_data_size parameter.
func appendResponse(dst []byte, resp *InferResponse, binary func(string) bool) ([]byte, error) {
	dst, err := appendField(append(dst, '{'), "model_name", resp.ModelName)
	if err != nil {
		return nil, within("response", err)
	}
	if resp.ModelVersion != "" {
		if dst, err = appendField(append(dst, ','), "model_version", resp.ModelVersion); err != nil {
			return nil, within("response", err)
		}
	}
	if dst, err = appendField(append(dst, ','), "id", resp.ID); err != nil {
		return nil, within("response", err)
	}
	if len(resp.Parameters) > 0 {
		dst = append(dst, `,"parameters":`...)
		if dst, err = appendParams(dst, resp.Parameters); err != nil {
			return nil, within("response", err)
		}
	}
	dst = append(dst, `,"outputs":`...)
	if dst, err = appendTensors(dst, "output", resp.Outputs, binary); err != nil {
		return nil, err
	}
	return append(dst, '}'), nil
}

// appendTensors appends an array of tensors.
func appendTensors(dst []byte, role string, ts []Tensor, binary func(string) bool) ([]byte, error) {
	var err error
	dst = append(dst, '[')
	for i := range ts {
		if i > 0 {
			dst = append(dst, ',')
		}
		t := &ts[i]
		if dst, err = appendTensor(dst, t, binary != nil && binary(t.Name)); err != nil {
			return nil, within(role+" "+t.Name, err)
		}
	}
	return append(dst, ']'), nil
}

// appendTensor appends one valid tensor, with its data inline or, when
// binary, as a binary_data_size parameter.
func appendTensor(dst []byte, t *Tensor, binary bool) ([]byte, error) {
	dst, err := appendField(append(dst, '{'), "name", t.Name)
	if err != nil {
		return nil, err
	}
	dst = append(dst, `,"datatype":"`...)
	dst = append(dst, t.Datatype...)
	dst = append(dst, `","shape":[`...)
	for i, d := range t.Shape {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = strconv.AppendInt(dst, d, 10)
	}
	dst = append(dst, ']')
	size := int64(-1)
	if binary {
		size = int64(len(t.Data))
	}
	if size >= 0 || hasParamsBesides(t.Parameters, ParamBinaryDataSize) {
		dst = append(dst, `,"parameters":`...)
		if dst, err = appendTensorParams(dst, t.Parameters, size, ParamBinaryDataSize); err != nil {
			return nil, err
		}
	}
	if !binary {
		dst = append(dst, `,"data":`...)
		if dst, err = appendData(dst, t.Datatype, t.Data); err != nil {
			return nil, err
		}
	}
	return append(dst, '}'), nil
}

// hasParamsBesides reports whether p has a key other than key.
func hasParamsBesides(p map[string]any, key string) bool {
	_, has := p[key]
	return len(p) > 1 || len(p) == 1 && !has
}

// appendField appends "key":"value".
func appendField(dst []byte, key, value string) ([]byte, error) {
	dst = append(dst, '"')
	dst = append(dst, key...)
	dst = append(dst, '"', ':')
	dst, ok := appendQuoted(dst, value)
	if !ok {
		return nil, errorf("%s %q is not valid UTF-8", key, value)
	}
	return dst, nil
}

// appendParams appends p as an object in key order.
func appendParams(dst []byte, p map[string]any) ([]byte, error) {
	return appendTensorParams(dst, p, -1, "")
}

// appendTensorParams appends a tensor's parameters in key order, leaving
// out the key drop; when size >= 0, it adds binary_data_size: size.
func appendTensorParams(dst []byte, p map[string]any, size int64, drop string) ([]byte, error) {
	dst = append(dst, '{')
	first := true
	var err error
	for _, k := range sortedKeys(p) {
		if drop != "" && k == drop {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		if dst, err = appendParam(dst, k, p[k]); err != nil {
			return nil, err
		}
	}
	if size >= 0 {
		if !first {
			dst = append(dst, ',')
		}
		dst = append(dst, `"binary_data_size":`...)
		dst = strconv.AppendInt(dst, size, 10)
	}
	return append(dst, '}'), nil
}

// appendParam appends "key":value.
func appendParam(dst []byte, key string, value any) ([]byte, error) {
	dst, ok := appendQuoted(dst, key)
	if !ok {
		return nil, errorf("parameter name %q is not valid UTF-8", key)
	}
	dst = append(dst, ':')
	v, ok := paramValue(value)
	if !ok {
		return nil, errorf("parameter %s: %T value %v is not a bool, integer, finite number or string", key, value, value)
	}
	switch v := v.(type) {
	case bool:
		return strconv.AppendBool(dst, v), nil
	case int64:
		return strconv.AppendInt(dst, v, 10), nil
	case float64:
		return appendFloatParam(dst, v), nil
	default:
		if dst, ok = appendQuoted(dst, v.(string)); !ok {
			return nil, errorf("parameter %s: %q is not valid UTF-8", key, v)
		}
		return dst, nil
	}
}

// appendFloatParam appends a finite float64 so that it reads back as a
// float64: with a fraction or exponent even when integral ("2.0").
func appendFloatParam(dst []byte, f float64) []byte {
	start := len(dst)
	dst = strconv.AppendFloat(dst, f, 'g', -1, 64)
	if !strings.ContainsAny(string(dst[start:]), ".e") {
		dst = append(dst, '.', '0')
	}
	return dst
}

// joinBinary concatenates the data of the tensors binary selects.
func joinBinary(ts []Tensor, binary func(string) bool) []byte {
	if binary == nil {
		return nil
	}
	size := 0
	for i := range ts {
		if binary(ts[i].Name) {
			size += len(ts[i].Data)
		}
	}
	if size == 0 {
		return nil
	}
	out := make([]byte, 0, size)
	for i := range ts {
		if binary(ts[i].Name) {
			out = append(out, ts[i].Data...)
		}
	}
	return out
}
