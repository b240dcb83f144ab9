"""Latency of a 1-hop Python deployment against the raw Kafka round trip
it is built on, on the same broker in the same run, and the idle Python
replica's memory.

    python bench/roundtrip.py --brokers HOST:PORT [-n 500]
    python bench/roundtrip.py --sluice /path/to/sluice   # starts `sluice dev`

raw:     client produce -> echo consumer -> echo produce -> client consume,
         the echo loop written directly on confluent-kafka (no protocol);
replica: the same client path to a sluice.replica.Replica whose handler
         echoes, answered on the request's sl-reply topic: on asyncio's
         loop, then on the replica process's (uvloop, when installed).
Both at concurrency 1, each request waiting for its answer; the echo sides
run in this process on their own threads. Then a replica is started as
its own process and its RSS read once it has its partition and is idle."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from sluice.replica import Input, Output, Replica, ReplicaConfig
from sluice.replica import loop as event_loop

_READY = re.compile(r"^sluice dev: REST on \S+, gRPC on \S+ \(brokers \[([^\]]+)\]\)", re.M)
FETCH_WAIT_MS = 250  # the replica's, for the raw echo consumer too


def create(brokers: str, *names: str) -> None:
    admin = AdminClient({"bootstrap.servers": brokers})  # kept alive until the futures resolve
    fs = admin.create_topics([NewTopic(n, 1, 1) for n in names])
    for f in fs.values():
        f.result(15)


class Client:
    """Produces one request and waits for its answer on a topic read
    without a group from its end."""

    def __init__(self, brokers: str, reply: str) -> None:
        self.p = Producer({"bootstrap.servers": brokers, "linger.ms": 0, "acks": "all", "enable.idempotence": True})
        self.c = Consumer({"bootstrap.servers": brokers, "group.id": "bench-" + uuid.uuid4().hex,
                           "fetch.wait.max.ms": FETCH_WAIT_MS, "enable.auto.commit": False})  # fmt: skip
        _, hi = self.c.get_watermark_offsets(TopicPartition(reply, 0), timeout=10)
        self.c.assign([TopicPartition(reply, 0, hi)])

    def call(self, topic: str, rid: str, headers: list[tuple[str, str | bytes | None]]) -> float:
        start = time.perf_counter()
        self.p.produce(topic, key=rid, value=b'{"x":1}', headers=headers)
        self.p.poll(0)
        while True:
            m = self.c.poll(10)
            if m is None:
                raise TimeoutError(f"no answer to {rid}")
            if m.error() is None and dict(m.headers() or []).get("sl-id") == rid.encode():
                return time.perf_counter() - start

    def close(self) -> None:
        self.p.flush(5)
        self.c.close()


def raw_echo(brokers: str, src: str, dst: str, stop: threading.Event) -> None:
    """The hop written directly on confluent-kafka: consume, produce, commit."""
    c = Consumer({"bootstrap.servers": brokers, "group.id": "bench-raw-" + uuid.uuid4().hex,
                  "auto.offset.reset": "earliest", "fetch.wait.max.ms": FETCH_WAIT_MS})  # fmt: skip
    p = Producer({"bootstrap.servers": brokers, "linger.ms": 0, "acks": "all", "enable.idempotence": True})
    c.subscribe([src])
    while not stop.is_set():
        m = c.poll(0.1)
        if m is None or m.error() is not None:
            continue
        p.produce(dst, value=m.value(), headers=[("sl-id", dict(m.headers() or []).get("sl-id"))])
        p.poll(0)
    p.flush(5)
    c.close()


class Echo:
    async def handle(self, inp: Input, out: Output) -> None:
        out.emit(inp.value, inp.env.content_type)


def measure(name: str, n: int, warmup: int, one: Callable[[int], float]) -> list[float]:
    for i in range(warmup):
        one(-1 - i)
    xs = sorted(one(i) for i in range(n))
    q = statistics.quantiles(xs, n=100)
    print(f"{name:18} c1 n={n} p50 {q[49] * 1e3:6.2f} ms  p90 {q[89] * 1e3:6.2f} ms  p99 {q[98] * 1e3:6.2f} ms")
    return xs


def bench(brokers: str, n: int, warmup: int) -> None:
    run = uuid.uuid4().hex[:8]
    t = {k: f"bench-{run}-{k}" for k in ("raw-in", "raw-out", "in", "out", "dlq", "reply")}
    create(brokers, *t.values())

    stop = threading.Event()
    echo = threading.Thread(target=raw_echo, args=(brokers, t["raw-in"], t["raw-out"], stop), daemon=True)
    echo.start()
    raw = Client(brokers, t["raw-out"])
    sl = Client(brokers, t["reply"])
    measure("raw", n, warmup, lambda i: raw.call(t["raw-in"], f"raw-{i}", [("sl-id", f"raw-{i}")]))
    loops = {"asyncio": asyncio.new_event_loop}
    if event_loop.kind() != "asyncio":
        loops[event_loop.kind()] = event_loop.new_loop  # the replica process's loop
    for kind, new_loop in loops.items():
        topic = f"{t['in']}-{kind}"
        create(brokers, topic)
        cfg = ReplicaConfig(brokers=[brokers], group=f"bench-{run}-{kind}", topics=[topic], output=t["out"],
                            dead_letter=t["dlq"], deployment="echo")  # fmt: skip
        replica = Replica(cfg, Echo())
        loop = new_loop()
        served = threading.Thread(target=loop.run_until_complete, args=(replica.run(),), daemon=True)
        served.start()
        if not replica.ready.wait(30):
            raise TimeoutError("the replica got no partition")

        def one(i: int, k: str = kind, tp: str = topic) -> float:
            return sl.call(tp, f"r-{k}-{i}", [("sl-id", f"r-{k}-{i}"), ("sl-reply", t["reply"])])

        measure(f"replica ({kind})", n, warmup, one)
        replica.stop()
        served.join(30)
    raw.close()
    sl.close()
    stop.set()
    echo.join(10)
    idle_rss(brokers, run)


def idle_rss(brokers: str, run: str) -> None:
    proc = subprocess.Popen([sys.executable, __file__, "--serve-idle", brokers, run], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError("the idle replica did not start")
    time.sleep(3)
    rss = next(line for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines() if line.startswith("VmRSS"))
    print(f"idle Python replica (own process, one partition, no records): {' '.join(rss.split()[1:])}")
    proc.terminate()
    proc.wait(30)


def serve_idle(brokers: str, run: str) -> None:
    create(brokers, f"bench-{run}-idle-in")
    cfg = ReplicaConfig(brokers=[brokers], group=f"bench-{run}-idle", topics=[f"bench-{run}-idle-in"],
                        output=f"bench-{run}-out", dead_letter=f"bench-{run}-dlq", deployment="idle")  # fmt: skip
    replica = Replica(cfg, Echo())

    async def main() -> None:
        task = asyncio.create_task(replica.run())
        await asyncio.to_thread(replica.ready.wait, 30)
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        import signal

        loop.add_signal_handler(signal.SIGTERM, replica.stop)
        await task

    event_loop.run(main())


def start_dev(binary: str, tmp: str) -> tuple[subprocess.Popen[bytes], str]:
    log = Path(tmp) / "dev.log"
    binary = str(Path(binary).resolve())  # started in tmp
    with log.open("w") as out:
        proc = subprocess.Popen([binary, "dev", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0", "--builtin=false"],
                                cwd=tmp, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if m := _READY.search(log.read_text()):
            return proc, m.group(1).split()[0]
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("sluice dev did not start")


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve-idle":
        serve_idle(sys.argv[2], sys.argv[3])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--brokers", default=os.environ.get("SLUICE_TEST_BROKERS", ""))
    ap.add_argument("--sluice", default="", help="a sluice binary: start `sluice dev` and use its broker")
    ap.add_argument("-n", type=int, default=500)
    ap.add_argument("--warmup", type=int, default=50)
    args = ap.parse_args()
    if args.brokers:
        print(f"broker {args.brokers}")
        bench(args.brokers, args.n, args.warmup)
        return
    if not args.sluice:
        ap.error("give --brokers or --sluice")
    with tempfile.TemporaryDirectory(prefix="sluice-bench-") as tmp:
        proc, brokers = start_dev(args.sluice, tmp)
        print(f"broker {brokers} (sluice dev, embedded)")
        try:
            bench(brokers, args.n, args.warmup)
        finally:
            proc.terminate()
            proc.wait(20)


if __name__ == "__main__":
    main()
