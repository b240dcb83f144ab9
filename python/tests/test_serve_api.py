"""The rest of Ray Serve's API on a broker: method calls on handles
(sl-method), responses with timeouts, streamed answers through handles,
reconfigure(user_config), @serve.batch under concurrent load, and
check_health failing a hosted replica (the process the platform runs)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from sluice import serve
from sluice.protocol import SluiceError
from sluice.protocol.names import Namer
from sluice.replica import Replica, ReplicaConfig
from sluice.serve import DeploymentHandle, UnsupportedOption
from sluice.serve.batching import batch
from sluice.serve.invoke import Invoker


class Greeter:
    def __init__(self) -> None:
        self.greeting = "hello"

    def reconfigure(self, cfg: dict[str, str]) -> None:
        self.greeting = cfg["greeting"]

    def __call__(self, name: str) -> str:
        return f"{self.greeting} {name}"

    def say_hello(self, name: str) -> str:
        return f"{self.greeting}, {name}, from say_hello"

    async def shout(self, name: str) -> str:
        return name.upper() + "!"

    async def slow(self, s: float) -> str:
        await asyncio.sleep(s)
        return "late"

    def count(self, n: int) -> Iterator[int]:  # a generator: streamed
        yield from range(n)

    async def tick(self, n: int) -> AsyncIterator[str]:
        for i in range(n):
            yield f"t{i}"

    def _private(self, x: Any) -> Any:
        return x


class Caller:
    """Calls Greeter's methods and stream from inside a replica."""

    def __init__(self, greeter: DeploymentHandle) -> None:
        self.greeter = greeter

    async def __call__(self, name: str) -> dict[str, Any]:
        shout = await self.greeter.shout.remote(name)
        chained = await self.greeter.options(method_name="say_hello").remote(self.greeter.shout.remote(name))
        items = [i async for i in self.greeter.options(stream=True).count.remote(4)]
        # Passed on in the same turn: one record, the first answer going
        # straight to the second call (sl-cont); it has no result here.
        first = self.greeter.remote(name)
        forwarded = await self.greeter.remote(first)
        try:
            await first
            went_on = False
        except serve.Forwarded:
            went_on = True
        return {"shout": shout, "chained": chained, "items": items, "forwarded": forwarded, "went_on": went_on}


GreeterDeployment = serve.deployment(user_config={"greeting": "howdy"})(Greeter)
CallerDeployment = serve.deployment(Caller)


@pytest.fixture
def app_name() -> Iterator[str]:
    yield "py-api-" + uuid.uuid4().hex[:8]
    serve.shutdown()


def test_methods_streams_and_user_config(brokers: list[str], app_name: str) -> None:
    handle = serve.run(CallerDeployment.bind(GreeterDeployment.bind()), name=app_name, brokers=brokers)
    got = handle.remote("ada").result(timeout_s=30)
    assert got == {"shout": "ADA!", "chained": "howdy, ADA!, from say_hello", "items": [0, 1, 2, 3],
                   "forwarded": "howdy howdy ada", "went_on": True}  # fmt: skip

    g = serve.run(GreeterDeployment.bind(), name=app_name + "-g", brokers=brokers)
    assert g.remote("bo").result(timeout_s=30) == "howdy bo", "reconfigure got user_config after construction"
    assert g.say_hello.remote("bo").result(timeout_s=30) == "howdy, bo, from say_hello"
    assert g.options(method_name="__call__").remote("cy").result(timeout_s=30) == "howdy cy"
    # A streamed call from the driver, with for and with async for.
    assert list(g.options(stream=True).count.remote(5)) == [0, 1, 2, 3, 4]

    async def ticks() -> list[str]:
        return [t async for t in g.options(stream=True).tick.remote(3)]

    assert asyncio.run(ticks()) == ["t0", "t1", "t2"]
    # A method the deployment does not have is refused, naming it; the
    # default call never runs instead.
    for bad in ("nope", "reconfigure"):
        with pytest.raises(SluiceError) as exc:
            g.options(method_name=bad).remote("x").result(timeout_s=30)
        assert exc.value.code == "invalid_argument" and repr(bad) in exc.value.message
    with pytest.raises(ValueError, match="_private"):
        g.options(method_name="_private")
    # result(timeout_s=) raises TimeoutError; the call goes on.
    slow = g.slow.remote(1.5)
    with pytest.raises(TimeoutError):
        slow.result(timeout_s=0.2)
    assert slow.result(timeout_s=30) == "late"
    # A stream asked of a unary method, and a unary call of a stream, fail.
    with pytest.raises(TypeError):
        list(g.options(stream=True).say_hello.remote("x"))
    with pytest.raises(TypeError):
        g.count.remote(2).result(timeout_s=30)


