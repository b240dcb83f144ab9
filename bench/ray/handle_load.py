"""Closed-loop load through an application's Python handle: the driver
code of examples/python/chain.py (`handle = serve.run(app)`, then
`handle.remote(5).result()`), run by c threads at a time, on Sluice or on
Ray Serve with the same module (bench/ray/pyports.py passes the copy with
Ray's imports).

    python handle_load.py --module-dir DIR --module chain --name py-chain \\
        --route-prefix /py/chain --c 1,16,64 --duration 5 --warmup 2 [--ray ADDRESS]

Sluice: the platform is SLUICE_ADDR (serve.run deploys there). Ray: the
cluster at ADDRESS (serve.run deploys to its running Serve). Prints one
JSON object per concurrency: requests, errors, rps, p50_ms, p99_ms.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import threading
import time


def closed_loop(call, conc: int, duration: float, warmup: float) -> dict:
    lat: list[float] = []
    errors = [0]
    first_error = [""]
    lock = threading.Lock()
    start = time.monotonic()
    measure_from, stop_at = start + warmup, start + warmup + duration

    def worker() -> None:
        mine: list[float] = []
        errs = 0
        while True:
            t0 = time.monotonic()
            if t0 >= stop_at:
                break
            try:
                if call() != 12:
                    raise ValueError("not 12")
            except Exception as exc:  # noqa: BLE001 - counted, the loop goes on
                errs += 1
                with lock:
                    first_error[0] = first_error[0] or repr(exc)
                continue
            t1 = time.monotonic()
            if t0 >= measure_from and t1 <= stop_at:
                mine.append(t1 - t0)
        with lock:
            lat.extend(mine)
            errors[0] += errs

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(conc)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lat.sort()

    def q(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else 0.0

    return {"c": conc, "requests": len(lat), "errors": errors[0], "rps": len(lat) / duration,
            "p50_ms": q(0.50), "p99_ms": q(0.99), "first_error": first_error[0]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--module-dir", required=True)
    p.add_argument("--module", default="chain")
    p.add_argument("--name", default="py-chain")
    p.add_argument("--route-prefix", default="/py/chain")
    p.add_argument("--c", default="1,16,64")
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--ray", default="", help="the Ray cluster's address; empty: Sluice at SLUICE_ADDR")
    a = p.parse_args()
    sys.path.insert(0, a.module_dir)
    mod = importlib.import_module(a.module)
    if a.ray:
        import ray
        from ray import serve

        ray.init(address=a.ray, logging_level="ERROR", log_to_driver=False)
    else:
        from sluice import serve  # type: ignore[no-redef]
    handle = serve.run(mod.app, name=a.name, route_prefix=a.route_prefix)
    for conc in (int(c) for c in a.c.split(",")):
        print(json.dumps(closed_loop(lambda: handle.remote(5).result(), conc, a.duration, a.warmup)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
