"""The replica's invariants beyond the conformance suite, on a broker:
bounded concurrency, the committed prefix, exceptions answered, deadlines
while serving, soft stop on SIGTERM, failover between members."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from broker import create_topics
from kafka_io import committed, produce, read_all
from sluice.protocol import Record, SluiceError, parse_reply
from sluice.replica import Handler, Input, Output, Publisher, Replica, ReplicaConfig, current, report_key
from sluice.replica import loop as event_loop
from sluice.serve.deployment import Options
from sluice.serve.invoke import Invoker

Uniq = Callable[[str], str]


@asynccontextmanager
async def running(cfg: ReplicaConfig, handler: Handler) -> AsyncIterator[Replica]:
    r = Replica(cfg, handler)
    task = asyncio.create_task(r.run())
    try:
        yield r
    finally:
        r.stop()
        await asyncio.wait_for(task, 30)


def make(brokers: list[str], uniq: Uniq, partitions: int = 1, **kw: object) -> ReplicaConfig:
    """A replica's config on new topics (its input with partitions), and
    the reply topic its requests name (reply_topic)."""
    names = [uniq(n) for n in ("in", "out", "dlq")]
    cfg = ReplicaConfig(
        brokers=brokers, group=uniq("group"), topics=[names[0]], output=names[1], dead_letter=names[2],
        **{"deployment": "D", "drain_timeout_s": 10.0, **kw},  # type: ignore[arg-type]
    )  # fmt: skip
    create_topics(brokers, names[:1], partitions)
    create_topics(brokers, [*names[1:], reply_topic(cfg)])
    return cfg


def reply_topic(cfg: ReplicaConfig) -> str:
    return cfg.group + "-reply"


def request(brokers: list[str], cfg: ReplicaConfig, rid: str, value: bytes, **headers: str) -> Record:
    """Produces a request for rid answered on reply_topic(cfg); headers
    are named with '_' for '-'."""
    hs = [("sl-id", rid.encode()), ("sl-reply", reply_topic(cfg).encode())]
    hs += [(k.replace("_", "-"), v.encode()) for k, v in headers.items()]
    return produce(brokers, Record(cfg.topics[0], rid.encode(), value, hs))


async def replies(brokers: list[str], cfg: ReplicaConfig, n: int, timeout_s: float = 30.0) -> dict[str, Record]:
    """The first reply per id, once n ids are answered."""
    deadline = time.monotonic() + timeout_s
    while True:
        got: dict[str, Record] = {}
        for r in await asyncio.to_thread(read_all, brokers, reply_topic(cfg)):
            got.setdefault(parse_reply(r).id, r)
        if len(got) >= n or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.1)


async def committed_to(brokers: list[str], cfg: ReplicaConfig, end: int, timeout_s: float = 20.0) -> int:
    deadline = time.monotonic() + timeout_s
    while True:
        at = await asyncio.to_thread(committed, brokers, cfg.group, cfg.topics[0])
        if at >= end or time.monotonic() > deadline:
            return at
        await asyncio.sleep(0.05)


class Gauge:
    """Counts handlers running at once, and the most seen."""

    def __init__(self) -> None:
        self.now = self.most = 0
        self.lock = threading.Lock()

    async def handle(self, inp: Input, out: Output) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        await asyncio.sleep(0.2)
        with self.lock:
            self.now -= 1
        out.emit(inp.value, "text/plain")


async def test_at_most_max_ongoing_requests(brokers: list[str], uniq: Uniq) -> None:
    cfg = make(brokers, uniq, max_ongoing_requests=3)
    g = Gauge()
    async with running(cfg, g):
        for i in range(12):
            await asyncio.to_thread(request, brokers, cfg, f"r{i}", b"x")
        got = await replies(brokers, cfg, 12)
    assert len(got) == 12
    assert 2 <= g.most <= 3, g.most


class Named:
    """Answers "slow" after a gate opens, raises for "boom", else upper-cases."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.slow_started = threading.Event()

    def handle(self, inp: Input, out: Output) -> None:  # synchronous: runs in the thread pool
        if inp.value == b"boom":
            raise ValueError("no good")
        if inp.value == b"coded":
            raise SluiceError("gone", "not_found")
        if inp.value == b"timeout":
            raise TimeoutError("the model server did not answer")
        if inp.value == b"slow":
            self.slow_started.set()
            self.gate.wait(20)
        out.emit(inp.value.upper(), "text/plain")


