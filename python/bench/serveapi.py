"""What two serve-API features buy, each against its baseline measured in
the same run on the same broker, with serve.run in this process:

forward: an async ingress calling A, then B with A's result: B.remote(A.remote(x))
         forwarded (one record with sl-cont, A answers straight to B) against
         B.remote(await A.remote(x)) (A's answer comes back, then goes out
         again); latency per request at concurrency 1.
batch:   a deployment whose per-call cost is fixed (a 10 ms step, one at a
         time: a lock and a sleep standing in for a model on one device)
         called 200 times at once, @serve.batch
         (max_batch_size 16) against the same method unbatched, with
         max_ongoing_requests 32; requests per second.

    python bench/serveapi.py --sluice /path/to/sluice   # starts `sluice dev`
    python bench/serveapi.py --brokers HOST:PORT"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from roundtrip import start_dev
from sluice import serve
from sluice.serve import DeploymentHandle

STEP_S = 0.01


class Add:
    async def __call__(self, x: int) -> int:
        return x + 1


class Chain:
    def __init__(self, a: DeploymentHandle, b: DeploymentHandle) -> None:
        self.a, self.b = a, b

    async def __call__(self, req: dict[str, Any]) -> int:
        if req["forward"]:
            r: int = await self.b.remote(self.a.remote(req["x"]))
            return r
        return int(await self.b.remote(await self.a.remote(req["x"])))


class Model:
    def __init__(self) -> None:
        self.device = asyncio.Lock()  # created on the replica's loop, at its first use

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def batched(self, xs: list[int]) -> list[int]:
        async with self.device:
            await asyncio.sleep(STEP_S)
        return [x * 2 for x in xs]

    async def single(self, x: int) -> int:
        async with self.device:
            await asyncio.sleep(STEP_S)
        return x * 2


def forward(brokers: list[str], n: int, warmup: int) -> None:
    add = serve.deployment(Add)
    app = serve.deployment(Chain).bind(add.options(name="A").bind(), add.options(name="B").bind())
    h = serve.run(app, name="bench-fwd-" + uuid.uuid4().hex[:6], brokers=brokers)
    lat: dict[bool, list[float]] = {True: [], False: []}
    for i in range(warmup + n):
        for fwd in (True, False):  # interleaved: both see the same broker load
            start = time.perf_counter()
            assert h.remote({"x": i, "forward": fwd}).result(timeout_s=30) == i + 2
            if i >= warmup:
                lat[fwd].append(time.perf_counter() - start)
    p50 = {k: statistics.median(v) * 1e3 for k, v in lat.items()}
    p99 = {k: sorted(v)[int(len(v) * 0.99) - 1] * 1e3 for k, v in lat.items()}
    print(f"forward: awaited p50 {p50[False]:.2f} ms p99 {p99[False]:.2f} ms; "
          f"forwarded p50 {p50[True]:.2f} ms p99 {p99[True]:.2f} ms; "
          f"forwarded/awaited p50 {p50[True] / p50[False]:.2f}")  # fmt: skip


def batch(brokers: list[str], calls: int, rounds: int) -> None:
    m = serve.deployment(max_ongoing_requests=32)(Model)
    h = serve.run(m.bind(), name="bench-batch-" + uuid.uuid4().hex[:6], brokers=brokers)
    rate: dict[str, list[float]] = {"batched": [], "single": []}
    for _ in range(rounds):
        for method in ("batched", "single"):
            start = time.perf_counter()
            rs = [h.options(method_name=method).remote(i) for i in range(calls)]
            assert [r.result(timeout_s=60) for r in rs] == [2 * i for i in range(calls)]
            rate[method].append(calls / (time.perf_counter() - start))
    b, s = statistics.median(rate["batched"]), statistics.median(rate["single"])
    print(f"batch: unbatched {s:.0f} req/s; batched {b:.0f} req/s; batched/unbatched {b / s:.2f} "
          f"({calls} calls at once, {rounds} rounds, median)")  # fmt: skip


def run(brokers: list[str], n: int, warmup: int) -> None:
    try:
        forward(brokers, n, warmup)
        batch(brokers, 200, 5)
    finally:
        serve.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--brokers", default=os.environ.get("SLUICE_TEST_BROKERS", ""))
    ap.add_argument("--sluice", default="", help="a sluice binary: start `sluice dev` and use its broker")
    ap.add_argument("-n", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=30)
    args = ap.parse_args()
    if args.brokers:
        print(f"broker {args.brokers}")
        run(args.brokers.split(","), args.n, args.warmup)
        return
    if not args.sluice:
        ap.error("give --brokers or --sluice")
    with tempfile.TemporaryDirectory(prefix="sluice-bench-") as tmp:
        proc, brokers = start_dev(args.sluice, tmp)
        print(f"broker {brokers} (sluice dev, embedded)")
        try:
            run(brokers.split(","), args.n, args.warmup)
        finally:
            proc.terminate()
            proc.wait(20)


if __name__ == "__main__":
    main()
