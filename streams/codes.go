package streams

import (
	"context"
	"errors"
	"fmt"

	"github.com/sluice-serve/sluice/streams/protocol"
)

// Code classifies a failed request. It travels in the sl-status header of
// replies and dead letters, and the gateway maps it to HTTP and gRPC status
// at the edge; nothing else in the platform speaks HTTP codes. The table
// is the protocol's (protocol.Codes); these are its names here.
type Code = protocol.Code

// The codes of the protocol's table.
const (
	CodeOK                 = protocol.CodeOK
	CodeInvalidArgument    = protocol.CodeInvalidArgument
	CodeNotFound           = protocol.CodeNotFound
	CodeAlreadyExists      = protocol.CodeAlreadyExists
	CodeFailedPrecondition = protocol.CodeFailedPrecondition
	CodeDeadlineExceeded   = protocol.CodeDeadlineExceeded
	CodeResourceExhausted  = protocol.CodeResourceExhausted
	CodeUnavailable        = protocol.CodeUnavailable
	CodeCanceled           = protocol.CodeCanceled
	CodeInternal           = protocol.CodeInternal
	CodeUnauthenticated    = protocol.CodeUnauthenticated
	CodePermissionDenied   = protocol.CodePermissionDenied
)

// Error is a request failure with its code.
type Error struct {
	Code Code
	Msg  string
	Err  error // the cause, if any
}

func (e *Error) Error() string {
	if e.Msg == "" && e.Err != nil {
		return e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an *Error with a formatted message; every %w operand stays
// reachable with errors.Is and errors.As.
func Errorf(code Code, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	e := &Error{Code: code, Msg: err.Error()}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		e.Err = u.Unwrap()
	case interface{ Unwrap() []error }:
		e.Err = err
	}
	return e
}

// CodeOf classifies any error: an *Error keeps its code, context errors map
// to deadline and cancel, everything else is internal.
func CodeOf(err error) Code {
	var e *Error
	switch {
	case err == nil:
		return CodeOK
	case errors.As(err, &e):
		if e.Code == CodeOK { // a failure always has a code
			return CodeInternal
		}
		return e.Code
	case errors.Is(err, context.DeadlineExceeded):
		return CodeDeadlineExceeded
	case errors.Is(err, context.Canceled):
		return CodeCanceled
	}
	return CodeInternal
}

// IsRetryable reports whether a caller may retry the request as it is.
func IsRetryable(err error) bool {
	switch CodeOf(err) {
	case CodeUnavailable, CodeResourceExhausted:
		return true
	}
	return false
}

// ContextError turns a context's error into an *Error with its code.
func ContextError(err error) *Error {
	if errors.Is(err, context.DeadlineExceeded) {
		return &Error{Code: CodeDeadlineExceeded, Msg: "deadline exceeded waiting for reply", Err: err}
	}
	return &Error{Code: CodeCanceled, Msg: "canceled waiting for reply", Err: err}
}