async def test_exceptions_are_answered_and_the_replica_goes_on(brokers: list[str], uniq: Uniq) -> None:
    cfg = make(brokers, uniq)
    async with running(cfg, Named()):
        for rid, v in (("a", b"boom"), ("b", b"coded"), ("t", b"timeout"), ("c", b"fine")):
            await asyncio.to_thread(request, brokers, cfg, rid, v)
        got = await replies(brokers, cfg, 4)
    a, b, t, c = (parse_reply(got[k]) for k in "abtc")
    assert (a.status, a.error) == ("internal", "deployment D raised ValueError: no good")
    assert (b.status, b.error) == ("not_found", "gone")
    assert (t.status, t.error) == ("internal", "deployment D raised TimeoutError: the model server did not answer")
    assert (c.status, c.value) == ("", b"FINE")


async def test_a_claimed_value_without_a_store_is_refused_not_handed_on_empty(brokers: list[str], uniq: Uniq) -> None:
    cfg = make(brokers, uniq)
    async with running(cfg, Named()):
        await asyncio.to_thread(request, brokers, cfg, "k", b"", sl_claim="3000000 " + "0" * 64 + " claims/x/req/y")
        await asyncio.to_thread(request, brokers, cfg, "f", b"fine")
        got = await replies(brokers, cfg, 2)
    k, f = parse_reply(got["k"]), parse_reply(got["f"])
    assert k.status == "failed_precondition" and "claim claims/x/req/y: fetch: no claim store configured" in k.error
    assert (f.status, f.value) == ("", b"FINE")


async def test_commits_only_the_finished_prefix(brokers: list[str], uniq: Uniq) -> None:
    cfg = make(brokers, uniq, max_ongoing_requests=4)
    h = Named()
    async with running(cfg, h):
        slow = await asyncio.to_thread(request, brokers, cfg, "slow", b"slow")
        assert await asyncio.to_thread(h.slow_started.wait, 20)
        for i in range(3):
            await asyncio.to_thread(request, brokers, cfg, f"f{i}", b"fast")
        got = await replies(brokers, cfg, 3)
        assert {"f0", "f1", "f2"} <= set(got), "the records after the slow one finished"
        await asyncio.sleep(1.0)  # several auto-commit intervals
        at = await asyncio.to_thread(committed, brokers, cfg.group, cfg.topics[0])
        assert at <= slow.offset, "nothing past an unfinished record is committed"
        h.gate.set()
        assert await committed_to(brokers, cfg, slow.offset + 4) == slow.offset + 4


class Sleeper:
    async def handle(self, inp: Input, out: Output) -> None:
        ctx = current()
        assert ctx is not None and ctx.deadline_ns > 0
        await asyncio.sleep(5)
        out.emit(b"late")


async def test_deadline_while_serving(brokers: list[str], uniq: Uniq) -> None:
    cfg = make(brokers, uniq)
    async with running(cfg, Sleeper()):
        deadline = time.time_ns() + 1_500_000_000
        await asyncio.to_thread(request, brokers, cfg, "d", b"x", sl_deadline=str(deadline))
        got = await replies(brokers, cfg, 1)
    r = parse_reply(got["d"])
    assert r.status == "deadline_exceeded"


class SlowGreeter:
    def say(self, name: str) -> str:  # plain: its thread produces the answer
        time.sleep(2.0)
        return f"late {name}"


