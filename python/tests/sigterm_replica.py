"""A replica process for test_replica's SIGTERM test: it serves a slow
upper-casing handler until SIGTERM, then stops softly.
Usage: sigterm_replica.py BROKERS GROUP IN OUT DLQ"""

from __future__ import annotations

import asyncio
import sys

from sluice.replica import Input, Output, Replica, ReplicaConfig, serve_until_signalled

SLOW_S = 1.5


class Slow:
    async def handle(self, inp: Input, out: Output) -> None:
        print("handling", flush=True)
        await asyncio.sleep(SLOW_S)
        out.emit(inp.value.upper(), "text/plain")


def main() -> None:
    brokers, group, topic, output, dlq = sys.argv[1:6]
    cfg = ReplicaConfig(brokers=brokers.split(","), group=group, topics=[topic], output=output, dead_letter=dlq)
    asyncio.run(serve_until_signalled(Replica(cfg, Slow())))
    print("stopped", flush=True)


if __name__ == "__main__":
    main()
