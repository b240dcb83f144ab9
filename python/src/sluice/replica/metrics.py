"""Prometheus metrics of the replicas of a process, as replicas/metrics.go
exports the Go replicas': the same series, types, labels (app,
deployment, replica) and buckets, so that the gateway's service discovery
(/metrics/targets) and the Grafana dashboard take a Python replica as
they take a Go one. A replica whose deployment multiplexes models adds
replicas/models/metrics.go's sluice_model_cache_* series (Metrics.models),
all but the memory bytes, which a Python replica does not know.

What a replica already counts for its Report is read when scraped; the
consume loop makes a few calls of its own (pick-up, handler time,
failure by code, partition change), each a lock and an addition. The
histograms and counters are this module's, not prometheus_client's
metric classes: those add a `_created` series the Go client does not
export, and cost more per observation."""

from __future__ import annotations

import bisect
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple, Protocol

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector, start_http_server
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from sluice.replica.kafkastats import STATS_INTERVAL_MS, KafkaStats
from sluice.replica.report import Report

LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
)
"""The bounds, in seconds, of the replicas' histograms (replicas.LatencyBuckets)."""

LABELS = ("app", "deployment", "replica")
"""What every replica series carries: not "instance", which Prometheus
gives each target."""

_REPORT_SERIES: tuple[tuple[str, str, str, str], ...] = (
    # name, type, help, Report field
    ("sluice_replica_processed_total", "counter", "Records processed to an answer or an output.", "processed"),
    ("sluice_replica_failed_total", "counter", "Records answered with an error or dead-lettered.", "failed"),
    ("sluice_replica_expired_total", "counter", "Records whose deadline had passed when picked up.", "expired"),
    ("sluice_replica_dead_lettered_total", "counter", "Records written to the dead-letter topic.", "dead_lettered"),
    ("sluice_replica_in_flight", "gauge", "Records picked up and not yet completed.", "ongoing"),
    ("sluice_replica_partitions", "gauge", "Partitions the replica owns.", "partitions"),
    ("sluice_replica_ready", "gauge", "1 once the replica holds partitions (or joined with none to hold).", "ready"),
)


class ModelCounts(NamedTuple):
    """What a replica's model caches have done and hold (the counts of its
    models report), read when scraped."""

    hits: int
    misses: int
    loads: int
    evictions: int
    failures: int
    loaded: int


ModelCountsSource = Callable[[], ModelCounts]
"""What gives a replica's model counts as of now, from the scrape's
thread: it must read counters only, not walk what the loop mutates."""

_MODEL_SERIES: tuple[tuple[str, str, str, str], ...] = (
    # name, type, help, ModelCounts field (replicas/models/metrics.go's,
    # less sluice_model_cache_memory_bytes: a Python model's size is not known)
    ("sluice_model_cache_hits_total", "counter", "Requests whose model version was loaded.", "hits"),
    ("sluice_model_cache_misses_total", "counter", "Requests whose model version was not loaded.", "misses"),
    ("sluice_model_cache_loads_total", "counter", "Model versions loaded.", "loads"),
    ("sluice_model_cache_evictions_total", "counter", "Model versions evicted to make room.", "evictions"),
    ("sluice_model_cache_failures_total", "counter", "Model versions that failed to load.", "failures"),
    ("sluice_model_cache_loaded", "gauge", "Model versions loaded.", "loaded"),
)


class Observed(Protocol):
    """What the collector reads of a replica when scraped."""

    def report(self) -> Report: ...

    def fetch_lag(self) -> int: ...


