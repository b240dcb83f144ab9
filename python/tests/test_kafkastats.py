"""The Kafka clients' statistics of a replica with metrics: on a broker,
the byte counters the Go processes export through kprom (the dashboard's
Kafka panel) are scraped from a Python replica and grow with its
records; without metrics no statistics are asked of librdkafka; and the
counters stay monotonic through what librdkafka's cumulative values do
(a partition's count starting over, a partition moving)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer

import sluice.replica.producer as producer_module
import sluice.replica.replica as replica_module
from sluice.replica import Input, Output
from sluice.replica.kafkastats import STATS_INTERVAL_MS, KafkaStats
from sluice.replica.metrics import Metrics, Server, new_registry
from test_observe import scrape
from test_replica import Uniq, make, replies, request, running

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


class Echo:
    async def handle(self, inp: Input, out: Output) -> None:
        out.emit(inp.value, "text/plain")


def by_topic(s: Samples, name: str, topic: str) -> float:
    """The sum of a series' samples for topic, over clients and brokers."""
    return sum(v for labels, v in s.get(name, {}).items() if dict(labels).get("topic") == topic)


async def scraped_until(addr: str, done: Any, timeout_s: float = 30.0) -> Samples:
    """Scrapes until done(samples) holds; the last scrape at the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        s = await asyncio.to_thread(scrape, addr)
        if done(s) or time.monotonic() > deadline:
            return s
        await asyncio.sleep(0.1)


async def test_a_replica_exports_its_kafka_clients_bytes(brokers: list[str], uniq: Uniq) -> None:
    m = Metrics(kafka_interval_ms=100)
    srv = Server("127.0.0.1:0", new_registry(m))
    try:
        cfg = make(brokers, uniq, app="shop", instance="D-1", metrics=m, metrics_addr=srv.addr)
        fetched, produced = "sluice_kgo_fetch_bytes_total", "sluice_kgo_produce_bytes_total"
        inp, reply = cfg.topics[0], cfg.group + "-reply"
        n = 20
        async with running(cfg, Echo()):
            for i in range(n):
                request(brokers, cfg, f"a{i}", b"x" * 100)
            assert len(await replies(brokers, cfg, n)) == n
            s1 = await scraped_until(
                srv.addr, lambda s: by_topic(s, fetched, inp) >= n * 100 and by_topic(s, produced, reply) >= n * 100
            )
            f1, p1 = by_topic(s1, fetched, inp), by_topic(s1, produced, reply)
            assert f1 >= n * 100, s1.get(fetched)
            assert p1 >= n * 100, s1.get(produced)
            for i in range(n):
                request(brokers, cfg, f"b{i}", b"y" * 100)
            assert len(await replies(brokers, cfg, 2 * n)) == 2 * n
            # The lag as of a document after the records were consumed
            # (one taken between their fetch and their consume counts them).
            s2 = await scraped_until(
                srv.addr,
                lambda s: (
                    by_topic(s, fetched, inp) >= f1 + n * 100
                    and by_topic(s, produced, reply) >= p1 + n * 100
                    and by_topic(s, "sluice_rdkafka_consumer_lag", inp) == 0
                ),
            )
            assert by_topic(s2, fetched, inp) >= f1 + n * 100
            assert by_topic(s2, produced, reply) >= p1 + n * 100
            # kprom's labels: the client (role-N), the broker's node id, the topic.
            for labels in (*s2[fetched], *s2[produced]):
                d = dict(labels)
                assert set(d) == {"client", "node_id", "topic"}
                assert d["client"].startswith("replica-") and d["node_id"].isdigit()
            assert sum(s2["sluice_kgo_fetch_records_total"].values()) >= 2 * n
            assert sum(s2["sluice_kgo_read_bytes_total"].values()) > 0
            rtt = s2["sluice_rdkafka_broker_rtt_seconds"]
            assert {dict(k)["quantile"] for k in rtt} == {"0.5", "0.99"}
            assert all(v >= 0 for v in rtt.values())
            lags = {dict(k)["topic"]: v for k, v in s2["sluice_rdkafka_consumer_lag"].items()}
            assert lags.get(inp) == 0
        # Stopped, its clients leave the scrape.
        s3 = await asyncio.to_thread(scrape, srv.addr)
        assert not s3.get(fetched) and not s3.get(produced)
    finally:
        srv.close()


@pytest.mark.parametrize("metrics", [False, True])
async def test_statistics_only_with_metrics(
    brokers: list[str], uniq: Uniq, monkeypatch: pytest.MonkeyPatch, metrics: bool
) -> None:
    """The settings the replica's clients are made with."""
    made: list[dict[str, Any]] = []

    def consumer(settings: dict[str, Any], **kw: Any) -> Consumer:
        made.append(dict(settings))
        return Consumer(settings, **kw)

    def producer(settings: dict[str, Any], **kw: Any) -> Producer:
        made.append(dict(settings))
        return Producer(settings, **kw)

    monkeypatch.setattr(replica_module, "Consumer", consumer)
    monkeypatch.setattr(producer_module, "Producer", producer)
    m = Metrics() if metrics else None
    cfg = make(brokers, uniq, metrics=m)
    async with running(cfg, Echo()):
        request(brokers, cfg, "r", b"x")
        assert len(await replies(brokers, cfg, 1)) == 1
    assert len(made) == 2
    for settings in made:
        if metrics:
            assert settings["statistics.interval.ms"] == STATS_INTERVAL_MS
            assert callable(settings["stats_cb"])
        else:
            assert "statistics.interval.ms" not in settings
            assert "stats_cb" not in settings


