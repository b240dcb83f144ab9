"""One replica of a Python deployment that the platform runs: what
`python -m sluice.replica` does when `sluice replica` execs it for a
python-project bundle. The platform's launcher resolved the spec (topics,
group, instance) and passes it as flags; this process imports the
application, builds its deployment's instance with handles to the
deployments it was bound with, and serves it as a member of the
deployment's group, reporting on the status topic and telling the
process that started it when it is ready (SLUICE_READY_FD)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import json
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

from sluice import claim
from sluice.protocol.names import Namer
from sluice.replica import ModelsReport, Publisher, Replica, ReplicaConfig, logfmt, serve_until_signalled, tracing
from sluice.replica import loop as event_loop
from sluice.replica.metrics import ADDR_ENV, Metrics, Server, new_registry
from sluice.serve.caller import Caller
from sluice.serve.deployment import Application, Options
from sluice.serve.describe import load, module_deployments, walk
from sluice.serve.handle import DeploymentHandle
from sluice.serve.http import http_handler, takes_request
from sluice.serve.invoke import HealthCheckFailed, Invoker, watch_health
from sluice.serve.lookup import NamedHandle
from sluice.serve.multiplex import ModelCache, model_caches, model_counts, models_report
from sluice.serve.usermetrics import scope

READY_ENV = "SLUICE_READY_FD"
"""replicas/procs.ReadyEnv: a descriptor to write one byte to when ready."""

EXIT_UNHEALTHY = 3
"""The exit status of a replica whose check_health failed: the platform
starts another (replicas/procs, sluice dev), as Ray restarts the actor."""


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m sluice.replica", description=__doc__)
    p.add_argument("--brokers", required=True, help="comma-separated bootstrap brokers")
    p.add_argument("--prefix", default="sluice", help="the platform's topic prefix")
    p.add_argument("--app", required=True)
    p.add_argument("--deployment", required=True)
    p.add_argument("--handler", default="", help="the Python deployment it runs (default: --deployment)")
    p.add_argument("--group", required=True)
    p.add_argument("--topic", action="append", required=True, help="an input topic (repeated)")
    p.add_argument("--successor", action="append", default=[], help="a dataflow edge topic (repeated)")
    p.add_argument("--output", required=True)
    p.add_argument("--dead-letter", required=True)
    p.add_argument("--status-topic", default="")
    p.add_argument("--instance", required=True)
    p.add_argument("--instance-id", default="", help="a static group member's id")
    p.add_argument("--revision", default="")
    p.add_argument("--generation", type=int, default=0)
    p.add_argument("--max-ongoing", type=int, default=0)
    p.add_argument("--session-timeout", type=float, default=0.0, help="seconds")
    p.add_argument("--drain-timeout", type=float, default=0.0, help="seconds")
    p.add_argument("--user-config", default=None, help="the deployment's user_config, JSON (the spec's)")
    p.add_argument("--claim-threshold", type=int, default=claim.DEFAULT_THRESHOLD,
                   help="values over this many bytes travel through the blob store as claim checks")  # fmt: skip
    p.add_argument("--claim-limit", type=int, default=claim.DEFAULT_LIMIT,
                   help="largest value in bytes a claim check carries")  # fmt: skip
    p.add_argument("--import-path", required=True, help="MODULE:ATTR of the application")
    p.add_argument("--args", default="",
                   help="the spec's constructor arguments, JSON ({\"handle\": NAME} a handle): what a deployment "
                        "the module's graph does not bind is constructed with")  # fmt: skip
    p.add_argument("--app-dir", default=".")
    p.add_argument(
        "--metrics-addr",
        default=os.environ.get(ADDR_ENV, ""),
        help=f"serve /metrics at host:port (port 0: any free one), reported on the status topic ({ADDR_ENV})",
    )
    p.add_argument("--log-format", default="",
                   help=f"text or json: one JSON object a line, as the Go processes log (default: {logfmt.FORMAT_ENV}, "
                        "else text)")  # fmt: skip
    return p.parse_args(argv)


def instance(node: Application, caller: Caller, namer: Namer, app: str, source: str) -> Any:
    """The deployment's callable: a class constructed with the graph's own
    arguments, each bound deployment (or get_deployment_handle) a handle
    on the edge from source, the spec's name of this deployment, to it."""

    def bind(a: Any) -> Any:
        if isinstance(a, Application):
            return DeploymentHandle(caller, namer, app, a.deployment.name, source, callee=a.deployment)
        if isinstance(a, NamedHandle):
            return DeploymentHandle(caller, namer, app, a.deployment_name, source)
        return a

    target = node.deployment.target
    if inspect.isclass(target):
        return target(*map(bind, node.args), **{k: bind(v) for k, v in node.kwargs.items()})
    return target


