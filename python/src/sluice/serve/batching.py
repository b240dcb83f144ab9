"""@serve.batch, with Ray Serve's names and defaults: each caller passes
one item; the decorated coroutine gets a list of up to max_batch_size
items, gathered for at most batch_wait_timeout_s after the first, and
returns one result per item, in order. A replica's concurrency
(max_ongoing_requests) is what fills a batch: records in flight at once
wait in the same one. An exception fails every call of its batch."""

from __future__ import annotations

import asyncio
import functools
import inspect
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, overload

DEFAULT_MAX_BATCH_SIZE = 10
DEFAULT_BATCH_WAIT_TIMEOUT_S = 0.01

Batched = Callable[..., Awaitable[Any]]
"""What @serve.batch makes: called with one item (after self), it
returns that item's result; typed loosely, as it takes the list
function's item type."""


class _Batcher:
    """The batch being gathered for one function (or one instance's
    method) on one event loop."""

    def __init__(self, fn: Callable[[list[Any]], Awaitable[list[Any]]], size: int, wait_s: float) -> None:
        self._fn = fn
        self._size = size
        self._wait_s = wait_s
        self._items: list[tuple[Any, asyncio.Future[Any]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, item: Any) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._items.append((item, fut))
        if len(self._items) >= self._size:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self._wait_s, self._flush)
        return fut

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._items = self._items[: self._size], self._items[self._size :]
        if self._items:  # more than a batch came at once: the rest is the next one
            self._timer = asyncio.get_running_loop().call_later(self._wait_s, self._flush)
        if not batch:
            return
        task = asyncio.get_running_loop().create_task(self._run(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[tuple[Any, asyncio.Future[Any]]]) -> None:
        futs = [f for _, f in batch]
        try:
            results = await self._fn([item for item, _ in batch])
            if not isinstance(results, (list, tuple)) or len(results) != len(batch):
                n = len(results) if isinstance(results, (list, tuple)) else type(results).__name__
                raise TypeError(f"a @serve.batch function returned {n} results for a batch of {len(batch)}")
        except Exception as exc:
            for f in futs:
                if not f.done():
                    f.set_exception(exc)
            return
        for f, r in zip(futs, results, strict=True):
            if not f.done():
                f.set_result(r)


@overload
def batch(fn: Callable[..., Awaitable[Any]], /) -> Batched: ...


@overload
def batch(
    *, max_batch_size: int = DEFAULT_MAX_BATCH_SIZE, batch_wait_timeout_s: float = DEFAULT_BATCH_WAIT_TIMEOUT_S
) -> Callable[[Callable[..., Awaitable[Any]]], Batched]: ...


def batch(
    fn: Callable[..., Awaitable[Any]] | None = None,
    /,
    *,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    batch_wait_timeout_s: float = DEFAULT_BATCH_WAIT_TIMEOUT_S,
) -> Batched | Callable[[Callable[..., Awaitable[Any]]], Batched]:
    """Declares an async function or method that takes a list of items as
    one called per item: @serve.batch or @serve.batch(max_batch_size=,
    batch_wait_timeout_s=)."""
    if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int) or max_batch_size < 1:
        raise ValueError(f"@serve.batch: max_batch_size: {max_batch_size!r} is not a positive integer")
    if not isinstance(batch_wait_timeout_s, (int, float)) or batch_wait_timeout_s < 0:
        raise ValueError(f"@serve.batch: batch_wait_timeout_s: {batch_wait_timeout_s!r} is not a non-negative number")

    def wrap(f: Callable[..., Awaitable[Any]]) -> Batched:
        if not inspect.iscoroutinefunction(f):
            raise TypeError(f"@serve.batch: {f.__qualname__} is not an async function (declare it async def)")
        params = list(inspect.signature(f).parameters)
        method = bool(params) and params[0] == "self"
        # One batcher per instance (methods) or per function, per loop.
        per_owner: weakref.WeakKeyDictionary[Any, dict[int, _Batcher]] = weakref.WeakKeyDictionary()
        shared: dict[int, _Batcher] = {}

        def batcher(owner: Any) -> _Batcher:
            loop = id(asyncio.get_running_loop())
            table = shared if owner is None else per_owner.setdefault(owner, {})
            b = table.get(loop)
            if b is None:
                call = functools.partial(f, owner) if owner is not None else f
                b = table[loop] = _Batcher(call, max_batch_size, float(batch_wait_timeout_s))
            return b

        @functools.wraps(f)
        async def one(*args: Any) -> Any:
            if method:
                if len(args) != 2:
                    raise TypeError(f"{f.__qualname__} takes one item ({len(args) - 1} given)")
                return await batcher(args[0]).submit(args[1])
            if len(args) != 1:
                raise TypeError(f"{f.__qualname__} takes one item ({len(args)} given)")
            return await batcher(None).submit(args[0])

        return one

    return wrap(fn) if fn is not None else wrap
