"""What a replica hands user code, and what it asks of it."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from sluice.protocol import Envelope, HTTPResponse


@dataclass
class Input:
    """One record handed to a Handler."""

    env: Envelope
    topic: str  # the edge or ingress topic it came from
    key: bytes | None
    value: bytes


class Output(Protocol):
    """Receives a handler's results: one emit for a unary deployment, one
    per item for a streaming one. emit may be called from any thread; it
    raises SluiceError when the output cannot go where it must."""

    def emit(self, value: bytes, content_type: str = "") -> None: ...


class HTTPOutput(Output, Protocol):
    """The Output an HTTPIngress handler gets. respond sets the answer's
    HTTP status and headers, once, before the first emit; streamed makes
    each emit an item of a stream, whatever the deployment's kind."""

    def respond(self, resp: HTTPResponse, streamed: bool = False) -> None: ...


class Handler(Protocol):
    """Processes one record: a coroutine function (run on the event loop)
    or a plain function (run in the replica's thread pool). A SluiceError
    it raises answers with its code and message; any other exception is
    internal, named by its type and message."""

    def handle(self, inp: Input, out: Output) -> Awaitable[None] | None: ...


@runtime_checkable
class Streamer(Protocol):
    """A handler whose outputs are streams: each emit is an item, an end
    of stream follows the last."""

    def streams(self) -> bool: ...


@runtime_checkable
class HTTPIngress(Protocol):
    """A handler that serves HTTP requests: the replica refuses records
    without sl-http-method before running it, and hands it an HTTPOutput."""

    def http_ingress(self) -> bool: ...


@runtime_checkable
class Methods(Protocol):
    """A handler with named methods (a class deployment): a record naming
    one (sl-method) runs it; one naming a method has_method denies is
    invalid_argument and never runs. Without this capability a record
    naming any method is refused so."""

    def has_method(self, name: str) -> bool: ...


@runtime_checkable
class StreamOutput(Output, Protocol):
    """An Output whose record may stream whatever its deployment's kind:
    after start_stream(), each emit is an item and an end of stream follows the
    last (a handle call asked for a stream, or the method called is a
    generator)."""

    def start_stream(self) -> None: ...
