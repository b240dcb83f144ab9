package oip

import (
	"encoding/binary"
	"math"
	"strconv"
	"unicode/utf8"
)

// dataDecoder turns a JSON "data" array, flat or nested, into raw data.
type dataDecoder struct {
	s   scanner
	dt  Datatype
	out []byte
	n   int64 // elements read
}

// decodeData reads a data array at s as elements of dt, of which the
// shape says there are want (-1: not known yet), and returns them in raw
// form with the number it found.
func decodeData(s *scanner, dt Datatype, want int64) ([]byte, int64, error) {
	d := dataDecoder{s: *s, dt: dt}
	// Every element takes at least two bytes of JSON ("1,"), which bounds
	// the count a short body can claim whatever its shape says.
	left := int64(len(s.buf)-s.pos)/2 + 1
	n := min(want, left)
	if want < 0 {
		n = min(left, 1024)
	}
	if size := dt.Size(); size > 0 {
		d.out = make([]byte, 0, n*int64(size))
	} else {
		// The 4-byte lengths; the strings' bytes grow it as they come.
		d.out = make([]byte, 0, 4*n)
	}
	err := d.array(0)
	s.pos = d.s.pos
	if err != nil {
		return nil, 0, err
	}
	return d.out, d.n, nil
}

// array reads one array, descending into nested ones.
func (d *dataDecoder) array(depth int) error {
	s := &d.s
	if depth >= maxDepth {
		return errorf("malformed JSON at offset %d: arrays nest deeper than %d", s.pos, maxDepth)
	}
	if err := s.expect('[', "an array"); err != nil {
		return err
	}
	if s.consume(']') {
		return nil
	}
	for {
		var err error
		if s.peek() == '[' {
			err = d.array(depth + 1)
		} else {
			err = d.element()
		}
		if err != nil {
			return err
		}
		if s.consume(']') {
			return nil
		}
		if err := s.expect(',', "',' or ']'"); err != nil {
			return err
		}
	}
}

// element reads one scalar element.
func (d *dataDecoder) element() error {
	s := &d.s
	var err error
	switch c := s.peek(); {
	case c == '"':
		var b []byte
		if b, err = s.str(); err == nil {
			err = d.putString(b)
		}
	case c == '-' && s.pos+1 < len(s.buf) && s.buf[s.pos+1] != 'I' || '0' <= c && c <= '9':
		var tok []byte
		if tok, err = s.number(); err == nil {
			err = d.putNumber(tok)
		}
	case s.literal("true"):
		err = d.putBool(1, "true")
	case s.literal("false"):
		err = d.putBool(0, "false")
	case s.literal("NaN"):
		err = d.putSpecial(math.NaN(), "NaN")
	case s.literal("Infinity"):
		err = d.putSpecial(math.Inf(1), "Infinity")
	case s.literal("-Infinity"):
		err = d.putSpecial(math.Inf(-1), "-Infinity")
	case s.literal("null"):
		err = d.errorf("null is not a value")
	default:
		return s.unexpected("a number, string, bool or array")
	}
	d.n++
	return err
}

// errorf reports a problem with the current element.
func (d *dataDecoder) errorf(format string, args ...any) error {
	return errorf("element %d: "+format, append([]any{d.n}, args...)...)
}

// wrongKind reports an element of the wrong JSON kind for the datatype.
func (d *dataDecoder) wrongKind(got string) error {
	want := "a number"
	switch d.dt {
	case Bool:
		want = "true or false"
	case Bytes:
		want = "a string"
	}
	return d.errorf("%s needs %s, got %s", d.dt, want, got)
}

func (d *dataDecoder) putString(b []byte) error {
	if d.dt != Bytes {
		return d.wrongKind("a string")
	}
	d.out = appendBytesElement(d.out, b)
	return nil
}

func (d *dataDecoder) putBool(v byte, lit string) error {
	if d.dt != Bool {
		return d.wrongKind(lit)
	}
	d.out = append(d.out, v)
	return nil
}

