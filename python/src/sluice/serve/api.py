"""serve.run: an application's deployments as replicas of this process,
on the topics and groups the Namer gives them, and a handle to its
ingress. A thin layer over sluice.replica: the graph is the bind() tree,
each edge a topic, each deployment a consumer group."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from sluice.claim import open_claims
from sluice.protocol.names import Namer, check_segment
from sluice.replica import Replica, ReplicaConfig
from sluice.replica import loop as event_loop
from sluice.serve import importing, remote
from sluice.serve.caller import Caller, ensure_topics
from sluice.serve.deployment import Application, Deployment
from sluice.serve.handle import DeploymentHandle
from sluice.serve.invoke import Invoker, watch_health
from sluice.serve.lookup import NamedHandle

READY_TIMEOUT_S = 60.0


class _Running:
    """One application served by this process."""

    def __init__(self, app: Application, name: str, brokers: list[str], namer: Namer) -> None:
        self.name = check_segment("application name", name)
        self.brokers = brokers
        self.namer = namer
        # Claims on the store the environment names (SLUICE_S3_*,
        # SLUICE_BLOB_DIR), as the platform's replicas have; none without.
        self.claims = open_claims()
        self.caller = Caller(brokers, namer, claims=self.claims)
        self.loop = event_loop.new_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=f"sluice-serve-{name}", daemon=True)
        self.replicas: list[Replica] = []
        self.tasks: list[Future[None]] = []
        self.health: list[Future[None]] = []  # check_health loops, cancelled at stop
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
        for a in (*node.args, *node.kwargs.values()):
            if isinstance(a, NamedHandle):  # served elsewhere on these brokers: its edge topic is made here
                self.edges.add((d.name, a.deployment_name))

    def _inputs(self, name: str) -> list[str]:
        topics = [self.namer.edge(self.name, src, dst) for src, dst in sorted(self.edges) if dst == name]
        if name == self.ingress:
            topics.insert(0, self.namer.ingress(self.name))
        return topics

    def _instance(self, node: Application) -> Any:
        def handle(a: Any) -> Any:
            if isinstance(a, Application):
                return DeploymentHandle(
                    self.caller, self.namer, self.name, a.deployment.name, node.deployment.name, callee=a.deployment
                )
            if isinstance(a, NamedHandle):  # a deployment this process does not serve, on the same brokers
                return DeploymentHandle(self.caller, self.namer, self.name, a.deployment_name, node.deployment.name)
            return a

        target = node.deployment.target
        if inspect.isclass(target):
            return target(*map(handle, node.args), **{k: handle(v) for k, v in node.kwargs.items()})
        return target

    def start(self) -> None:
        parts = {n: d.opts.replicas for n, (d, _) in self.deployments.items()}
        ensure_topics(self.brokers, [self.namer.output(self.name), self.namer.dead_letter(self.name)])
        ensure_topics(self.brokers, [self.namer.ingress(self.name)], parts[self.ingress])
        for src, dst in self.edges:
            ensure_topics(self.brokers, [self.namer.edge(self.name, src, dst)], parts.get(dst, 1))
        self.thread.start()
        for name, (d, node) in self.deployments.items():
            for i in range(d.opts.replicas):
                cfg = ReplicaConfig(
                    brokers=self.brokers, group=self.namer.group(self.name, name), topics=self._inputs(name),
                    output=self.namer.output(self.name), dead_letter=self.namer.dead_letter(self.name),
                    deployment=name, app=self.name, instance=f"{name}-{i}", claims=self.claims,
                    max_ongoing_requests=d.opts.max_ongoing_requests,
                    drain_timeout_s=d.opts.graceful_shutdown_timeout_s,
                    log=logging.getLogger(f"sluice.serve.{self.name}.{name}"),
                )  # fmt: skip
                inv = Invoker(self._instance(node), d.opts)
                if d.opts.user_config is not None:
                    asyncio.run_coroutine_threadsafe(inv.reconfigure(d.opts.user_config), self.loop).result()
                r = Replica(cfg, inv)
                self.replicas.append(r)
                self.tasks.append(asyncio.run_coroutine_threadsafe(r.run(), self.loop))
                health = watch_health(inv, d.opts.health_check_period_s, _unhealthy(r), cfg.log)
                self.health.append(asyncio.run_coroutine_threadsafe(health, self.loop))
        for r in self.replicas:
            if not r.ready.wait(READY_TIMEOUT_S):
                raise TimeoutError(f"application {self.name}: replica {r.cfg.instance} not ready")

    def handle(self) -> DeploymentHandle:
        return DeploymentHandle(self.caller, self.namer, self.name, self.ingress, None)

    def stop(self, timeout_s: float = 30.0) -> None:
        for h in self.health:
            h.cancel()
        for r in self.replicas:
            r.stop()
        for t in self.tasks:
            t.result(timeout_s)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout_s)
        self.caller.close()


def _unhealthy(r: Replica) -> Callable[[Exception], None]:
    """A replica whose check_health failed stops (not ready, its
    partitions move to the others); serve.run does not start another."""
    return lambda _exc: r.unhealthy()


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
    Without brokers: deploys it to the platform (sluice.serve.remote).
    Called at the top level of a module the platform imports (to describe
    the application, or in a replica), it ends the module's import there
    instead (sluice.serve.importing)."""
    if importing.active():
        raise importing.Stop(app)
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
