package oip

import (
	"encoding/binary"
	"math"
	"sync"
)

// ContentType marks a Kafka record whose value is the payload form of an
// inference request or response (see InferRequest.MarshalBinary).
const ContentType = "application/vnd.sluice.oip"

// The payload form, in which requests and responses travel between the
// gateway and a deployment: a 4-byte big-endian length N, N bytes of the
// REST JSON form with every tensor's data given as binary_data_size, then
// all tensors' raw data in tensor order.

// MarshalBinary validates r and encodes it in the payload form.
func (r *InferRequest) MarshalBinary() ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return marshalPayload(r.Inputs, func(dst []byte) ([]byte, error) {
		return appendRequest(dst, r, allBinary)
	})
}

// UnmarshalBinary decodes the payload form into r, validating it as
// DecodeRequestBinary does. r's tensors' data aliases b.
func (r *InferRequest) UnmarshalBinary(b []byte) error {
	js, bin, err := splitPayload(b)
	if err != nil {
		return err
	}
	req, err := decodeRequest(js, bin)
	if err != nil {
		return err
	}
	*r = *req
	return nil
}

// MarshalBinary validates r and encodes it in the payload form.
func (r *InferResponse) MarshalBinary() ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return marshalPayload(r.Outputs, func(dst []byte) ([]byte, error) {
		return appendResponse(dst, r, allBinary)
	})
}

// UnmarshalBinary decodes the payload form into r, validating it as
// DecodeResponseBinary does. r's tensors' data aliases b.
func (r *InferResponse) UnmarshalBinary(b []byte) error {
	js, bin, err := splitPayload(b)
	if err != nil {
		return err
	}
	resp, err := decodeResponse(js, bin)
	if err != nil {
		return err
	}
	*r = *resp
	return nil
}

func allBinary(string) bool { return true }

// headerBufs recycles the buffers payload JSON is written into before it
// is copied into the one exactly sized result.
var headerBufs = sync.Pool{New: func() any { return new([]byte) }}

// maxPooled keeps unusually large header buffers out of the pool.
const maxPooled = 64 << 10

// marshalPayload writes the JSON header appendJSON produces, then the
// tensors' data, into one exactly sized slice.
func marshalPayload(ts []Tensor, appendJSON func([]byte) ([]byte, error)) ([]byte, error) {
	buf := headerBufs.Get().(*[]byte)
	defer func() {
		if cap(*buf) <= maxPooled {
			headerBufs.Put(buf)
		}
	}()
	js, err := appendJSON((*buf)[:0])
	if err != nil {
		return nil, err
	}
	*buf = js
	if uint64(len(js)) > math.MaxUint32 {
		return nil, errorf("payload header of %d bytes is too large", len(js))
	}
	size := 4 + len(js)
	for i := range ts {
		size += len(ts[i].Data)
	}
	out := make([]byte, size)
	binary.BigEndian.PutUint32(out, uint32(len(js)))
	off := 4 + copy(out[4:], js)
	for i := range ts {
		off += copy(out[off:], ts[i].Data)
	}
	return out, nil
}

// splitPayload splits a payload into its JSON header and its data.
func splitPayload(b []byte) (js, bin []byte, err error) {
	if len(b) < 4 {
		return nil, nil, errorf("payload of %d bytes is shorter than its 4-byte header length", len(b))
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(n) > uint64(len(b)-4) {
		return nil, nil, errorf("payload header length %d beyond the %d bytes that follow it", n, len(b)-4)
	}
	return b[4 : 4+n], b[4+n:], nil
}
