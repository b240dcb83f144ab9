"""Handles and responses: calls from Python to a deployment of a running
application, as Ray Serve's DeploymentHandle and DeploymentResponse."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Generator
from concurrent.futures import Future
from typing import Any

from sluice.protocol import Envelope, handle_call, new_request
from sluice.protocol.names import Namer
from sluice.replica.context import current
from sluice.serve.caller import Answer, Caller
from sluice.serve.codec import decode, encode
from sluice.serve.multiplex import check_model_id

DEFAULT_TIMEOUT_S = 30.0
"""The deadline of a call made outside any request (a request's calls take its own)."""


class DeploymentResponse:
    """The future result of a call: await it, or block on result()."""

    def __init__(self, fut: Future[Answer]) -> None:
        self._fut = fut

    def result(self, timeout_s: float | None = None) -> Any:
        """The answer, decoded; raises the call's SluiceError. Blocks: not
        for the event loop's thread (await the response there)."""
        ans = self._fut.result(timeout_s)
        return decode(ans.value, ans.content_type)

    def __await__(self) -> Generator[Any, None, Any]:
        return self._resolve().__await__()

    async def _resolve(self) -> Any:
        ans = await asyncio.wrap_future(self._fut)
        return decode(ans.value, ans.content_type)


class DeploymentHandle:
    """Calls one deployment of an application: from outside (to its
    ingress topic) or from inside another deployment (on the edge between
    them, with the calling request's deadline, trace and headers)."""

    def __init__(self, caller: Caller, namer: Namer, app: str, deployment: str, source: str | None) -> None:
        self._caller = caller
        self._namer = namer
        self._app = app
        self.deployment_name = deployment
        self._source = source  # the calling deployment; None: the application's ingress
        self._model = ""  # options(multiplexed_model_id=): sl-model and the record key

    def _topic(self) -> str:
        if self._source is None:
            return self._namer.ingress(self._app)
        return self._namer.edge(self._app, self._source, self.deployment_name)

    def options(self, *, multiplexed_model_id: str | None = None) -> DeploymentHandle:
        """The same handle with its calls naming a model for a multiplexed
        deployment: sent with sl-model and keyed by the id, so every call
        for one model goes to the same partition, hence replica."""
        h = copy.copy(self)
        if multiplexed_model_id is not None:
            h._model = check_model_id(multiplexed_model_id) if multiplexed_model_id else ""
        return h

    def remote(self, arg: Any = None) -> DeploymentResponse:
        """Calls the deployment with one argument (a DeploymentResponse is
        resolved first: the call is sent when it settles)."""
        out: Future[Answer] = Future()
        parent = current()

        def send(value: Any) -> None:
            body, content_type = encode(value)
            env = Envelope(id=self._caller.new_id(), content_type=content_type, model=self._model)
            if parent is not None and parent.envelope is not None:
                env = handle_call(parent.envelope, env)
            if env.deadline_ns == 0:
                env.deadline_ns = time.time_ns() + int(DEFAULT_TIMEOUT_S * 1e9)
            _chain(self._caller.call(new_request(self._topic(), self._model.encode() or None, env, body)), out)

        if isinstance(arg, DeploymentResponse):

            def upstream_done(f: Future[Answer]) -> None:
                if (exc := f.exception()) is not None:
                    out.set_exception(exc)
                    return
                ans = f.result()
                send(decode(ans.value, ans.content_type))

            arg._fut.add_done_callback(upstream_done)
        else:
            send(arg)
        return DeploymentResponse(out)


def _chain(src: Future[Answer], dst: Future[Answer]) -> None:
    def done(f: Future[Answer]) -> None:
        if (exc := f.exception()) is not None:
            dst.set_exception(exc)
        else:
            dst.set_result(f.result())

    src.add_done_callback(done)
