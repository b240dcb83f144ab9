"""Parse errors and the error codes of docs/PROTOCOL.md ("Error codes")."""

from __future__ import annotations

from enum import Enum


class Code(str, Enum):
    """The one table of failure codes; sl-status carries the value."""

    INVALID_ARGUMENT = "invalid_argument"
    NOT_FOUND = "not_found"
    ALREADY_EXISTS = "already_exists"
    FAILED_PRECONDITION = "failed_precondition"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    RESOURCE_EXHAUSTED = "resource_exhausted"
    UNAVAILABLE = "unavailable"
    CANCELED = "canceled"
    INTERNAL = "internal"
    UNAUTHENTICATED = "unauthenticated"  # the gateway's; never in a record
    PERMISSION_DENIED = "permission_denied"  # the gateway's; never in a record


RETRYABLE = frozenset({Code.UNAVAILABLE.value, Code.RESOURCE_EXHAUSTED.value})


class SluiceError(Exception):
    """A failure with a protocol code. A handler raises it (or a subclass)
    to answer with that code and exactly its message; any other exception
    is internal. The code is a str: an unknown code read from sl-status is
    kept as it is."""

    code: str = Code.INTERNAL.value

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code or Code.INTERNAL.value

    def __str__(self) -> str:
        return self.message


class InvalidArgument(SluiceError):
    code = Code.INVALID_ARGUMENT.value


class NotFound(SluiceError):
    code = Code.NOT_FOUND.value


class AlreadyExists(SluiceError):
    code = Code.ALREADY_EXISTS.value


class FailedPrecondition(SluiceError):
    code = Code.FAILED_PRECONDITION.value


class DeadlineExceeded(SluiceError):
    code = Code.DEADLINE_EXCEEDED.value


class ResourceExhausted(SluiceError):
    code = Code.RESOURCE_EXHAUSTED.value


class Unavailable(SluiceError):
    code = Code.UNAVAILABLE.value


class Canceled(SluiceError):
    code = Code.CANCELED.value


class Internal(SluiceError):
    code = Code.INTERNAL.value


def code_of(exc: BaseException) -> str:
    """The code an exception answers with: its own for a SluiceError,
    internal for any other."""
    if isinstance(exc, SluiceError):
        return exc.code
    return Code.INTERNAL.value


def is_retryable(exc: BaseException) -> bool:
    """Whether a caller may try again: unavailable and resource_exhausted."""
    return code_of(exc) in RETRYABLE


class ParseError(ValueError):
    """A header a parser could not read: missing where the record kind
    needs it, or with a value it cannot take. The message has the Go
    form: ``malformed record: header sl-deadline: "x" is not ...``."""

    def __init__(self, header: str, reason: str) -> None:
        super().__init__(f"malformed record: header {header}: {reason}")
        self.header = header
        self.reason = reason


def quote(value: bytes) -> str:
    """value as a double-quoted string, bytes that are not UTF-8 escaped."""
    text = value.decode("utf-8", "backslashreplace")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def bad_header(header: str, value: bytes, want: str) -> ParseError:
    return ParseError(header, f"{quote(value)} is not {want}")


def missing_header(header: str, kind: str) -> ParseError:
    return ParseError(header, f"missing on {kind}")
