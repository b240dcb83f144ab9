"""HTTP ingress records (docs/PROTOCOL.md, "HTTP ingress"): a request
record carries the whole HTTP request in sl-http-* headers; its answer
carries the response's status and headers."""

from __future__ import annotations

from dataclasses import dataclass, field

from sluice.protocol import headers as h
from sluice.protocol.errors import ParseError, bad_header

HTTPHeaders = dict[str, list[str]]
"""HTTP headers by lower-case name, each with its values in order.
Content-Type is never among them: it travels as content-type."""


@dataclass
class HTTPRequest:
    """The HTTP request an HTTP ingress record carries besides its
    envelope: the body is the record's value, its Content-Type the
    envelope's."""

    method: str = ""
    path: str = ""  # below the route prefix, from "/"
    query: str = ""  # raw, without "?"
    headers: HTTPHeaders = field(default_factory=dict)

    def is_zero(self) -> bool:
        return not (self.method or self.path or self.query or self.headers)

    def header_list(self) -> h.Headers:
        out: h.Headers = []
        if self.method:
            out.append(h.text(h.HTTP_METHOD, self.method))
        if self.path:
            out.append(h.text(h.HTTP_PATH, self.path))
        if self.query:
            out.append(h.text(h.HTTP_QUERY, self.query))
        return out + http_headers(self.headers)


@dataclass
class HTTPResponse:
    """What an HTTP ingress answers besides its body, on the unary answer
    or the first item of a stream."""

    status: int = 200
    headers: HTTPHeaders = field(default_factory=dict)

    def header_list(self) -> h.Headers:
        return [h.text(h.HTTP_STATUS, str(self.status)), *http_headers(self.headers)]


def http_headers(hs: HTTPHeaders) -> h.Headers:
    """hs as sl-http-h-* headers: names sorted (the encoding does not
    depend on dict order), one header per value, Content-Type left out."""
    out: h.Headers = []
    for name in sorted(h.ascii_lower(n) for n in hs if h.ascii_lower(n) != "content-type"):
        for value in _values(hs, name):
            out.append(h.text(h.HTTP_PREFIX + name, value))
    return out


def _values(hs: HTTPHeaders, lower: str) -> list[str]:
    out: list[str] = []
    for name, values in hs.items():
        if h.ascii_lower(name) == lower:
            out.extend(values)
    return out


def add_http_header(hs: HTTPHeaders, key: str, value: bytes) -> bool:
    """Reads one sl-http-h-* header into hs; False for another header."""
    if not key.startswith(h.HTTP_PREFIX):
        return False
    name = h.ascii_lower(key[len(h.HTTP_PREFIX) :])
    if not name or name == "content-type":
        return False
    hs.setdefault(name, []).append(value.decode("utf-8", "surrogateescape"))
    return True


def parse_http_status(value: bytes) -> int:
    """sl-http-status: three decimal digits, 100 to 999."""
    try:
        n = h.parse_count(h.HTTP_STATUS, value)
    except ParseError:
        n = 0
    if len(value) != 3 or n < 100:
        raise bad_header(h.HTTP_STATUS, value, "an HTTP status (100-999)")
    return n


def request_field(req: HTTPRequest, key: str, value: bytes) -> tuple[bool, ParseError | None]:
    """Reads one request header that belongs to the HTTP request into req;
    (False, None) for another header."""
    if key == h.HTTP_METHOD:
        req.method = value.decode("utf-8", "surrogateescape")
    elif key == h.HTTP_PATH:
        if not value.startswith(b"/"):
            return True, bad_header(h.HTTP_PATH, value, "a path from /")
        req.path = value.decode("utf-8", "surrogateescape")
    elif key == h.HTTP_QUERY:
        req.query = value.decode("utf-8", "surrogateescape")
    else:
        return add_http_header(req.headers, key, value), None
    return True, None


def response_field(resp: HTTPResponse | None, key: str, value: bytes) -> HTTPResponse | None:
    """Reads one answer header that belongs to the HTTP response, creating
    the response (200 until sl-http-status says otherwise); returns it, or
    resp unchanged for another header. Raises ParseError on a bad status."""
    if key != h.HTTP_STATUS and not key.startswith(h.HTTP_PREFIX):
        return resp
    if resp is None:
        resp = HTTPResponse()
    if key == h.HTTP_STATUS:
        resp.status = parse_http_status(value)
    else:
        add_http_header(resp.headers, key, value)
    return resp


def missing_method() -> ParseError:
    return ParseError(
        h.HTTP_METHOD,
        "missing: an HTTP ingress takes HTTP requests only "
        "(a gateway route, or a record with sl-http-method and sl-http-path)",
    )
