"""librdkafka's statistics of a process's Kafka clients as Prometheus
series. A Go process exports its franz-go clients' metrics through
kprom (platform/metrics.Kafka: sluice_kgo_*, labelled client, node_id
and topic); this module exports the same names and labels for the
confluent-kafka clients of a Python replica process, so that what reads
the Go series (the Grafana dashboard's Kafka panel) reads these, and
adds a few that only librdkafka reports, under sluice_rdkafka_*.

Series, each labelled client (role-N, N telling a process's clients
apart, as the Go side numbers its own):

- sluice_kgo_produce_bytes_total, sluice_kgo_fetch_bytes_total
  {node_id, topic}: the bytes of the records produced and fetched
  (uncompressed, as kprom counts them), per broker (each partition's
  leader, or the follower it is fetched from) and topic;
- sluice_kgo_produce_records_total, sluice_kgo_fetch_records_total
  {node_id, topic}: the records;
- sluice_kgo_write_bytes_total, sluice_kgo_read_bytes_total {node_id}:
  the bytes written to and read from each broker's connection;
- sluice_rdkafka_broker_rtt_seconds {node_id, quantile}: each broker's
  request round-trip time (0.5, 0.99) over the latest statistics window
  in which a request to it was answered;
- sluice_rdkafka_broker_waiting_requests {node_id}: requests sent to a
  broker and not yet answered; sluice_rdkafka_broker_queued_requests
  {node_id}: requests waiting to be sent;
- sluice_rdkafka_queued_messages, sluice_rdkafka_queued_bytes: records
  produced and not yet acknowledged (the producer's queue);
- sluice_rdkafka_consumer_lag {topic, partition}: records in a partition
  past the consumer's position, as the client last saw its high
  watermark; sluice_rdkafka_fetch_queue_messages {topic, partition}:
  records fetched and not yet consumed.

Statistics are on only where a client is given them (enable): its
settings then carry statistics.interval.ms and a stats_cb, which its
own poll or consume calls serve every interval; without them librdkafka
computes none. librdkafka's counts are cumulative per client, and a
partition's start over when the client drops and picks it up again:
each callback adds the increase since the last one, so the counters
never go down."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

STATS_INTERVAL_MS = 5000
"""How often a client with statistics reports them (statistics.interval.ms)."""

_PARTITION_COUNTERS = (
    # series, librdkafka's partition field, help
    ("sluice_kgo_produce_bytes_total", "txbytes", "Total number of uncompressed bytes produced"),
    ("sluice_kgo_fetch_bytes_total", "rxbytes", "Total number of uncompressed bytes fetched"),
    ("sluice_kgo_produce_records_total", "txmsgs", "Total number of records produced"),
    ("sluice_kgo_fetch_records_total", "rxmsgs", "Total number of records fetched"),
)
_BROKER_COUNTERS = (
    ("sluice_kgo_write_bytes_total", "txbytes", "Total number of bytes written to the TCP connection"),
    ("sluice_kgo_read_bytes_total", "rxbytes", "Total number of bytes read from the TCP connection"),
)
_RTT = "sluice_rdkafka_broker_rtt_seconds"
_RTT_QUANTILES = (("0.5", "p50"), ("0.99", "p99"))
_GAUGES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (_RTT, "Round-trip time of the requests to a broker over the latest statistics window.", ("node_id", "quantile")),
    ("sluice_rdkafka_broker_waiting_requests", "Requests sent to a broker, awaiting its response.", ("node_id",)),
    ("sluice_rdkafka_broker_queued_requests", "Requests waiting to be sent to a broker.", ("node_id",)),
    ("sluice_rdkafka_queued_messages", "Records produced and not yet acknowledged or failed.", ()),
    ("sluice_rdkafka_queued_bytes", "Bytes of the records produced and not yet acknowledged or failed.", ()),
    (
        "sluice_rdkafka_consumer_lag",
        "Records in a partition past the consumer's position, as of the client's latest high watermark.",
        ("topic", "partition"),
    ),
    ("sluice_rdkafka_fetch_queue_messages", "Records fetched and not yet consumed.", ("topic", "partition")),
)

_clients = itertools.count(1)
"""Numbers the clients of the process: a client's label is role-N."""

Labels = tuple[str, ...]


class _Client:
    """One client's counters (totals, monotonic) and gauges (latest)."""

    __slots__ = ("counters", "gauges", "last")

    def __init__(self) -> None:
        self.last: dict[tuple[str, ...], int] = {}  # librdkafka's latest cumulative value, by field and key
        self.counters: dict[str, dict[Labels, int]] = {}
        self.gauges: dict[str, dict[Labels, float]] = {}

    def add(self, series: str, labels: Labels | None, key: tuple[str, ...], value: object) -> None:
        """Adds to series what value (cumulative, under key) grew by
        since the last statistics; a value below the last one started
        over, and all of it is new. Labels None: the value is taken and
        its increase counted nowhere (a partition with no broker known)."""
        if not isinstance(value, int) or value < 0:
            return
        prev = self.last.get(key, 0)
        self.last[key] = value
        grew = value - prev if value >= prev else value
        if labels is None:
            return
        by = self.counters.setdefault(series, {})
        by[labels] = by.get(labels, 0) + grew

    def set(self, series: str, labels: Labels, value: float) -> None:
        self.gauges.setdefault(series, {})[labels] = value


def _node(nodeid: object) -> str | None:
    """A broker's node_id label, as kprom writes it (kgo.NodeName); None
    for librdkafka's bootstrap and logical brokers (no node id yet)."""
    return str(nodeid) if isinstance(nodeid, int) and nodeid >= 0 else None