// putSpecial stores NaN or an infinity in a floating-point tensor.
func (d *dataDecoder) putSpecial(f float64, lit string) error {
	switch d.dt {
	case FP16:
		h, _ := halfFromFloat64(f)
		d.out = binary.LittleEndian.AppendUint16(d.out, h)
	case FP32:
		d.out = binary.LittleEndian.AppendUint32(d.out, math.Float32bits(float32(f)))
	case FP64:
		d.out = binary.LittleEndian.AppendUint64(d.out, math.Float64bits(f))
	default:
		return d.wrongKind(lit)
	}
	return nil
}

// putNumber stores the number tok as an element of the datatype.
func (d *dataDecoder) putNumber(tok []byte) error {
	switch d.dt {
	case FP16:
		f, err := strconv.ParseFloat(string(tok), 64)
		h, ok := halfFromFloat64(f)
		if err != nil || !ok {
			return d.outOfRange(tok)
		}
		d.out = binary.LittleEndian.AppendUint16(d.out, h)
	case FP32:
		f, err := strconv.ParseFloat(string(tok), 32)
		if err != nil {
			return d.outOfRange(tok)
		}
		d.out = binary.LittleEndian.AppendUint32(d.out, math.Float32bits(float32(f)))
	case FP64:
		f, err := strconv.ParseFloat(string(tok), 64)
		if err != nil {
			return d.outOfRange(tok)
		}
		d.out = binary.LittleEndian.AppendUint64(d.out, math.Float64bits(f))
	case Int8, Int16, Int32, Int64:
		return d.putSigned(tok)
	case Uint8, Uint16, Uint32, Uint64:
		return d.putUnsigned(tok)
	default:
		return d.wrongKind("a number")
	}
	return nil
}

func (d *dataDecoder) putSigned(tok []byte) error {
	bits := 8 * d.dt.Size()
	v, err := strconv.ParseInt(string(tok), 10, bits)
	if err != nil {
		f, ok := d.integral(tok)
		if !ok {
			return d.errorf("%s needs an integer, got %s", d.dt, short(tok))
		}
		limit := math.Ldexp(1, bits-1)
		if f < -limit || f >= limit {
			return d.outOfRange(tok)
		}
		v = int64(f)
	}
	d.appendUint(uint64(v))
	return nil
}

func (d *dataDecoder) putUnsigned(tok []byte) error {
	bits := 8 * d.dt.Size()
	v, err := strconv.ParseUint(string(tok), 10, bits)
	if err != nil {
		f, ok := d.integral(tok)
		if !ok {
			return d.errorf("%s needs an integer, got %s", d.dt, short(tok))
		}
		if f < 0 || f >= math.Ldexp(1, bits) {
			return d.outOfRange(tok)
		}
		v = uint64(f)
	}
	d.appendUint(v)
	return nil
}

// integral returns the value of tok when it is an integer written with a
// fraction or exponent ("2.0", "1e3", "-0"), or a huge integer (which the
// caller then finds out of range).
func (d *dataDecoder) integral(tok []byte) (float64, bool) {
	f, err := strconv.ParseFloat(string(tok), 64)
	if err != nil {
		return math.Inf(1), true // beyond float64: out of every range
	}
	return f, f == math.Trunc(f)
}

// appendUint appends the low Size() bytes of v, little-endian.
func (d *dataDecoder) appendUint(v uint64) {
	switch d.dt.Size() {
	case 1:
		d.out = append(d.out, byte(v))
	case 2:
		d.out = binary.LittleEndian.AppendUint16(d.out, uint16(v))
	case 4:
		d.out = binary.LittleEndian.AppendUint32(d.out, uint32(v))
	default:
		d.out = binary.LittleEndian.AppendUint64(d.out, v)
	}
}

func (d *dataDecoder) outOfRange(tok []byte) error {
	return d.errorf("%s is out of range for %s", short(tok), d.dt)
}

