"""The record protocol: table tests of every record kind in both
directions, and properties over arbitrary headers (a parser names the bad
header and never raises anything else)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice import protocol as p
from sluice.protocol import headers as h

ENV = p.Envelope(
    id="r1",
    reply_to="reply",
    deadline_ns=1_700_000_000_000_000_000,
    trace="00-abc-def-01",
    trace_state="congo=t61rcWkgMzE",
    content_type="application/json",
    model="m",
    version="@prod",
    cont=[p.Hop("t1", "id2"), p.Hop("t2", "a/b")],
    request=[("h-x-tenant", b"acme")],
)


def test_envelope_round_trip_in_table_order() -> None:
    hs = ENV.header_list()
    assert [k for k, _ in hs] == [
        "sl-id", "sl-reply", "sl-deadline", "traceparent", "tracestate", "content-type", "sl-model", "sl-version",
        "sl-cont", "h-x-tenant",
    ]  # fmt: skip
    assert h.first(hs, "sl-cont") == b"t1/id2,t2/a/b"
    env, err = p.parse_envelope(hs)
    assert err is None
    assert env == ENV
    assert env.final_id() == "a/b"
    assert env.request_headers() == {"x-tenant": "acme"}


@pytest.mark.parametrize(
    ("headers", "bad", "reading"),
    [
        ([("sl-deadline", b"tomorrow")], "sl-deadline", '"tomorrow" is not positive Unix nanoseconds'),
        ([("sl-deadline", b"0")], "sl-deadline", "positive"),
        ([("sl-deadline", b"-5")], "sl-deadline", "positive"),
        ([("sl-deadline", b"+5")], "sl-deadline", "positive"),
        ([("sl-deadline", b" 5")], "sl-deadline", "positive"),
        ([("sl-deadline", b"9223372036854775808")], "sl-deadline", "positive"),
        ([("sl-cont", b"t1")], "sl-cont", '"t1" is not a hop topic/id'),
        ([("sl-cont", b"t/x,,t/y")], "sl-cont", '"" is not a hop'),
        ([("sl-cont", b"/x")], "sl-cont", "hop"),
        ([("sl-cont", b"t/")], "sl-cont", "hop"),
        ([("sl-http-path", b"x")], "sl-http-path", '"x" is not a path from /'),
    ],
)
def test_envelope_names_the_bad_header(headers: h.Headers, bad: str, reading: str) -> None:
    env, err = p.parse_envelope([("sl-id", b"r"), ("sl-reply", b"rt"), *headers])
    assert err is not None
    assert err.header == bad
    assert f"malformed record: header {bad}: " in str(err)
    assert reading in str(err)
    assert (env.id, env.reply_to) == ("r", "rt"), "the other headers are still read"


@pytest.mark.parametrize(
    ("ns", "written"),
    [(1, b"1"), (5, b"5"), (-3, b"1"), (1 << 70, b"9223372036854775807"), (h.MAX_INT64, b"9223372036854775807")],
)
def test_deadline_is_clamped(ns: int, written: bytes) -> None:
    assert h.first(p.Envelope(deadline_ns=ns).header_list(), "sl-deadline") == written


def test_repeated_header_last_counts_and_unknown_ignored() -> None:
    env, err = p.parse_envelope([("sl-id", b"a"), ("x-mine", b"1"), ("sl-id", b"b"), ("h-", b"no name")])
    assert err is None
    assert env.id == "b"
    assert env.request == []


def test_expired() -> None:
    assert not p.Envelope().expired(10)
    assert p.Envelope(deadline_ns=10).expired(10)
    assert not p.Envelope(deadline_ns=11).expired(10)


def test_edge_forward_and_handle_call_propagate() -> None:
    inp = p.Request("in", b"k", b"v", ENV)
    e = p.edge(inp, "edge", b"out", "text/plain")
    assert (e.topic, e.key, e.env.id, e.env.content_type, e.env.cont) == ("edge", b"k", "r1", "text/plain", ENV.cont)
    f = p.forward(inp, b"out", "text/plain")
    assert f is not None
    assert (f.topic, f.key, f.env.id, f.env.cont, f.env.reply_to) == (
        "t1",
        b"id2",
        "id2",
        [p.Hop("t2", "a/b")],
        "reply",
    )
    assert p.forward(p.Request("in", None, None, p.Envelope()), b"", "") is None
    call = p.handle_call(ENV, p.Envelope(id="c1", deadline_ns=ENV.deadline_ns + 1, model="other", reply_to="x"))
    assert (call.id, call.reply_to, call.deadline_ns, call.trace, call.trace_state, call.model) == (
        "c1", "", ENV.deadline_ns, ENV.trace, ENV.trace_state, "other",
    )  # fmt: skip
    assert call.request == ENV.request


def test_replies() -> None:
    fail = [("sl-id", b"a/b"), ("sl-status", b"internal"), ("sl-error", b"boom")]
    cases = [
        (p.unary_reply(ENV, b"x", "text"), p.ReplyKind.UNARY, [("sl-id", b"a/b"), ("content-type", b"text")]),
        (p.item_reply(ENV, 3, b"x", ""), p.ReplyKind.ITEM, [("sl-id", b"a/b"), ("sl-seq", b"3")]),
        (p.end_reply(ENV, 4), p.ReplyKind.END, [("sl-id", b"a/b"), ("sl-eos", b"4")]),
        (p.error_reply(ENV, "", "boom"), p.ReplyKind.ERROR, fail),
    ]  # fmt: skip
    for reply, kind, hs in cases:
        rec = reply.record()
        assert (rec.topic, rec.key, rec.headers) == ("reply", None, hs)
        back = p.parse_reply(rec)
        assert back.kind == kind
        assert back == reply


@pytest.mark.parametrize(
    ("hs", "bad"),
    [
        ([], "sl-id"),
        ([("sl-id", b"")], "sl-id"),
        ([("sl-id", b"a"), ("sl-seq", b"x")], "sl-seq"),
        ([("sl-id", b"a"), ("sl-eos", b"-1")], "sl-eos"),
        ([("sl-id", b"a"), ("sl-seq", b"1"), ("sl-eos", b"2")], "sl-eos"),
        ([("sl-id", b"a"), ("sl-http-status", b"99")], "sl-http-status"),
        ([("sl-id", b"a"), ("sl-http-status", b"1000")], "sl-http-status"),
    ],
)
def test_parse_reply_names_the_bad_header(hs: h.Headers, bad: str) -> None:
    with pytest.raises(p.ParseError) as exc:
        p.parse_reply(p.Record("r", None, None, hs))
    assert exc.value.header == bad


def test_reply_error_without_status_is_no_failure_and_unknown_code_kept() -> None:
    assert p.parse_reply(p.Record("r", None, None, [("sl-id", b"a"), ("sl-error", b"x")])).error == ""
    r = p.parse_reply(p.Record("r", None, None, [("sl-id", b"a"), ("sl-status", b"teapot")]))
    assert (r.kind, r.status) == (p.ReplyKind.ERROR, "teapot")


def test_output_and_answer() -> None:
    offline = p.Request("in", b"k", b"v", p.Envelope(id="r"))
    rec = p.answer(offline, "out", 0, b"x", "text/plain", p.HTTPResponse(201, {"X-B": ["2"], "x-a": ["1", "3"]}))
    assert (rec.topic, rec.key) == ("out", b"k")
    assert rec.headers == [
        ("sl-id", b"r"), ("content-type", b"text/plain"), ("sl-seq", b"0"), ("sl-http-status", b"201"),
        ("sl-http-h-x-a", b"1"), ("sl-http-h-x-a", b"3"), ("sl-http-h-x-b", b"2"),
    ]  # fmt: skip
    o = p.parse_output(rec)
    assert o.http == p.HTTPResponse(201, {"x-a": ["1", "3"], "x-b": ["2"]})
    end = p.end(offline, "out", 2)
    assert end.headers == [("sl-id", b"r"), ("sl-eos", b"2")]
    anon = p.answer(p.Request("in", None, b"v", p.Envelope()), "out", -1, b"x", "")
    assert anon.headers == []


def test_dead_letter_replaces_an_earlier_failure() -> None:
    rec = p.Record(
        "in", b"k", b"v", [("sl-id", b"r"), ("sl-status", b"old"), ("x", b"1"), ("sl-source", b"a/0/1")], 0, 7
    )
    inp, _ = p.parse_request(rec)
    out = p.failure(inp, rec, "dlq", "D", "not_found", "gone")
    assert (out.topic, out.key, out.value) == ("dlq", b"k", b"v")
    assert out.headers == [
        ("sl-id", b"r"), ("x", b"1"), ("sl-status", b"not_found"), ("sl-error", b"gone"), ("sl-source", b"in/0/7"),
        ("sl-deployment", b"D"),
    ]  # fmt: skip
    d = p.parse_dead_letter(out)
    assert (d.status, d.error, d.source, d.deployment) == ("not_found", "gone", p.Source("in", 0, 7), "D")


@pytest.mark.parametrize(
    ("value", "ok"),
    [(b"a/b/0/1", p.Source("a/b", 0, 1)), (b"t/1", None), (b"/0/1", None), (b"t/x/1", None), (b"t/4294967296/1", None)],
)
def test_parse_source(value: bytes, ok: p.Source | None) -> None:
    if ok is None:
        with pytest.raises(p.ParseError):
            p.parse_source(value)
    else:
        assert p.parse_source(value) == ok


def test_http_request() -> None:
    env, err = p.parse_envelope(
        [
            ("sl-http-method", b"GET"),
            ("sl-http-h-x-echo", b"1"),
            ("sl-http-h-X-Echo", b"2"),
            ("sl-http-h-content-type", b"no"),
        ]
    )
    assert err is None
    req = env.http_request()
    assert (req.method, req.path, req.headers) == ("GET", "/", {"x-echo": ["1", "2"]})
    with pytest.raises(p.ParseError) as exc:
        p.parse_envelope([("sl-http-path", b"/x")])[0].http_request()
    assert exc.value.header == "sl-http-method"
    assert p.parse_envelope([("sl-http-query", b"")])[0].http is None


def test_codes_and_errors() -> None:
    assert [c.value for c in p.Code] == [
        "invalid_argument", "not_found", "already_exists", "failed_precondition", "deadline_exceeded",
        "resource_exhausted", "unavailable", "canceled", "internal", "unauthenticated", "permission_denied",
    ]  # fmt: skip
    assert p.code_of(p.NotFound("x")) == "not_found"
    assert p.code_of(ValueError("x")) == "internal"
    assert p.code_of(p.SluiceError("x", "teapot")) == "teapot"
    assert p.is_retryable(p.Unavailable("x")) and not p.is_retryable(p.Internal("x"))


header_keys = st.one_of(
    st.sampled_from(
        ["sl-id", "sl-reply", "sl-deadline", "sl-cont", "sl-seq", "sl-eos", "sl-status", "sl-error", "sl-source",
         "sl-http-method", "sl-http-path", "sl-http-query", "sl-http-status", "sl-http-h-x", "sl-http-h-", "h-x",
         "content-type"]
    ),
    st.text(max_size=12),
)  # fmt: skip
arbitrary_headers = st.lists(st.tuples(header_keys, st.binary(max_size=24)), max_size=8)


@settings(deadline=None)  # a loaded machine is no failure
@given(arbitrary_headers)
def test_parsers_never_crash(hs: h.Headers) -> None:
    rec = p.Record("t", None, None, hs, 0, 0)
    env, err = p.parse_envelope(hs)
    assert err is None or err.header in {"sl-deadline", "sl-cont", "sl-http-path"}
    if err is None:
        again, err2 = p.parse_envelope(env.header_list())
        assert err2 is None
        assert again == env, "an envelope read back from its own headers is the same"
    for parse in (p.parse_reply, p.parse_output, p.parse_dead_letter):
        try:
            parse(rec)
        except p.ParseError as exc:
            assert exc.header.startswith(("sl-", "content-type"))


@settings(deadline=None)
@given(st.lists(st.tuples(st.text(min_size=1, max_size=8).filter(lambda s: "/" not in s and "," not in s),
                          st.text(min_size=1, max_size=8).filter(lambda s: "," not in s)), max_size=4))  # fmt: skip
def test_hops_round_trip(pairs: list[tuple[str, str]]) -> None:
    hops = [p.Hop(t, i) for t, i in pairs]
    env = p.Envelope(cont=hops)
    assert p.parse_envelope(env.header_list())[0].cont == hops
