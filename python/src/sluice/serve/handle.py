"""Handles and responses: calls from Python to a deployment of a running
application, as Ray Serve's DeploymentHandle and DeploymentResponse."""

from __future__ import annotations

import asyncio
import inspect
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from functools import lru_cache
from typing import Any, Protocol

from sluice.protocol import Envelope, Hop, Request, handle_call, new_request
from sluice.protocol.names import Namer
from sluice.replica.context import current
from sluice.serve.caller import Answer, Caller, Link
from sluice.serve.codec import Args, call_value, decode, encode
from sluice.serve.multiplex import check_model_id
from sluice.serve.tail import tail_await

DEFAULT_TIMEOUT_S = 30.0
"""The deadline of a call made outside any request (a request's calls take its own)."""


class Forwarded(RuntimeError):
    """The response was passed to another call, which its replica answered
    straight to: it has no result here. Await the response of that call."""


class Reader(Protocol):
    """Reads the answer of a call that was sent, once: in the calling
    thread, or in the background (a call through the gateway)."""

    def read_here(self) -> None: ...

    def read_later(self) -> None: ...


class DeploymentResponse:
    """The future result of a call: await it, or block on result()."""

    def __init__(self, fut: Future[Answer], call: _Call | None = None, reader: Reader | None = None) -> None:
        self._fut = fut
        self._call = call
        self._reader = reader

    def _settle_here(self, blocking: bool = False) -> None:
        """Sends the call now if it waits for the loop's next turn; raises
        Forwarded if its result went on to another deployment. A call
        with a reader has its answer read here when blocking (the caller
        waits for it anyway), else in the background."""
        if self._reader is not None:
            (self._reader.read_here if blocking else self._reader.read_later)()
        if self._call is None:
            return
        if self._call.next is not None:
            raise Forwarded(f"the result of this call to {self._call.deployment} went on to "
                            f"{self._call.next.deployment}: await that call's response")  # fmt: skip
        _send(self._call)

    def result(self, timeout_s: float | None = None) -> Any:
        """The answer, decoded; raises the call's SluiceError, or
        TimeoutError when none came within timeout_s (the call goes on).
        Blocks: not for the event loop's thread (await the response there)."""
        self._settle_here(blocking=timeout_s is None)  # a bounded wait reads in the background
        try:
            ans = self._fut.result(timeout_s)
        except FutureTimeout:
            raise TimeoutError(f"no answer within {timeout_s}s") from None
        return decode(ans.value, ans.content_type)

    def _then(self, fn: Callable[[Any, BaseException | None], None]) -> None:
        """Calls fn with the decoded answer, or the error, once the call
        settles, with no thread waiting for it meanwhile (its answer is
        read in the background)."""
        try:
            self._settle_here()
        except BaseException as exc:
            fn(None, exc)
            return

        def settled(f: Future[Answer]) -> None:
            try:
                ans = f.result()
                value = decode(ans.value, ans.content_type)
            except BaseException as exc:
                fn(None, exc)
                return
            fn(value, None)

        self._fut.add_done_callback(settled)

    def __await__(self) -> Generator[Any, None, Any]:
        c = self._call
        if c is not None and c.once and not c.sent and c.next is None and tail_await(sys._getframe(1)):
            # `return await response` in the handler itself: the response
            # goes back to the replica's handler, which hands it over.
            return _itself(self).__await__()
        return self._resolve().__await__()

    def _hand_over(self, out: Any, served: Envelope) -> bool:
        """Sends this call, not sent yet, as the answer of the record being
        served (served, its envelope; out, its Output), so that the callee
        answers where that answer would have gone (sluice.serve.tail).
        Only a call made while serving that record, which nothing else
        holds (no other task or cache can await it after), to a Python
        deployment of this graph that answers one value, small enough to
        go in its record; False, nothing sent, otherwise (it is then
        awaited as usual)."""
        c = self._call
        if c is None or not c.once or c.parent is not served or self._reader is not None:
            return False
        # Held by the handler's return value, this frame and the count's
        # own argument only.
        if sys.getrefcount(self) > _SOLE_REFS:
            return False
        may = getattr(out, "can_hand_over", None)
        if may is None or not may():
            return False
        chain = _take(c, last=True)
        if chain is None:
            return False
        req = _request(chain)
        claims = c.caller.claims
        if len(req.value or b"") > (claims.threshold if claims is not None else HAND_OVER_MAX_BYTES):
            _chain(c.caller.call(req), c.out)  # a claim check is the caller's (sluice.serve.caller)
            return False
        end = c.caller.trace(req)  # the call span, the callee's spans its children
        out.hand_over(req)
        if end is not None:
            end(None)
        return True

    async def _resolve(self) -> Any:
        self._settle_here()
        ans = await asyncio.shield(asyncio.wrap_future(self._fut))
        return decode(ans.value, ans.content_type)


