package oip

import (
	"encoding/binary"
	"math"

	"github.com/sluice-serve/sluice/protos/gen/inference"
)

// RequestFromProto converts a gRPC ModelInfer request. Each input's data
// comes from raw_input_contents when the request has any (then one entry
// per input, in order, and no input may also carry contents), else from
// the input's typed contents: bool_contents for BOOL, int_contents for
// INT8/16/32, int64_contents, uint_contents for UINT8/16/32,
// uint64_contents, fp32_contents, fp64_contents, bytes_contents for BYTES
// (FP16 has no typed field). The request is validated as
// DecodeRequestJSON validates; model_name and model_version are left to
// the caller. Its tensors' data may alias m's raw contents.
func RequestFromProto(m *inference.ModelInferRequest) (*InferRequest, error) {
	if m == nil {
		return nil, errorf("request: missing")
	}
	r := &InferRequest{ID: m.GetId()}
	var err error
	if r.Parameters, err = paramsFromProto(m.GetParameters()); err != nil {
		return nil, within("request", err)
	}
	raw := m.GetRawInputContents()
	if len(raw) > 0 && len(raw) != len(m.GetInputs()) {
		return nil, errorf("raw_input_contents has %d entries for %d inputs", len(raw), len(m.GetInputs()))
	}
	r.Inputs = make([]Tensor, len(m.GetInputs()))
	for i, in := range m.GetInputs() {
		t, err := tensorFromProto("input", i, in, raw)
		if err != nil {
			return nil, err
		}
		r.Inputs[i] = t
	}
	for i, o := range m.GetOutputs() {
		p, err := paramsFromProto(o.GetParameters())
		if err != nil {
			return nil, within(tensorLabel("output", i, o.GetName()), err)
		}
		r.Outputs = append(r.Outputs, RequestedOutput{Name: o.GetName(), Parameters: p})
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return r, nil
}

// ResponseFromProto converts a gRPC ModelInfer response, taking data as
// RequestFromProto does, and validates it.
func ResponseFromProto(m *inference.ModelInferResponse) (*InferResponse, error) {
	if m == nil {
		return nil, errorf("response: missing")
	}
	r := &InferResponse{ModelName: m.GetModelName(), ModelVersion: m.GetModelVersion(), ID: m.GetId()}
	var err error
	if r.Parameters, err = paramsFromProto(m.GetParameters()); err != nil {
		return nil, within("response", err)
	}
	raw := m.GetRawOutputContents()
	if len(raw) > 0 && len(raw) != len(m.GetOutputs()) {
		return nil, errorf("raw_output_contents has %d entries for %d outputs", len(raw), len(m.GetOutputs()))
	}
	r.Outputs = make([]Tensor, len(m.GetOutputs()))
	for i, out := range m.GetOutputs() {
		t, err := tensorFromProto("output", i, out, raw)
		if err != nil {
			return nil, err
		}
		r.Outputs[i] = t
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return r, nil
}

// RequestToProto converts req to a gRPC ModelInfer request, every input's
// data in raw_input_contents (aliasing req's data). The caller sets
// model_name and model_version. Parameters of unsupported types are left
// out; Validate reports them.
func RequestToProto(req *InferRequest) *inference.ModelInferRequest {
	if req == nil {
		return &inference.ModelInferRequest{}
	}
	m := &inference.ModelInferRequest{
		Id:               req.ID,
		Parameters:       paramsToProto(req.Parameters),
		Inputs:           make([]*inference.ModelInferRequest_InferInputTensor, len(req.Inputs)),
		RawInputContents: make([][]byte, len(req.Inputs)),
	}
	for i := range req.Inputs {
		t := &req.Inputs[i]
		m.Inputs[i] = &inference.ModelInferRequest_InferInputTensor{
			Name:       t.Name,
			Datatype:   string(t.Datatype),
			Shape:      t.Shape,
			Parameters: paramsToProto(t.Parameters),
		}
		m.RawInputContents[i] = rawContents(t.Data)
	}
	for _, o := range req.Outputs {
		m.Outputs = append(m.Outputs, &inference.ModelInferRequest_InferRequestedOutputTensor{
			Name:       o.Name,
			Parameters: paramsToProto(o.Parameters),
		})
	}
	return m
}

// ResponseToProto converts resp to a gRPC ModelInfer response. Outputs'
// data always travels in raw_output_contents (aliasing resp's data), the
// only place tritonclient's gRPC client reads it from; the outputs carry
// only metadata. Parameters of unsupported types are left out; Validate
// reports them.
func ResponseToProto(resp *InferResponse) *inference.ModelInferResponse {
	if resp == nil {
		return &inference.ModelInferResponse{}
	}
	m := &inference.ModelInferResponse{
		ModelName:         resp.ModelName,
		ModelVersion:      resp.ModelVersion,
		Id:                resp.ID,
		Parameters:        paramsToProto(resp.Parameters),
		Outputs:           make([]*inference.ModelInferResponse_InferOutputTensor, len(resp.Outputs)),
		RawOutputContents: make([][]byte, len(resp.Outputs)),
	}
	for i := range resp.Outputs {
		t := &resp.Outputs[i]
		m.Outputs[i] = &inference.ModelInferResponse_InferOutputTensor{
			Name:       t.Name,
			Datatype:   string(t.Datatype),
			Shape:      t.Shape,
			Parameters: paramsToProto(t.Parameters),
		}
		m.RawOutputContents[i] = rawContents(t.Data)
	}
	return m
}

// rawContents returns data, never nil, so that an empty tensor still has
// its (empty) entry.
func rawContents(data []byte) []byte {
	if data == nil {
		return []byte{}
	}
	return data
}

// protoTensor is what the input and output tensor messages share.
type protoTensor interface {
	GetName() string
	GetDatatype() string
	GetShape() []int64
	GetParameters() map[string]*inference.InferParameter
	GetContents() *inference.InferTensorContents
}

// tensorFromProto converts the i-th input or output (role) of a message,
// taking its data from raw when the message has raw contents.
func tensorFromProto(role string, i int, m protoTensor, raw [][]byte) (Tensor, error) {
	t, err := tensorFromProtoFields(m, raw, i)
	if err != nil {
		return Tensor{}, within(tensorLabel(role, i, m.GetName()), err)
	}
	return t, nil
}

// tensorFromProtoFields is tensorFromProto with errors that do not name
// the tensor.
func tensorFromProtoFields(m protoTensor, raw [][]byte, i int) (Tensor, error) {
	if m.GetName() == "" {
		return Tensor{}, errorf("missing name")
	}
	t := Tensor{Name: m.GetName(), Datatype: Datatype(m.GetDatatype()), Shape: m.GetShape()}
	var err error
	if t.Parameters, err = paramsFromProto(m.GetParameters()); err != nil {
		return Tensor{}, err
	}
	if _, err := ParseDatatype(m.GetDatatype()); err != nil {
		return Tensor{}, err
	}
	n, err := elements(t.Shape)
	if err != nil {
		return Tensor{}, err
	}
	if len(raw) > 0 {
		if contentsLen(m.GetContents()) > 0 {
			return Tensor{}, errorf("contents given along with raw contents")
		}
		t.Data = raw[i]
		return t, nil
	}
	if t.Data, err = fromContents(t.Datatype, t.Shape, n, m.GetContents()); err != nil {
		return Tensor{}, err
	}
	return t, nil
}

// contentsLen counts the elements in all of c's fields.
func contentsLen(c *inference.InferTensorContents) int {
	return len(c.GetBoolContents()) + len(c.GetIntContents()) + len(c.GetInt64Contents()) +
		len(c.GetUintContents()) + len(c.GetUint64Contents()) + len(c.GetFp32Contents()) +
		len(c.GetFp64Contents()) + len(c.GetBytesContents())
}

// contentsField names the typed contents field that carries dt.
func contentsField(dt Datatype) string {
	switch dt {
	case Bool:
		return "bool_contents"
	case Int8, Int16, Int32:
		return "int_contents"
	case Int64:
		return "int64_contents"
	case Uint8, Uint16, Uint32:
		return "uint_contents"
	case Uint64:
		return "uint64_contents"
	case FP32:
		return "fp32_contents"
	case FP64:
		return "fp64_contents"
	case Bytes:
		return "bytes_contents"
	}
	return ""
}

// fromContents converts typed contents holding n elements of dt to raw data.
func fromContents(dt Datatype, shape []int64, n int64, c *inference.InferTensorContents) ([]byte, error) {
	field := contentsField(dt)
	if field == "" {
		if n == 0 && contentsLen(c) == 0 {
			return nil, nil
		}
		return nil, errorf("%s data must come in raw contents", dt)
	}
	count := fieldLen(dt, c)
	if other := contentsLen(c) - count; other > 0 {
		return nil, errorf("%s data belongs in %s, but other contents fields hold %d elements", dt, field, other)
	}
	if int64(count) != n {
		return nil, errorf("shape %v holds %d elements, %s has %d", shape, n, field, count)
	}
	switch dt {
	case Bool:
		return convert(c.GetBoolContents(), 1, func(b []byte, v bool) error {
			if v {
				b[0] = 1
			}
			return nil
		})
	case Int8, Int16, Int32:
		lo, hi := int32(-1)<<(8*dt.Size()-1), int32(math.MaxInt32)>>(32-8*dt.Size())
		return convert(c.GetIntContents(), dt.Size(), func(b []byte, v int32) error {
			if v < lo || v > hi {
				return errorf("%s value %d is out of range for %s", field, v, dt)
			}
			putUint(b, uint64(v))
			return nil
		})
	case Uint8, Uint16, Uint32:
		hi := uint32(math.MaxUint32) >> (32 - 8*dt.Size())
		return convert(c.GetUintContents(), dt.Size(), func(b []byte, v uint32) error {
			if v > hi {
				return errorf("%s value %d is out of range for %s", field, v, dt)
			}
			putUint(b, uint64(v))
			return nil
		})
	case Int64:
		return convert(c.GetInt64Contents(), 8, func(b []byte, v int64) error {
			binary.LittleEndian.PutUint64(b, uint64(v))
			return nil
		})
	case Uint64:
		return convert(c.GetUint64Contents(), 8, func(b []byte, v uint64) error {
			binary.LittleEndian.PutUint64(b, v)
			return nil
		})
	case FP32:
		return convert(c.GetFp32Contents(), 4, func(b []byte, v float32) error {
			binary.LittleEndian.PutUint32(b, math.Float32bits(v))
			return nil
		})
	case FP64:
		return convert(c.GetFp64Contents(), 8, func(b []byte, v float64) error {
			binary.LittleEndian.PutUint64(b, math.Float64bits(v))
			return nil
		})
	default: // BYTES
		size := 0
		for _, b := range c.GetBytesContents() {
			size += 4 + len(b)
		}
		data := make([]byte, 0, size)
		for _, b := range c.GetBytesContents() {
			data = appendBytesElement(data, b)
		}
		return data, nil
	}
}

// fieldLen counts the elements in the contents field that carries dt.
func fieldLen(dt Datatype, c *inference.InferTensorContents) int {
	switch dt {
	case Bool:
		return len(c.GetBoolContents())
	case Int8, Int16, Int32:
		return len(c.GetIntContents())
	case Int64:
		return len(c.GetInt64Contents())
	case Uint8, Uint16, Uint32:
		return len(c.GetUintContents())
	case Uint64:
		return len(c.GetUint64Contents())
	case FP32:
		return len(c.GetFp32Contents())
	case FP64:
		return len(c.GetFp64Contents())
	}
	return len(c.GetBytesContents())
}

// convert writes each of vs into its size-byte slot of new raw data.
func convert[T any](vs []T, size int, put func([]byte, T) error) ([]byte, error) {
	data := make([]byte, len(vs)*size)
	for i, v := range vs {
		if err := put(data[i*size:(i+1)*size], v); err != nil {
			return nil, err
		}
	}
	return data, nil
}

// putUint writes the low len(b) bytes of v, little-endian.
func putUint(b []byte, v uint64) {
	for i := range b {
		b[i] = byte(v >> (8 * i))
	}
}

// paramsFromProto converts protocol parameters; uint64 values must fit
// int64.
func paramsFromProto(ps map[string]*inference.InferParameter) (map[string]any, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	out := make(map[string]any, len(ps))
	for _, k := range sortedKeys(ps) {
		switch v := ps[k].GetParameterChoice().(type) {
		case *inference.InferParameter_BoolParam:
			out[k] = v.BoolParam
		case *inference.InferParameter_Int64Param:
			out[k] = v.Int64Param
		case *inference.InferParameter_StringParam:
			out[k] = v.StringParam
		case *inference.InferParameter_DoubleParam:
			out[k] = v.DoubleParam
		case *inference.InferParameter_Uint64Param:
			if v.Uint64Param > math.MaxInt64 {
				return nil, errorf("parameter %s: uint64 value %d overflows int64", k, v.Uint64Param)
			}
			out[k] = int64(v.Uint64Param)
		default:
			return nil, errorf("parameter %s: no value", k)
		}
	}
	return out, nil
}

// paramsToProto converts parameters, leaving out values of unsupported
// types.
func paramsToProto(p map[string]any) map[string]*inference.InferParameter {
	if len(p) == 0 {
		return nil
	}
	out := make(map[string]*inference.InferParameter, len(p))
	for k, v := range p {
		v, ok := paramValue(v)
		if !ok {
			continue
		}
		var choice inference.InferParameter
		switch v := v.(type) {
		case bool:
			choice.ParameterChoice = &inference.InferParameter_BoolParam{BoolParam: v}
		case int64:
			choice.ParameterChoice = &inference.InferParameter_Int64Param{Int64Param: v}
		case float64:
			choice.ParameterChoice = &inference.InferParameter_DoubleParam{DoubleParam: v}
		case string:
			choice.ParameterChoice = &inference.InferParameter_StringParam{StringParam: v}
		}
		out[k] = &choice
	}
	return out
}
