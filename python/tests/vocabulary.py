"""The conformance suite's handler vocabulary (docs/PROTOCOL.md,
"Conformance suite"), written against the replica runtime."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from sluice.protocol import HTTPResponse, SluiceError
from sluice.replica import HTTPOutput, Input, Output


@dataclass(frozen=True)
class Spec:
    name: str  # echo, upper, fail, stream, panic, http
    items: int = 0  # stream, http: items to emit
    status: int = 0  # http: the response status (0: 200)
    code: str = ""  # fail: the code; stream: fail with it after the items
    message: str = ""


class Vocabulary:
    """One behaviour of the vocabulary, as a synchronous handler (it runs
    in the replica's thread pool, as user code that blocks would)."""

    def __init__(self, spec: Spec, streams: bool) -> None:
        self.spec = spec
        self._streams = streams

    def streams(self) -> bool:
        return self._streams

    def http_ingress(self) -> bool:
        return self.spec.name == "http"

    def handle(self, inp: Input, out: Output) -> None:
        s = self.spec
        if s.name == "echo":
            out.emit(inp.value, inp.env.content_type)
        elif s.name == "upper":
            out.emit(ascii_upper(inp.value), "text/plain")
        elif s.name == "fail":
            raise SluiceError(s.message, s.code)
        elif s.name == "stream":
            for i in range(s.items):
                out.emit(f"item-{i}".encode(), "text/plain")
            if s.code:
                raise SluiceError(s.message, s.code)
        elif s.name == "panic":
            raise RuntimeError("conformance: the handler crashes")
        elif s.name == "http":
            self._http(inp, cast(HTTPOutput, out))
        else:
            raise ValueError(f"handler {s.name!r} is not in the vocabulary")

    def _http(self, inp: Input, out: HTTPOutput) -> None:
        req = inp.env.http_request()
        hs = {"x-method": [req.method], "x-path": [req.path], "x-query": [req.query]}
        if echo := req.headers.get("x-echo"):
            hs["x-echo"] = list(echo)
        out.respond(HTTPResponse(self.spec.status or 200, hs), streamed=self.spec.items > 0)
        if self.spec.items == 0:
            out.emit(inp.value, inp.env.content_type)
            return
        for i in range(self.spec.items):
            out.emit(f"item-{i}".encode(), "text/plain")


def ascii_upper(b: bytes) -> bytes:
    """a-z upper-cased only, so every language agrees."""
    return bytes(c - 32 if 97 <= c <= 122 else c for c in b)
