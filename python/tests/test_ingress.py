"""@serve.ingress: a FastAPI app driven by HTTP ingress records. The
driver is given what a replica gives it (an Input with the record's
envelope, an Output that records each respond and emit); the replica and
the gateway around it are tested end to end in e2e (TestPythonExamples)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI, HTTPException, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel

from sluice import serve
from sluice.protocol import Envelope, HTTPRequest, HTTPResponse, Internal
from sluice.replica import Input
from sluice.serve.describe import handler
from sluice.serve.http import http_handler, takes_request
from sluice.serve.ingress import ASGICallable

api = FastAPI()


class Item(BaseModel):
    name: str
    price: float


class Shop:
    """A deployment class served by api: its methods are routes."""

    def __init__(self, currency: str) -> None:
        self.currency = currency
        self.release = asyncio.Event()

    @api.get("/items/{item_id}")
    def item(self, item_id: int, detail: bool = False) -> dict[str, Any]:
        return {"id": item_id, "detail": detail, "currency": self.currency}

    @api.post("/items", status_code=201)
    async def create(self, item: Item, response: Response) -> dict[str, Any]:
        response.headers["x-created"] = item.name
        return {"name": item.name, "price": f"{item.price:.2f} {self.currency}"}

    @api.get("/teapot")
    def teapot(self) -> JSONResponse:
        return JSONResponse({"short": "and stout"}, status_code=418, headers={"x-pot": "1"})

    @api.get("/missing")
    def missing(self) -> None:
        raise HTTPException(404, "no such thing")

    @api.get("/broken")
    def broken(self) -> None:
        raise ValueError("broken on purpose")

    @api.get("/count")
    async def count(self, n: int) -> StreamingResponse:
        async def numbers() -> AsyncIterator[bytes]:
            for i in range(n):
                yield f"{i}\n".encode()
                if i == 0:
                    await self.release.wait()  # the first item is out before the handler goes on

        return StreamingResponse(numbers(), media_type="text/plain")


ShopDeployment = serve.deployment(serve.ingress(api)(Shop))


@api.get("/plain")
def plain(q: str = "") -> str:
    return "plain " + q


@dataclass
class Recorder:
    """An Output as the replica hands an HTTP ingress: what it was told."""

    responses: list[tuple[HTTPResponse, bool]] = field(default_factory=list)
    items: list[tuple[bytes, str]] = field(default_factory=list)
    got: asyncio.Event = field(default_factory=asyncio.Event)

    def respond(self, resp: HTTPResponse, streamed: bool = False) -> None:
        self.responses.append((resp, streamed))

    def emit(self, value: bytes, content_type: str = "") -> None:
        self.items.append((value, content_type))
        self.got.set()


def record(method: str, path: str, query: str = "", body: bytes = b"", content_type: str = "") -> Input:
    req = HTTPRequest(method=method, path=path, query=query, headers={"host": ["example.test:8000"]})
    return Input(env=Envelope(id="r1", content_type=content_type, http=req), topic="in", key=None, value=body)


async def call(h: ASGICallable, inp: Input) -> Recorder:
    out = Recorder()
    await h.handle(inp, out)
    return out


@pytest.fixture
def shop() -> tuple[Shop, ASGICallable]:
    s = Shop("EUR")
    h = http_handler(Shop, s)
    assert isinstance(h, ASGICallable)
    return s, h


def test_an_ingress_class_is_an_http_deployment() -> None:
    assert takes_request(Shop)
    assert handler(ShopDeployment.bind("EUR"))["kind"] == "http"


async def test_routes_methods_path_and_query(shop: tuple[Shop, ASGICallable]) -> None:
    _, h = shop
    out = await call(h, record("GET", "/items/7", "detail=true"))
    assert [(r.status, s) for r, s in out.responses] == [(200, False)]
    (body, ct), = out.items  # fmt: skip
    assert ct == "application/json"
    assert json.loads(body) == {"id": 7, "detail": True, "currency": "EUR"}

    out = await call(h, record("GET", "/plain", "q=a%20b"))
    assert json.loads(out.items[0][0]) == "plain a b"


async def test_a_json_body_status_and_headers(shop: tuple[Shop, ASGICallable]) -> None:
    _, h = shop
    body = json.dumps({"name": "pen", "price": 2}).encode()
    out = await call(h, record("POST", "/items", body=body, content_type="application/json"))
    (resp, streamed), = out.responses  # fmt: skip
    assert (resp.status, streamed, resp.headers.get("x-created")) == (201, False, ["pen"])
    assert "content-length" not in resp.headers and "content-type" not in resp.headers
    assert json.loads(out.items[0][0]) == {"name": "pen", "price": "2.00 EUR"}

    out = await call(h, record("GET", "/teapot"))
    assert (out.responses[0][0].status, out.responses[0][0].headers["x-pot"]) == (418, ["1"])


async def test_errors_the_app_answers(shop: tuple[Shop, ASGICallable]) -> None:
    _, h = shop
    out = await call(h, record("GET", "/missing"))
    assert out.responses[0][0].status == 404
    assert json.loads(out.items[0][0]) == {"detail": "no such thing"}
    out = await call(h, record("GET", "/nowhere"))
    assert out.responses[0][0].status == 404
    out = await call(h, record("PUT", "/items/1"))
    assert out.responses[0][0].status == 405
    out = await call(h, record("POST", "/items", body=b"{not json", content_type="application/json"))
    assert out.responses[0][0].status == 422
    # An exception in an endpoint: Starlette answers 500 and raises it
    # again; the answer stands, the exception is logged.
    out = await call(h, record("GET", "/broken"))
    assert out.responses[0][0].status == 500


async def test_a_streaming_response_is_a_stream_sent_as_it_comes(shop: tuple[Shop, ASGICallable]) -> None:
    s, h = shop
    out = Recorder()
    task = asyncio.create_task(h.handle(record("GET", "/count", "n=3"), out))
    await asyncio.wait_for(out.got.wait(), 5)
    assert out.items == [(b"0\n", "text/plain; charset=utf-8")]
    assert not task.done()
    assert [(r.status, st) for r, st in out.responses] == [(200, True)]
    s.release.set()
    await asyncio.wait_for(task, 5)
    assert [v for v, _ in out.items] == [b"0\n", b"1\n", b"2\n"]


async def test_an_app_that_answers_nothing_is_internal() -> None:
    async def silent(scope: Any, receive: Any, send: Any) -> None:
        return None

    with pytest.raises(Internal, match="without a response"):
        await call(ASGICallable(object(), silent), record("GET", "/"))


def test_ingress_refuses_what_it_cannot_serve() -> None:
    with pytest.raises(TypeError, match="not an ASGI application"):
        serve.ingress(42)
    with pytest.raises(TypeError, match="decorates a class"):
        serve.ingress(FastAPI())(plain)  # type: ignore[type-var]
