package oip

// DecodeRequestJSON decodes an inference request in the REST JSON form of
// the protocol:
//
//	{"id": "...", "parameters": {...},
//	 "inputs": [{"name", "shape", "datatype", "parameters", "data"}],
//	 "outputs": [{"name", "parameters"}]}
//
// "data" is a flat or nested array (row-major) holding exactly the shape's
// element count: numbers for numeric datatypes (integers in range for the
// integer ones; NaN, Infinity and -Infinity also for the floating-point
// ones), true/false for BOOL, strings for BYTES. Decoding is strict:
// unknown or repeated fields, missing names, datatypes or shapes, and
// duplicate input names are errors. (model_name and model_version, which
// some clients send, are read and ignored: the path names the model.) The
// request is validated (see InferRequest.Validate).
func DecodeRequestJSON(body []byte) (*InferRequest, error) {
	return decodeRequest(body, nil)
}

// DecodeResponseJSON decodes an inference response in the REST JSON form
// (see EncodeResponseJSON), as strictly as DecodeRequestJSON.
func DecodeResponseJSON(body []byte) (*InferResponse, error) {
	return decodeResponse(body, nil)
}

// EncodeRequestJSON encodes req in the REST JSON form, every input's data
// inline.
func EncodeRequestJSON(req *InferRequest) ([]byte, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	return appendRequest(make([]byte, 0, sizeHint(req.Inputs, nil)), req, nil)
}

// EncodeResponseJSON encodes resp in the REST JSON form:
//
//	{"model_name", "model_version", "id", "parameters",
//	 "outputs": [{"name", "datatype", "shape", "parameters", "data"}]}
//
// leaving out model_version and parameters when empty. Outputs for which
// binary (which may be nil) reports true travel in the binary tensor data
// extension: their JSON has no "data" but a "binary_data_size" parameter,
// and their raw data is appended, in output order, to binaryPart, which
// follows jsonPart in the HTTP body (with the Inference-Header-Content-Length
// header giving len(jsonPart)). BYTES outputs that are not valid UTF-8 can
// only travel as binary.
func EncodeResponseJSON(resp *InferResponse, binary func(name string) bool) (jsonPart, binaryPart []byte, err error) {
	if err := resp.Validate(); err != nil {
		return nil, nil, err
	}
	if jsonPart, err = appendResponse(make([]byte, 0, sizeHint(resp.Outputs, binary)), resp, binary); err != nil {
		return nil, nil, err
	}
	return jsonPart, joinBinary(resp.Outputs, binary), nil
}

// The fields each object may have, in the order they are written; the
// constants index them.
var (
	// model_name and model_version are not in the protocol's request body,
	// but the KServe SDK's REST client sends them; the path names the model,
	// so they are read and ignored.
	requestFields         = []string{"id", "parameters", "inputs", "outputs", "model_name", "model_version"}
	responseFields        = []string{"model_name", "model_version", "id", "parameters", "outputs"}
	tensorFields          = []string{"name", "datatype", "shape", "parameters", "data"}
	requestedOutputFields = []string{"name", "parameters"}
)

const (
	requestID, requestParameters, requestInputs, requestOutputs, requestModelName, requestModelVersion = 0, 1, 2, 3, 4, 5

	responseModelName, responseModelVersion, responseID, responseParameters, responseOutputs = 0, 1, 2, 3, 4

	tensorName, tensorDatatype, tensorShape, tensorParameters, tensorData = 0, 1, 2, 3, 4

	outputName, outputParameters = 0, 1
)

// has reports whether field i is in the set fields returned.
func has(seen uint64, i int) bool { return seen&(1<<i) != 0 }

// fields reads an object whose keys must come from names, each at most
// once, calling fn with each key's index to read its value. It returns
// the set of indexes seen. label names the object in errors.
func (s *scanner) fields(label func() string, names []string, fn func(i int) error) (seen uint64, err error) {
	err = s.object(func(key []byte) error {
		i := indexOf(names, key)
		switch {
		case i < 0:
			return errorf("%s: unknown field %q", label(), key)
		case has(seen, i):
			return errorf("%s: field %q given twice", label(), key)
		}
		seen |= 1 << i
		return fn(i)
	})
	return seen, err
}

func indexOf(names []string, key []byte) int {
	for i, n := range names {
		if string(key) == n {
			return i
		}
	}
	return -1
}

// Labels for the top-level objects.
var (
	requestLabel  = func() string { return "request" }
	responseLabel = func() string { return "response" }
)

// decodeRequest decodes a request's JSON, taking the data of inputs that
// carry binary_data_size from bin.
func decodeRequest(js, bin []byte) (*InferRequest, error) {
	s, err := newScanner(js)
	if err != nil {
		return nil, err
	}
	r := new(InferRequest)
	var ts []jsonTensor
	seen, err := s.fields(requestLabel, requestFields, func(i int) (err error) {
		switch i {
		case requestID:
			var id []byte
			id, err = s.str()
			r.ID = string(id)
		case requestParameters:
			r.Parameters, err = s.params(nil)
			err = within("request", err)
		case requestInputs:
			ts, err = s.tensors("input")
		case requestOutputs:
			r.Outputs, err = s.requestedOutputs()
		case requestModelName, requestModelVersion:
			_, err = s.str()
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := s.end(); err != nil {
		return nil, err
	}
	if !has(seen, requestInputs) {
		return nil, errorf("request: missing inputs")
	}
	if r.Inputs, err = finishTensors(js, "input", ts, bin); err != nil {
		return nil, err
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return r, nil
}

// decodeResponse decodes a response's JSON, taking the data of outputs
// that carry binary_data_size from bin.
func decodeResponse(js, bin []byte) (*InferResponse, error) {
	s, err := newScanner(js)
	if err != nil {
		return nil, err
	}
	r := new(InferResponse)
	var ts []jsonTensor
	seen, err := s.fields(responseLabel, responseFields, func(i int) (err error) {
		var v []byte
		switch i {
		case responseModelName:
			v, err = s.str()
			r.ModelName = string(v)
		case responseModelVersion:
			v, err = s.str()
			r.ModelVersion = string(v)
		case responseID:
			v, err = s.str()
			r.ID = string(v)
		case responseParameters:
			r.Parameters, err = s.params(nil)
			err = within("response", err)
		case responseOutputs:
			ts, err = s.tensors("output")
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := s.end(); err != nil {
		return nil, err
	}
	if !has(seen, responseOutputs) {
		return nil, errorf("response: missing outputs")
	}
	if r.Outputs, err = finishTensors(js, "output", ts, bin); err != nil {
		return nil, err
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return r, nil
}
