package oip

import (
	"errors"
	"fmt"
)

// ErrInvalid is wrapped by every error this package returns, so that a
// server can answer it with HTTP 400 / gRPC INVALID_ARGUMENT:
//
//	if errors.Is(err, oip.ErrInvalid) { ... }
var ErrInvalid = errors.New("invalid inference request")

// invalidError is an error whose message stands alone (it does not repeat
// ErrInvalid's text) but which unwraps to ErrInvalid.
type invalidError struct{ msg string }

func (e *invalidError) Error() string { return e.msg }
func (e *invalidError) Unwrap() error { return ErrInvalid }

// errorf returns an error that wraps ErrInvalid.
func errorf(format string, args ...any) error {
	return &invalidError{msg: fmt.Sprintf(format, args...)}
}

// within prefixes err (which already wraps ErrInvalid) with a context such
// as "input INPUT0".
func within(context string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", context, err)
}
