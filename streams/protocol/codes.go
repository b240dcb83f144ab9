package protocol

// Code classifies a failed request. It travels in the sl-status header of
// error replies and dead letters; the gateway maps it to HTTP and gRPC
// status at the edge.
type Code string

// The one table of error codes (streams re-exports it with the Go error
// type that carries a code).
const (
	CodeOK                 Code = "" // success: no sl-status header
	CodeInvalidArgument    Code = "invalid_argument"
	CodeNotFound           Code = "not_found"
	CodeAlreadyExists      Code = "already_exists"
	CodeFailedPrecondition Code = "failed_precondition"
	CodeDeadlineExceeded   Code = "deadline_exceeded"
	CodeResourceExhausted  Code = "resource_exhausted"
	CodeUnavailable        Code = "unavailable"
	CodeCanceled           Code = "canceled"
	CodeInternal           Code = "internal"
	// The gateway's own, never in a record: a call without a valid
	// credential, and one whose credential lacks the scope it needs.
	CodeUnauthenticated  Code = "unauthenticated"
	CodePermissionDenied Code = "permission_denied"
)

// Codes lists every failure code, in the order of docs/PROTOCOL.md.
var Codes = []Code{
	CodeInvalidArgument, CodeNotFound, CodeAlreadyExists, CodeFailedPrecondition, CodeDeadlineExceeded,
	CodeResourceExhausted, CodeUnavailable, CodeCanceled, CodeInternal, CodeUnauthenticated, CodePermissionDenied,
}