_SOLE_REFS = 3
"""sys.getrefcount of a response only the handler's result holds, seen in
_hand_over (CPython 3.11, where tail calls are read)."""

HAND_OVER_MAX_BYTES = 256 << 10
"""The largest call value handed over without a claim store (a larger one
is sent by the caller, which answers a produce refused as too large)."""


@lru_cache(maxsize=1024)
def _answers_once(target: Any, method: str, streams: bool) -> bool:
    if streams:
        return False
    fn = getattr(target, method or "__call__", None) if inspect.isclass(target) else target
    return fn is not None and not (inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn))


class DeploymentResponseGenerator:
    """The items of a streamed call (handle.options(stream=True)): iterate
    it with for (blocking: not on the event loop's thread) or async for.
    An item is awaited until the call's deadline; the call's error is
    raised where the stream ends with it."""

    def __init__(self, head: Link, deadline_ns: int) -> None:
        self._link = head
        self._deadline_ns = deadline_ns

    def _remaining_s(self) -> float:
        return max(0.0, (self._deadline_ns - time.time_ns()) / 1e9)

    def _step(self, step: tuple[Answer, Link] | None) -> Any:
        if step is None:
            raise StopIteration
        ans, self._link = step
        return decode(ans.value, ans.content_type)

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            step = self._link.result(self._remaining_s())
        except FutureTimeout:
            raise TimeoutError("the stream's deadline passed before its next item") from None
        return self._step(step)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        try:
            step = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(self._link)), self._remaining_s())
        except asyncio.TimeoutError:
            raise TimeoutError("the stream's deadline passed before its next item") from None
        try:
            return self._step(step)
        except StopIteration:
            raise StopAsyncIteration from None


