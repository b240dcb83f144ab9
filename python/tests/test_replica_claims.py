"""Claim checks through the Python replica on a broker, with the
directory store: claimed inputs fetched and checked, large outputs
claimed with the key kinds of docs/PROTOCOL.md, answered `e` claims
deleted, a redelivery of an answered record skipped, and every fetch
failure answered or dead-lettered with its code."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

from broker import create_topics
from kafka_io import produce, read_all
from sluice import claim
from sluice.claim.s3 import S3Config, S3Store
from sluice.protocol import Record, headers, parse_reply
from sluice.replica import Input, Output, ReplicaConfig
from test_replica import committed_to, make, replies, reply_topic, running
from vocabulary import Spec, Vocabulary

Uniq = Callable[[str], str]
MiB = 1 << 20


def claims_in(root: Path) -> Claims:
    return claim.Claims(claim.DirStore(root), threshold=512 << 10)


Claims = claim.Claims


def send(brokers: list[str], cfg: ReplicaConfig, rid: str, c: Claims, value: bytes, kind: str,
         reply: bool = True, topic: str = "", **extra: str) -> claim.Ref:  # fmt: skip
    """Produces a request whose value is claimed as kind."""
    ref = c.put(value, kind)
    assert ref is not None
    hs = [("sl-id", rid.encode()), ("content-type", b"application/octet-stream")]
    if reply:
        hs.append(("sl-reply", reply_topic(cfg).encode()))
    hs += [(k.replace("_", "-"), v.encode()) for k, v in extra.items()]
    hs.append((headers.CLAIM, str(ref).encode()))
    produce(brokers, Record(topic or cfg.topics[0], rid.encode(), b"", hs))
    return ref


def claim_of(rec: Record) -> claim.Ref | None:
    raw = claim.find(rec.headers)
    return None if raw is None else claim.parse(raw)


async def gone(c: Claims, ref: claim.Ref, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            await asyncio.to_thread(c.fetch, ref)
        except claim.ClaimError as exc:
            if exc.not_found:
                return True
        await asyncio.sleep(0.05)
    return False


async def test_large_request_and_reply(brokers: list[str], uniq: Uniq, tmp_path: Path) -> None:
    """A 2 MiB claimed request answered with its 2 MiB echo, claimed as a
    reply (r); the caller's request claim (q) is left to the caller."""
    c = claims_in(tmp_path)
    cfg = make(brokers, uniq, claims=c)
    value = os.urandom(2 * MiB)
    async with running(cfg, Vocabulary(Spec("echo"), False)):
        q = await asyncio.to_thread(send, brokers, cfg, "big", c, value, claim.KIND_REQUEST)
        got = await replies(brokers, cfg, 1)
    rec = got["big"]
    r = parse_reply(rec)
    assert r.status == "", r.error
    assert not rec.value
    ref = claim_of(rec)
    assert ref is not None and ref.kind == claim.KIND_REPLY and ref.size == 2 * MiB
    assert c.fetch(ref) == value
    assert c.fetch(q) == value  # the caller deletes its request's claim, not the replica


async def test_edge_claims_and_answered_record(brokers: list[str], uniq: Uniq, tmp_path: Path) -> None:
    """A claimed edge record (e) with sl-reply: its output to the next
    edge is claimed as e, and the input's claim deleted once the record
    is done; its redelivery then finds the claim gone and is skipped:
    nothing more is produced, and its offset committed."""
    c = claims_in(tmp_path)
    succ = uniq("next")
    create_topics(brokers, [succ])
    cfg = make(brokers, uniq, claims=c, successors=[succ])
    value = os.urandom(MiB)
    async with running(cfg, Vocabulary(Spec("echo"), False)):
        e = await asyncio.to_thread(send, brokers, cfg, "edge", c, value, claim.KIND_RECORD)
        assert await gone(c, e), "the answered record's claim was not deleted"
        redelivered = Record(cfg.topics[0], b"edge", b"", [("sl-id", b"edge"), ("sl-reply", reply_topic(cfg).encode()),
                                                           (headers.CLAIM, str(e).encode())])  # fmt: skip
        await asyncio.to_thread(produce, brokers, redelivered)
        assert await committed_to(brokers, cfg, 2) >= 2
    outs = await asyncio.to_thread(read_all, brokers, succ)
    assert len(outs) == 1, outs
    ref = claim_of(outs[0])
    assert ref is not None and ref.kind == claim.KIND_RECORD and c.fetch(ref) == value
    assert await asyncio.to_thread(read_all, brokers, reply_topic(cfg)) == []
    assert await asyncio.to_thread(read_all, brokers, cfg.dead_letter) == []


