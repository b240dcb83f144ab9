"""The Sluice record protocol (docs/PROTOCOL.md): a type per record kind,
its constructor and parser, and the propagation rules."""

from sluice.protocol import headers
from sluice.protocol.answer import answer, end, failure
from sluice.protocol.deadletter import DeadLetter, Source, new_dead_letter, parse_dead_letter, parse_source
from sluice.protocol.envelope import Envelope, Hop, parse_envelope, parse_hops
from sluice.protocol.errors import (
    AlreadyExists,
    Canceled,
    Code,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    ParseError,
    ResourceExhausted,
    SluiceError,
    Unavailable,
    code_of,
    is_retryable,
)
from sluice.protocol.http import HTTPHeaders, HTTPRequest, HTTPResponse
from sluice.protocol.output import Output, end_output, item_output, parse_output, unary_output
from sluice.protocol.records import Record, Request, edge, forward, handle_call, new_request, parse_request
from sluice.protocol.reply import Reply, ReplyKind, end_reply, error_reply, item_reply, parse_reply, unary_reply

__all__ = [
    "AlreadyExists",
    "Canceled",
    "Code",
    "DeadLetter",
    "DeadlineExceeded",
    "Envelope",
    "FailedPrecondition",
    "HTTPHeaders",
    "HTTPRequest",
    "HTTPResponse",
    "Hop",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "Output",
    "ParseError",
    "Record",
    "Reply",
    "ReplyKind",
    "Request",
    "ResourceExhausted",
    "SluiceError",
    "Source",
    "Unavailable",
    "answer",
    "code_of",
    "edge",
    "end",
    "end_output",
    "end_reply",
    "error_reply",
    "failure",
    "forward",
    "handle_call",
    "headers",
    "is_retryable",
    "item_output",
    "item_reply",
    "new_dead_letter",
    "new_request",
    "parse_dead_letter",
    "parse_envelope",
    "parse_hops",
    "parse_output",
    "parse_reply",
    "parse_request",
    "parse_source",
    "unary_output",
    "unary_reply",
]
