"""Replica reports on the status topic, as replicas/report.go writes them:
one JSON report per replica, keyed replica/<app>/<deployment>/<instance>,
renewed every REPORT_EVERY_S and soon after its partitions change; a
tombstone when the replica is withdrawn. A report not renewed for three
periods is a replica gone.

A replica that holds models (@serve.multiplexed) also publishes a models
report, as replicas/models/report.go does: keyed
models/<app>/<deployment>/<instance>, with the same cadence (soon after a
load, an eviction, a failure or a change of partitions, and every
REPORT_EVERY_S) and a tombstone when it is withdrawn."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from confluent_kafka import KafkaError, Message, Producer

from sluice.kafkaauth import client_settings

if TYPE_CHECKING:
    from sluice.replica.replica import Replica

REPORT_EVERY_S = 5.0
POKE_COALESCE_S = 0.1
_PREFIX = "replica/"
_MODELS_PREFIX = "models/"


def report_key(app: str, deployment: str, instance: str) -> str:
    return f"{_PREFIX}{app}/{deployment}/{instance}"


def models_report_key(app: str, deployment: str, instance: str) -> str:
    """The key of a replica's models report (models.ReportKey)."""
    return f"{_MODELS_PREFIX}{app}/{deployment}/{instance}"


def go_time(ns: int) -> str:
    """Unix nanoseconds as Go's time.Time JSON (RFC 3339, UTC, nanoseconds)."""
    sec, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{frac:09d}Z"


@dataclass
class Report:
    """What one replica runs and has done (the Go Report's JSON fields)."""

    app: str
    deployment: str
    instance: str
    revision: str
    generation: int
    ready: bool  # holds partitions, or joined with none to hold
    partitions: int
    processed: int
    failed: int
    expired: int
    dead_lettered: int
    ongoing: int
    started: str
    at: str
    metrics: str = ""  # where the replica's process serves /metrics (host:port); omitted when it serves none
    # p99 of the handler's run time over the last 5-10 s, in seconds (a
    # bucket's upper bound; -1 past the last); omitted when 0 (no run).
    handler_p99_seconds: float = 0.0

    def json(self) -> bytes:
        d = asdict(self)
        for k in ("metrics", "handler_p99_seconds"):  # Go's omitempty
            if not d[k]:
                del d[k]
        return json.dumps(d, separators=(",", ":")).encode()


@dataclass
class ModelsReport:
    """What one replica's model caches hold and have done: the JSON of
    Go's models.Report. Loaded holds model ids (most recently used
    first) where a Go model server has "model/version"; memory_bytes is
    0, as a Python model's size is not known."""

    app: str
    deployment: str
    replica: str
    loaded: list[str]
    loading: list[str]
    failed: dict[str, str]  # model id: why its last load failed
    memory_bytes: int
    hits: int
    misses: int
    loads: int
    evictions: int
    failures: int
    partitions: dict[str, list[int]]  # owned, by topic
    at: str

    def json(self) -> bytes:
        doc = asdict(self)
        for k in ("loading", "failed", "partitions"):  # Go's omitempty
            if not doc[k]:
                del doc[k]
        return json.dumps(doc, separators=(",", ":")).encode()


ModelsSource = Callable[[], ModelsReport]
"""What gives a replica's models report as of now (run on the loop that
runs Publisher.run)."""


class Publisher:
    """Publishes the reports of this process's replicas with one producer.
    Run it as a task; add replicas before they run."""

    def __init__(self, brokers: list[str], topic: str, log: logging.Logger | None = None) -> None:
        self._topic = topic
        self._log = log or logging.getLogger("sluice.replica")
        self._p = Producer({**client_settings(brokers), "linger.ms": 0}, logger=self._log)
        self._replicas: list[Replica] = []
        self._models: dict[int, ModelsSource] = {}  # by id() of a replica in _replicas
        self._lock = threading.Lock()  # guards _replicas and _models; orders reports and tombstones
        self._poked = threading.Event()

    def add(self, r: Replica, models: ModelsSource | None = None) -> None:
        """Publishes r's report, and its models report too when models
        is given (poke the publisher when the models change)."""
        with self._lock:
            self._replicas.append(r)
            if models is not None:
                self._models[id(r)] = models
        r.on_change(self.poke)
        self.poke()

    def remove(self, r: Replica, timeout_s: float = 5.0) -> None:
        """Stops publishing r's reports and withdraws them (tombstones)."""
        with self._lock:
            self._replicas = [x for x in self._replicas if x is not r]
            cfg = r.cfg
            self._produce(report_key(cfg.app, cfg.deployment, cfg.instance), None)
            if self._models.pop(id(r), None) is not None:
                self._produce(models_report_key(cfg.app, cfg.deployment, cfg.instance), None)
        self._p.flush(timeout_s)

    def poke(self) -> None:
        """Asks for the reports soon; never blocks (any thread)."""
        self._poked.set()

    async def run(self) -> None:
        """Publishes until cancelled, then flushes."""
        try:
            while True:
                self.publish()
                woke = await asyncio.to_thread(self._poked.wait, REPORT_EVERY_S)
                if woke:
                    await asyncio.sleep(POKE_COALESCE_S)
                self._poked.clear()
        finally:
            await asyncio.to_thread(self._p.flush, 5.0)

    def publish(self) -> None:
        with self._lock:
            for r in self._replicas:
                rep = r.report()
                self._produce(report_key(rep.app, rep.deployment, rep.instance), rep.json())
                models = self._models.get(id(r))
                if models is not None:
                    self._publish_models(models)
        self._p.poll(0)

    def _publish_models(self, models: ModelsSource) -> None:
        try:
            mr = models()
        except Exception as exc:  # the replica's report went out; this one is renewed soon
            self._log.warning("models report not built", exc_info=exc)
            return
        self._produce(models_report_key(mr.app, mr.deployment, mr.replica), mr.json())

    def _produce(self, key: str, value: bytes | None) -> None:
        def done(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                self._log.warning("report not published", extra={"key": key, "err": str(err)})

        try:
            self._p.produce(self._topic, key=key, value=value, on_delivery=done)
        except Exception as exc:  # a report is renewed soon: log and go on
            self._log.warning("report not published", extra={"key": key, "err": str(exc)})