async def test_fetch_failures_answered(brokers: list[str], uniq: Uniq, tmp_path: Path) -> None:
    """A gone request claim, an altered one: invalid_argument naming the
    key; offline, a gone claim is dead-lettered as read (sl-claim kept)
    and the partition moves on."""
    c = claims_in(tmp_path)
    cfg = make(brokers, uniq, claims=c)
    async with running(cfg, Vocabulary(Spec("echo"), False)):
        missing = await asyncio.to_thread(send, brokers, cfg, "missing", c, b"m" * MiB, claim.KIND_REQUEST)
        c.delete(missing)
        altered = await asyncio.to_thread(send, brokers, cfg, "altered", c, b"a" * MiB, claim.KIND_REQUEST)
        (tmp_path / altered.key).write_bytes(b"b" * MiB)
        offline = await asyncio.to_thread(send, brokers, cfg, "offline", c, b"o" * MiB, claim.KIND_RECORD, False)
        c.delete(offline)
        got = await replies(brokers, cfg, 2)
        assert await committed_to(brokers, cfg, 3) >= 3
    m, a = parse_reply(got["missing"]), parse_reply(got["altered"])
    assert m.status == "invalid_argument" and f"claim {missing.key}: fetch: claimed value not found" in m.error
    assert a.status == "invalid_argument" and f"claim {altered.key}" in a.error and "SHA-256 differs" in a.error
    dl = await asyncio.to_thread(read_all, brokers, cfg.dead_letter)
    assert len(dl) == 1
    dhs = dict(dl[0].headers)
    assert dhs["sl-status"] == b"invalid_argument" and dhs[headers.CLAIM] == str(offline).encode()


async def test_no_store_and_store_down(brokers: list[str], uniq: Uniq, tmp_path: Path) -> None:
    """A replica without a store: failed_precondition. A store that cannot
    be reached: fetched again until the record's deadline, then
    deadline_exceeded."""
    c = claims_in(tmp_path)
    bare = make(brokers, uniq)
    async with running(bare, Vocabulary(Spec("echo"), False)):
        await asyncio.to_thread(send, brokers, bare, "bare", c, b"x" * MiB, claim.KIND_REQUEST)
        got = await replies(brokers, bare, 1)
    r = parse_reply(got["bare"])
    assert r.status == "failed_precondition" and "no claim store configured" in r.error

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = claim.Claims(S3Store(S3Config(endpoint=f"127.0.0.1:{port}", bucket="b", access_key="a", secret_key="s")))
    cfg = make(brokers, uniq, claims=down)
    deadline = time.time_ns() + 1_500_000_000
    start = time.monotonic()
    async with running(cfg, Vocabulary(Spec("echo"), False)):
        await asyncio.to_thread(send, brokers, cfg, "down", c, b"y" * MiB, claim.KIND_REQUEST,
                                sl_deadline=str(deadline))  # fmt: skip
        got = await replies(brokers, cfg, 1)
    r = parse_reply(got["down"])
    assert r.status == "deadline_exceeded", (r.status, r.error)
    assert r.error.startswith("claim claims/") and r.error.count("claim store unavailable") == 1
    assert "retried until the deadline" in r.error
    assert time.monotonic() - start >= 1.0  # retried, not failed at once


class SlowPuts(claim.DirStore):
    """A directory store whose puts take PUT_S, as a far S3 would."""

    PUT_S = 0.4

    def put(self, key: str, value: bytes, sha256_hex: str = "", timeout_s: float | None = None) -> None:
        time.sleep(self.PUT_S)
        super().put(key, value, sha256_hex, timeout_s)


class StreamsBigAndSmall:
    """An async streaming handler: for "mixed", small and claimed items
    in turn; for anything else, one small item at once."""

    def streams(self) -> bool:
        return True

    async def handle(self, inp: Input, out: Output) -> None:
        if inp.value != b"mixed":
            out.emit(b"quick", "text/plain")
            return
        for i in range(5):
            out.emit(bytes([48 + i]) * (MiB if i % 2 else 1), "application/octet-stream")


async def test_an_async_handlers_claims_leave_the_loop_free(brokers: list[str], uniq: Uniq, tmp_path: Path) -> None:
    """An async handler's outputs over the threshold are stored off the
    event loop: a record that arrives while they upload is answered
    before they are, and the stream's items keep their order, claimed or
    not."""
    c = claim.Claims(SlowPuts(tmp_path), threshold=512 << 10)
    cfg = make(brokers, uniq, claims=c)
    hs = [("sl-reply", reply_topic(cfg).encode())]
    async with running(cfg, StreamsBigAndSmall()):
        produce(brokers, Record(cfg.topics[0], b"m", b"mixed", [("sl-id", b"mixed"), *hs]))
        await asyncio.sleep(0.2)  # the first upload under way
        produce(brokers, Record(cfg.topics[0], b"q", b"q", [("sl-id", b"quick"), *hs]))
        deadline = time.monotonic() + 20
        got: list[Record] = []
        while time.monotonic() < deadline and len(got) < 8:  # 5 items and an end, 1 item and an end
            got = await asyncio.to_thread(read_all, brokers, reply_topic(cfg))
            await asyncio.sleep(0.1)
    order = [(parse_reply(r).id, dict(r.headers).get(headers.SEQ)) for r in got]
    assert order.index(("quick", b"0")) < order.index(("mixed", b"1")), f"quick waited for an upload: {order}"
    items = [r for r in got if parse_reply(r).id == "mixed" and dict(r.headers).get(headers.SEQ) is not None]
    assert [dict(r.headers)[headers.SEQ] for r in items] == [b"0", b"1", b"2", b"3", b"4"], items
    for i, rec in enumerate(items):
        ref = claim_of(rec)
        want = bytes([48 + i]) * (MiB if i % 2 else 1)
        assert (c.fetch(ref) if ref is not None else rec.value) == want, i
        assert (ref is not None) == bool(i % 2), i