def spec_bound(node: Application, raw: str) -> Application:
    """node, a deployment no graph binds, bound with the spec's
    constructor arguments raw (platform/spec Args as JSON: {"handle":
    NAME} a handle, a value otherwise; none when empty). Arguments its
    class does not take are refused naming what it takes."""
    try:
        given = json.loads(raw) if raw else []
    except json.JSONDecodeError as exc:
        raise ValueError(f"deployment {node.deployment.name}: --args is not JSON: {exc}") from None
    if not isinstance(given, list):
        raise ValueError(f"deployment {node.deployment.name}: --args is a {type(given).__name__}, not a list")
    args = [NamedHandle(a["handle"]) if _is_handle_arg(a) else a for a in given]
    target = node.deployment.target
    if not inspect.isclass(target):
        if args:
            raise ValueError(f"deployment {node.deployment.name} is a function and takes no arguments, got {len(args)}")
        return node
    try:
        inspect.signature(target).bind(*args)
    except TypeError as exc:
        what = f"deployment {node.deployment.name}: the spec's args do not fit {target.__name__}"
        raise ValueError(f"{what}: {exc}") from None
    return Application(node.deployment, tuple(args))


def _is_handle_arg(a: Any) -> bool:
    return isinstance(a, dict) and len(a) == 1 and isinstance(a.get("handle"), str)


def _tell_ready(r: Replica) -> None:
    fd_s = os.environ.get(READY_ENV, "")
    if not fd_s.isdigit():
        return

    def wait() -> None:
        r.ready.wait()
        with contextlib.suppress(OSError):
            os.write(int(fd_s), b"\x01")
            os.close(int(fd_s))

    threading.Thread(target=wait, name="sluice-ready", daemon=True).start()


async def _serve(r: Replica, pub: Publisher | None, inv: Invoker, opts: Options, user_config: Any,
                 log: logging.Logger) -> list[HealthCheckFailed]:  # fmt: skip
    """Serves r until a signal or a failed health check (returned)."""
    if user_config is not None:
        await inv.reconfigure(user_config)
    failed: list[HealthCheckFailed] = []
    tasks = [asyncio.create_task(pub.run())] if pub is not None else []
    tasks.append(asyncio.create_task(watch_health(inv, opts.health_check_period_s, _on_failure(r, failed), log)))
    try:
        await serve_until_signalled(r)
    finally:
        for t in tasks:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        if pub is not None:
            await asyncio.to_thread(pub.remove, r)
    return failed


def watch_models(r: Replica, fn: Any, pub: Publisher | None, metrics: Metrics | None) -> list[ModelCache]:
    """Publishes r's reports with pub, and when fn (its deployment's
    instance) multiplexes models, its models report with pub and its
    caches' counts as the sluice_model_cache_* series of metrics. The
    caches found (none: fn multiplexes no models)."""
    caches = model_caches(fn) if pub is not None or metrics is not None else []
    if pub is not None:
        pub.add(r, _models_source(r, caches) if caches else None)
        for c in caches:
            c.on_change = pub.poke
    if metrics is not None and caches:
        metrics.models(r, lambda: model_counts(caches))
    return caches


def _models_source(r: Replica, caches: list[ModelCache]) -> Callable[[], ModelsReport]:
    """The models report of a replica whose deployment multiplexes models."""
    cfg = r.cfg
    return lambda: models_report(caches, cfg.app, cfg.deployment, cfg.instance, r.assignment())


