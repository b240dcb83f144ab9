"""serve.run: an application's deployments as replicas of this process,
on the topics and groups the Namer gives them, and a handle to its
ingress. A thin layer over sluice.replica: the graph is the bind() tree,
each edge a topic, each deployment a consumer group."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from concurrent.futures import Future
from typing import Any

from sluice.protocol.names import Namer, check_segment
from sluice.replica import Input, Output, Replica, ReplicaConfig
from sluice.serve import remote
from sluice.serve.caller import Caller, ensure_topics
from sluice.serve.codec import decode, encode
from sluice.serve.deployment import Application, Deployment
from sluice.serve.handle import DeploymentHandle, DeploymentResponse

READY_TIMEOUT_S = 60.0


class _Callable:
    """The replica handler of a user deployment: decodes the argument,
    calls the user's code (a coroutine on the loop, a plain function in a
    thread), resolves a returned response, encodes what comes back."""

    def __init__(self, fn: Any, stream: bool) -> None:
        self._fn = fn
        self._stream = stream

    def streams(self) -> bool:
        return self._stream

    async def handle(self, inp: Input, out: Output) -> None:
        arg = decode(inp.value, inp.env.content_type)
        if inspect.iscoroutinefunction(self._fn) or inspect.iscoroutinefunction(getattr(self._fn, "__call__", None)):  # noqa: B004
            result = await self._fn(arg)
        elif inspect.isasyncgenfunction(self._fn) or inspect.isgeneratorfunction(self._fn):
            result = self._fn(arg)
        else:
            result = await asyncio.to_thread(self._fn, arg)
        if isinstance(result, DeploymentResponse):
            result = await result
        if self._stream:
            if inspect.isasyncgen(result):
                async for item in result:
                    out.emit(*encode(item))
            else:
                for item in result:
                    out.emit(*encode(item))
            return
        out.emit(*encode(result))


class _Running:
    """One application served by this process."""

    def __init__(self, app: Application, name: str, brokers: list[str], namer: Namer) -> None:
        self.name = check_segment("application name", name)
        self.brokers = brokers
        self.namer = namer
        self.caller = Caller(brokers, namer)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=f"sluice-serve-{name}", daemon=True)
        self.replicas: list[Replica] = []
        self.tasks: list[Future[None]] = []
        self.ingress = app.deployment.name
        self.deployments: dict[str, tuple[Deployment, Application]] = {}
        self.edges: set[tuple[str, str]] = set()
        self._walk(app)

    def _walk(self, node: Application) -> None:
        d = node.deployment
        seen = self.deployments.get(d.name)
        if seen is not None and seen[1] is not node:
            raise ValueError(f"application {self.name}: two deployments named {d.name}; use .options(name=...)")
        self.deployments[d.name] = (d, node)
        for child in node.children():
            self.edges.add((d.name, child.deployment.name))
            self._walk(child)

    def _inputs(self, name: str) -> list[str]:
        topics = [self.namer.edge(self.name, src, dst) for src, dst in sorted(self.edges) if dst == name]
        if name == self.ingress:
            topics.insert(0, self.namer.ingress(self.name))
        return topics

    def _instance(self, node: Application) -> Any:
        def handle(a: Any) -> Any:
            if isinstance(a, Application):
                return DeploymentHandle(self.caller, self.namer, self.name, a.deployment.name, node.deployment.name)
            return a

        target = node.deployment.target
        if inspect.isclass(target):
            return target(*map(handle, node.args), **{k: handle(v) for k, v in node.kwargs.items()})
        return target

    def start(self) -> None:
        parts = {n: d.opts.num_replicas for n, (d, _) in self.deployments.items()}
        ensure_topics(self.brokers, [self.namer.output(self.name), self.namer.dead_letter(self.name)])
        ensure_topics(self.brokers, [self.namer.ingress(self.name)], parts[self.ingress])
        for src, dst in self.edges:
            ensure_topics(self.brokers, [self.namer.edge(self.name, src, dst)], parts[dst])
        self.thread.start()
        for name, (d, node) in self.deployments.items():
            for i in range(d.opts.num_replicas):
                cfg = ReplicaConfig(
                    brokers=self.brokers, group=self.namer.group(self.name, name), topics=self._inputs(name),
                    output=self.namer.output(self.name), dead_letter=self.namer.dead_letter(self.name),
                    deployment=name, app=self.name, instance=f"{name}-{i}",
                    max_ongoing_requests=d.opts.max_ongoing_requests,
                    log=logging.getLogger(f"sluice.serve.{self.name}.{name}"),
                )  # fmt: skip
                r = Replica(cfg, _Callable(self._instance(node), d.opts.stream))
                self.replicas.append(r)
                self.tasks.append(asyncio.run_coroutine_threadsafe(r.run(), self.loop))
        for r in self.replicas:
            if not r.ready.wait(READY_TIMEOUT_S):
                raise TimeoutError(f"application {self.name}: replica {r.cfg.instance} not ready")

    def handle(self) -> DeploymentHandle:
        return DeploymentHandle(self.caller, self.namer, self.name, self.ingress, None)

    def stop(self, timeout_s: float = 30.0) -> None:
        for r in self.replicas:
            r.stop()
        for t in self.tasks:
            t.result(timeout_s)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout_s)
        self.caller.close()


_running: list[_Running] = []  # what serve.run started in this process, for shutdown
_lock = threading.Lock()


def run(
    app: Application,
    *,
    name: str = "default",
    brokers: list[str] | None = None,
    prefix: str = "sluice",
    route_prefix: str | None = None,
) -> DeploymentHandle:
    """Serves app in this process (each deployment's replicas as members of
    its consumer group) and returns a handle to its ingress deployment.
    Without brokers: deploys it to the platform (sluice.serve.remote)."""
    if brokers is None:
        return remote.run(app, name, route_prefix)
    r = _Running(app, name, brokers, Namer(prefix))
    with _lock:
        _running.append(r)
    r.start()
    return r.handle()


def shutdown() -> None:
    """Stops every application serve.run started in this process, softly."""
    with _lock:
        running, _running[:] = list(_running), []
    for r in running:
        r.stop()
    remote.shutdown()
