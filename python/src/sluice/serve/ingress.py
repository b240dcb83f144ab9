"""@serve.ingress(app): a deployment class whose HTTP front door is an
ASGI application (FastAPI, Starlette, any ASGI callable), as Ray Serve's.
Each HTTP ingress record (docs/PROTOCOL.md, "HTTP ingress") is one ASGI
"http" request: the record's sl-http-* headers and value become the scope
and the request body, the app's http.response.start becomes the answer's
status and headers, and its body is one unary answer, or, when the app
sends it in parts (more_body, as StreamingResponse does), one stream item
per part, sent as it comes.

Methods of the class decorated with the app's own route decorators
(@app.get, @app.post, ...) are served bound to the replica's instance:
their first parameter (self) is resolved per request from the ASGI scope,
where the driver puts the instance it serves."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TypeVar
from urllib.parse import unquote

from sluice.protocol import HTTPRequest, HTTPResponse, Internal
from sluice.replica import Input, Output

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[MutableMapping[str, Any]]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]

APP_ATTR = "__sluice_asgi_app__"
"""The class attribute @serve.ingress sets: the ASGI app that serves it."""

INSTANCE_KEY = "sluice.instance"
"""The ASGI scope key of the instance a request is served by."""

_log = logging.getLogger("sluice.serve.ingress")

C = TypeVar("C", bound=type)


def ingress(app: Any) -> Callable[[C], C]:
    """Makes a deployment class an HTTP ingress served by app, an ASGI
    application. The class's methods that app routes (a FastAPI app's
    @app.get on a method) are called bound to the replica's instance."""
    if not callable(app):
        raise TypeError(f"serve.ingress: {type(app).__name__} is not an ASGI application")

    def wrap(cls: C) -> C:
        if not inspect.isclass(cls):
            raise TypeError(f"serve.ingress: decorates a class, not a {type(cls).__name__}")
        _bind_methods(app, cls)
        setattr(cls, APP_ATTR, app)
        return cls

    return wrap


def asgi_app(target: Any) -> Any | None:
    """The ASGI app of a class @serve.ingress decorated, else None."""
    return getattr(target, APP_ATTR, None) if inspect.isclass(target) else None


def _bind_methods(app: Any, cls: type) -> None:
    """Routes whose endpoint is a function of cls get self from the
    request: the parameter's default becomes a dependency on the scope's
    instance, and the routes are added again so that FastAPI reads their
    new signatures (it read self as a query parameter at decoration)."""
    router = getattr(app, "router", None)
    routes = getattr(router, "routes", None)
    if routes is None:
        return
    methods = {id(f) for f in vars(cls).values() if inspect.isfunction(f)}
    mine = [r for r in routes if id(getattr(r, "endpoint", None)) in methods]
    if not mine:
        return
    try:
        from fastapi import APIRouter, Depends, Request
    except ImportError as exc:  # routes with endpoints: only FastAPI makes them from methods
        raise TypeError("serve.ingress: methods routed by the app need FastAPI (pip install fastapi)") from exc

    def instance(request: Request) -> Any:
        inst = request.scope.get(INSTANCE_KEY)
        if not isinstance(inst, cls):
            raise RuntimeError(f"{cls.__name__}: a request not served by serve.ingress has no instance")
        return inst

    # This module's annotations are strings; FastAPI reads the real class.
    req = inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request)
    instance.__signature__ = inspect.Signature([req])  # type: ignore[attr-defined]

    sub = APIRouter()
    for r in mine:
        fn = r.endpoint
        sig = inspect.signature(fn)
        params = list(sig.parameters.values())
        if not params:
            raise TypeError(f"serve.ingress: {cls.__name__}.{fn.__name__} takes no self")
        first = params[0].replace(default=Depends(instance))
        # Parameters after self have no default order to keep once self has one.
        rest = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params[1:]]
        fn.__signature__ = sig.replace(parameters=[first, *rest])
        routes.remove(r)
        sub.routes.append(r)
    app.include_router(sub)


