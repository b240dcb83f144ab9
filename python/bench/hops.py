"""The floor an application's Kafka hops set on its latency at c = 1: the
same route through the same broker, each hop written directly on
confluent-kafka with no Sluice code (no protocol, no handler, no
offsets), one process per deployment as on the platform.

    python bench/hops.py --brokers HOST:PORT --route hello=ingress,greeter,ingress \\
        --route chain=ingress,adder,multiplier,ingress [-n 1000] [--warmup 100]

A route NAME=D1,D2,... is the deployments a request visits in order: the
client produces to D1's topic, each deployment's process consumes its own
topic and produces to the next one's, the last to the client's reply
topic, so a route of k visits is k + 1 hops. Each echo process is a
consumer-group member with the replica's fetch wait and an idempotent
producer with linger 0, as a Sluice replica's are. The client waits for
each answer before the next request. Prints one JSON object per route:
name, hops, n, p50_ms, mean_ms."""

from __future__ import annotations

import argparse
import json
import selectors
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

FETCH_WAIT_MS = 250  # sluice.replica.config.FETCH_MAX_WAIT_S
ROUTE = "route"  # the header naming the topics still to visit, the reply topic last


def producer(brokers: str) -> Producer:
    return Producer({"bootstrap.servers": brokers, "linger.ms": 0, "acks": "all", "enable.idempotence": True})


def create(brokers: str, names: list[str]) -> None:
    admin = AdminClient({"bootstrap.servers": brokers})
    for f in admin.create_topics([NewTopic(n, 1, 1) for n in names]).values():
        f.result(15)


def echo(brokers: str, topic: str) -> None:
    """One deployment's process: consumes topic, passes each record on to
    the first topic of its route header. Prints "ready" once it holds its
    partition; runs until its standard input closes."""
    c = Consumer({"bootstrap.servers": brokers, "group.id": topic, "auto.offset.reset": "earliest",
                  "fetch.wait.max.ms": FETCH_WAIT_MS,
                  "partition.assignment.strategy": "cooperative-sticky"})  # fmt: skip
    p = producer(brokers)

    def assigned(_c: Consumer, parts: list[TopicPartition]) -> None:
        if parts:
            print("ready", flush=True)

    c.subscribe([topic], on_assign=assigned)
    stdin = selectors.DefaultSelector()
    stdin.register(sys.stdin, selectors.EVENT_READ)
    while not stdin.select(0):
        m = c.poll(0.1)
        if m is None or m.error() is not None:
            continue
        raw = dict(m.headers() or []).get(ROUTE)
        route = (raw.decode() if isinstance(raw, bytes) else str(raw)).split(",")
        p.produce(route[0], value=m.value(), key=m.key(), headers=[(ROUTE, ",".join(route[1:]))])
        p.poll(0)
    p.flush(5)
    c.close()


def measure(brokers: str, name: str, visits: list[str], topics: dict[str, str], n: int, warmup: int) -> dict[str, Any]:
    reply = f"{topics[visits[0]]}-reply-{name}"
    create(brokers, [reply])
    p = producer(brokers)
    c = Consumer({"bootstrap.servers": brokers, "group.id": reply, "enable.auto.commit": False,
                  "fetch.wait.max.ms": FETCH_WAIT_MS})  # fmt: skip
    _, hi = c.get_watermark_offsets(TopicPartition(reply, 0), timeout=10)
    c.assign([TopicPartition(reply, 0, hi)])
    route = ",".join([*(topics[v] for v in visits[1:]), reply])
    took: list[float] = []
    for i in range(-warmup, n):
        key = f"{name}-{i}".encode()
        start = time.perf_counter()
        p.produce(topics[visits[0]], value=b'{"x":1}', key=key, headers=[(ROUTE, route)])
        p.poll(0)
        while True:
            m = c.poll(10)
            if m is None:
                raise TimeoutError(f"route {name}: no answer to request {i}")
            if m.error() is None and m.key() == key:
                break
        if i >= 0:
            took.append(time.perf_counter() - start)
    p.flush(5)
    c.close()
    return {"name": name, "hops": len(visits) + 1, "n": n, "p50_ms": statistics.median(took) * 1e3,
            "mean_ms": statistics.fmean(took) * 1e3}  # fmt: skip


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--echo":
        echo(sys.argv[2], sys.argv[3])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--route", action="append", required=True, help="NAME=DEPLOYMENT,DEPLOYMENT,...")
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=100)
    args = ap.parse_args()
    routes: dict[str, list[str]] = {}
    for r in args.route:
        name, sep, visits = r.partition("=")
        if not sep or not name or not all(visits.split(",")):
            ap.error(f"--route {r!r}: want NAME=DEPLOYMENT,DEPLOYMENT,...")
        routes[name] = visits.split(",")
    run = uuid.uuid4().hex[:8]
    topics = {d: f"hops-{run}-{d}" for visits in routes.values() for d in visits}
    create(args.brokers, list(topics.values()))
    procs = [subprocess.Popen([sys.executable, __file__, "--echo", args.brokers, t], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for t in topics.values()]  # fmt: skip
    try:
        for proc in procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError("an echo process did not get its partition")
        for name, visits in routes.items():
            print(json.dumps(measure(args.brokers, name, visits, topics, args.n, args.warmup)), flush=True)
    finally:
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.close()
        for proc in procs:
            proc.wait(30)


if __name__ == "__main__":
    main()
