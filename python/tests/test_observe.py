"""The replica's observability on a broker: its Prometheus series scraped
after N requests add up, a deployment's own metrics are served with the
replica's labels, and its spans (an in-memory exporter) hang from the
record's traceparent across a handle call, whose record carries them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client import Counter
from prometheus_client.parser import text_string_to_metric_families

from broker import create_topics
from kafka_io import read_all
from sluice.protocol import SluiceError, parse_reply
from sluice.protocol.names import Namer
from sluice.replica import Input, Output, Replica, tracing
from sluice.replica.metrics import LATENCY_BUCKETS, Metrics, Server, new_registry, split_addr
from sluice.replica.otel import Tracing
from sluice.serve.caller import Caller
from sluice.serve.deployment import Options
from sluice.serve.handle import DeploymentHandle
from sluice.serve.invoke import Invoker
from sluice.serve.usermetrics import metrics as user_metrics
from sluice.serve.usermetrics import scope
from test_replica import AnswersAtTheDeadline, Uniq, hand_answers_over_late, make, replies, request, running


def scrape(addr: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every sample of a /metrics, by sample name and sorted labels."""
    with urllib.request.urlopen(f"http://{addr}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def with_label(labels: tuple[tuple[str, str], ...], name: str, value: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted([*labels, (name, value)]))


class Picky:
    """Echoes, counts each greeting in a metric of its own, and refuses
    the value b"bad" with invalid_argument."""

    def __init__(self) -> None:
        self.seen = Counter("picky_seen", "Records seen by kind.", ["kind"], registry=user_metrics())

    async def handle(self, inp: Input, out: Output) -> None:
        if inp.value == b"bad":
            self.seen.labels("bad").inc()
            raise SluiceError("bad value", "invalid_argument")
        self.seen.labels("good").inc()
        out.emit(inp.value, "text/plain")


async def test_scraped_counters_add_up(brokers: list[str], uniq: Uniq) -> None:
    m = Metrics()
    reg = new_registry(m)
    scope(reg, "shop", "D", "D-1")
    srv = Server("127.0.0.1:0", reg)
    try:
        cfg = make(brokers, uniq, app="shop", instance="D-1", metrics=m, metrics_addr=srv.addr)
        good, bad = 17, 5
        async with running(cfg, Picky()) as r:
            for i in range(good + bad):
                request(brokers, cfg, f"r{i}", b"bad" if i < bad else b"ok")
            got = await replies(brokers, cfg, good + bad)
            assert len(got) == good + bad
            failed = [rid for rid, rec in got.items() if parse_reply(rec).status == "invalid_argument"]
            assert len(failed) == bad
            await asyncio.sleep(0.2)  # the last records complete after their replies' acknowledgement
            s = await asyncio.to_thread(scrape, srv.addr)
            rep = json.loads(r.report().json())
        lab = (("app", "shop"), ("deployment", "D"), ("replica", "D-1"))
        assert s["sluice_replica_processed_total"][lab] == good
        assert s["sluice_replica_failed_total"][lab] == bad
        assert s["sluice_replica_dead_lettered_total"][lab] == 0
        assert s["sluice_replica_expired_total"][lab] == 0
        assert s["sluice_replica_errors_total"][with_label(lab, "code", "invalid_argument")] == bad
        assert s["sluice_replica_in_flight"][lab] == 0
        assert s["sluice_replica_partitions"][lab] == 1
        assert s["sluice_replica_ready"][lab] == 1
        assert s["sluice_replica_rebalances_total"][lab] >= 1
        assert s["sluice_replica_fetch_lag"][lab] == 0
        for h in ("sluice_replica_queue_wait_seconds", "sluice_replica_handler_seconds"):
            assert s[h + "_count"][lab] == good + bad
            assert s[h + "_sum"][lab] > 0
            les = sorted(float(dict(k)["le"]) for k in s[h + "_bucket"])
            assert les == [*LATENCY_BUCKETS, float("inf")]
            assert s[h + "_bucket"][with_label(lab, "le", "+Inf")] == good + bad
        assert not [n for n in s if n.startswith("sluice_") and n.endswith("_created")]  # as the Go client exports them
        # The deployment's own counter, with the replica's labels.
        assert s["picky_seen_total"][with_label(lab, "kind", "good")] == good
        assert s["picky_seen_total"][with_label(lab, "kind", "bad")] == bad
        # The process's and the interpreter's collectors.
        assert any(name.startswith("process_") for name in s)
        assert "python_info" in s
        # The address scraped is the one reported.
        assert rep["metrics"] == srv.addr
    finally:
        srv.close()
    # Stopped, the replica leaves the scrape.
    assert not next(iter(m.collect())).samples


def test_a_report_names_its_metrics_address_only_when_it_has_one(brokers: list[str], uniq: Uniq) -> None:
    cfg = make(brokers, uniq, app="a", instance="i")
    assert "metrics" not in json.loads(Replica(cfg, Picky()).report().json())


def test_metrics_addresses() -> None:
    assert split_addr("127.0.0.1:0") == ("127.0.0.1", 0)
    assert split_addr("[::1]:9464") == ("::1", 9464)
    assert split_addr(":0") == ("0.0.0.0", 0)
    for bad in ("nohost", "h:port", "h:70000", ""):
        try:
            split_addr(bad)
        except ValueError as exc:
            assert "host:port" in str(exc)
        else:
            raise AssertionError(f"{bad!r} accepted")
    srv = Server("0.0.0.0:0", new_registry())
    try:
        host, port = split_addr(srv.addr)
        assert port > 0 and host != "0.0.0.0"
    finally:
        srv.close()


def test_tracing_is_on_as_the_go_processes_turn_it_on() -> None:
    ep = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    assert not tracing.enabled({})
    assert tracing.enabled(ep)
    assert tracing.enabled({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://x:4318/v1/traces"})
    assert not tracing.enabled({**ep, "OTEL_SDK_DISABLED": "TRUE"})
    assert not tracing.enabled({**ep, "OTEL_TRACES_EXPORTER": "none"})
    assert tracing.from_env({}) is None
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert tracing.trace_id(tp) == "0af7651916cd43dd8448eb211c80319c"
    assert not tracing.unsampled(tp)
    assert tracing.unsampled(tp[:-2] + "00")
    assert tracing.trace_id("garbage") == "" and not tracing.unsampled("garbage")


def test_no_opentelemetry_is_imported_with_tracing_off() -> None:
    code = (
        "import sys, sluice.replica, sluice.serve.hosted, sluice.replica.tracing as t\n"
        "assert t.from_env({}) is None\n"
        "bad = [m for m in sys.modules if m.startswith('opentelemetry')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


class Front:
    """Calls B through a handle and answers with what B said."""

    def __init__(self, b: DeploymentHandle) -> None:
        self.b = b

    async def handle(self, inp: Input, out: Output) -> None:
        ans = await self.b.remote(inp.value)
        out.emit(ans, "application/octet-stream")


class Back:
    async def handle(self, inp: Input, out: Output) -> None:
        out.emit(inp.value + b"!", "application/octet-stream")


TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def parent_of(s: ReadableSpan) -> str:
    assert s.parent is not None, s.name
    return f"{s.parent.span_id:016x}"


def span_id(s: ReadableSpan) -> str:
    assert s.context is not None
    return f"{s.context.span_id:016x}"


async def test_spans_follow_the_traceparent_through_a_handle_call(brokers: list[str], uniq: Uniq) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tr = Tracing(provider.get_tracer("test"))
    namer = Namer(uniq("p"))
    app = "shop"
    edge = namer.edge(app, "A", "B")
    cfg_a = make(brokers, uniq, app=app, deployment="A", tracing=tr)
    cfg_b = make(brokers, uniq, app=app, deployment="B", tracing=tr)
    cfg_b.topics = [edge]
    create_topics(brokers, [edge])
    caller = Caller(brokers, namer, None, tr)
    try:
        async with running(cfg_b, Back()), running(cfg_a, Front(DeploymentHandle(caller, namer, app, "B", "A"))):
            request(brokers, cfg_a, "t1", b"hi", traceparent=f"00-{TRACE}-{CALLER_SPAN}-01", tracestate="vendor=x")
            unsampled = "00-1bf7651916cd43dd8448eb211c80319c-c7ad6b7169203331-00"
            request(brokers, cfg_a, "t2", b"ho", traceparent=unsampled)
            got = await replies(brokers, cfg_a, 2)
            assert got["t1"].value == b"hi!" and got["t2"].value == b"ho!"
            await asyncio.sleep(0.3)  # process spans end after their answers' acknowledgement
    finally:
        caller.close()
    spans = exporter.get_finished_spans()
    assert {f"{s.context.trace_id:032x}" for s in spans if s.context} == {TRACE}, "the unsampled request made spans"
    proc_a, handle_a = by_name(spans, "process A"), by_name(spans, "handle A")
    call, proc_b, handle_b = by_name(spans, "call " + edge), by_name(spans, "process B"), by_name(spans, "handle B")
    assert parent_of(proc_a) == CALLER_SPAN
    assert parent_of(handle_a) == span_id(proc_a)
    assert parent_of(call) == span_id(handle_a)
    assert parent_of(proc_b) == span_id(call)
    assert parent_of(handle_b) == span_id(proc_b)
    assert proc_a.attributes is not None
    assert proc_a.attributes["sluice.request_id"] == "t1"
    assert proc_a.attributes["messaging.destination.name"] == cfg_a.topics[0]
    assert float(str(proc_a.attributes["sluice.queue_wait_ms"])) >= 0
    # The handle call's record carries the call span, and the tracestate.
    calls = {}
    for rec in await asyncio.to_thread(read_all, brokers, edge):
        hs = dict(rec.headers)
        calls[hs["traceparent"].decode()[3:35]] = hs
    sampled = calls[TRACE]
    assert sampled["traceparent"].decode() == f"00-{TRACE}-{span_id(call)}-01"
    assert sampled["tracestate"] == b"vendor=x"
    # The unsampled request's call passed its traceparent on as it came.
    assert calls[unsampled[3:35]]["traceparent"].decode() == unsampled


class TailFront:
    """Answers with what B answers: a tail call, handed over."""

    def __init__(self, b: DeploymentHandle) -> None:
        self.b = b

    async def __call__(self, x: str) -> Any:
        return await self.b.remote(x)


class Shout:
    def __call__(self, x: str) -> str:
        return x.upper()


@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="tail awaits are read from CPython 3.11 bytecode")
async def test_a_tail_call_keeps_the_span_tree(brokers: list[str], uniq: Uniq) -> None:
    """A handed-over call has its call span too: the callee, which
    answers the caller straight, is its child, as for an awaited call."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tr = Tracing(provider.get_tracer("test"))
    namer = Namer(uniq("p"))
    edge = namer.edge("shop", "A", "B")
    cfg_a = make(brokers, uniq, app="shop", deployment="A", tracing=tr)
    cfg_b = make(brokers, uniq, app="shop", deployment="B", tracing=tr)
    cfg_b.topics = [edge]
    create_topics(brokers, [edge])
    caller = Caller(brokers, namer, None, tr)
    front = Invoker(TailFront(DeploymentHandle(caller, namer, "shop", "B", "A")), Options(name="A"))
    try:
        async with running(cfg_b, Invoker(Shout(), Options(name="B"))), running(cfg_a, front):
            request(brokers, cfg_a, "t1", b"hi", traceparent=f"00-{TRACE}-{CALLER_SPAN}-01", content_type="text/plain")
            got = await replies(brokers, cfg_a, 1)
            await asyncio.sleep(0.3)  # process spans end after their answers' acknowledgement
    finally:
        caller.close()
    assert parse_reply(got["t1"]).value == b"HI"
    spans = exporter.get_finished_spans()
    proc_a, handle_a = by_name(spans, "process A"), by_name(spans, "handle A")
    call, proc_b = by_name(spans, "call " + edge), by_name(spans, "process B")
    assert parent_of(handle_a) == span_id(proc_a) and parent_of(call) == span_id(handle_a)
    assert parent_of(proc_b) == span_id(call)
    assert call.status.status_code != StatusCode.ERROR and proc_a.status.status_code != StatusCode.ERROR


async def test_an_answer_that_beats_the_deadline_leaves_its_spans_ok(
    brokers: list[str], uniq: Uniq, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sync method's thread emits its answer just before the deadline;
    the loop sees the deadline pass before the thread hands the answer to
    the producer. The answer stands and the record counts as processed, so
    neither its handle span nor its process span is marked failed."""
    hand_answers_over_late(monkeypatch)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    cfg = make(brokers, uniq, deployment="G", tracing=Tracing(provider.get_tracer("test")))
    async with running(cfg, Invoker(AnswersAtTheDeadline(), Options(name="G"))) as r:
        deadline = time.time_ns() + 1_500_000_000
        parent = f"00-{TRACE}-{CALLER_SPAN}-01"
        await asyncio.to_thread(request, brokers, cfg, "d", b'"x"', sl_deadline=str(deadline), sl_method="say",
                                content_type="application/json", traceparent=parent)  # fmt: skip
        got = await replies(brokers, cfg, 1)
        await asyncio.sleep(0.5)  # the process span ends after the answer's acknowledgement
        st = r.stats()
    assert parse_reply(got["d"]).value == b"just x"
    assert (st.processed, st.failed) == (1, 0), st
    spans = exporter.get_finished_spans()
    for name in ("handle G", "process G"):
        span = by_name(spans, name)
        assert span.status.status_code != StatusCode.ERROR, (name, span.status)