class Doubler:
    def __init__(self) -> None:
        self.sizes: list[int] = []

    @batch(max_batch_size=8, batch_wait_timeout_s=0.05)
    async def __call__(self, xs: list[int]) -> list[int]:
        self.sizes.append(len(xs))
        if -1 in xs:
            raise ValueError(f"a bad item in {sorted(xs)}")
        return [2 * x for x in xs]

    def sizes_seen(self, _: Any) -> list[int]:
        return self.sizes


def test_batches_form_under_concurrent_load(brokers: list[str], app_name: str) -> None:
    d = serve.deployment(max_ongoing_requests=16)(Doubler)
    handle = serve.run(d.bind(), name=app_name, brokers=brokers)
    responses = [handle.remote(i) for i in range(32)]
    assert [r.result(timeout_s=30) for r in responses] == [2 * i for i in range(32)]
    sizes = handle.sizes_seen.remote(None).result(timeout_s=30)
    assert sum(sizes) == 32 and max(sizes) > 1, f"batch sizes {sizes}: no batch formed"
    assert max(sizes) <= 8


def test_a_failing_item_fails_its_whole_batch() -> None:
    async def go() -> None:
        d = Doubler()
        results = await asyncio.gather(*(d(x) for x in (1, 2, -1, 3)), return_exceptions=True)
        assert d.sizes == [4]
        assert all(isinstance(r, ValueError) and "bad item" in str(r) for r in results), results
        ok = await asyncio.gather(*(d(x) for x in range(10)))
        assert ok == [2 * x for x in range(10)] and d.sizes[1:] == [8, 2]

    asyncio.run(go())


def test_batch_refuses_sync_functions() -> None:
    with pytest.raises(TypeError, match="not an async function"):

        def f(xs: list[int]) -> list[int]:
            return xs

        batch(f)  # type: ignore[arg-type]


def test_options_map_to_the_spec() -> None:
    d = serve.deployment(
        autoscaling_config={"min_replicas": 0, "max_replicas": 6, "target_ongoing_requests": 3, "upscale_delay_s": 2},
        max_ongoing_requests=9,
        user_config={"threshold": 0.5},
        ray_actor_options={"num_cpus": 2, "num_gpus": 0.5, "memory": 2 << 30},
        health_check_period_s=5,
        graceful_shutdown_timeout_s=7,
    )(Greeter)
    spec = d.opts.spec()
    assert spec == {
        "replicas": {"min": 0, "initial": 0, "max": 6},
        "autoscaling": {"target_ongoing_requests": 3.0, "scale_up_delay": "2000ms", "scale_down_delay": "600000ms"},
        "max_ongoing_requests": 9,
        "user_config": {"threshold": 0.5},
        "resources": {"cpu": 2.0, "memory": 2 << 30, "gpu": 0.5},
    }
    assert serve.deployment(num_replicas="auto")(Greeter).opts.spec()["replicas"] == {
        "min": 1,
        "initial": 1,
        "max": 100,
    }
    assert serve.deployment(num_replicas=3)(Greeter).opts.spec()["replicas"] == {"min": 3, "initial": 3, "max": 3}


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"placement_group_bundles": [{"CPU": 1}]}, ["placement_group_bundles", "ray_actor_options"]),
        ({"max_queued_requests": 10}, ["max_queued_requests", "autoscaling_config"]),
        ({"ray_actor_options": {"resources": {"TPU": 1}}}, ["resources", "num_cpus"]),
        ({"ray_actor_options": {"runtime_env": {"pip": ["x"]}}}, ["runtime_env", "requirements.txt"]),
        ({"autoscaling_config": {"smoothing_factor": 2}}, ["smoothing_factor", "upscale_delay_s"]),
        ({"made_up": 1}, ["made_up"]),
    ],
)
def test_options_sluice_has_no_meaning_for_are_refused(kwargs: dict[str, Any], names: list[str]) -> None:
    with pytest.raises(UnsupportedOption) as exc:
        serve.deployment(**kwargs)(Greeter)
    for n in names:
        assert n in str(exc.value)
    with pytest.raises(UnsupportedOption, match="placement_group_bundles"):
        serve.deployment(Greeter).options(placement_group_bundles=[])


