package oip

import (
	"encoding/binary"
	"math"
)

// Size returns the bytes one element of d takes in raw form: 0 for BYTES,
// whose elements vary in length, and -1 for an unknown datatype.
func (d Datatype) Size() int {
	switch d {
	case Bool, Uint8, Int8:
		return 1
	case Uint16, Int16, FP16:
		return 2
	case Uint32, Int32, FP32:
		return 4
	case Uint64, Int64, FP64:
		return 8
	case Bytes:
		return 0
	}
	return -1
}

// ParseDatatype returns the datatype the protocol names s (case-sensitive,
// as the protocol spells them: "FP32", "BYTES", ...).
func ParseDatatype(s string) (Datatype, error) {
	d := Datatype(s)
	if d.Size() < 0 {
		return "", errorf("unknown datatype %q", s)
	}
	return d, nil
}

// Elements returns the number of elements t's shape holds: the product of
// its dimensions, 1 for a scalar (empty shape).
func (t *Tensor) Elements() (int64, error) {
	n, err := elements(t.Shape)
	if err != nil {
		return 0, within(t.label(), err)
	}
	return n, nil
}

// Validate checks that t has a known datatype, a shape without negative
// dimensions, parameters of supported types, and data of exactly the size
// its shape and datatype call for. BYTES data must hold exactly as many
// length-prefixed elements as the shape, with no trailing bytes; BOOL
// elements must be 0 or 1.
func (t *Tensor) Validate() error {
	if err := t.validate(); err != nil {
		return within(t.label(), err)
	}
	return nil
}

// label names t in errors.
func (t *Tensor) label() string { return "tensor " + t.Name }

// validate is Validate with errors that do not name the tensor.
func (t *Tensor) validate() error {
	if _, err := ParseDatatype(string(t.Datatype)); err != nil {
		return err
	}
	n, err := elements(t.Shape)
	if err != nil {
		return err
	}
	if err := checkData(t.Datatype, t.Shape, n, t.Data); err != nil {
		return err
	}
	return validateParams(t.Parameters)
}

// elements multiplies out shape, refusing negative dimensions and products
// beyond int64.
func elements(shape []int64) (int64, error) {
	zero := false
	for _, d := range shape {
		if d < 0 {
			return 0, errorf("negative dimension %d in shape %v", d, shape)
		}
		zero = zero || d == 0
	}
	if zero {
		return 0, nil
	}
	n := int64(1)
	for _, d := range shape {
		if n > math.MaxInt64/d {
			return 0, errorf("shape %v holds more than %d elements", shape, int64(math.MaxInt64))
		}
		n *= d
	}
	return n, nil
}

// checkData checks that data is the raw form of n elements of dt.
func checkData(dt Datatype, shape []int64, n int64, data []byte) error {
	size := int64(dt.Size())
	if size == 0 {
		return checkBytes(data, n)
	}
	if n > int64(len(data))/size || n*size != int64(len(data)) {
		if n <= math.MaxInt64/size {
			return errorf("shape %v holds %d %s elements (%d bytes), data has %d bytes", shape, n, dt, n*size, len(data))
		}
		return errorf("shape %v holds %d %s elements, data has %d bytes", shape, n, dt, len(data))
	}
	if dt == Bool {
		for i, b := range data {
			if b > 1 {
				return errorf("BOOL element %d is %d, want 0 or 1", i, b)
			}
		}
	}
	return nil
}

// checkBytes checks that data holds exactly n length-prefixed elements.
func checkBytes(data []byte, n int64) error {
	off := 0
	for i := int64(0); i < n; i++ {
		left := len(data) - off
		if left < 4 {
			return errorf("BYTES data ends at element %d of %d: %d bytes left, want a 4-byte length", i, n, left)
		}
		l := binary.LittleEndian.Uint32(data[off:])
		off += 4
		if uint64(l) > uint64(left-4) {
			return errorf("BYTES element %d of %d has length %d beyond the %d bytes left", i, n, l, left-4)
		}
		off += int(l)
	}
	if off != len(data) {
		return errorf("BYTES data has %d trailing bytes after its %d elements", len(data)-off, n)
	}
	return nil
}

// splitBytes returns the elements of BYTES data that checkBytes accepted;
// they alias data.
func splitBytes(data []byte) [][]byte {
	var out [][]byte
	for off := 0; off < len(data); {
		l := int(binary.LittleEndian.Uint32(data[off:]))
		out = append(out, data[off+4:off+4+l:off+4+l])
		off += 4 + l
	}
	return out
}

// appendBytesElement appends one BYTES element in raw form.
func appendBytesElement(dst, b []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(b)))
	return append(dst, b...)
}

// want checks that t is a valid tensor of datatype dt.
func (t *Tensor) want(dt Datatype) error {
	if t.Datatype != dt {
		return errorf("%s: datatype is %s, not %s", t.label(), t.Datatype, dt)
	}
	return t.Validate()
}

