package oip

import "math"

// halfFromFloat64 rounds f to the nearest IEEE 754 binary16 value (ties to
// even). ok is false when a finite f is too large for binary16.
func halfFromFloat64(f float64) (h uint16, ok bool) {
	bits := math.Float64bits(f)
	sign := uint16(bits>>48) & 0x8000
	exp := int(bits>>52) & 0x7ff
	mant := bits & (1<<52 - 1)
	switch {
	case exp == 0x7ff && mant != 0:
		return sign | 0x7e00 | uint16(mant>>42), true // NaN, keeping its payload's top bits
	case exp == 0x7ff:
		return sign | 0x7c00, true
	case exp == 0:
		return sign, true // zero, or a float64 subnormal: far below binary16's range
	}
	e := exp - 1023
	if e > 15 {
		return sign | 0x7c00, false
	}
	full := mant | 1<<52
	shift := uint(42) // keep 10 mantissa bits for a normal result
	base := uint64(e+15) << 10
	if e < -14 {
		// Subnormal: the result counts units of 2^-24.
		shift = uint(28 - e)
		base = 0
		if shift > 63 {
			return sign, true
		}
	} else {
		full = mant
	}
	m := full >> shift
	rem := full & (1<<shift - 1)
	half := uint64(1) << (shift - 1)
	if rem > half || (rem == half && m&1 == 1) {
		m++
	}
	r := base + m // a carry out of the mantissa correctly bumps the exponent
	if r >= 0x7c00 {
		return sign | 0x7c00, false
	}
	return sign | uint16(r), true
}

// HalfToFloat64 returns the value of the IEEE 754 binary16 number h
// (an FP16 element), exactly.
func HalfToFloat64(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	mant := float64(h & 0x3ff)
	switch exp {
	case 0:
		return sign * math.Ldexp(mant, -24)
	case 0x1f:
		if mant != 0 {
			return math.NaN()
		}
		return math.Inf(int(sign))
	}
	return sign * math.Ldexp(1024+mant, exp-25)
}