class ASGICallable:
    """The replica handler of an @serve.ingress deployment: one ASGI
    request per record."""

    def __init__(self, instance: Any, app: ASGIApp) -> None:
        self._instance = instance
        self._app = app

    def http_ingress(self) -> bool:
        return True

    async def handle(self, inp: Input, out: Output) -> None:
        req = inp.env.http_request()
        scope = _scope(req, inp.env.content_type)
        scope[INSTANCE_KEY] = self._instance
        await _Exchange(scope, inp.value, out).run(self._app)


def _scope(req: HTTPRequest, content_type: str) -> dict[str, Any]:
    raw: list[tuple[bytes, bytes]] = []
    for name, values in sorted(req.headers.items()):
        raw.extend((name.encode("latin-1"), v.encode("latin-1")) for v in values)
    if content_type:
        raw.append((b"content-type", content_type.encode("latin-1")))
    host = req.headers.get("host", [""])[0]
    server: tuple[str, int | None] | None = None
    if host:
        name, _, port = host.rpartition(":") if ":" in host else (host, "", "")
        server = (name, int(port)) if port.isdigit() else (host, None)
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": req.method.upper(),
        "scheme": "http",
        "path": unquote(req.path),
        "raw_path": req.path.encode("latin-1"),
        "query_string": req.query.encode("latin-1"),
        "root_path": "",
        "headers": raw,
        "client": None,
        "server": server,
        "state": {},
    }


class _Exchange:
    """One request through an ASGI app. receive hands the body once, then
    waits for the response to end (a disconnect then: StreamingResponse
    listens for one and stops its stream when it comes). send turns the
    response into the record's answer."""

    def __init__(self, scope: dict[str, Any], body: bytes, out: Output) -> None:
        self.scope = scope
        self.body = body
        self.out = out
        self.sent_body = False
        self.finished = asyncio.Event()
        self.status = 0
        self.headers: dict[str, list[str]] = {}
        self.content_type = ""
        self.streamed = False
        self.items = 0

    async def receive(self) -> dict[str, Any]:
        if not self.sent_body:
            self.sent_body = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self.finished.wait()
        return {"type": "http.disconnect"}

    async def send(self, msg: MutableMapping[str, Any]) -> None:
        kind = msg.get("type")
        if kind == "http.response.start":
            if self.status:
                raise RuntimeError("ASGI app started its response twice")
            status = int(msg.get("status", 200))
            if status == 101 or not 200 <= status <= 999:
                raise Internal(f"ASGI app answered status {status}, which a record cannot carry")
            self.status = status
            for name, value in msg.get("headers", []):
                n = bytes(name).decode("latin-1").lower()
                v = bytes(value).decode("latin-1")
                if n == "content-type":
                    self.content_type = v
                elif n != "content-length":  # the gateway writes the body's length, or streams it
                    self.headers.setdefault(n, []).append(v)
        elif kind == "http.response.body":
            if not self.status:
                raise RuntimeError("ASGI app sent a body before its response start")
            if self.finished.is_set():
                return
            chunk = bytes(msg.get("body", b""))
            more = bool(msg.get("more_body", False))
            if not self.streamed and not more:
                self._respond(False)
                self.out.emit(chunk, self.content_type)
                self.finished.set()
                return
            if not self.streamed:
                self.streamed = True
                self._respond(True)
            if chunk or (not more and self.items == 0):  # a stream has at least one item: it carries the status
                self.out.emit(chunk, self.content_type)
                self.items += 1
            if not more:
                self.finished.set()

    def _respond(self, streamed: bool) -> None:
        respond = getattr(self.out, "respond", None)
        if respond is not None:
            respond(HTTPResponse(self.status, self.headers), streamed)

    async def run(self, app: ASGIApp) -> None:
        try:
            await app(self.scope, self.receive, self.send)
        except Exception:
            if not self.status:
                raise  # nothing answered yet: the replica answers internal
            # Answered already (Starlette's error middleware sends its 500
            # before raising again): log it, as a web server does.
            _log.exception("ASGI app raised after answering")
        finally:
            ended = self.finished.is_set()
            self.finished.set()
        if not self.status:
            raise Internal("ASGI app returned without a response")
        if not ended:
            if not self.streamed:
                self._respond(False)
                self.out.emit(b"", self.content_type)
            elif self.items == 0:
                self.out.emit(b"", self.content_type)
