"""How a replica runs a user deployment: the record's method (sl-method;
absent: __call__) on the instance, a coroutine on the loop and a plain
function in a thread; a generator's items as a stream; the lifecycle
hooks of Ray Serve's names, reconfigure(user_config) and
check_health()."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any

from sluice.replica import Input, Output, StreamOutput
from sluice.serve import tail
from sluice.serve.codec import apply, decode, encode
from sluice.serve.deployment import Options
from sluice.serve.handle import DeploymentResponse

HOOKS = frozenset({"reconfigure", "check_health"})
"""Methods the platform calls, never a request."""


class HealthCheckFailed(Exception):
    """check_health raised, or did not return within health_check_timeout_s."""


class Invoker:
    """The replica handler of a user deployment (a class's instance or a
    function), with its options."""

    def __init__(self, target: Any, opts: Options) -> None:
        self._target = target
        self._opts = opts
        self._class = not inspect.isroutine(target)

    def streams(self) -> bool:
        return self._opts.stream

    def has_method(self, name: str) -> bool:
        """Whether a record may call name: a public method of a class
        deployment's instance, not one of the platform's hooks."""
        if not self._class or name.startswith("_") or name in HOOKS:
            return False
        return callable(getattr(self._target, name, None))

    async def handle(self, inp: Input, out: Output) -> None:
        arg = decode(inp.value, inp.env.content_type)
        t = self._target
        fn = getattr(t, inp.env.method) if inp.env.method else t if inspect.isroutine(t) else t.__call__
        if not self._opts.stream and _plain(fn):
            # The thread that runs a plain function also produces its
            # answer, as soon as it returns: no hop back to the event loop
            # first. What it cannot answer there comes back.
            result = await asyncio.to_thread(_run_and_emit, fn, arg, out)
            if result is _EMITTED:
                return
        else:
            served = tail.serving(fn, _call) if not self._opts.stream else None
            try:
                result = await _call(fn, arg)
            finally:
                tail.done(served)
        if isinstance(result, DeploymentResponse):
            if result._hand_over(out, inp.env):
                return
            result = await result
        if inspect.isasyncgen(result) or inspect.isgenerator(result):
            if not self._opts.stream:
                if not isinstance(out, StreamOutput):
                    raise TypeError(f"deployment {self._opts.name}: a generator where a single value is answered")
                out.start_stream()
            if inspect.isasyncgen(result):
                async for item in result:
                    out.emit(*encode(item))
            else:
                await _drain_sync(result, out)
            return
        if self._opts.stream:
            if not isinstance(result, (list, tuple)):
                what = type(result).__name__
                raise TypeError(f"deployment {self._opts.name} streams (stream=True), but returned a {what}")
            for item in result:
                out.emit(*encode(item))
            return
        out.emit(*encode(result))

    async def reconfigure(self, user_config: Any) -> bool:
        """Calls the instance's reconfigure(user_config), if it has one;
        reports whether it did."""
        fn = getattr(self._target, "reconfigure", None) if self._class else None
        if fn is None or not callable(fn):
            return False
        await _call(fn, user_config)
        return True

    def checks_health(self) -> bool:
        return self._class and callable(getattr(self._target, "check_health", None))

    async def check_health(self) -> None:
        """Runs check_health once, bounded by health_check_timeout_s;
        raises HealthCheckFailed naming what went wrong."""
        fn = self._target.check_health
        try:
            await asyncio.wait_for(_call0(fn), self._opts.health_check_timeout_s)
        except asyncio.TimeoutError:
            raise HealthCheckFailed(
                f"deployment {self._opts.name}: check_health did not return within "
                f"{self._opts.health_check_timeout_s:g}s (health_check_timeout_s)"
            ) from None
        except Exception as exc:
            raise HealthCheckFailed(
                f"deployment {self._opts.name}: check_health raised {type(exc).__name__}: {exc}"
            ) from exc


async def watch_health(inv: Invoker, period_s: float, unhealthy: Callable[[HealthCheckFailed], None],
                       log: logging.Logger) -> None:  # fmt: skip
    """Calls check_health every period_s until it fails, then unhealthy
    (once) and returns. Returns at once for a deployment without it."""
    if not inv.checks_health():
        return
    while True:
        await asyncio.sleep(period_s)
        try:
            await inv.check_health()
        except HealthCheckFailed as exc:
            log.error("health check failed", extra={"err": str(exc)})
            unhealthy(exc)
            return


async def _call(fn: Any, arg: Any) -> Any:
    if _is_coroutine(fn):
        return await apply(fn, arg)
    if inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn):
        return apply(fn, arg)  # iterated by the caller
    return await asyncio.to_thread(apply, fn, arg)


async def _call0(fn: Any) -> Any:
    if _is_coroutine(fn):
        return await fn()
    return await asyncio.to_thread(fn)


def _plain(fn: Any) -> bool:
    """Whether fn is a plain function (run in a thread), not a coroutine
    or generator function."""
    return not (_is_coroutine(fn) or inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn))


_EMITTED = object()


def _run_and_emit(fn: Any, arg: Any, out: Output) -> Any:
    """Calls fn and emits its result, in the calling thread; returns a
    result it cannot emit there (a DeploymentResponse to await, a
    generator to iterate) for the caller to handle, else _EMITTED."""
    result = apply(fn, arg)
    if isinstance(result, DeploymentResponse) or inspect.isasyncgen(result) or inspect.isgenerator(result):
        return result
    out.emit(*encode(result))
    return _EMITTED


def _is_coroutine(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))  # noqa: B004


_END = object()


async def _drain_sync(gen: Any, out: Output) -> None:
    """Emits a plain generator's items, each next() in a thread (it may
    block, as plain functions do)."""
    while True:
        item = await asyncio.to_thread(next, gen, _END)
        if item is _END:
            return
        out.emit(*encode(item))
