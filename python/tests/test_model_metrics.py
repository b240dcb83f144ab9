"""The sluice_model_cache_* series of a Python replica whose deployment
multiplexes models, scraped from its /metrics on a broker: the counts of
its models report under Go's names, types and labels, only for a
multiplexed deployment, and gone once the replica stops."""

from __future__ import annotations

import asyncio
import contextlib
import urllib.request

from sluice import serve
from sluice.replica import Input, Output, Replica, current
from sluice.replica.metrics import Metrics, ModelCounts, Server, new_registry
from sluice.serve.hosted import watch_models
from sluice.serve.multiplex import models_report
from test_observe import scrape
from test_replica import Uniq, make, replies, request

CACHE_SERIES = {
    "sluice_model_cache_hits_total",
    "sluice_model_cache_misses_total",
    "sluice_model_cache_loads_total",
    "sluice_model_cache_evictions_total",
    "sluice_model_cache_failures_total",
    "sluice_model_cache_loaded",
}


class TwoModels:
    """Answers with the request's model, at most two held."""

    @serve.multiplexed(max_num_models_per_replica=2)
    async def get_model(self, model_id: str) -> str:
        return model_id.upper()

    async def handle(self, inp: Input, out: Output) -> None:
        ctx = current()
        assert ctx is not None
        out.emit((await self.get_model(ctx.model)).encode(), "text/plain")


class Echo:
    """A deployment that multiplexes nothing."""

    async def handle(self, inp: Input, out: Output) -> None:
        out.emit(inp.value, "text/plain")


def cache_samples(
    s: dict[str, dict[tuple[tuple[str, str], ...], float]],
) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    return {n: v for n, v in s.items() if n.startswith("sluice_model_cache_")}


async def test_a_multiplexed_replicas_cache_is_scraped(brokers: list[str], uniq: Uniq) -> None:
    m = Metrics()
    srv = Server("127.0.0.1:0", new_registry(m))
    mcfg = make(brokers, uniq, app="shop", deployment="Models", instance="Models-1", metrics=m)
    pcfg = make(brokers, uniq, app="shop", deployment="Plain", instance="Plain-1", metrics=m)
    ld = TwoModels()
    mr, pr = Replica(mcfg, ld), Replica(pcfg, Echo())
    caches = watch_models(mr, ld, None, m)
    assert [c.name for c in caches] == ["TwoModels.get_model"]
    assert watch_models(pr, Echo(), None, m) == [], "a deployment that multiplexes nothing"
    served = [asyncio.create_task(mr.run()), asyncio.create_task(pr.run())]
    lab = (("app", "shop"), ("deployment", "Models"), ("replica", "Models-1"))
    try:
        await asyncio.to_thread(mr.ready.wait, 20)
        await asyncio.to_thread(pr.ready.wait, 20)
        for i, model in enumerate(["a", "b", "a", "c"]):  # c evicts b, the least recently used
            await asyncio.to_thread(request, brokers, mcfg, f"q{i}", b"x", sl_model=model)
            got = await replies(brokers, mcfg, i + 1)
            assert got[f"q{i}"].value == model.upper().encode()
        await asyncio.to_thread(request, brokers, pcfg, "p0", b"hi")
        assert len(await replies(brokers, pcfg, 1)) == 1
        s = cache_samples(await asyncio.to_thread(scrape, srv.addr))
        assert set(s) == CACHE_SERIES
        for name in CACHE_SERIES:
            assert list(s[name]) == [lab], f"{name}: only the multiplexed replica, with Go's labels"
        got_counts = {n: s[n][lab] for n in CACHE_SERIES}
        assert got_counts == {
            "sluice_model_cache_hits_total": 1,
            "sluice_model_cache_misses_total": 3,
            "sluice_model_cache_loads_total": 3,
            "sluice_model_cache_evictions_total": 1,
            "sluice_model_cache_failures_total": 0,
            "sluice_model_cache_loaded": 2,
        }
        rep = models_report(caches, "shop", "Models", "Models-1", {})
        assert (rep.hits, rep.misses, rep.loads, rep.evictions, rep.failures, len(rep.loaded)) == (1, 3, 3, 1, 0, 2)
        assert rep.loaded == ["c", "a"]
        # Types as Go's: counters and a gauge.
        text = await asyncio.to_thread(_exposition, srv.addr)
        assert "# TYPE sluice_model_cache_hits_total counter" in text
        assert "# TYPE sluice_model_cache_loaded gauge" in text
        assert "sluice_model_cache_memory_bytes" not in text, "a Python model's size is not known"
        assert "sluice_model_cache_hits_created" not in text

        mr.stop()
        await asyncio.wait_for(served[0], 30)
        s = cache_samples(await asyncio.to_thread(scrape, srv.addr))
        assert s == {}, "a stopped replica's cache leaves the scrape; the plain one exports none"
    finally:
        for r in (mr, pr):
            r.stop()
        for t in served:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(t, 30)
        srv.close()


def _exposition(addr: str) -> str:
    with urllib.request.urlopen(f"http://{addr}/metrics", timeout=10) as resp:
        return str(resp.read().decode())


def test_the_series_wait_for_the_replica_to_run(brokers: list[str], uniq: Uniq) -> None:
    m = Metrics()
    ld = TwoModels()
    r = Replica(make(brokers, uniq, metrics=m), ld)
    assert watch_models(r, ld, None, None) == [], "no metrics, no status topic: no caches looked for"
    read: list[int] = []

    def counts() -> ModelCounts:
        read.append(1)
        return ModelCounts(0, 0, 0, 0, 0, 0)

    m.models(r, counts)
    assert not [f for f in m.collect() if f.name.startswith("sluice_model_cache_")], "not running: not exported"
    assert not read
