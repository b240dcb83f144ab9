package oip

import "unicode/utf8"

// maxDepth bounds how deeply "data" arrays may nest.
const maxDepth = 64

// scanner reads JSON (RFC 8259) from a byte slice. It is deliberately
// small: the OIP documents have a fixed structure, so callers walk them
// with object and array and read scalars directly, without building
// intermediate values. Beyond RFC 8259 it reads the literals NaN,
// Infinity and -Infinity, which Triton writes for non-finite numbers.
type scanner struct {
	buf []byte
	pos int
}

// newScanner returns a scanner over js, which must be UTF-8.
func newScanner(js []byte) (scanner, error) {
	if !utf8.Valid(js) {
		return scanner{}, errorf("malformed JSON: not valid UTF-8")
	}
	return scanner{buf: js}, nil
}

// peek skips whitespace and returns the next byte, or 0 at the end.
func (s *scanner) peek() byte {
	for s.pos < len(s.buf) {
		switch c := s.buf[s.pos]; c {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return c
		}
	}
	return 0
}

// unexpected reports what the scanner found where it wanted want.
func (s *scanner) unexpected(want string) error {
	if s.peek() == 0 && s.pos >= len(s.buf) {
		return errorf("malformed JSON: unexpected end of input, want %s", want)
	}
	return errorf("malformed JSON at offset %d: unexpected %q, want %s", s.pos, s.buf[s.pos], want)
}

// end checks that nothing but whitespace follows.
func (s *scanner) end() error {
	if s.peek() != 0 || s.pos < len(s.buf) {
		return errorf("malformed JSON at offset %d: unexpected %q after the document", s.pos, s.buf[s.pos])
	}
	return nil
}

// consume skips whitespace and then c, if c comes next.
func (s *scanner) consume(c byte) bool {
	if s.peek() == c && s.pos < len(s.buf) {
		s.pos++
		return true
	}
	return false
}

// expect consumes c or fails, naming want.
func (s *scanner) expect(c byte, want string) error {
	if !s.consume(c) {
		return s.unexpected(want)
	}
	return nil
}

// object reads an object, calling fn with each key; fn must read the
// value. The key may alias the input: fn must copy it to keep it.
func (s *scanner) object(fn func(key []byte) error) error {
	if err := s.expect('{', "an object"); err != nil {
		return err
	}
	if s.consume('}') {
		return nil
	}
	for {
		key, err := s.str()
		if err != nil {
			return err
		}
		if err := s.expect(':', "':'"); err != nil {
			return err
		}
		if err := fn(key); err != nil {
			return err
		}
		if s.consume('}') {
			return nil
		}
		if err := s.expect(',', "',' or '}'"); err != nil {
			return err
		}
	}
}

// array reads an array, calling fn to read each element.
func (s *scanner) array(fn func() error) error {
	if err := s.expect('[', "an array"); err != nil {
		return err
	}
	if s.consume(']') {
		return nil
	}
	for {
		if err := fn(); err != nil {
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

// str reads a string and returns its contents, unescaped. The result
// aliases the input unless the string holds escapes.
func (s *scanner) str() ([]byte, error) {
	if s.peek() != '"' {
		return nil, s.unexpected("a string")
	}
	start := s.pos + 1
	for i := start; i < len(s.buf); i++ {
		switch c := s.buf[i]; {
		case c == '"':
			s.pos = i + 1
			return s.buf[start:i], nil
		case c == '\\':
			return s.unescape(start, i)
		case c < 0x20:
			s.pos = i
			return nil, s.unexpected("no control characters in a string")
		}
	}
	s.pos = len(s.buf)
	return nil, s.unexpected("'\"'")
}

// unescape finishes reading a string that starts at start and has its
// first escape at i.
func (s *scanner) unescape(start, i int) ([]byte, error) {
	out := make([]byte, 0, i-start+16)
	out = append(out, s.buf[start:i]...)
	for i < len(s.buf) {
		c := s.buf[i]
		switch {
		case c == '"':
			s.pos = i + 1
			return out, nil
		case c < 0x20:
			s.pos = i
			return nil, s.unexpected("no control characters in a string")
		case c != '\\':
			out = append(out, c)
			i++
			continue
		}
		if i+1 >= len(s.buf) {
			break
		}
		s.pos = i
		switch e := s.buf[i+1]; e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, n, err := s.unicode(i)
			if err != nil {
				return nil, err
			}
			out = utf8.AppendRune(out, r)
			i += n
			continue
		default:
			return nil, errorf("malformed JSON at offset %d: unknown escape \\%c", i, e)
		}
		i += 2
	}
	s.pos = len(s.buf)
	return nil, s.unexpected("'\"'")
}

// unicode reads the \uXXXX escape at i, and the low surrogate after it
// when it is a high one, returning the rune (U+FFFD for an unpaired
// surrogate) and how many bytes it took.
func (s *scanner) unicode(i int) (rune, int, error) {
	r, ok := hex4(s.buf[i+2:])
	if !ok {
		return 0, 0, errorf("malformed JSON at offset %d: bad \\u escape", i)
	}
	if r < 0xd800 || r > 0xdfff {
		return r, 6, nil
	}
	if r <= 0xdbff && len(s.buf) >= i+12 && s.buf[i+6] == '\\' && s.buf[i+7] == 'u' {
		if lo, ok := hex4(s.buf[i+8:]); ok && lo >= 0xdc00 && lo <= 0xdfff {
			return 0x10000 + (r-0xd800)<<10 + (lo - 0xdc00), 12, nil
		}
	}
	return utf8.RuneError, 6, nil
}

// hex4 reads four hex digits.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// number reads a number and returns its text.
func (s *scanner) number() ([]byte, error) {
	s.peek()
	b, start := s.buf, s.pos
	i := start
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = digits(b, i)
	default:
		s.pos = i
		return nil, s.unexpected("a number")
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			s.pos = j
			return nil, s.unexpected("a digit")
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			s.pos = j
			return nil, s.unexpected("a digit")
		}
		i = j
	}
	s.pos = i
	return b[start:i], nil
}

// digits returns the index of the first non-digit at or after i.
func digits(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

// literal consumes word if it comes next.
func (s *scanner) literal(word string) bool {
	s.peek()
	end := s.pos + len(word)
	if end <= len(s.buf) && string(s.buf[s.pos:end]) == word {
		s.pos = end
		return true
	}
	return false
}

// skipArray skips an array of arrays and scalars without interpreting the
// scalars (which a later pass over the same bytes reads), checking only
// that it is closed, holds no objects, and nests at most maxDepth deep.
func (s *scanner) skipArray() error {
	if s.peek() != '[' {
		return s.unexpected("an array")
	}
	depth := 0
	for i := s.pos; i < len(s.buf); i++ {
		switch s.buf[i] {
		case '[':
			depth++
			if depth > maxDepth {
				s.pos = i
				return errorf("malformed JSON at offset %d: arrays nest deeper than %d", i, maxDepth)
			}
		case ']':
			depth--
			if depth == 0 {
				s.pos = i + 1
				return nil
			}
		case '{', '}':
			s.pos = i
			return s.unexpected("a number, string, bool or array")
		case '"':
			for i++; i < len(s.buf) && s.buf[i] != '"'; i++ {
				if s.buf[i] == '\\' {
					i++
				}
			}
		}
	}
	s.pos = len(s.buf)
	return s.unexpected("']'")
}
