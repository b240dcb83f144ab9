"""The event loop a replica process runs on: uvloop's when it is
installed (`sluice[fast]`; SLUICE_UVLOOP=0 turns it off), asyncio's
otherwise. Each record wakes the loop from the poll thread, and uvloop's
wake-up and task steps cost about a third less CPU per record."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def _factory() -> Any:
    if os.environ.get("SLUICE_UVLOOP", "1") == "0":
        return None
    try:
        import uvloop  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    return uvloop.new_event_loop


def kind() -> str:
    """The loop new_loop and run make: "uvloop" or "asyncio"."""
    return "asyncio" if _factory() is None else "uvloop"


def new_loop() -> asyncio.AbstractEventLoop:
    """A new event loop of kind()."""
    f = _factory()
    loop: asyncio.AbstractEventLoop = asyncio.new_event_loop() if f is None else f()
    return loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on a loop of kind() (asyncio's own on Python 3.10)."""
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=new_loop) as r:
            return r.run(main)
    return asyncio.run(main)