class KafkaStats(Collector):
    """The statistics of the Kafka clients given them (enable), as a
    Prometheus collector: register it once (new_registry does for the
    one of a Metrics). Thread-safe: each client's callback runs on the
    thread that polls it."""

    def __init__(self, interval_ms: int = STATS_INTERVAL_MS) -> None:
        if interval_ms <= 0:
            raise ValueError(f"kafka statistics: interval_ms: {interval_ms} is not positive")
        self.interval_ms = interval_ms
        self._lock = threading.Lock()
        self._clients: dict[str, _Client] = {}

    def enable(self, settings: dict[str, Any], role: str) -> Callable[[], None]:
        """Turns statistics on in settings (a confluent-kafka client's,
        before the client is made) and exports them labelled client
        role-N; returns what removes the client's series, to call when
        it closes."""
        name = f"{role}-{next(_clients)}"
        settings["statistics.interval.ms"] = self.interval_ms
        settings["stats_cb"] = lambda raw: self._update(name, raw)
        return lambda: self._forget(name)

    def _forget(self, name: str) -> None:
        with self._lock:
            self._clients.pop(name, None)

    def _update(self, name: str, raw: str) -> None:
        try:
            stats = json.loads(raw)
        except ValueError:
            return  # librdkafka writes valid JSON; nothing to count otherwise
        if not isinstance(stats, dict):
            return
        with self._lock:
            c = self._clients.setdefault(name, _Client())
            prev, c.gauges = c.gauges, {}  # what a client no longer reports leaves the scrape
            _read(c, stats, prev.get(_RTT, {}))

    def describe(self) -> Iterable[Metric]:
        return []  # unchecked: the names are this module's

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            snap = [
                (name, {s: dict(v) for s, v in c.counters.items()}, {s: dict(v) for s, v in c.gauges.items()})
                for name, c in sorted(self._clients.items())
            ]
        for series, _, doc in _PARTITION_COUNTERS:
            f = CounterMetricFamily(series, doc, labels=["client", "node_id", "topic"])
            for name, counters, _ in snap:
                for labels, n in sorted(counters.get(series, {}).items()):
                    f.add_metric([name, *labels], float(n))
            yield f
        for series, _, doc in _BROKER_COUNTERS:
            f = CounterMetricFamily(series, doc, labels=["client", "node_id"])
            for name, counters, _ in snap:
                for labels, n in sorted(counters.get(series, {}).items()):
                    f.add_metric([name, *labels], float(n))
            yield f
        for series, doc, names in _GAUGES:
            g = GaugeMetricFamily(series, doc, labels=["client", *names])
            for name, _, gauges in snap:
                for labels, v in sorted(gauges.get(series, {}).items()):
                    g.add_metric([name, *labels], v)
            yield g


def _read(c: _Client, stats: dict[str, Any], rtts: dict[Labels, float]) -> None:
    """Takes one statistics document (librdkafka's STATISTICS.md) into c;
    rtts: the round-trip times of the last, kept for a broker that had
    no request answered in this window."""
    for q in ("queued_messages", "queued_bytes"):
        field = "msg_cnt" if q == "queued_messages" else "msg_size"
        if stats.get("type") == "producer" and isinstance(stats.get(field), int):
            c.set(f"sluice_rdkafka_{q}", (), float(stats[field]))
    brokers = stats.get("brokers")
    for bname, b in brokers.items() if isinstance(brokers, dict) else ():
        if not isinstance(b, dict) or (node := _node(b.get("nodeid"))) is None:
            continue
        for series, field, _ in _BROKER_COUNTERS:
            c.add(series, (node,), ("broker", bname, field), b.get(field))
        rtt = b.get("rtt")
        answered = isinstance(rtt, dict) and isinstance(rtt.get("cnt"), int) and rtt["cnt"] > 0
        for quantile, field in _RTT_QUANTILES:
            if answered and isinstance(rtt, dict) and isinstance(rtt.get(field), int | float):
                c.set(_RTT, (node, quantile), rtt[field] / 1e6)  # microseconds
            elif (node, quantile) in rtts:
                c.set(_RTT, (node, quantile), rtts[(node, quantile)])
        for series, field in (
            ("sluice_rdkafka_broker_waiting_requests", "waitresp_cnt"),
            ("sluice_rdkafka_broker_queued_requests", "outbuf_cnt"),
        ):
            if isinstance(b.get(field), int):
                c.set(series, (node,), float(b[field]))
    topics = stats.get("topics")
    for tname, t in topics.items() if isinstance(topics, dict) else ():
        parts = t.get("partitions") if isinstance(t, dict) else None
        for pname, p in parts.items() if isinstance(parts, dict) else ():
            if not isinstance(p, dict) or pname == "-1":  # -1: records not yet given a partition
                continue
            node = _node(p.get("broker"))
            for series, field, _ in _PARTITION_COUNTERS:
                # The increase goes to the partition's broker of now: its
                # leader, or the follower it is fetched from.
                c.add(series, None if node is None else (node, tname), ("partition", tname, pname, field), p.get(field))
            lag = p.get("consumer_lag")
            if isinstance(lag, int) and lag >= 0:
                c.set("sluice_rdkafka_consumer_lag", (tname, pname), float(lag))
            fq = p.get("fetchq_cnt")
            if stats.get("type") == "consumer" and isinstance(fq, int) and p.get("fetch_state") == "active":
                c.set("sluice_rdkafka_fetch_queue_messages", (tname, pname), float(fq))


def enable(stats: KafkaStats | None, settings: dict[str, Any], role: str) -> Callable[[], None]:
    """stats.enable(settings, role), or nothing (no statistics, settings
    unchanged) when stats is None."""
    if stats is None:
        return _nothing
    return stats.enable(settings, role)


def _nothing() -> None:
    pass
