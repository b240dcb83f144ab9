"""@serve.multiplexed and serve.get_multiplexed_model_id: the loader runs
once per model id per replica, at most N models stay loaded (the least
recently used is evicted, its __del__ called), concurrent requests share
one load, a failed load is retried by the next request; and on a broker,
handle.options(multiplexed_model_id=) names the model and keys the call."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from concurrent.futures import Future

import pytest

from sluice import serve
from sluice.protocol import Request, SluiceError
from sluice.protocol.names import Namer
from sluice.serve import DeploymentHandle
from sluice.serve.caller import Answer
from sluice.serve.multiplex import check_model_id, model_cache


class Model:
    def __init__(self, model_id: str, unloaded: list[str]) -> None:
        self.model_id = model_id
        self._unloaded = unloaded

    def __del__(self) -> None:
        if self.model_id not in self._unloaded:  # the collector may call it again
            self._unloaded.append(self.model_id)


class Loader:
    def __init__(self) -> None:
        self.loads: list[str] = []
        self.unloaded: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: set[str] = set()

    @serve.multiplexed(max_num_models_per_replica=2)
    async def get_model(self, model_id: str) -> Model:
        self.loads.append(model_id)
        await self.gate.wait()
        if model_id in self.fail:
            raise OSError(f"weights of {model_id} are unreadable")
        return Model(model_id, self.unloaded)


async def test_loads_once_per_model_and_evicts_the_least_recently_used() -> None:
    ld = Loader()
    for m in ["a", "b", "a", "a", "b"]:
        assert (await ld.get_model(m)).model_id == m
    assert ld.loads == ["a", "b"], "each model is loaded once while it stays"
    await ld.get_model("c")  # a was used before b: a goes
    assert ld.unloaded == ["a"], "the least recently used model is evicted, its __del__ called"
    cache = model_cache(ld.get_model)
    assert cache is not None and cache.loaded() == ["c", "b"] and cache.evictions == 1
    await ld.get_model("a")
    assert ld.loads == ["a", "b", "c", "a"], "an evicted model is loaded again"
    assert ld.unloaded == ["a", "b"]
    other = Loader()
    await other.get_model("a")
    assert other.loads == ["a"], "each instance (replica) has its own cache"


async def test_concurrent_requests_share_one_load() -> None:
    ld = Loader()
    ld.gate.clear()
    waiting = [asyncio.ensure_future(ld.get_model("m")) for _ in range(5)]
    await asyncio.sleep(0.05)
    assert ld.loads == ["m"]
    waiting[0].cancel()  # a request that gives up does not abort the load
    ld.gate.set()
    models = await asyncio.gather(*waiting[1:])
    assert ld.loads == ["m"] and all(m is models[0] for m in models)


async def test_a_failed_load_names_the_exception_and_is_retried() -> None:
    ld = Loader()
    ld.fail.add("bad")
    for _ in range(2):
        with pytest.raises(SluiceError) as exc:
            await ld.get_model("bad")
        assert exc.value.code == "internal"
        assert "loading model bad raised OSError: weights of bad are unreadable" in exc.value.message
    assert ld.loads == ["bad", "bad"], "a failed load leaves nothing behind: the next request loads again"
    ld.fail.clear()
    assert (await ld.get_model("bad")).model_id == "bad"


async def test_a_cancelled_load_fails_its_waiters_and_is_retried() -> None:
    ld = Loader()
    ld.gate.clear()
    waiting = asyncio.ensure_future(ld.get_model("m"))
    await asyncio.sleep(0.01)
    cache = model_cache(ld.get_model)
    assert cache is not None
    for task in list(cache._tasks):  # the loop shutting down, say
        task.cancel()
    with pytest.raises(SluiceError) as exc:
        await waiting
    assert exc.value.code == "unavailable" and "cancelled" in exc.value.message
    ld.gate.set()
    assert (await ld.get_model("m")).model_id == "m" and ld.loads == ["m", "m"]


async def test_model_ids_unsafe_as_keys_are_refused() -> None:
    ld = Loader()
    for bad in ["a/b", "../x", "a b", "-a", "a@b@c", "é", "x" * 129]:
        with pytest.raises(SluiceError) as exc:
            await ld.get_model(bad)
        assert exc.value.code == "invalid_argument" and repr(bad) in exc.value.message
    assert ld.loads == []
    assert check_model_id("iris-a@2") == "iris-a@2"
    with pytest.raises(SluiceError) as exc:
        await ld.get_model()  # type: ignore[call-arg]  # outside a request: no model id
    assert exc.value.code == "invalid_argument" and "serve_multiplexed_model_id" in exc.value.message


def test_the_loader_must_be_async() -> None:
    with pytest.raises(TypeError, match="not an async function"):
        serve.multiplexed(lambda model_id: model_id)


class Multiplexed:
    def __init__(self) -> None:
        self.loads = 0

    @serve.multiplexed(max_num_models_per_replica=2)
    async def get_model(self, model_id: str) -> str:
        self.loads += 1
        await asyncio.sleep(0.01)
        return model_id.upper()

    async def __call__(self, x: int) -> dict[str, object]:
        model = await self.get_model(serve.get_multiplexed_model_id())
        return {"id": serve.get_multiplexed_model_id(), "model": model, "x": x, "loads": self.loads}


MultiplexedDeployment = serve.deployment(Multiplexed)


@pytest.fixture
def app_name() -> Iterator[str]:
    yield "py-mux-" + uuid.uuid4().hex[:8]
    serve.shutdown()


def test_a_handle_names_the_model(brokers: list[str], app_name: str) -> None:
    handle = serve.run(MultiplexedDeployment.bind(), name=app_name, brokers=brokers)
    a, b, c = (handle.options(multiplexed_model_id=m) for m in ("m-a", "m-b", "m-c"))
    assert a.remote(1).result(timeout_s=30) == {"id": "m-a", "model": "M-A", "x": 1, "loads": 1}
    assert [h.remote(2).result(timeout_s=30)["loads"] for h in (a, b, a, c, a)] == [1, 2, 2, 3, 3]
    assert b.remote(3).result(timeout_s=30)["loads"] == 4, "b was evicted (at most 2 models), so loaded again"
    with pytest.raises(SluiceError) as exc:
        handle.remote(4).result(timeout_s=30)
    assert exc.value.code == "invalid_argument" and "names no model" in exc.value.message
    with pytest.raises(SluiceError):
        handle.options(multiplexed_model_id="a/b")


class Recorder:
    """Stands in for a Caller: keeps the requests a handle sends."""

    def __init__(self) -> None:
        self.sent: list[Request] = []

    def new_id(self) -> str:
        return f"id-{len(self.sent)}"

    def call(self, req: Request) -> Future[Answer]:
        self.sent.append(req)
        return Future()


def test_a_model_id_is_the_key_and_sl_model() -> None:
    rec = Recorder()
    h = DeploymentHandle(rec, Namer("sluice"), "app", "dep", None)  # type: ignore[arg-type]
    h.options(multiplexed_model_id="iris-b").remote(1)
    h.remote(2)
    keyed, plain = rec.sent
    assert (keyed.key, keyed.env.model) == (b"iris-b", "iris-b")
    assert (plain.key, plain.env.model) == (b"id-1", ""), "without a model, a call is keyed by its id as before"


def murmur2_partition(key: bytes, n: int) -> int:
    """Kafka's key partition (streams.KeyPartition): murmur2 with Kafka's seed."""
    m, mask = 0x5BD1E995, 0xFFFFFFFF
    h = (0x9747B28C ^ len(key)) & mask
    i = 0
    while len(key) - i >= 4:
        k = int.from_bytes(key[i : i + 4], "little")
        k = (k * m) & mask
        k ^= k >> 24
        h = ((h * m) & mask) ^ ((k * m) & mask)
        i += 4
    rest = key[i:]
    if len(rest) == 3:
        h ^= rest[2] << 16
    if len(rest) >= 2:
        h ^= rest[1] << 8
    if len(rest) >= 1:
        h ^= rest[0]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return (h & 0x7FFFFFFF) % n


class WhoServes:
    def __init__(self) -> None:
        self.me = uuid.uuid4().hex

    @serve.multiplexed(max_num_models_per_replica=8)
    async def get_model(self, model_id: str) -> str:
        return model_id

    async def __call__(self, _: int) -> dict[str, object]:
        await self.get_model(serve.get_multiplexed_model_id())
        cache = model_cache(self.get_model)
        assert cache is not None
        return {"replica": self.me, "loads": cache.loads}


def test_one_models_calls_reach_one_replica(brokers: list[str], app_name: str) -> None:
    """Two replicas, a partition each: every call for a model goes to the
    partition murmur2 gives its id (as the gateway's do), so to one
    replica, which loads it once."""
    dep = serve.deployment(WhoServes).options(num_replicas=2)
    handle = serve.run(dep.bind(), name=app_name, brokers=brokers)
    models = [f"m{i}" for i in range(8)]
    served: dict[str, set[str]] = {m: set() for m in models}
    by_partition: dict[int, set[str]] = {0: set(), 1: set()}
    for _ in range(3):
        for m in models:
            ans = handle.options(multiplexed_model_id=m).remote(0).result(timeout_s=30)
            served[m].add(str(ans["replica"]))
            by_partition[murmur2_partition(m.encode(), 2)].add(str(ans["replica"]))
    assert all(len(r) == 1 for r in served.values()), f"a model served by two replicas: {served}"
    assert all(len(r) == 1 for r in by_partition.values()) and by_partition[0] != by_partition[1], (
        f"the replicas do not follow murmur2's partitions: {by_partition}"
    )
