// Package blob stores model weights as objects: in an S3-compatible store
// (MinIO) for production, or in a local directory for `sluice dev`.
//
// Both implementations stream: Put never holds a whole object in memory, and
// it computes the object's SHA-256 while the bytes pass through, so the
// registry can verify an upload against its manifest before it copies it from
// a staging key to its final key.
package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Store is what the registry needs from object storage. Both implementations
// are in this package.
type Store interface {
	// Put streams r to key. size is the exact byte count (-1 if unknown). It
	// computes SHA-256 while streaming and returns the Info; memory use is
	// bounded (no whole-object buffering; multipart for large objects).
	Put(ctx context.Context, key string, r io.Reader, size int64) (Info, error)
	// Get streams the object; the caller closes it. ErrNotFound if missing.
	Get(ctx context.Context, key string) (io.ReadCloser, Info, error)
	Stat(ctx context.Context, key string) (Info, error)
	// Delete removes key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List returns the objects whose keys start with prefix, sorted by key.
	List(ctx context.Context, prefix string) ([]Info, error)
	// Copy copies src to dst, server-side where possible (used to move a
	// verified upload from a staging key to its final key).
	Copy(ctx context.Context, dst, src string) error
}

// Info describes a stored object.
type Info struct {
	Key  string
	Size int64
	// SHA256 is the hex digest of the object's bytes, "" when the backend
	// cannot tell.
	SHA256   string
	Modified time.Time
}

var (
	// ErrNotFound reports a missing object.
	ErrNotFound = errors.New("object not found")
	// ErrUnavailable wraps network and connection failures, so callers can
	// tell a store that is down from a request that is wrong.
	ErrUnavailable = errors.New("object store unavailable")
	// ErrInvalidKey reports a key (or list prefix) the store refuses.
	ErrInvalidKey = errors.New("invalid object key")
	// ErrSizeMismatch reports a Put whose reader held more or fewer bytes
	// than the size it was given. Nothing is stored.
	ErrSizeMismatch = errors.New("object size mismatch")
)

// validateKey accepts slash-separated relative keys: no empty key, no leading
// slash, no empty, "." or ".." segments, no NUL bytes.
func validateKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w %q: empty", ErrInvalidKey, key)
	}
	return validatePath(key, false)
}

// validatePrefix is validateKey for List prefixes: "" is allowed, and so is a
// trailing slash ("models/").
func validatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	return validatePath(prefix, true)
}

func validatePath(p string, trailingSlash bool) error {
	if strings.HasPrefix(p, "/") {
		return fmt.Errorf("%w %q: absolute path", ErrInvalidKey, p)
	}
	if strings.ContainsRune(p, 0) {
		return fmt.Errorf("%w %q: contains a NUL byte", ErrInvalidKey, p)
	}
	segs := strings.Split(p, "/")
	for i, seg := range segs {
		switch {
		case seg == "" && trailingSlash && i == len(segs)-1:
		case seg == "":
			return fmt.Errorf("%w %q: empty path segment", ErrInvalidKey, p)
		case seg == "." || seg == "..":
			return fmt.Errorf("%w %q: %q path segment", ErrInvalidKey, p, seg)
		}
	}
	return nil
}

// sizedReader enforces Put's size contract on the reader it wraps. With a
// size it yields exactly size bytes and then io.EOF; a reader that ends
// early, or holds more, fails the read instead, so the upload is abandoned
// before it is committed. The extra byte is looked for while the last bytes
// are delivered, and one of them is held back when it is found, so the
// failure reaches even a caller that stops reading once it has size bytes
// (io.ReadFull drops an error that comes with the bytes that fill its buffer).
type sizedReader struct {
	r    io.Reader
	size int64 // -1: unknown, read to EOF
	n    int64
	err  error // sticky: io.EOF once done, ErrSizeMismatch when the count was wrong
}

func newSizedReader(r io.Reader, size int64) *sizedReader {
	return &sizedReader{r: r, size: size}
}

func (s *sizedReader) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.size < 0 {
		n, err := s.r.Read(p)
		s.n += int64(n)
		return n, err
	}
	left := s.size - s.n
	if left == 0 {
		// Only for size 0: otherwise the read that reached size probed.
		if s.err = s.probe(); s.err != nil {
			return 0, s.err
		}
		return 0, io.EOF
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	n, err := s.r.Read(p)
	s.n += int64(n)
	switch {
	case s.n == s.size && err == io.EOF:
		s.err = io.EOF
		return n, io.EOF
	case s.n == s.size:
		if s.err = s.probe(); s.err == nil {
			s.err = io.EOF
			return n, io.EOF
		}
		if n <= 1 {
			s.n -= int64(n)
			return 0, s.err
		}
		s.n--
		return n - 1, nil
	case err == io.EOF:
		s.err = fmt.Errorf("%w: reader ended after %d bytes, want %d", ErrSizeMismatch, s.n, s.size)
		return n, s.err
	}
	return n, err
}

// probe reads one byte past size; nil when the reader is at EOF.
func (s *sizedReader) probe() error {
	var one [1]byte
	n, err := io.ReadFull(s.r, one[:])
	switch {
	case n > 0:
		return fmt.Errorf("%w: reader holds more than %d bytes", ErrSizeMismatch, s.size)
	case err == io.EOF:
		return nil
	default:
		return err
	}
}

// ctxReader fails reads once ctx is done, so a long copy stops promptly.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
