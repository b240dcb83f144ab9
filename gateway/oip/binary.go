package oip

// The binary tensor data extension: an HTTP body that starts with the
// JSON form, whose length the Inference-Header-Content-Length header
// gives, followed by the raw data of the tensors whose JSON has a
// binary_data_size parameter instead of "data", in tensor order.

// DecodeRequestBinary decodes a request body in the binary tensor data
// extension, headerLen being the Inference-Header-Content-Length. The
// first headerLen bytes are decoded as DecodeRequestJSON does, except that
// an input with a binary_data_size parameter takes that many bytes of raw
// data (BYTES elements each with a 4-byte little-endian length) from the
// rest of the body, in input order; together they must use it up exactly.
// The binary_data_size parameters do not appear in the result. Its
// tensors' data may alias body.
func DecodeRequestBinary(body []byte, headerLen int) (*InferRequest, error) {
	js, bin, err := splitBody(body, headerLen)
	if err != nil {
		return nil, err
	}
	return decodeRequest(js, bin)
}

// DecodeResponseBinary decodes a response body in the binary tensor data
// extension (see EncodeResponseJSON) as DecodeRequestBinary decodes a
// request.
func DecodeResponseBinary(body []byte, headerLen int) (*InferResponse, error) {
	js, bin, err := splitBody(body, headerLen)
	if err != nil {
		return nil, err
	}
	return decodeResponse(js, bin)
}

// EncodeRequestBinary encodes req in the binary tensor data extension:
// inputs for which binary (which may be nil) reports true have no "data"
// in jsonPart but a binary_data_size parameter, and their raw data follows
// in binaryPart, in input order.
func EncodeRequestBinary(req *InferRequest, binary func(name string) bool) (jsonPart, binaryPart []byte, err error) {
	if err := req.Validate(); err != nil {
		return nil, nil, err
	}
	if jsonPart, err = appendRequest(make([]byte, 0, sizeHint(req.Inputs, binary)), req, binary); err != nil {
		return nil, nil, err
	}
	return jsonPart, joinBinary(req.Inputs, binary), nil
}

// splitBody splits a binary-extension body after its JSON header.
func splitBody(body []byte, headerLen int) (js, bin []byte, err error) {
	switch {
	case headerLen <= 0:
		return nil, nil, errorf("binary header length %d is not positive", headerLen)
	case headerLen > len(body):
		return nil, nil, errorf("binary header length %d beyond body of %d bytes", headerLen, len(body))
	}
	return body[:headerLen], body[headerLen:], nil
}

// WantsBinary reports whether the caller asked for output as binary data
// (the binary tensor data extension): the output's own binary_data
// parameter decides when it has one; otherwise the request's
// binary_data_output parameter does; otherwise not.
func (r *InferRequest) WantsBinary(output string) bool {
	if r == nil {
		return false
	}
	for i := range r.Outputs {
		if r.Outputs[i].Name == output {
			if b, ok := r.Outputs[i].Parameters[ParamBinaryData].(bool); ok {
				return b
			}
			break
		}
	}
	b, _ := r.Parameters[ParamBinaryDataOutput].(bool)
	return b
}