def test_describe_refuses_an_unsupported_option_with_exit_2(tmp_path: Path) -> None:
    (tmp_path / "ray_only.py").write_text(
        "from sluice import serve\n\n\n"
        "@serve.deployment(max_queued_requests=4)\n"
        "class A:\n"
        "    def __call__(self, x):\n"
        "        return x\n\n\n"
        "app = A.bind()\n"
    )
    p = subprocess.run(
        [sys.executable, "-m", "sluice", "describe", "--import-path", "ray_only:app", "--app-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 2, p.stderr
    assert "UnsupportedOption" in p.stderr and "max_queued_requests" in p.stderr and "ray_only.py:4" in p.stderr


HEALTH_APP = """
import os

from sluice import serve


@serve.deployment(health_check_period_s=0.2, health_check_timeout_s=2)
class Flaky:
    def __init__(self):
        self.checks = 0

    def check_health(self):
        self.checks += 1
        if self.checks >= 3:
            raise RuntimeError("the model went away")

    def __call__(self, x):
        return x


app = Flaky.bind()
"""


def test_a_failing_health_check_stops_the_replica_process(brokers: list[str], tmp_path: Path, uniq: Any) -> None:
    """The replica the platform runs reports not ready, stops softly and
    exits 3, naming the failure: the platform starts another."""
    (tmp_path / "flaky.py").write_text(HEALTH_APP)
    topic = uniq("in")
    from sluice.serve.caller import ensure_topics

    ensure_topics(brokers, [topic, uniq("out"), uniq("dlq")])
    cmd = [sys.executable, "-m", "sluice.replica", "--brokers", ",".join(brokers), "--app", "h",
           "--deployment", "Flaky", "--group", uniq("g"), "--topic", topic, "--output", uniq("out"),
           "--dead-letter", uniq("dlq"),
           "--instance", "Flaky-0", "--import-path", "flaky:app", "--app-dir", str(tmp_path)]  # fmt: skip
    start = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert p.returncode == 3, p.stderr[-2000:]
    assert "check_health raised RuntimeError: the model went away" in p.stderr
    assert time.monotonic() - start < 30


def test_a_failing_health_check_stops_an_in_process_replica(brokers: list[str], app_name: str) -> None:
    """A replica whose check starts failing once it serves goes unready.
    (It fails only from then on: a replica failing before it was ever
    ready is never ready, and serve.run would wait for it in vain.)"""
    sick, checked = threading.Event(), threading.Event()

    class Sick:
        def check_health(self) -> None:
            if sick.is_set():
                checked.set()
                raise RuntimeError("sick")

        def __call__(self, x: int) -> int:
            return x

    serve.run(serve.deployment(health_check_period_s=0.1)(Sick).bind(), name=app_name, brokers=brokers)
    sick.set()
    assert checked.wait(10)
    from sluice.serve import api

    (running,) = [r for r in api._running if r.name == app_name]
    deadline = time.monotonic() + 10
    while running.replicas[0].healthy and time.monotonic() < deadline:
        time.sleep(0.05)
    r = running.replicas[0]
    assert not r.healthy and not r.ready.is_set() and not r.report().ready


def test_check_health_timeout_and_async_hooks() -> None:
    from sluice.serve.invoke import HealthCheckFailed, Invoker

    class Slow:
        def __init__(self) -> None:
            self.cfg: Any = None

        async def reconfigure(self, cfg: Any) -> None:
            self.cfg = cfg

        async def check_health(self) -> None:
            await asyncio.sleep(5)

    async def go() -> None:
        target = Slow()
        opts = serve.deployment(health_check_timeout_s=0.1)(Slow).opts
        inv = Invoker(target, opts)
        assert await inv.reconfigure({"a": 1}) and target.cfg == {"a": 1}
        start = time.monotonic()
        with pytest.raises(HealthCheckFailed, match=r"did not return within 0.1s \(health_check_timeout_s\)"):
            await inv.check_health()
        assert time.monotonic() - start < 2
        assert not inv.has_method("check_health") and not inv.has_method("_x") and not inv.has_method("nope")
        assert not await Invoker(len, opts).reconfigure({}), "a function has no reconfigure"

    asyncio.run(go())


def test_a_named_handle_reaches_a_deployment_served_elsewhere(brokers: list[str], app_name: str) -> None:
    """get_deployment_handle in serve.run: the edge topic is made, and a
    replica of the named deployment served by another serve.run of the
    same application (as a Go one would be) answers on it."""

    class Front:
        def __init__(self, other: DeploymentHandle) -> None:
            self.other = other

        async def __call__(self, x: int) -> int:
            return int(await self.other.remote(x)) + 1

    front = serve.deployment(Front).bind(serve.get_deployment_handle("Other"))
    h = serve.run(front, name=app_name, brokers=brokers)

    # Other, served by a replica of its own (as a Go one would be), reads
    # the edge Front -> Other that Front's serve.run made.
    namer = Namer("sluice")
    cfg = ReplicaConfig(brokers=brokers, group=namer.group(app_name, "Other"),
                        topics=[namer.edge(app_name, "Front", "Other")], output=namer.output(app_name),
                        dead_letter=namer.dead_letter(app_name), deployment="Other", app=app_name,
                        instance="Other-0")  # fmt: skip
    r = Replica(cfg, Invoker(lambda x: 10 * x, serve.deployment(name="Other")(len).opts))
    loop = asyncio.new_event_loop()
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    running = asyncio.run_coroutine_threadsafe(r.run(), loop)
    try:
        assert r.ready.wait(30)
        assert h.remote(4).result(timeout_s=30) == 41
    finally:
        r.stop()
        running.result(30)
        loop.call_soon_threadsafe(loop.stop)
        t.join(10)


class Calc:
    def add(self, a: int, b: int, *, scale: int = 1) -> int:
        return (a + b) * scale

    async def join(self, *parts: str, sep: str = "-") -> str:
        return sep.join(parts)

    def one(self, x: int) -> int:
        return x + 1

    def none(self) -> str:
        return "no arguments"


class CalcFront:
    """Calls Calc's methods with several arguments, keyword ones, and a
    response among them, from inside a replica."""

    def __init__(self, calc: DeploymentHandle) -> None:
        self.calc = calc

    async def __call__(self, x: int) -> dict[str, Any]:
        return {
            "add": await self.calc.add.remote(x, 3, scale=10),
            "join": await self.calc.join.remote("a", "b", "c", sep="+"),
            "from_response": await self.calc.add.remote(self.calc.one.remote(x), b=self.calc.one.remote(1)),
            "none": await self.calc.none.remote(),
        }


def test_calls_with_several_and_keyword_arguments(brokers: list[str], app_name: str) -> None:
    """handle.method.remote(a, b, k=v) as in Ray Serve: spread into the
    method's parameters, inside a replica and from serve.run's handle; a
    response among the arguments awaited first; one argument still
    travels as itself."""
    calc = serve.deployment(Calc)
    h = serve.run(serve.deployment(CalcFront).bind(calc.bind()), name=app_name, brokers=brokers)
    assert h.remote(2).result(timeout_s=30) == {"add": 50, "join": "a+b+c", "from_response": 5, "none": "no arguments"}
    c = serve.run(calc.bind(), name=app_name + "-c", brokers=brokers)
    assert c.add.remote(1, 2, scale=3).result(timeout_s=30) == 9
    assert c.add.remote(c.one.remote(1), 2).result(timeout_s=30) == 4
    with pytest.raises(SluiceError) as exc:
        c.add.remote(1).result(timeout_s=30)
    assert "TypeError" in exc.value.message and "b" in exc.value.message