class DeploymentHandle:
    """Calls one deployment of an application: from outside (to its
    ingress topic) or from inside another deployment (on the edge between
    them, with the calling request's deadline, trace and headers).
    handle.NAME (or options(method_name=NAME)) calls the method NAME of
    a class deployment; options(stream=True) answers with a
    DeploymentResponseGenerator."""

    def __init__(self, caller: Caller, namer: Namer, app: str, deployment: str, source: str | None,
                 *, method_name: str = "", stream: bool = False, model: str = "",
                 callee: Any = None) -> None:  # fmt: skip
        self._caller = caller
        self._namer = namer
        self._app = app
        self.deployment_name = deployment
        self._source = source  # the calling deployment; None: the application's ingress
        self._method = method_name
        self._stream = stream
        self._model = model  # options(multiplexed_model_id=): sl-model and the record key
        # The called deployment (a serve Deployment) when it is a Python one
        # bound in this graph: only a call known to answer one value as
        # Python encodes it may be a tail call (sluice.serve.tail).
        self._callee = callee

    def options(
        self,
        *,
        method_name: str | None = None,
        stream: bool | None = None,
        multiplexed_model_id: str | None = None,
        **unsupported: Any,
    ) -> DeploymentHandle:
        """The same handle calling another method, or streaming, or naming
        a model for a multiplexed deployment (sent with sl-model and keyed
        by the id, so every call for one model goes to the same partition,
        hence replica)."""
        for k in unsupported:
            raise TypeError(
                f"DeploymentHandle.options: {k} is not supported "
                "(Sluice takes method_name, stream and multiplexed_model_id)"
            )
        m = self._method if method_name is None else method_name
        if m == "__call__":
            m = ""
        if m and (m.startswith("_") or not m.isidentifier()):
            raise ValueError(f"method_name {m!r}: not a public method name")
        model = self._model
        if multiplexed_model_id is not None:
            model = check_model_id(multiplexed_model_id) if multiplexed_model_id else ""
        return DeploymentHandle(self._caller, self._namer, self._app, self.deployment_name, self._source,
                                method_name=m, stream=self._stream if stream is None else stream,
                                model=model, callee=self._callee)  # fmt: skip

    def _answers_once(self) -> bool:
        """Whether a unary call of this handle is answered with one value,
        encoded as a Python deployment encodes its result: the callee is a
        Python deployment of this graph that does not stream, and the
        method called is not a generator function."""
        d = self._callee
        return d is not None and not self._stream and _answers_once(d.target, self._method, d.opts.stream)

    def __getattr__(self, name: str) -> DeploymentHandle:
        if name.startswith("_"):
            raise AttributeError(name)
        return self.options(method_name=name)

    def _topic(self) -> str:
        if self._source is None:
            return self._namer.ingress(self._app)
        return self._namer.edge(self._app, self._source, self.deployment_name)

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        """Calls the deployment with args and kwargs (one positional
        argument travels as itself; several, or keyword ones, as
        codec.Args, which a Python deployment spreads into its method's
        parameters). Returns a DeploymentResponse, or a
        DeploymentResponseGenerator for a handle with stream=True (typed
        Any, as which one depends on the handle's options). A response
        among several arguments is awaited first.

        A unary call made on an event loop is sent at the loop's next turn
        (or when awaited): a DeploymentResponse passed to another unary
        call of __call__ in the same turn is forwarded, one record whose
        continuation (sl-cont) takes the first deployment's answer
        straight to the second, never back here. Otherwise a response
        passed in is awaited first, and the call sent when it settles."""
        arg = call_value(args, kwargs)
        parent = current()
        deadline_ns = time.time_ns() + int(DEFAULT_TIMEOUT_S * 1e9)
        if parent is not None and parent.envelope is not None and parent.envelope.deadline_ns:
            deadline_ns = parent.envelope.deadline_ns  # the call takes the request's (handle_call)
        envelope = parent.envelope if parent is not None else None
        loop = _running_loop()
        if isinstance(arg, DeploymentResponse) and not self._stream and loop is not None:
            up = arg._call
            with _chains:
                if (
                    up is not None
                    and not up.sent
                    and up.next is None
                    and not self._method  # a continuation hop names no method (docs/PROTOCOL.md)
                    and not self._model  # nor a model, nor a key
                    and not up.model
                    and up.caller is self._caller
                ):
                    c = _Call(self, envelope, deadline_ns, None)
                    c.prev, up.next = up, c  # sent with up's chain, at up's turn
                    return DeploymentResponse(c.out, c)
        out: Future[Any] = Future()

        def send(value: Any) -> None:
            if self._stream:
                body, content_type = encode(value)
                env = Envelope(id=self._caller.new_id(), content_type=content_type, method=self._method,
                               model=self._model)  # fmt: skip
                if envelope is not None:
                    env = handle_call(envelope, env)
                if env.deadline_ns == 0:
                    env.deadline_ns = deadline_ns
                key = self._model.encode() or None
                _chain(self._caller.call_stream(new_request(self._topic(), key, env, body)), out)
                return
            c = _Call(self, envelope, deadline_ns, value)
            _send(c)
            _chain(c.out, out)

        if isinstance(arg, DeploymentResponse):
            try:
                arg._settle_here()
            except Forwarded as exc:
                out.set_exception(exc)
            else:

                def upstream_done(f: Future[Answer]) -> None:
                    if (exc := f.exception()) is not None:
                        out.set_exception(exc)
                        return
                    ans = f.result()
                    send(decode(ans.value, ans.content_type))

                arg._fut.add_done_callback(upstream_done)
        elif isinstance(arg, Args) and has_responses(arg):
            resolve_args(arg, lambda value, exc: out.set_exception(exc) if exc is not None else send(value))
        elif not self._stream and loop is not None:
            c = _Call(self, envelope, deadline_ns, arg)
            loop.call_soon(_send, c)
            return DeploymentResponse(c.out, c)
        else:
            send(arg)
        if self._stream:
            return DeploymentResponseGenerator(out, deadline_ns)
        return DeploymentResponse(out)