class _Histogram:
    """Counts per bucket (the last: past every bound) and the sum."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.sum = 0.0

    def family(self, name: str, doc: str, labels: list[str]) -> HistogramMetricFamily:
        f = HistogramMetricFamily(name, doc, labels=list(LABELS))
        cum, buckets = 0, []
        for bound, n in zip((*LATENCY_BUCKETS, float("inf")), self.counts, strict=True):
            cum += n
            buckets.append((_le(bound), float(cum)))
        f.add_metric(labels, buckets, self.sum)
        return f


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


class Observers:
    """One replica's hooks into its metrics: the consume loop calls them,
    from any thread."""

    __slots__ = ("_errors", "_handler", "_lock", "_queue_wait", "labels", "rebalances")

    def __init__(self, labels: list[str]) -> None:
        self.labels = labels
        self._lock = threading.Lock()
        self._queue_wait = _Histogram()
        self._handler = _Histogram()
        self._errors: dict[str, int] = {}
        self.rebalances = 0

    def picked_up(self, wait: float) -> None:
        """Observes a record's queue wait, in seconds: from its timestamp
        (its producer's, or the broker's on a log-append-time topic) to its
        pick-up."""
        i = bisect.bisect_left(LATENCY_BUCKETS, wait)
        with self._lock:
            self._queue_wait.counts[i] += 1
            self._queue_wait.sum += wait

    def handled(self, seconds: float) -> None:
        """Observes the handler's time on one record."""
        i = bisect.bisect_left(LATENCY_BUCKETS, seconds)
        with self._lock:
            self._handler.counts[i] += 1
            self._handler.sum += seconds

    def failed(self, code: str) -> None:
        """Counts one record that failed with code."""
        with self._lock:
            self._errors[code] = self._errors.get(code, 0) + 1

    def rebalanced(self) -> None:
        """Counts one change of the partitions owned."""
        with self._lock:
            self.rebalances += 1

    def snapshot(self) -> tuple[_Histogram, _Histogram, dict[str, int], int]:
        with self._lock:
            q, h = _Histogram(), _Histogram()
            q.counts, q.sum = list(self._queue_wait.counts), self._queue_wait.sum
            h.counts, h.sum = list(self._handler.counts), self._handler.sum
            return q, h, dict(self._errors), self.rebalances


class Metrics(Collector):
    """The replicas of a process as a Prometheus collector: register it
    once (new_registry does), then give it to each replica
    (ReplicaConfig.metrics). A replica that stops leaves the scrape.
    Its kafka collects the statistics of the process's Kafka clients
    (sluice.replica.kafkastats), every kafka_interval_ms."""

    def __init__(self, kafka_interval_ms: int = STATS_INTERVAL_MS) -> None:
        self.kafka = KafkaStats(kafka_interval_ms)
        self._lock = threading.Lock()
        self._reps: dict[int, tuple[Observed, Observers]] = {}
        self._models: dict[int, ModelCountsSource] = {}  # by id() of a replica, exported while it is in _reps

    def models(self, r: Observed, counts: ModelCountsSource) -> None:
        """Exports the model caches of r (a replica whose deployment
        multiplexes models) as the sluice_model_cache_* series, while r
        is observed; give it before r runs."""
        with self._lock:
            self._models[id(r)] = counts

    def observe(self, r: Observed, app: str, deployment: str, instance: str) -> Observers:
        """Starts exporting r; the observers returned are its hooks."""
        o = Observers([app, deployment, instance])
        with self._lock:
            self._reps[id(r)] = (r, o)
        return o

    def forget(self, r: Observed) -> None:
        """Stops exporting r: its series leave the scrape."""
        with self._lock:
            self._reps.pop(id(r), None)
            self._models.pop(id(r), None)

    def describe(self) -> Iterable[Metric]:
        return []  # unchecked: the names are this module's

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            reps = list(self._reps.values())
            models = [(self._models.get(k), o) for k, (_, o) in self._reps.items()]
        report = {name: (GaugeMetricFamily if typ == "gauge" else CounterMetricFamily)(name, doc, labels=list(LABELS))
                  for name, typ, doc, _ in _REPORT_SERIES}  # fmt: skip
        lag = GaugeMetricFamily(
            "sluice_replica_fetch_lag",
            "Records in the replica's partitions past the last one it fetched, as of each partition's latest fetch"
            " (its share of the group's lag, not counting records fetched and not yet committed).",
            labels=list(LABELS),
        )
        errors = CounterMetricFamily(
            "sluice_replica_errors_total", "Records that failed, by error code.", labels=[*LABELS, "code"]
        )
        rebalances = CounterMetricFamily(
            "sluice_replica_rebalances_total",
            "Changes of the partitions a replica owns (assigned, revoked, lost).",
            labels=list(LABELS),
        )
        waits: list[HistogramMetricFamily] = []
        handlers: list[HistogramMetricFamily] = []
        for r, o in reps:
            rep = r.report()
            for name, _, _, fld in _REPORT_SERIES:
                report[name].add_metric(o.labels, float(getattr(rep, fld)))
            lag.add_metric(o.labels, float(r.fetch_lag()))
            q, h, errs, n = o.snapshot()
            for code, count in sorted(errs.items()):
                errors.add_metric([*o.labels, code], float(count))
            rebalances.add_metric(o.labels, float(n))
            waits.append(q.family(_QUEUE_WAIT, _QUEUE_WAIT_HELP, o.labels))
            handlers.append(h.family(_HANDLER, _HANDLER_HELP, o.labels))
        yield from report.values()
        yield lag
        yield _merged(waits, _QUEUE_WAIT, _QUEUE_WAIT_HELP)
        yield _merged(handlers, _HANDLER, _HANDLER_HELP)
        yield errors
        yield rebalances
        yield from _model_families([(src, o.labels) for src, o in models if src is not None])


