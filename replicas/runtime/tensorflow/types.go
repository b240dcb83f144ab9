// Package tensorflow runs TensorFlow SavedModels for `model` deployments
// through the TensorFlow C API (github.com/wamuir/graft/tensorflow, TF 2.17).
//
// The real runtime is compiled only with the `tensorflow` build tag, because
// it links libtensorflow:
//
//	eval "$(scripts/tf.sh env)"
//	go test -tags tensorflow ./replicas/runtime/tensorflow/
//
// Without the tag the package keeps the same API and Load returns
// ErrNotBuilt, so the rest of Sluice builds and tests with no TensorFlow
// installed.
//
// Tensors cross the API in Open Inference Protocol form: a datatype name
// ("FP32", "INT64", "BYTES", ...), a shape including the batch dimension, and
// the raw contents: little-endian, row-major; BYTES elements as a 4-byte
// little-endian length followed by the bytes.
package tensorflow

import "errors"

// ErrNotBuilt is returned by Load in a binary built without the
// `tensorflow` build tag.
var ErrNotBuilt = errors.New("built without tensorflow: rebuild with -tags tensorflow (scripts/tf.sh env)")

// SignatureFile is the file next to saved_model.pb that maps the signature's
// input and output names to graph tensors (written by scripts/make_fixtures.py).
// When it is absent the mapping is taken from the SavedModel's
// "serving_default" signature.
const SignatureFile = "sluice-signature.json"

// Input is one named input tensor.
type Input struct {
	Datatype string
	Shape    []int64
	Data     []byte
}

// Output is one named output tensor.
type Output struct {
	Datatype string
	Shape    []int64
	Data     []byte
}

// TensorSpec describes one input or output of the served signature; a -1
// dimension is variable (the batch dimension usually is).
type TensorSpec struct {
	Name     string  `json:"name"`   // OIP name, the signature's key
	Tensor   string  `json:"tensor"` // graph tensor, "op:index"
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"` // nil: unknown rank
}

// Signature is the content of sluice-signature.json.
type Signature struct {
	Signature string       `json:"signature,omitempty"`
	Inputs    []TensorSpec `json:"inputs"`
	Outputs   []TensorSpec `json:"outputs"`
}
