"""Header keys and the helpers every record kind shares."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from sluice.protocol.errors import bad_header

ID = "sl-id"  # request id; replies carry the id they answer
REPLY_TO = "sl-reply"  # topic the terminal result goes to; absent offline
DEADLINE = "sl-deadline"  # absolute deadline, Unix nanoseconds, decimal
TRACE = "traceparent"  # W3C trace context: passed on, with the sender's span when it traces
TRACE_STATE = "tracestate"  # W3C vendor trace state: travels beside traceparent
CONTENT_TYPE = "content-type"
MODEL = "sl-model"  # model id for multiplexed deployments
VERSION = "sl-version"  # model version the caller asked for
METHOD = "sl-method"  # the method of a class deployment a request calls (absent: __call__)
CONT = "sl-cont"  # continuation hops: "topic/id,topic/id"
STATUS = "sl-status"  # error reply or dead letter: an error code
ERROR = "sl-error"  # error reply or dead letter: the message
SEQ = "sl-seq"  # stream item number, from 0
EOS = "sl-eos"  # end of stream: the number of items sent
SOURCE = "sl-source"  # dead letter: "topic/partition/offset"
DEPLOYMENT = "sl-deployment"  # dead letter: the deployment that failed it
CLAIM = "sl-claim"  # a claim check: the value is in the blob store (sluice.claim)
REQUEST_PREFIX = "h-"  # the caller's x-* request headers, lower case

HTTP_METHOD = "sl-http-method"
HTTP_PATH = "sl-http-path"
HTTP_QUERY = "sl-http-query"
HTTP_STATUS = "sl-http-status"
HTTP_PREFIX = "sl-http-h-"  # one HTTP header value: sl-http-h-<name>

MAX_INT64 = (1 << 63) - 1

Header = tuple[str, bytes]
"""One record header: key and value."""

Headers = list[Header]
"""A record's headers, in order; a key may repeat."""

RawHeaders = Sequence[tuple[str, "bytes | str | None"]] | Mapping[str, "bytes | str | None"]
"""Headers as a Kafka client hands them over (confluent-kafka: a list, whose
values may be None or str, or a dict)."""


def normalize(raw: RawHeaders | None) -> Headers:
    """Headers as bytes; a null value is an empty one."""
    if not raw:
        return []
    out: Headers = []
    pairs = raw.items() if isinstance(raw, Mapping) else raw
    for key, value in pairs:
        if value is None:
            out.append((key, b""))
        elif isinstance(value, str):
            out.append((key, value.encode()))
        else:
            out.append((key, bytes(value)))
    return out


def first(headers: Iterable[Header], key: str) -> bytes | None:
    """The value of the first header named key, or None."""
    for k, v in headers:
        if k == key:
            return v
    return None


def text(key: str, value: str) -> Header:
    return (key, value.encode("utf-8", "surrogateescape"))


def count(key: str, n: int) -> Header:
    return (key, str(n).encode())


def parse_count(key: str, value: bytes) -> int:
    """A non-negative decimal count: ASCII digits only, within int64."""
    if not value or not value.isdigit() or not value.isascii():
        raise bad_header(key, value, "a count (decimal digits)")
    n = int(value)
    if n > MAX_INT64:
        raise bad_header(key, value, "a count (decimal digits)")
    return n


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(s: str) -> str:
    """s with ASCII A-Z lower-cased only, as every implementation does."""
    return s.translate(_ASCII_LOWER)