def _model_families(sources: list[tuple[ModelCountsSource, list[str]]]) -> Iterator[Metric]:
    """The sluice_model_cache_* families of the replicas that multiplex
    models; none when no replica does."""
    if not sources:
        return
    fams = {name: (GaugeMetricFamily if typ == "gauge" else CounterMetricFamily)(name, doc, labels=list(LABELS))
            for name, typ, doc, _ in _MODEL_SERIES}  # fmt: skip
    for src, labels in sources:
        counts = src()
        for name, _, _, fld in _MODEL_SERIES:
            fams[name].add_metric(labels, float(getattr(counts, fld)))
    yield from fams.values()


_QUEUE_WAIT = "sluice_replica_queue_wait_seconds"
_QUEUE_WAIT_HELP = "Time from a record's timestamp (its produce) to its pick-up by a replica."
_HANDLER = "sluice_replica_handler_seconds"
_HANDLER_HELP = "Time the deployment's handler ran on one record."


def _merged(fams: list[HistogramMetricFamily], name: str, doc: str) -> HistogramMetricFamily:
    """One family with the samples of each replica's."""
    out = HistogramMetricFamily(name, doc, labels=list(LABELS))
    for f in fams:
        out.samples.extend(f.samples)
    return out


def new_registry(m: Metrics | None = None) -> CollectorRegistry:
    """A process's registry: the process's collectors (process_*), the
    interpreter's (python_info, python_gc_*), and m (with its Kafka
    clients' statistics) when given."""
    reg = CollectorRegistry()
    ProcessCollector(registry=reg)
    PlatformCollector(registry=reg)
    GCCollector(registry=reg)
    if m is not None:
        reg.register(m)
        reg.register(m.kafka)
    return reg


class Labelled(Collector):
    """A registry's metrics with labels added to every sample: a
    deployment's own metrics, scoped to its replica (the Go SDK's
    serve.WithMetrics wraps its registerer so)."""

    def __init__(self, inner: CollectorRegistry, labels: dict[str, str]) -> None:
        self._inner = inner
        self._labels = labels

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        for m in self._inner.collect():
            out = Metric(m.name, m.documentation, m.type, m.unit)
            for s in m.samples:
                out.add_sample(s.name, {**s.labels, **self._labels}, s.value, s.timestamp, s.exemplar)
            yield out


ADDR_ENV = "SLUICE_METRICS_ADDR"
"""Where a replica process serves its metrics (platform/metrics.AddrEnv):
host:port, port 0 for any free one. A node sets it for the replicas it
starts; the replica reports the address it bound on the status topic."""


class Server:
    """One registry's /metrics on a listener of its own, in a thread."""

    def __init__(self, addr: str, registry: CollectorRegistry) -> None:
        host, port = split_addr(addr)
        self._httpd, self._thread = start_http_server(port, host, registry)
        bound = self._httpd.server_address
        self.addr = advertised(host, int(bound[1]))
        """The address bound, as others reach it (advertised)."""

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(2)


def split_addr(addr: str) -> tuple[str, int]:
    """host:port ([v6]:port) as host and port; ValueError naming addr."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"metrics address {addr!r}: want host:port (port 0: any free one)")
    host = host.removeprefix("[").removesuffix("]")
    return host or "0.0.0.0", int(port)


def advertised(host: str, port: int) -> str:
    """host:port as another machine reaches it: an unspecified host
    (0.0.0.0, ::) is replaced by this machine's address on its default
    route, as the Go replica reports its own."""
    if host in ("0.0.0.0", "::", ""):
        family = socket.AF_INET6 if host == "::" else socket.AF_INET
        probe = "2001:db8::1" if family == socket.AF_INET6 else "192.0.2.1"
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.connect((probe, 9))  # no packet: the kernel picks the source address
                host = str(s.getsockname()[0])
        except OSError:
            pass
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
