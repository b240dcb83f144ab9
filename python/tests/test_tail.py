"""Tail calls (sluice.serve.tail): a handler that returns what a handle
call answers hands the call over, and the callee answers the caller
straight; a handler that could still catch or change the result does not."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from sluice import serve
from sluice.protocol import Envelope, Hop, Request, SluiceError, hand_over
from sluice.replica import current
from sluice.serve import DeploymentHandle
from sluice.serve.tail import returns_awaited

py311 = pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="tail awaits are read from CPython 3.11 bytecode")


class _Spy:
    """An awaitable that records where it was awaited."""

    def __init__(self) -> None:
        self.where: tuple[Any, int] | None = None

    def __await__(self) -> Iterator[Any]:
        f = sys._getframe(1)
        self.where = (f.f_code, f.f_lasti)
        return iter([])


async def tail(r: Any) -> Any:
    return await r


async def stored(r: Any) -> Any:
    x = await r
    return x


async def changed(r: Any) -> Any:
    return (await r) + 1


async def guarded(r: Any) -> Any:
    try:
        return await r
    except ValueError:
        return None


class _Lock:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *_: Any) -> None:
        return None


async def within(r: Any) -> Any:
    async with _Lock():
        return await r


async def after_try(r: Any) -> Any:
    try:
        int("1")
    except ValueError:
        return None
    return await r


def _awaited_at(fn: Any) -> tuple[Any, int]:
    spy = _Spy()
    coro = fn(spy)
    try:
        coro.send(None)
    except (StopIteration, TypeError):
        pass
    finally:
        coro.close()
    assert spy.where is not None
    return spy.where


@py311
@pytest.mark.parametrize(
    ("fn", "want"),
    [(tail, True), (after_try, True), (stored, False), (changed, False), (guarded, False), (within, False)],
)
def test_only_an_await_returned_as_it_is_outside_any_handler_is_a_tail(fn: Any, want: bool) -> None:
    assert returns_awaited(*_awaited_at(fn)) is want


def test_hand_over_takes_the_answers_way() -> None:
    inp = Request("in", b"k", b"5", Envelope(id="outer", reply_to="caller-replies", deadline_ns=7))
    call = Request("callee", b"c", b"5", Envelope(id="inner", deadline_ns=7, model="m"))
    got = hand_over(inp, call)
    assert (got.topic, got.key, got.value) == ("callee", b"c", b"5")
    assert (got.env.id, got.env.reply_to, got.env.cont, got.env.model) == ("outer", "caller-replies", [], "m")
    # A chain of calls (a continuation of its own): the last step answers
    # under the id the caller waits on.
    call.env.cont = [Hop("b", "inner-b")]
    got = hand_over(inp, call)
    assert (got.env.id, got.env.cont) == ("inner", [Hop("b", "outer")])
    assert call.env.cont == [Hop("b", "inner-b")], "the call's own continuation is not changed"
    # A record that was itself forwarded answers along its continuation:
    # its call is awaited, not handed over.
    inp.env.cont = [Hop("next", "final")]
    with pytest.raises(ValueError, match="continuation"):
        hand_over(inp, call)


class Where:
    """Answers with the reply topic and id its request carries."""

    def __call__(self, x: str) -> dict[str, str]:
        if x == "boom":
            raise ValueError("boom")
        env = current()
        assert env is not None and env.envelope is not None
        return {"x": x, "reply_to": env.envelope.reply_to, "id": env.envelope.id}


FRONT_IDS: dict[str, str] = {}
"""The id of each front's request, by its argument."""


def _front_id(x: str) -> None:
    env = current()
    assert env is not None
    FRONT_IDS[x] = env.id


class Tail:
    def __init__(self, inner: DeploymentHandle) -> None:
        self.inner = inner

    async def __call__(self, x: str) -> Any:
        _front_id(x)
        return await self.inner.remote(x)


class Unawaited:
    def __init__(self, inner: DeploymentHandle) -> None:
        self.inner = inner

    async def __call__(self, x: str) -> Any:
        _front_id(x)
        return self.inner.remote(x)


