"""Tail calls. A handler that answers with what a handle call answers,
`return await handle.remote(x)` as Ray Serve code writes it (or `return
handle.remote(x)`), hands the call its own answer's way on: the callee
answers the caller straight, one Kafka hop and one visit to this replica
fewer, and the handler's record is done once the call is written.

A response awaited in the handler is handed over only where nothing can
come between the await and the return: the awaiting frame is the
handler's own (the coroutine the replica's handler awaits directly), its
next instruction after the await returns the result, and no try or with
block encloses it (the result, or the error, could be caught and
changed there). That is read from the bytecode, on CPython 3.11; on other
versions every response is awaited as usual."""

from __future__ import annotations

import dis
import sys
from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass
from functools import lru_cache
from types import CodeType, FrameType
from typing import Any


@dataclass(frozen=True)
class _Handler:
    code: CodeType  # the handler's own
    driver: CodeType  # the coroutine that awaits the handler's


_READS_TAILS = sys.version_info[:2] == (3, 11)
"""Whether this interpreter's bytecode is the one returns_awaited reads."""

_SERVING: ContextVar[_Handler | None] = ContextVar("sluice_tail_handler", default=None)


def code_of(fn: Any) -> CodeType | None:
    """The code object a call of fn runs: a function's, a bound method's,
    a callable instance's __call__'s; None for anything else."""
    for f in (fn, getattr(fn, "__call__", None)):  # noqa: B004
        code = getattr(getattr(f, "__func__", f), "__code__", None)
        if isinstance(code, CodeType):
            return code
    return None


def serving(fn: Any, driver: Callable[..., Any]) -> Token[_Handler | None] | None:
    """Marks the calling task as awaiting the coroutine of fn directly in
    driver (a coroutine function): a tail await in fn's frame may hand its
    call over. Undo with done(token). Nothing to mark where tail awaits
    are not read (not CPython 3.11): the request path pays nothing there."""
    if not _READS_TAILS:
        return None
    code, dcode = code_of(fn), code_of(driver)
    if code is None or dcode is None:
        return None
    return _SERVING.set(_handler(code, dcode))


@lru_cache(maxsize=1024)
def _handler(code: CodeType, driver: CodeType) -> _Handler:
    """One mark per handler, not one per request."""
    return _Handler(code, driver)


def done(token: Token[_Handler | None] | None) -> None:
    if token is not None:
        _SERVING.reset(token)


def tail_await(frame: FrameType | None) -> bool:
    """Whether frame, awaiting at its current instruction, is the served
    handler's and returns the awaited result as it is."""
    h = _SERVING.get()
    if h is None or frame is None or frame.f_code is not h.code:
        return False
    back = frame.f_back
    if back is None or back.f_code is not h.driver:
        return False
    return returns_awaited(frame.f_code, frame.f_lasti)


@lru_cache(maxsize=1024)
def returns_awaited(code: CodeType, lasti: int) -> bool:
    """Whether the await that starts at offset lasti of code is returned
    as it is, outside every exception handler's range (CPython 3.11:
    GET_AWAITABLE, LOAD_CONST None, SEND to a RETURN_VALUE)."""
    if not _READS_TAILS:
        return False
    ins = list(dis.get_instructions(code))
    at = next((i for i, x in enumerate(ins) if x.offset == lasti), None)
    if at is None or at + 2 >= len(ins):
        return False
    get, none, send = ins[at], ins[at + 1], ins[at + 2]
    if get.opname != "GET_AWAITABLE" or none.opname != "LOAD_CONST" or none.argval is not None:
        return False
    if send.opname != "SEND":
        return False
    end = next((x for x in ins if x.offset == send.argval), None)
    if end is None or end.opname != "RETURN_VALUE":
        return False
    parse = getattr(dis, "_parse_exception_table", None)
    if parse is None:
        return not getattr(code, "co_exceptiontable", b"")
    return not any(e.start <= lasti < e.end for e in parse(code))
