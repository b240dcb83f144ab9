"""The CPU a Python replica spends per record with its Prometheus metrics
on (sluice.replica.metrics: the pick-up, handler and fetch-lag hooks)
against off, in the same run on the same broker.

    python bench/metrics.py --brokers HOST:PORT [-n 20000] [--rounds 3]
    python bench/metrics.py --sluice /path/to/sluice   # starts `sluice dev`

Each round runs a replica with metrics off, then one with them on, each
on a topic of its own: once the replica holds its partition, another
process produces n records (no reply topic: each answer goes to the
output topic), and this process's CPU time (every thread: the poll loop,
the handlers, librdkafka's) is read from then until the replica has
processed all n. The figures are CPU microseconds per record, the
median and the least over the rounds (the least is the steadier on a
loaded machine), and their ratios on/off. Then the hooks alone: the
calls the replica makes per record with metrics on (the queue wait's
clock and observation, the handler's two clock reads and observation,
and the fetched partition's cached high watermark, which the replica
reads once per partition per poll: here once per record, as when
records come one at a time), timed in a loop of their own; and the
Kafka clients' statistics callback (sluice.replica.kafkastats) on a
real producer's document, which each client calls every 5 s with
metrics on (its cost is in the rounds' "on" too)."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition

from roundtrip import Echo, create, start_dev
from sluice.replica import Replica, ReplicaConfig
from sluice.replica import loop as event_loop
from sluice.replica.kafkastats import STATS_INTERVAL_MS, KafkaStats
from sluice.replica.metrics import Metrics, Observers, Server, new_registry


def produce(brokers: str, topic: str, n: int) -> None:
    p = Producer({"bootstrap.servers": brokers, "linger.ms": 5, "acks": "all"})
    for i in range(n):
        while True:
            try:
                p.produce(topic, key=f"k{i}", value=b'{"x":1}', headers=[("sl-id", f"m-{i}")])
                break
            except BufferError:
                p.poll(0.01)
        p.poll(0)
    p.flush(60)


def one(brokers: str, run: str, name: str, n: int, metered: bool) -> float:
    """CPU seconds per record of one replica over n records."""
    topic, out = f"bench-{run}-{name}-in", f"bench-{run}-out"
    create(brokers, topic)
    m = Metrics() if metered else None
    srv = Server("127.0.0.1:0", new_registry(m)) if m is not None else None
    cfg = ReplicaConfig(brokers=[brokers], group=f"bench-{run}-{name}", topics=[topic], output=out,
                        dead_letter=f"bench-{run}-dlq", deployment="echo", app="bench", instance=name,
                        metrics=m, metrics_addr=srv.addr if srv else "")  # fmt: skip
    replica = Replica(cfg, Echo())
    loop = event_loop.new_loop()
    served = threading.Thread(target=loop.run_until_complete, args=(replica.run(),), daemon=True)
    served.start()
    try:
        if not replica.ready.wait(30):
            raise TimeoutError("the replica got no partition")
        time.sleep(0.5)
        cpu0 = time.process_time()
        subprocess.run([sys.executable, __file__, "--produce", brokers, topic, str(n)], check=True)
        deadline = time.monotonic() + 300
        while replica.stats().processed < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name}: {replica.stats().processed} of {n} processed")
            time.sleep(0.01)
        cpu = time.process_time() - cpu0
    finally:
        replica.stop()
        served.join(30)
        if srv is not None:
            srv.close()
    if m is not None:  # the series counted what the replica did
        assert replica.stats().processed == n
    return cpu / n


def bench(brokers: str, n: int, rounds: int) -> None:
    run = uuid.uuid4().hex[:8]
    create(brokers, f"bench-{run}-out", f"bench-{run}-dlq")
    off: list[float] = []
    on: list[float] = []
    for r in range(rounds):
        off.append(one(brokers, run, f"off{r}", n, False))
        on.append(one(brokers, run, f"on{r}", n, True))
        print(f"round {r + 1}: off {off[-1] * 1e6:6.1f} us/record  on {on[-1] * 1e6:6.1f} us/record", flush=True)
    print(f"loop {event_loop.kind()}, n={n}, {rounds} rounds, load average {os.getloadavg()[0]:.2f}")
    for what, f in (("median", statistics.median), ("least", min)):
        a, b = f(off), f(on)
        print(
            f"{what:6}: metrics off {a * 1e6:6.1f}, on {b * 1e6:6.1f} us CPU/record; on/off {b / a:.3f} "
            f"({(b - a) * 1e6:+.1f} us/record)"
        )
    print(f"hooks alone: {hooks(brokers, f'bench-{run}-out', 200_000) * 1e6:.2f} us CPU/record")
    size, per = stats_callback(brokers, f"bench-{run}-out", 2000)
    print(
        f"statistics callback alone: {per * 1e6:.1f} us CPU per call ({size}-byte document; "
        f"each client makes one every {STATS_INTERVAL_MS / 1000:g} s)"
    )


def hooks(brokers: str, topic: str, n: int) -> float:
    """CPU seconds per record of the metrics calls the replica makes."""
    o = Observers(["bench", "echo", "hooks"])
    c = Consumer({"bootstrap.servers": brokers, "group.id": "bench-hooks"})
    tp = TopicPartition(topic, 0)
    ts_ms = time.time() * 1000 - 3
    cpu0 = time.process_time()
    for _ in range(n):
        o.picked_up(max(time.time() - ts_ms / 1000, 0.0))
        start = time.perf_counter()
        o.handled(time.perf_counter() - start)
        c.get_watermark_offsets(tp, cached=True)
    cpu = time.process_time() - cpu0
    c.close()
    return cpu / n


def stats_callback(brokers: str, topic: str, n: int) -> tuple[int, float]:
    """The size of a producer's statistics document, taken from a real
    client that produced to topic, and CPU seconds per stats_cb call of
    sluice.replica.kafkastats on it."""
    docs: list[str] = []
    p = Producer({"bootstrap.servers": brokers, "statistics.interval.ms": 100, "stats_cb": docs.append})
    for _ in range(100):
        p.produce(topic, b"x" * 100)
    p.flush(10)
    deadline = time.monotonic() + 10
    while len(docs) < 2 and time.monotonic() < deadline:
        p.poll(0.1)
    if not docs:
        raise TimeoutError("no statistics from the producer")
    settings: dict[str, object] = {}
    KafkaStats().enable(settings, "bench")
    cb = settings["stats_cb"]
    assert callable(cb)
    cpu0 = time.process_time()
    for _ in range(n):
        cb(docs[-1])
    return len(docs[-1]), (time.process_time() - cpu0) / n


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--produce":
        produce(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--brokers", default=os.environ.get("SLUICE_TEST_BROKERS", ""))
    ap.add_argument("--sluice", default="", help="a sluice binary: start `sluice dev` and use its broker")
    ap.add_argument("-n", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if args.brokers:
        bench(args.brokers, args.n, args.rounds)
        return
    if not args.sluice:
        ap.error("give --brokers or --sluice")
    with tempfile.TemporaryDirectory(prefix="sluice-bench-") as tmp:
        proc, brokers = start_dev(args.sluice, tmp)
        try:
            bench(brokers, args.n, args.rounds)
        finally:
            proc.terminate()
            proc.wait(20)


if __name__ == "__main__":
    main()
