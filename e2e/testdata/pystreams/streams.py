"""Streams across languages: generators a Go deployment streams through
its handle (Squares sync, Cubes async), and deployments that stream a
Go one (Relay with async for, Collect with for in a thread). Asked for
a negative count, a generator fails after its items."""

import asyncio

from sluice import serve


@serve.deployment
class Squares:
    def __call__(self, n):
        for i in range(abs(n)):
            yield i * i
        if n < 0:
            raise ValueError(f"squares failed after {-n} items")


@serve.deployment
class Cubes:
    async def __call__(self, n):
        for i in range(abs(n)):
            await asyncio.sleep(0.01)
            yield i**3
        if n < 0:
            raise ValueError(f"cubes failed after {-n} items")


@serve.deployment
class Relay:
    def __init__(self, source):
        self.source = source.options(stream=True)

    async def __call__(self, n):
        async for x in self.source.remote(n):
            yield x + 2


@serve.deployment
class Collect:
    def __init__(self, source):
        self.source = source.options(stream=True)

    def __call__(self, n):
        items = []
        try:
            for x in self.source.remote(n):
                items.append(x)
        except Exception as exc:
            return {"items": items, "error": f"{type(exc).__name__}: {exc}", "code": getattr(exc, "code", "")}
        return {"items": items}


app = Relay.bind(serve.get_deployment_handle("GoCount"))
collect = Collect.bind(serve.get_deployment_handle("GoCount"))