// Float32s returns the elements of an FP32 tensor.
func (t *Tensor) Float32s() ([]float32, error) {
	if err := t.want(FP32); err != nil {
		return nil, err
	}
	out := make([]float32, len(t.Data)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
	}
	return out, nil
}

// Float64s returns the elements of an FP64 tensor.
func (t *Tensor) Float64s() ([]float64, error) {
	if err := t.want(FP64); err != nil {
		return nil, err
	}
	out := make([]float64, len(t.Data)/8)
	for i := range out {
		out[i] = math.Float64frombits(binary.LittleEndian.Uint64(t.Data[8*i:]))
	}
	return out, nil
}

// Int64s returns the elements of an INT64 tensor.
func (t *Tensor) Int64s() ([]int64, error) {
	if err := t.want(Int64); err != nil {
		return nil, err
	}
	out := make([]int64, len(t.Data)/8)
	for i := range out {
		out[i] = int64(binary.LittleEndian.Uint64(t.Data[8*i:]))
	}
	return out, nil
}

// Int32s returns the elements of an INT32 tensor.
func (t *Tensor) Int32s() ([]int32, error) {
	if err := t.want(Int32); err != nil {
		return nil, err
	}
	out := make([]int32, len(t.Data)/4)
	for i := range out {
		out[i] = int32(binary.LittleEndian.Uint32(t.Data[4*i:]))
	}
	return out, nil
}

// Bools returns the elements of a BOOL tensor.
func (t *Tensor) Bools() ([]bool, error) {
	if err := t.want(Bool); err != nil {
		return nil, err
	}
	out := make([]bool, len(t.Data))
	for i, b := range t.Data {
		out[i] = b != 0
	}
	return out, nil
}

// ByteStrings returns the elements of a BYTES tensor. They alias t.Data.
func (t *Tensor) ByteStrings() ([][]byte, error) {
	if err := t.want(Bytes); err != nil {
		return nil, err
	}
	return splitBytes(t.Data), nil
}

// shapeOr copies shape, or returns the 1-D shape [n] when shape is nil.
func shapeOr(shape []int64, n int) []int64 {
	if shape == nil {
		return []int64{int64(n)}
	}
	return append([]int64{}, shape...)
}

// NewFP32 returns an FP32 tensor holding v. A nil shape means [len(v)].
func NewFP32(name string, shape []int64, v []float32) Tensor {
	data := make([]byte, 0, 4*len(v))
	for _, x := range v {
		data = binary.LittleEndian.AppendUint32(data, math.Float32bits(x))
	}
	return Tensor{Name: name, Datatype: FP32, Shape: shapeOr(shape, len(v)), Data: data}
}

// NewFP64 returns an FP64 tensor holding v. A nil shape means [len(v)].
func NewFP64(name string, shape []int64, v []float64) Tensor {
	data := make([]byte, 0, 8*len(v))
	for _, x := range v {
		data = binary.LittleEndian.AppendUint64(data, math.Float64bits(x))
	}
	return Tensor{Name: name, Datatype: FP64, Shape: shapeOr(shape, len(v)), Data: data}
}

// NewInt64 returns an INT64 tensor holding v. A nil shape means [len(v)].
func NewInt64(name string, shape []int64, v []int64) Tensor {
	data := make([]byte, 0, 8*len(v))
	for _, x := range v {
		data = binary.LittleEndian.AppendUint64(data, uint64(x))
	}
	return Tensor{Name: name, Datatype: Int64, Shape: shapeOr(shape, len(v)), Data: data}
}

// NewInt32 returns an INT32 tensor holding v. A nil shape means [len(v)].
func NewInt32(name string, shape []int64, v []int32) Tensor {
	data := make([]byte, 0, 4*len(v))
	for _, x := range v {
		data = binary.LittleEndian.AppendUint32(data, uint32(x))
	}
	return Tensor{Name: name, Datatype: Int32, Shape: shapeOr(shape, len(v)), Data: data}
}

// NewBool returns a BOOL tensor holding v. A nil shape means [len(v)].
func NewBool(name string, shape []int64, v []bool) Tensor {
	data := make([]byte, len(v))
	for i, x := range v {
		if x {
			data[i] = 1
		}
	}
	return Tensor{Name: name, Datatype: Bool, Shape: shapeOr(shape, len(v)), Data: data}
}

// NewBytes returns a BYTES tensor holding v. A nil shape means [len(v)].
func NewBytes(name string, shape []int64, v [][]byte) Tensor {
	size := 0
	for _, b := range v {
		size += 4 + len(b)
	}
	data := make([]byte, 0, size)
	for _, b := range v {
		data = appendBytesElement(data, b)
	}
	return Tensor{Name: name, Datatype: Bytes, Shape: shapeOr(shape, len(v)), Data: data}
}