def has_responses(a: Args) -> bool:
    """Whether a call's arguments hold responses still to settle."""
    return any(isinstance(v, DeploymentResponse) for v in (*a.args, *a.kwargs.values()))


def resolve_args(a: Args, done: Callable[[Any, BaseException | None], None]) -> None:
    """Calls done with a's arguments, each response among them replaced by
    its answer once all have settled (no thread waits meanwhile), or with
    the first error."""
    args, kwargs = list(a.args), dict(a.kwargs)
    slots: list[tuple[Any, Any]] = [(args, i) for i, v in enumerate(args) if isinstance(v, DeploymentResponse)]
    slots += [(kwargs, k) for k, v in kwargs.items() if isinstance(v, DeploymentResponse)]
    lock = threading.Lock()
    state = {"left": len(slots), "failed": False}
    for holder, key in slots:
        resp: DeploymentResponse = holder[key]

        def settled(value: Any, exc: BaseException | None, holder: Any = holder, key: Any = key) -> None:
            with lock:
                if state["failed"]:
                    return
                if exc is None:
                    holder[key] = value
                    state["left"] -= 1
                    finished = state["left"] == 0
                else:
                    state["failed"] = True
            if exc is not None:
                done(None, exc)
            elif finished:
                done(Args(tuple(args), kwargs), None)

        resp._then(settled)


_chains = threading.Lock()
"""Guards the links and sent marks of unsent calls (_Call)."""


class _Call:
    """A unary call not sent yet, or sent: with next set, its answer goes
    on to next's deployment; with prev set, its input is prev's answer.
    A chain is sent once, from its head, as one record."""

    def __init__(self, h: DeploymentHandle, parent: Envelope | None, deadline_ns: int, value: Any) -> None:
        self.caller = h._caller
        self.deployment = h.deployment_name
        self.topic = h._topic()
        self.method = h._method
        self.model = h._model
        self.parent = parent
        self.deadline_ns = deadline_ns
        self.id = h._caller.new_id()
        self.value = value
        self.out: Future[Answer] = Future()
        self.sent = False
        self.prev: _Call | None = None
        self.next: _Call | None = None
        self.once = h._answers_once()


def _send(c: _Call) -> None:
    """Sends c's chain (from its head) unless it was sent: the head's
    value to its deployment, the later calls as its continuation; the
    answer settles the last call's response."""
    chain = _take(c)
    if chain is not None:
        _chain(chain[0].caller.call(_request(chain)), chain[-1].out)


def _take(c: _Call, last: bool = False) -> list[_Call] | None:
    """c's chain from its head, marked sent; None if it was sent (or, with
    last, if a call was chained after c)."""
    with _chains:
        if last and c.next is not None:
            return None
        head = c
        while head.prev is not None:
            head = head.prev
        if head.sent:
            return None
        chain = [head]
        while chain[-1].next is not None:
            chain.append(chain[-1].next)
        for x in chain:
            x.sent = True
    return chain


def _request(chain: list[_Call]) -> Request:
    """The request of a chain: the head's value to its deployment, the
    later calls as its continuation."""
    head = chain[0]
    body, content_type = encode(head.value)
    hops = [Hop(x.topic, x.id) for x in chain[1:]]
    env = Envelope(id=head.id, content_type=content_type, method=head.method, model=head.model, cont=hops)
    if head.parent is not None:
        env = handle_call(head.parent, env)
    if env.deadline_ns == 0:
        env.deadline_ns = head.deadline_ns
    return new_request(head.topic, head.model.encode() or None, env, body)


async def _itself(r: DeploymentResponse) -> DeploymentResponse:
    return r


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _chain(src: Future[Any], dst: Future[Any]) -> None:
    def done(f: Future[Any]) -> None:
        if dst.done():
            return
        if (exc := f.exception()) is not None:
            dst.set_exception(exc)
        else:
            dst.set_result(f.result())

    src.add_done_callback(done)