// short quotes a number for an error, cutting very long ones.
func short(tok []byte) string {
	if len(tok) > 40 {
		return string(tok[:37]) + "..."
	}
	return string(tok)
}

// appendData appends the elements of valid raw data of datatype dt as a
// flat JSON array.
func appendData(dst []byte, dt Datatype, data []byte) ([]byte, error) {
	dst = append(dst, '[')
	size := dt.Size()
	if dt == Bytes {
		for i, b := range splitBytes(data) {
			if i > 0 {
				dst = append(dst, ',')
			}
			var ok bool
			if dst, ok = appendQuoted(dst, b); !ok {
				return nil, errorf("BYTES element %d is not valid UTF-8, so JSON cannot carry it: ask for it as binary data", i)
			}
		}
		return append(dst, ']'), nil
	}
	for i := 0; i < len(data); i += size {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendElement(dst, dt, data[i:i+size])
	}
	return append(dst, ']'), nil
}

// appendElement appends one raw fixed-size element as JSON.
func appendElement(dst []byte, dt Datatype, b []byte) []byte {
	le := binary.LittleEndian
	switch dt {
	case Bool:
		return strconv.AppendBool(dst, b[0] != 0)
	case Uint8:
		return strconv.AppendUint(dst, uint64(b[0]), 10)
	case Uint16:
		return strconv.AppendUint(dst, uint64(le.Uint16(b)), 10)
	case Uint32:
		return strconv.AppendUint(dst, uint64(le.Uint32(b)), 10)
	case Uint64:
		return strconv.AppendUint(dst, le.Uint64(b), 10)
	case Int8:
		return strconv.AppendInt(dst, int64(int8(b[0])), 10)
	case Int16:
		return strconv.AppendInt(dst, int64(int16(le.Uint16(b))), 10)
	case Int32:
		return strconv.AppendInt(dst, int64(int32(le.Uint32(b))), 10)
	case Int64:
		return strconv.AppendInt(dst, int64(le.Uint64(b)), 10)
	case FP16:
		return appendHalf(dst, le.Uint16(b))
	case FP32:
		return appendFloat(dst, float64(math.Float32frombits(le.Uint32(b))), 32)
	default:
		return appendFloat(dst, math.Float64frombits(le.Uint64(b)), 64)
	}
}

// appendFloat appends f as a JSON number, or as NaN, Infinity or
// -Infinity the way Triton writes them.
func appendFloat(dst []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, "NaN"...)
	case math.IsInf(f, 1):
		return append(dst, "Infinity"...)
	case math.IsInf(f, -1):
		return append(dst, "-Infinity"...)
	}
	return strconv.AppendFloat(dst, f, 'g', -1, bits)
}

// appendHalf appends binary16 h as the shortest number that reads back as
// h ("0.1", not its exact value 0.0999755859375).
func appendHalf(dst []byte, h uint16) []byte {
	f := HalfToFloat64(h)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return appendFloat(dst, f, 64)
	}
	for prec := 1; prec < 17; prec++ {
		start := len(dst)
		dst = strconv.AppendFloat(dst, f, 'g', prec, 64)
		if g, err := strconv.ParseFloat(string(dst[start:]), 64); err == nil {
			if back, _ := halfFromFloat64(g); back == h {
				return dst
			}
		}
		dst = dst[:start]
	}
	return strconv.AppendFloat(dst, f, 'g', -1, 64)
}

// appendQuoted appends s as a JSON string; ok is false when s is not
// valid UTF-8, which JSON cannot carry.
func appendQuoted[T string | []byte](dst []byte, s T) (out []byte, ok bool) {
	if !validUTF8(s) {
		return dst, false
	}
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"'), true
}

const hexDigits = "0123456789abcdef"

func validUTF8[T string | []byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return utf8.Valid([]byte(s[i:]))
		}
	}
	return true
}
