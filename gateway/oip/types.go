// Package oip holds the Open Inference Protocol v2 data model (the KServe
// v2 / Triton protocol) and its encodings: the REST JSON form, the binary
// tensor extension, the gRPC messages, and the compact payload a request
// travels in over Kafka. It is a leaf package: deployments import it to
// read and write tensors.
package oip

// Datatype is a tensor element type as the protocol names it.
type Datatype string

// The protocol's datatypes.
const (
	Bool   Datatype = "BOOL"
	Uint8  Datatype = "UINT8"
	Uint16 Datatype = "UINT16"
	Uint32 Datatype = "UINT32"
	Uint64 Datatype = "UINT64"
	Int8   Datatype = "INT8"
	Int16  Datatype = "INT16"
	Int32  Datatype = "INT32"
	Int64  Datatype = "INT64"
	FP16   Datatype = "FP16"
	FP32   Datatype = "FP32"
	FP64   Datatype = "FP64"
	Bytes  Datatype = "BYTES"
)

// Tensor is one named input or output. Data always holds the elements in
// the protocol's raw form: little-endian fixed-size elements in row-major
// order, or for BYTES each element as a 4-byte little-endian length
// followed by its bytes. Every encoding converts to and from this form.
type Tensor struct {
	Name       string
	Datatype   Datatype
	Shape      []int64
	Parameters map[string]any // bool, int64, float64 or string values
	Data       []byte
}

// RequestedOutput names an output the caller wants, with its parameters
// (binary_data, for one).
type RequestedOutput struct {
	Name       string
	Parameters map[string]any
}

// InferRequest is one inference request.
type InferRequest struct {
	ID         string
	Parameters map[string]any
	Inputs     []Tensor
	Outputs    []RequestedOutput
}

// InferResponse is one inference response.
type InferResponse struct {
	ModelName    string
	ModelVersion string
	ID           string
	Parameters   map[string]any
	Outputs      []Tensor
}