async def test_a_thread_that_answers_past_the_deadline_is_not_heard(brokers: list[str], uniq: Uniq) -> None:
    """A plain method's thread answers as soon as it returns; one still
    running when the deadline passes: the caller gets deadline_exceeded,
    and nothing after it."""
    cfg = make(brokers, uniq)
    async with running(cfg, Invoker(SlowGreeter(), Options(name="G"))):
        deadline = time.time_ns() + 1_000_000_000
        await asyncio.to_thread(request, brokers, cfg, "d", b'"x"', sl_deadline=str(deadline), sl_method="say",
                                content_type="application/json")  # fmt: skip
        got = await replies(brokers, cfg, 1)
        await asyncio.sleep(2.0)  # the thread returns meanwhile
        later = await asyncio.to_thread(read_all, brokers, reply_topic(cfg))
    assert parse_reply(got["d"]).status == "deadline_exceeded"
    assert [parse_reply(r).status for r in later] == ["deadline_exceeded"]


async def test_sigterm_drains_then_commits(brokers: list[str], uniq: Uniq) -> None:
    cfg = make(brokers, uniq)
    script = Path(__file__).with_name("sigterm_replica.py")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(script), ",".join(brokers), cfg.group, cfg.topics[0], cfg.output, cfg.dead_letter,
        stdout=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        rec = await asyncio.to_thread(produce, brokers, Record(cfg.topics[0], b"k", b"hello", []))
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line.strip() == b"handling"
        proc.send_signal(signal.SIGTERM)
        rc = await asyncio.wait_for(proc.wait(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
    assert rc == 0
    out = await asyncio.to_thread(read_all, brokers, cfg.output)
    assert [r.value for r in out] == [b"HELLO"], "the record in flight finished before the stop"
    assert await asyncio.to_thread(committed, brokers, cfg.group, cfg.topics[0]) == rec.offset + 1


class Echo:
    def handle(self, inp: Input, out: Output) -> None:
        out.emit(inp.value, "text/plain")


async def test_failover_between_members(brokers: list[str], uniq: Uniq) -> None:
    """Two members share four partitions; the static one stops softly and
    leaves explicitly, so the other takes its partitions at once, well
    before the (long) session timeout; every request is answered."""
    cfg = make(brokers, uniq, partitions=4, session_timeout_s=45.0)
    a_cfg = ReplicaConfig(**{**vars(cfg), "instance_id": "slot-a"})
    b_cfg = ReplicaConfig(**{**vars(cfg), "instance_id": "slot-b"})
    n = 0

    async def burst(k: int) -> None:
        nonlocal n
        for _ in range(k):
            await asyncio.to_thread(request, brokers, cfg, f"r{n}", b"x")
            n += 1

    async with running(b_cfg, Echo()) as b:
        async with running(a_cfg, Echo()) as a:
            await burst(8)
            assert len(await replies(brokers, cfg, n)) == n
            deadline = time.monotonic() + 20
            while not (a.stats().partitions > 0 and a.stats().partitions + b.stats().partitions == 4):
                assert time.monotonic() < deadline, f"not balanced: {a.stats()} {b.stats()}"
                await asyncio.sleep(0.1)
            await burst(8)
            assert len(await replies(brokers, cfg, n)) == n
        stopped = time.monotonic()
        await burst(8)
        got = await replies(brokers, cfg, n, timeout_s=20)
        took = time.monotonic() - stopped
        assert len(got) == n
        assert b.stats().partitions == 4
    assert took < 15, f"partitions moved after {took:.1f}s: the stopped member did not leave"


async def test_reports_on_the_status_topic(brokers: list[str], uniq: Uniq) -> None:
    cfg = make(brokers, uniq, app="a", instance="r0", revision="rev1", generation=3)
    status = uniq("status")
    await asyncio.to_thread(create_topics, brokers, [status])
    pub = Publisher(brokers, status)
    r = Replica(cfg, Echo())
    pub.add(r)
    published = asyncio.create_task(pub.run())
    served = asyncio.create_task(r.run())
    try:
        for i in range(2):
            await asyncio.to_thread(request, brokers, cfg, f"r{i}", b"x")
        assert len(await replies(brokers, cfg, 2)) == 2
        key = report_key("a", "D", "r0").encode()
        deadline = time.monotonic() + 20
        while True:
            recs = [x for x in await asyncio.to_thread(read_all, brokers, status) if x.key == key]
            last = json.loads(recs[-1].value or b"{}") if recs else {}
            if last.get("processed") == 2 and last.get("ready"):
                break
            assert time.monotonic() < deadline, f"no report of the work done: {last}"
            await asyncio.sleep(0.2)
        assert {k: last[k] for k in ("app", "deployment", "instance", "revision", "generation", "partitions")} == {
            "app": "a", "deployment": "D", "instance": "r0", "revision": "rev1", "generation": 3, "partitions": 1,
        }  # fmt: skip
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", last["at"]), last["at"]
    finally:
        r.stop()
        await asyncio.wait_for(served, 30)
        await asyncio.to_thread(pub.remove, r)
        published.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await published
    recs = [x for x in await asyncio.to_thread(read_all, brokers, status) if x.key == key]
    assert not recs[-1].value, "a withdrawn replica's last record is a tombstone"


class Counting:
    """Counts runs per request id; "slow" records take SLOW_S."""

    SLOW_S = 3.0

    def __init__(self) -> None:
        self.runs: dict[str, int] = {}
        self.lock = threading.Lock()
        self.started = threading.Event()

    async def handle(self, inp: Input, out: Output) -> None:
        with self.lock:
            self.runs[inp.env.id] = self.runs.get(inp.env.id, 0) + 1
        if inp.value == b"slow":
            self.started.set()
            await asyncio.sleep(self.SLOW_S)
        out.emit(inp.value, "text/plain")


async def test_a_revoked_partition_is_not_committed_by_its_old_owner(brokers: list[str], uniq: Uniq) -> None:
    """A holds both partitions, each with a slow record in flight; B joins
    and takes one. A's revoke waits only drain_timeout_s, so the revoked
    record is still running: A never marks it, B runs it again (at least
    once), and every partition ends committed."""
    cfg = make(brokers, uniq, partitions=2, drain_timeout_s=0.5)
    a_h, b_h = Counting(), Counting()
    async with running(cfg, a_h) as a:
        await asyncio.to_thread(a.ready.wait, 20)
        for part in (0, 1):
            rid = f"slow{part}"
            hs = [("sl-id", rid.encode()), ("sl-reply", reply_topic(cfg).encode())]
            await asyncio.to_thread(produce, brokers, Record(cfg.topics[0], rid.encode(), b"slow", hs, part))
        assert await asyncio.to_thread(a_h.started.wait, 20)
        async with running(cfg, b_h) as b:
            deadline = time.monotonic() + 20
            while b.stats().partitions == 0:
                assert time.monotonic() < deadline, "B got no partition"
                await asyncio.sleep(0.05)
            got = await replies(brokers, cfg, 2)
            assert set(got) == {"slow0", "slow1"}
            await asyncio.sleep(Counting.SLOW_S + 1)  # A's revoked record finishes meanwhile
            assert sum(b_h.runs.values()) == 1, f"B ran the revoked partition's record again: {b_h.runs}"
            moved = next(iter(b_h.runs))
            assert a_h.runs[moved] == 1
            for part in (0, 1):
                at = await asyncio.to_thread(committed_part, brokers, cfg.group, cfg.topics[0], part)
                assert at == 1, f"partition {part} committed at {at}"


def committed_part(brokers: list[str], group: str, topic: str, partition: int) -> int:
    return committed(brokers, group, topic, partition)


class AsyncEcho:
    async def handle(self, inp: Input, out: Output) -> None:
        out.emit(inp.value, "text/plain")


def test_the_process_loop_is_uvloop_when_installed_and_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("uvloop")
    assert event_loop.kind() == "uvloop"
    assert type(event_loop.new_loop()).__module__.startswith("uvloop")
    monkeypatch.setenv("SLUICE_UVLOOP", "0")
    assert event_loop.kind() == "asyncio"
    assert isinstance(event_loop.new_loop(), asyncio.BaseEventLoop)


def test_a_replica_on_the_process_loop_answers_and_keeps_deadlines(brokers: list[str], uniq: Uniq) -> None:
    """The platform's replica process runs on sluice.replica.loop (uvloop
    where installed): records are handed over from the poll thread, a
    deadline cuts an async handler short, offsets are committed."""
    cfg = make(brokers, uniq)

    async def main() -> tuple[dict[str, Record], str]:
        async with running(cfg, AsyncEcho()):
            for i in range(20):
                await asyncio.to_thread(request, brokers, cfg, f"e{i}", f"v{i}".encode())
            got = await replies(brokers, cfg, 20)
        async with running(cfg, Sleeper()):
            deadline = time.time_ns() + 1_000_000_000
            await asyncio.to_thread(request, brokers, cfg, "d", b"x", sl_deadline=str(deadline))
            late = await replies(brokers, cfg, 21)
        return got, parse_reply(late["d"]).status

    got, status = event_loop.run(main())
    assert {k: parse_reply(r).value for k, r in got.items()} == {f"e{i}": f"v{i}".encode() for i in range(20)}
    assert status == "deadline_exceeded"
    assert committed(brokers, cfg.group, cfg.topics[0]) == 21


class AnswersThenRaises:
    """Emits an answer too large to produce (no claim store), waits until
    its failed delivery failed the record, then raises."""

    def __init__(self) -> None:
        self.r: Replica | None = None

    def handle(self, inp: Input, out: Output) -> None:  # synchronous: runs in the thread pool
        out.emit(b"x" * 2_000_000, "application/octet-stream")
        deadline = time.monotonic() + 10
        while self.r is not None and self.r.stats().failed == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        raise ValueError("after the answer failed")


async def test_a_record_failed_by_its_output_is_not_counted_processed(brokers: list[str], uniq: Uniq) -> None:
    """The handler raises after the record was failed (its answer could not
    be produced): the caller has one error, and the record counts as
    failed once, never as processed."""
    cfg = make(brokers, uniq)
    h = AnswersThenRaises()
    async with running(cfg, h) as r:
        h.r = r
        await asyncio.to_thread(request, brokers, cfg, "big", b"x")
        got = await replies(brokers, cfg, 1)
        await committed_to(brokers, cfg, 1)
        st = r.stats()
    reply = parse_reply(got["big"])
    assert reply.status == "internal", reply
    assert "could not be delivered" in reply.error
    assert (st.processed, st.failed) == (0, 1), st


class AnswersAtTheDeadline:
    def say(self, name: str) -> str:  # plain: its thread produces the answer
        time.sleep(1.0)
        return f"just {name}"


def hand_answers_over_late(monkeypatch: pytest.MonkeyPatch) -> None:
    """Makes a handler thread's outputs reach the producer 1 s after they
    are emitted (past a deadline the loop meanwhile sees)."""
    from sluice.replica import replica as replica_mod

    send = replica_mod._Run.send

    def late_send(self: Any, rec: Record) -> None:
        if threading.current_thread() is not threading.main_thread():
            time.sleep(1.0)
        send(self, rec)

    monkeypatch.setattr(replica_mod._Run, "send", late_send)


async def test_a_thread_that_answers_as_the_deadline_passes_completes_its_record_once(
    brokers: list[str], uniq: Uniq, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The thread's answer is emitted just before the deadline and handed
    to the producer just after it (a delay put between the two): the
    answer stands, and the record completes once, after the answer's
    acknowledgement, not once when the deadline passes and again then."""
    hand_answers_over_late(monkeypatch)
    cfg = make(brokers, uniq)
    async with running(cfg, Invoker(AnswersAtTheDeadline(), Options(name="G"))) as r:
        deadline = time.time_ns() + 1_500_000_000
        await asyncio.to_thread(request, brokers, cfg, "d", b'"x"', sl_deadline=str(deadline), sl_method="say",
                                content_type="application/json")  # fmt: skip
        got = await replies(brokers, cfg, 1)
        await asyncio.sleep(0.5)
        st = r.stats()
    assert parse_reply(got["d"]).value == b"just x"
    assert (st.processed, st.failed, st.ongoing) == (1, 0, 0), st
