"""The models report of a replica whose deployment multiplexes models:
what its caches hold and have done (Go's models.Report JSON), found on
the deployment's instance, and on a broker published under
models/<app>/<deployment>/<instance> with the partitions the replica
owns, and withdrawn by a tombstone."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from typing import Any

from broker import create_topics
from kafka_io import read_all
from sluice import serve
from sluice.replica import Input, Output, Publisher, Replica, current, models_report_key
from sluice.serve.multiplex import ModelCache, model_cache, model_caches, models_report
from test_replica import Uniq, make, replies, request


class Loader:
    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: set[str] = set()

    @serve.multiplexed(max_num_models_per_replica=2)
    async def get_model(self, model_id: str) -> str:
        await self.gate.wait()
        if model_id in self.fail:
            raise OSError(f"weights of {model_id} are unreadable")
        return model_id.upper()

    async def handle(self, inp: Input, out: Output) -> None:
        ctx = current()
        assert ctx is not None
        out.emit((await self.get_model(ctx.model)).encode(), "text/plain")


@serve.multiplexed(max_num_models_per_replica=1)
async def shared_model(model_id: str) -> str:
    return model_id


class Plain:
    """A deployment with no loader of its own (the module's plain one counts)."""


async def test_the_report_says_what_the_cache_holds_and_did() -> None:
    ld = Loader()
    [cache] = [c for c in model_caches(ld) if c.name.startswith("Loader.")]
    pokes: list[int] = []
    cache.on_change = lambda: pokes.append(1)

    for m in ["a", "b", "a"]:
        await ld.get_model(m)  # two misses (loads), one hit
    ld.fail.add("bad")
    with contextlib.suppress(Exception):
        await ld.get_model("bad")
    ld.gate.clear()
    pending = asyncio.ensure_future(ld.get_model("c"))  # loading; evicts b, the least recently used
    await asyncio.sleep(0.02)
    also = asyncio.ensure_future(ld.get_model("c"))  # waits for the same load: a hit, as Go counts it
    await asyncio.sleep(0.02)

    rep = models_report([cache], "app", "D", "r1", {"t.in": [0, 3]})
    assert (rep.loaded, rep.loading) == (["a"], ["c"])
    assert rep.failed == {"bad": "Loader.get_model: loading model bad raised OSError: weights of bad are unreadable"}
    assert (rep.hits, rep.misses, rep.loads, rep.evictions, rep.failures) == (2, 4, 2, 1, 1)
    assert pokes, "a load, an eviction or a failure pokes the publisher"

    doc = json.loads(rep.json())
    assert set(doc) == {"app", "deployment", "replica", "loaded", "loading", "failed", "memory_bytes", "hits",
                        "misses", "loads", "evictions", "failures", "partitions", "at"}  # fmt: skip
    assert (doc["app"], doc["deployment"], doc["replica"], doc["partitions"]) == ("app", "D", "r1", {"t.in": [0, 3]})
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", doc["at"]), doc["at"]

    ld.gate.set()
    await asyncio.gather(pending, also)
    ld.fail.clear()
    await ld.get_model("bad")  # loads now: its failure is no longer reported
    rep = models_report([cache], "app", "D", "r1", {})
    assert rep.loaded == ["bad", "c"] and rep.failed == {} and rep.loads == 4 and rep.evictions == 2
    doc = json.loads(rep.json())
    assert not {"loading", "failed", "partitions"} & set(doc), "empty ones are left out, as Go does"


async def test_a_deployments_caches_are_found_before_any_load() -> None:
    ld = Loader()
    caches = model_caches(ld)
    names = sorted(c.name for c in caches)
    assert names == ["Loader.get_model", "shared_model"], "its own loader, and the module's plain one"
    assert model_cache(ld.get_model) is caches[0], "the cache the loader then uses is the one found"
    await ld.get_model("x")
    assert caches[0].loaded() == ["x"]
    assert [c.name for c in model_caches(Plain())] == ["shared_model"]
    assert all(isinstance(c, ModelCache) for c in caches)


async def test_the_models_report_is_published_and_withdrawn(brokers: list[str], uniq: Uniq) -> None:
    cfg = make(brokers, uniq, partitions=2, app="a", instance="r0")
    status = uniq("status")
    await asyncio.to_thread(create_topics, brokers, [status])
    pub = Publisher(brokers, status)
    ld = Loader()
    caches = model_caches(ld)
    r = Replica(cfg, ld)
    pub.add(r, lambda: models_report(caches, cfg.app, cfg.deployment, cfg.instance, r.assignment()))
    for c in caches:
        c.on_change = pub.poke
    published = asyncio.create_task(pub.run())
    served = asyncio.create_task(r.run())
    key = models_report_key("a", "D", "r0").encode()
    try:
        await asyncio.to_thread(r.ready.wait, 20)
        deadline = time.monotonic() + 30
        for i, m in enumerate(["m1", "m2", "m1"]):
            await asyncio.to_thread(request, brokers, cfg, f"q{i}", b"x", sl_model=m)
            assert len(await replies(brokers, cfg, i + 1)) == i + 1
        last: dict[str, Any] = {}
        while last.get("loads") != 2 or last.get("hits") != 1:
            recs = [x for x in await asyncio.to_thread(read_all, brokers, status) if x.key == key]
            last = json.loads(recs[-1].value or b"{}") if recs else {}
            assert time.monotonic() < deadline, f"no models report of the loads: {last}"
            await asyncio.sleep(0.2)
        assert last["loaded"] == ["m1", "m2"] and last["misses"] == 2
        assert (last["app"], last["deployment"], last["replica"]) == ("a", "D", "r0")
        assert last["partitions"] == {cfg.topics[0]: [0, 1]}, "the partitions it owns, by topic"
    finally:
        r.stop()
        await asyncio.wait_for(served, 30)
        await asyncio.to_thread(pub.remove, r)
        published.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await published
    recs = [x for x in await asyncio.to_thread(read_all, brokers, status) if x.key == key]
    assert not recs[-1].value, "a withdrawn replica's last models record is a tombstone"