def _on_failure(r: Replica, failed: list[HealthCheckFailed]) -> Callable[[HealthCheckFailed], None]:
    def unhealthy(exc: HealthCheckFailed) -> None:
        failed.append(exc)
        r.unhealthy()

    return unhealthy


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    try:
        fmt = logfmt.format_of(a.log_format)
    except ValueError as exc:
        print(f"python -m sluice.replica: {exc}", file=sys.stderr)
        return 2
    logfmt.configure(fmt, {"app": a.app, "deployment": a.deployment, "instance": a.instance})
    log = logging.getLogger(f"sluice.replica.{a.app}.{a.deployment}")
    # Metrics first: the application registers its own at import.
    metrics, server = None, None
    if a.metrics_addr:
        metrics = Metrics()
        reg = new_registry(metrics)
        scope(reg, a.app, a.deployment, a.instance)
        try:
            server = Server(a.metrics_addr, reg)
        except (OSError, ValueError) as exc:
            raise SystemExit(f"--metrics-addr {a.metrics_addr}: {exc}") from exc
    try:
        return _main(a, log, metrics, server)
    finally:
        if server is not None:
            server.close()


def _main(a: argparse.Namespace, log: logging.Logger, metrics: Metrics | None, server: Server | None) -> int:
    root = load(a.import_path, a.app_dir)
    nodes = walk(root)
    bound = set(nodes)
    for n, d in module_deployments(a.import_path).items():
        nodes.setdefault(n, d.bind())
    name = a.handler or a.deployment
    node = nodes.get(name)
    if node is None:
        raise SystemExit(f"{a.import_path} has no deployment {name} (it has {', '.join(sorted(nodes))})")
    if name not in bound:
        # Declared by the module, bound by no graph: the spec gives its
        # constructor's arguments.
        try:
            node = spec_bound(node, a.args)
        except ValueError as exc:
            raise SystemExit(f"sluice replica {a.instance}: {exc}") from None
    brokers = [b for b in a.brokers.split(",") if b]
    namer = Namer(a.prefix)
    tr = tracing.from_env(log=log)
    # The store the platform names in the environment (SLUICE_S3_*, or
    # SLUICE_BLOB_DIR), as the Go replica opens it from its flags.
    try:
        claims = claim.open_claims(a.claim_threshold, a.claim_limit)
    except ValueError as exc:
        raise SystemExit(f"sluice replica {a.instance}: claim store: {exc}") from None
    caller = Caller(brokers, namer, log, tracing=tr, claims=claims, kafka_stats=metrics.kafka if metrics else None)
    cfg = ReplicaConfig(brokers=brokers, group=a.group, topics=a.topic, output=a.output, dead_letter=a.dead_letter,
                        deployment=a.deployment, successors=a.successor, app=a.app, instance=a.instance,
                        revision=a.revision, generation=a.generation, instance_id=a.instance_id, log=log,
                        metrics=metrics, metrics_addr=server.addr if server else "", tracing=tr,
                        claims=claims)  # fmt: skip
    cfg.max_ongoing_requests = a.max_ongoing or node.deployment.opts.max_ongoing_requests
    if a.session_timeout > 0:
        cfg.session_timeout_s = a.session_timeout
    opts = node.deployment.opts
    # Requests in flight get graceful_shutdown_timeout_s, within what the
    # platform waits before it kills the process (its drain timeout).
    cfg.drain_timeout_s = opts.graceful_shutdown_timeout_s
    if a.drain_timeout > 0:
        cfg.drain_timeout_s = min(a.drain_timeout, opts.graceful_shutdown_timeout_s)
    user_config = json.loads(a.user_config) if a.user_config else opts.user_config
    fn = instance(node, caller, namer, a.app, a.deployment)
    inv = Invoker(fn, opts)  # the handler, and the hooks (reconfigure, check_health) of an HTTP ingress too
    target = node.deployment.target
    ingress = name == root.deployment.name
    r = Replica(cfg, http_handler(target, fn) if takes_request(target, ingress) else inv)
    pub = Publisher(brokers, a.status_topic, log) if a.status_topic else None
    watch_models(r, fn, pub, metrics)
    _tell_ready(r)
    log.info("replica running", extra={"instance": a.instance, "generation": a.generation, "loop": event_loop.kind(),
                                       "metrics": cfg.metrics_addr, "tracing": tr is not None})  # fmt: skip
    try:
        failed = event_loop.run(_serve(r, pub, inv, opts, user_config, log))
    finally:
        caller.close()
        if tr is not None:
            tr.shutdown()
    if failed:
        print(f"sluice replica {a.instance}: {failed[0]}", file=sys.stderr)
        return EXIT_UNHEALTHY
    return 0