def doc(kind: str, parts: dict[str, dict[str, Any]], brokers: dict[str, dict[str, Any]] | None = None) -> str:
    """A statistics document of librdkafka's shape, one topic "t"."""
    return json.dumps({"type": kind, "brokers": brokers or {}, "topics": {"t": {"partitions": parts}}})


def totals(k: KafkaStats) -> dict[str, dict[tuple[str, ...], float]]:
    out: dict[str, dict[tuple[str, ...], float]] = {}
    for fam in k.collect():
        for s in fam.samples:
            out.setdefault(s.name, {})[tuple(s.labels[n] for n in sorted(s.labels))] = s.value
    return out


def test_counters_stay_monotonic() -> None:
    k = KafkaStats()
    conf: dict[str, Any] = {}
    forget = k.enable(conf, "test")
    cb = conf["stats_cb"]
    name = "sluice_kgo_produce_bytes_total"
    cb(doc("producer", {"0": {"broker": 1, "txbytes": 100}, "-1": {"broker": -1, "txbytes": 999}}))
    got = totals(k)[name]
    client = next(iter(got))[0]
    assert got == {(client, "1", "t"): 100}  # -1: the unassigned queue, counted nowhere
    cb(doc("producer", {"0": {"broker": 1, "txbytes": 250}}))
    assert totals(k)[name] == {(client, "1", "t"): 250}
    # The partition moves to another broker: what grew since goes to it.
    cb(doc("producer", {"0": {"broker": 2, "txbytes": 300}}))
    assert totals(k)[name] == {(client, "1", "t"): 250, (client, "2", "t"): 50}
    # The partition dropped and picked up again: librdkafka counts from 0.
    cb(doc("producer", {"0": {"broker": 2, "txbytes": 20}}))
    assert totals(k)[name] == {(client, "1", "t"): 250, (client, "2", "t"): 70}
    # No broker known: taken, counted nowhere, and not again later.
    cb(doc("producer", {"0": {"broker": -1, "txbytes": 40}}))
    cb(doc("producer", {"0": {"broker": 2, "txbytes": 45}}))
    assert totals(k)[name] == {(client, "1", "t"): 250, (client, "2", "t"): 75}
    # Brokers: bootstrap ones (no node id) are left out; rtt in seconds.
    b: dict[str, dict[str, Any]] = {
        "b:9092/bootstrap": {"nodeid": -1, "txbytes": 7},
        "b:9092/1": {"nodeid": 1, "txbytes": 10, "rxbytes": 5, "rtt": {"cnt": 3, "p50": 2000, "p99": 9000}},
    }
    cb(doc("producer", {}, b))
    t = totals(k)
    assert t["sluice_kgo_write_bytes_total"] == {(client, "1"): 10}
    assert t["sluice_kgo_read_bytes_total"] == {(client, "1"): 5}
    assert t["sluice_rdkafka_broker_rtt_seconds"] == {(client, "1", "0.5"): 0.002, (client, "1", "0.99"): 0.009}
    # A window with no request answered keeps the last round-trip times.
    cb(doc("producer", {}, {"b:9092/1": {"nodeid": 1, "txbytes": 12, "rtt": {"cnt": 0, "p50": 0, "p99": 0}}}))
    t = totals(k)
    assert t["sluice_kgo_write_bytes_total"] == {(client, "1"): 12}
    assert t["sluice_rdkafka_broker_rtt_seconds"] == {(client, "1", "0.5"): 0.002, (client, "1", "0.99"): 0.009}
    cb("not json")  # ignored
    assert totals(k)["sluice_kgo_write_bytes_total"] == {(client, "1"): 12}
    forget()
    assert not any(totals(k).values())


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval_ms: 0"):
        KafkaStats(0)
