"""The envelope: what the headers of a request record say."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from sluice.protocol import headers as h
from sluice.protocol.errors import ParseError, bad_header, quote
from sluice.protocol.http import HTTPRequest, missing_method, request_field


@dataclass(frozen=True)
class Hop:
    """One step of a continuation: the output of the record that carries it
    becomes the input of the first hop instead of going to the caller."""

    topic: str
    id: str


@dataclass
class Envelope:
    """The headers of a request record: every request (ingress, edge,
    handle call, forwarded continuation) carries one."""

    id: str = ""
    reply_to: str = ""
    deadline_ns: int = 0  # absolute, Unix nanoseconds; 0: none
    trace: str = ""  # traceparent
    trace_state: str = ""  # tracestate
    content_type: str = ""
    model: str = ""
    version: str = ""
    method: str = ""  # sl-method: the method called; "" is __call__
    cont: list[Hop] = field(default_factory=list)
    # The caller's request headers as record headers (h-<name>).
    request: h.Headers = field(default_factory=list)
    # The HTTP request of a record for an HTTP ingress; None otherwise.
    http: HTTPRequest | None = None

    def request_headers(self) -> dict[str, str]:
        """The caller's request headers by name (lower case)."""
        n = len(h.REQUEST_PREFIX)
        return {k[n:]: v.decode("utf-8", "surrogateescape") for k, v in self.request}

    def add_request_header(self, name: str, value: str) -> None:
        self.request.append(h.text(h.REQUEST_PREFIX + name.lower(), value))

    def expired(self, now_ns: int | None = None) -> bool:
        """Whether the deadline has passed at now_ns (default: now)."""
        if self.deadline_ns == 0:
            return False
        return (time.time_ns() if now_ns is None else now_ns) >= self.deadline_ns

    def final_id(self) -> str:
        """The id the caller waits on: the last hop's with a continuation."""
        return self.cont[-1].id if self.cont else self.id

    def http_request(self) -> HTTPRequest:
        """The HTTP request the envelope carries (path "/" when absent).
        Raises ParseError naming sl-http-method when it carries none."""
        if self.http is None or not self.http.method:
            raise missing_method()
        return replace(self.http, path=self.http.path or "/", headers=dict(self.http.headers))

    def header_list(self) -> h.Headers:
        """The non-empty fields as headers, in the order of the header table."""
        out: h.Headers = []
        if self.id:
            out.append(h.text(h.ID, self.id))
        if self.reply_to:
            out.append(h.text(h.REPLY_TO, self.reply_to))
        if self.deadline_ns:
            out.append(h.count(h.DEADLINE, clamp_deadline(self.deadline_ns)))
        if self.trace:
            out.append(h.text(h.TRACE, self.trace))
        if self.trace_state:
            out.append(h.text(h.TRACE_STATE, self.trace_state))
        if self.content_type:
            out.append(h.text(h.CONTENT_TYPE, self.content_type))
        if self.model:
            out.append(h.text(h.MODEL, self.model))
        if self.version:
            out.append(h.text(h.VERSION, self.version))
        if self.method:
            out.append(h.text(h.METHOD, self.method))
        if self.cont:
            out.append(h.text(h.CONT, format_hops(self.cont)))
        if self.http is not None:
            out.extend(self.http.header_list())
        out.extend(self.request)
        return out


def clamp_deadline(ns: int) -> int:
    """What the header can say: past 2262 is int64's max, 1970 or before is 1."""
    return max(1, min(ns, h.MAX_INT64))


def parse_envelope(headers: h.Headers) -> tuple[Envelope, ParseError | None]:
    """Reads the envelope of a request record. Unknown headers are ignored;
    of a repeated header the last counts. On a malformed header it still
    reads every other one (the caller can be told what went wrong) and
    returns the first error beside what it read."""
    e = Envelope()
    err: ParseError | None = None
    http = HTTPRequest()
    for key, value in headers:
        if key == h.ID:
            e.id = _str(value)
        elif key == h.REPLY_TO:
            e.reply_to = _str(value)
        elif key == h.DEADLINE:
            try:
                ns = h.parse_count(h.DEADLINE, value)
            except ParseError:
                ns = 0
            if ns == 0:
                err = err or bad_header(h.DEADLINE, value, "positive Unix nanoseconds")
                continue
            e.deadline_ns = ns
        elif key == h.TRACE:
            e.trace = _str(value)
        elif key == h.TRACE_STATE:
            e.trace_state = _str(value)
        elif key == h.CONTENT_TYPE:
            e.content_type = _str(value)
        elif key == h.MODEL:
            e.model = _str(value)
        elif key == h.METHOD:
            e.method = _str(value)
        elif key == h.VERSION:
            e.version = _str(value)
        elif key == h.CONT:
            try:
                e.cont = parse_hops(value)
            except ParseError as exc:
                err = err or exc
        elif key.startswith("sl-http-"):
            ok, bad = request_field(http, key, value)
            err = err or bad
            if ok:
                continue
        elif key.startswith(h.REQUEST_PREFIX) and len(key) > len(h.REQUEST_PREFIX):
            e.request.append((key, value))
    if not http.is_zero():
        e.http = http
    return e, err


def format_hops(hops: list[Hop]) -> str:
    return ",".join(f"{hop.topic}/{hop.id}" for hop in hops)


def parse_hops(value: bytes) -> list[Hop]:
    """Reads "topic/id,topic/id": the topic ends at the first '/', the id
    may hold more; neither may be empty. An empty value is no hops."""
    if not value:
        return []
    hops: list[Hop] = []
    for part in value.split(b","):
        topic, sep, hop_id = part.partition(b"/")
        if not sep or not topic or not hop_id:
            raise ParseError(h.CONT, f"{quote(part)} is not a hop topic/id")
        hops.append(Hop(_str(topic), _str(hop_id)))
    return hops


def _str(value: bytes) -> str:
    return value.decode("utf-8", "surrogateescape")