class Stored:
    def __init__(self, inner: DeploymentHandle) -> None:
        self.inner = inner

    async def __call__(self, x: str) -> Any:
        _front_id(x)
        got = await self.inner.remote(x)
        return got


class Guarded:
    def __init__(self, inner: DeploymentHandle) -> None:
        self.inner = inner

    async def __call__(self, x: str) -> Any:
        _front_id(x)
        try:
            return await self.inner.remote(x)
        except SluiceError as exc:
            return {"caught": exc.code}


CACHE: dict[str, Any] = {}


class Cached:
    """Returns a response it also keeps for later requests."""

    def __init__(self, inner: DeploymentHandle) -> None:
        self.inner = inner

    async def __call__(self, x: str) -> Any:
        _front_id(x)
        if x not in CACHE:
            CACHE[x] = self.inner.remote(x)
        return await CACHE[x]


AUDITED: list[Any] = []


class Audited:
    """Returns a response that a task it started also awaits."""

    def __init__(self, inner: DeploymentHandle) -> None:
        self.inner = inner

    async def audit(self, r: Any) -> None:
        AUDITED.append(await r)

    async def __call__(self, x: str) -> Any:
        _front_id(x)
        r = self.inner.remote(x)
        asyncio.get_running_loop().create_task(self.audit(r))
        return await r


class Chained:
    """The first call's answer forwarded to the second, whose answer is
    the handler's."""

    def __init__(self, first: DeploymentHandle, second: DeploymentHandle) -> None:
        self.first = first
        self.second = second

    async def __call__(self, x: str) -> Any:
        _front_id(x)
        return await self.second.remote(self.first.remote(x))


class Upper:
    def __call__(self, x: str) -> str:
        return x.upper()


@pytest.fixture
def app_name() -> Iterator[str]:
    yield "py-tail-" + uuid.uuid4().hex[:8]
    serve.shutdown()


@py311
def test_a_tail_call_is_answered_by_the_callee_straight(brokers: list[str], app_name: str) -> None:
    where = serve.deployment(Where).bind()
    fronts: list[tuple[type, bool]] = [(Tail, True), (Unawaited, True), (Stored, False), (Guarded, False),
                                       (Cached, False), (Audited, False)]  # fmt: skip
    for i, (front, handed) in enumerate(fronts):
        h = serve.run(serve.deployment(front).bind(where), name=f"{app_name}-{i}", brokers=brokers)
        x = f"{front.__name__}-{i}"
        got = h.remote(x).result(timeout_s=30)
        assert got["x"] == x and got["reply_to"] == h._caller.reply_topic
        # Handed over, the callee answers under the id of the front's own
        # request (the driver's call); else under the id of the front's
        # call, answered to the front, which answers on.
        assert (got["id"] == FRONT_IDS[x]) is handed, (front.__name__, got, FRONT_IDS[x])
        if front is Cached:  # a second request answered from the kept response
            assert h.remote(x).result(timeout_s=30) == got
            continue
        if front is Audited:  # the task got the answer too
            deadline = time.monotonic() + 10
            while got not in AUDITED and time.monotonic() < deadline:
                time.sleep(0.05)
            assert got in AUDITED
            continue
        if front is Guarded:
            assert h.remote("boom").result(timeout_s=30) == {"caught": "internal"}
            continue
        # The callee's error reaches the driver the same way either way.
        with pytest.raises(SluiceError) as exc:
            h.remote("boom").result(timeout_s=30)
        assert exc.value.code == "internal" and "ValueError: boom" in exc.value.message, exc.value.message


@py311
def test_a_tail_call_with_a_continuation(brokers: list[str], app_name: str) -> None:
    app = serve.deployment(Chained).bind(serve.deployment(Upper).bind(), serve.deployment(Where).bind())
    h = serve.run(app, name=app_name, brokers=brokers)
    got = h.remote("ab").result(timeout_s=30)
    assert got["x"] == "AB" and got["reply_to"] == h._caller.reply_topic, got
    assert got["id"] == FRONT_IDS["ab"], "the chain's last step answers under the front's id"
