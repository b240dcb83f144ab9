"""HTTP ingress deployments, as Ray Serve's: a deployment whose __call__
takes a Request (annotated as Starlette's or as this module's) gets the
whole HTTP request the gateway carries, and its return value is the
response body. With Starlette installed the request is a real
starlette.requests.Request; without it, Request below offers the same
names for what Sluice carries (method, url, headers, query_params,
body(), json())."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from sluice.protocol import HTTPRequest
from sluice.replica import Input, Output
from sluice.serve import tail
from sluice.serve.codec import encode
from sluice.serve.handle import DeploymentResponse
from sluice.serve.ingress import ASGICallable, asgi_app


@dataclass(frozen=True)
class URL:
    path: str
    query: str


class Request:
    """An HTTP request with Starlette's names, for an environment without
    Starlette."""

    def __init__(self, req: HTTPRequest, body: bytes, content_type: str) -> None:
        self.method = req.method
        self.url = URL(req.path, req.query)
        hs = {k: ", ".join(v) for k, v in req.headers.items()}
        if content_type:
            hs["content-type"] = content_type
        self.headers: Mapping[str, str] = hs
        self.query_params: Mapping[str, str] = dict(parse_qsl(req.query))
        self.path_params: Mapping[str, str] = {}
        self._body = body

    async def body(self) -> bytes:
        return self._body

    async def json(self) -> Any:
        return json.loads(self._body)


def make_request(req: HTTPRequest, body: bytes, content_type: str) -> Any:
    """A starlette.requests.Request when Starlette is installed, else a
    Request."""
    try:
        from starlette.requests import Request as Starlette
    except ImportError:
        return Request(req, body, content_type)
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, vs in req.headers.items() for v in vs]
    if content_type:
        raw.append((b"content-type", content_type.encode("latin-1")))
    scope = {"type": "http", "method": req.method, "path": req.path, "raw_path": req.path.encode(),
             "query_string": req.query.encode(), "headers": raw, "http_version": "1.1"}  # fmt: skip
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Starlette(scope, receive)


REQUEST_NAMES = frozenset({"request", "http_request", "starlette_request", "req"})
"""The names of an ingress's unannotated first parameter that take the
HTTP request itself."""


def takes_request(target: Any, ingress: bool = False) -> bool:
    """Whether a deployment's callable (a class's __call__, or a function)
    takes an HTTP request: its first parameter is annotated Request, or,
    on the application's ingress, not annotated and named as Ray Serve's
    examples name the HTTP request it hands an ingress (REQUEST_NAMES),
    or it is a class @serve.ingress serves with an ASGI app. Any other
    parameter gets the request's body, decoded (JSON)."""
    if asgi_app(target) is not None:
        return True
    fn = getattr(target, "__call__", None) if inspect.isclass(target) else target  # noqa: B004
    if fn is None:
        return False
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    if inspect.isclass(target) and params:
        params = params[1:]  # self
    if not params:
        return False
    ann = params[0].annotation
    if ann is inspect.Parameter.empty:
        return ingress and params[0].name in REQUEST_NAMES
    name = ann if isinstance(ann, str) else getattr(ann, "__name__", "")
    return isinstance(name, str) and (name == "Request" or name.endswith(".Request"))


class HTTPCallable:
    """The replica handler of an HTTP ingress deployment."""

    def __init__(self, fn: Any) -> None:
        self._fn = fn

    def http_ingress(self) -> bool:
        return True

    async def handle(self, inp: Input, out: Output) -> None:
        request = make_request(inp.env.http_request(), inp.value, inp.env.content_type)
        fn = self._fn
        if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None)):  # noqa: B004
            served = tail.serving(fn, HTTPCallable.handle)
            try:
                result = await fn(request)
            finally:
                tail.done(served)
        else:
            result = await asyncio.to_thread(fn, request)
        if isinstance(result, DeploymentResponse):
            if result._hand_over(out, inp.env):
                return
            result = await result
        out.emit(*encode(result))  # status 200, the body's content type


def http_handler(target: Any, fn: Any) -> ASGICallable | HTTPCallable:
    """The replica handler of an HTTP ingress deployment whose target
    (the class or function declared) made fn (its instance)."""
    app = asgi_app(target)
    return ASGICallable(fn, app) if app is not None else HTTPCallable(fn)
