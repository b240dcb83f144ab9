"""The conformance runner of docs/PROTOCOL.md ("Conformance suite"): every
file of streams/protocol/conformance, unchanged, against the Python
replica on a broker."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from broker import REPO, create_topics
from kafka_io import committed, end_offset, produce, read_all
from sluice import claim
from sluice.protocol import Record
from sluice.replica import Replica, ReplicaConfig
from vocabulary import Spec, Vocabulary

CONFORMANCE = REPO / "streams" / "protocol" / "conformance"
FILES = sorted(CONFORMANCE.glob("*.json"))
COMMIT_TIMEOUT_S = 60.0
_PLACEHOLDER = re.compile(r"\{\{([A-Za-z0-9_-]+)(?::(\d+))?\}\}")


@dataclass
class Match:
    """An expected header value: exact, repeated values in order, contains,
    any, or a claim reference to an object holding a value (of a kind)."""

    exact: str | None = None
    values: list[str] | None = None
    contains: str | None = None
    any: bool = False
    claim: str | None = None
    kind: str = ""

    @staticmethod
    def of(v: Any) -> Match:
        if isinstance(v, str):
            return Match(exact=v)
        if isinstance(v, list) and v and all(isinstance(x, str) for x in v):
            return Match(values=list(v))
        if isinstance(v, dict) and set(v) == {"contains"} and isinstance(v["contains"], str):
            return Match(contains=v["contains"])
        if isinstance(v, dict) and v == {"any": True}:
            return Match(any=True)
        if isinstance(v, dict) and set(v) in ({"claim"}, {"claim", "kind"}) and isinstance(v["claim"], str):
            return Match(claim=v["claim"], kind=str(v.get("kind", "")))
        raise ValueError(
            f"header value {v!r}: want a string, a list of strings, {{contains}}, {{any: true}} or {{claim, kind}}"
        )


@dataclass
class Rec:
    topic: str
    key: str | None
    value: bytes
    headers: dict[str, Match] = field(default_factory=dict)

    @staticmethod
    def of(d: dict[str, Any]) -> Rec:
        unknown = set(d) - {"topic", "key", "value", "value_base64", "headers"}
        if unknown:
            raise ValueError(f"record: unknown fields {sorted(unknown)}")
        if d.get("value") and d.get("value_base64"):
            raise ValueError("record: value and value_base64 both set")
        value = base64.b64decode(d["value_base64"]) if d.get("value_base64") else str(d.get("value", "")).encode()
        return Rec(d["topic"], d.get("key"), value, {k: Match.of(v) for k, v in d.get("headers", {}).items()})


@dataclass
class Scenario:
    description: str
    deployment: dict[str, Any]
    topics: list[str]
    input: list[Rec]
    output: list[Rec]
    # A claim store: threshold, the objects in it before the run, the keys
    # gone after it (every other object kept). None: the replica has none.
    claims: dict[str, Any] | None = None

    @staticmethod
    def load(path: Path) -> Scenario:
        d = json.loads(path.read_text())
        required = {"description", "deployment", "topics", "input", "output"}
        if not required <= set(d) <= required | {"claims"}:
            raise ValueError(f"{path.name}: fields {sorted(d)}")
        sc = Scenario(
            d["description"],
            d["deployment"],
            d["topics"],
            [Rec.of(r) for r in d["input"]],
            [Rec.of(r) for r in d["output"]],
            d.get("claims"),
        )
        if sc.claims is not None and not set(sc.claims) <= {"threshold", "objects", "gone"}:
            raise ValueError(f"{path.name}: claims: fields {sorted(sc.claims)}")
        for r in sc.input + sc.output:
            if r.topic not in sc.topics:
                raise ValueError(f"{path.name}: record topic {r.topic!r} is not in topics")
        return sc


def expand(s: str, topics: dict[str, str], inputs: list[Record]) -> str:
    def sub(m: re.Match[str]) -> str:
        name, n = m.group(1), m.group(2)
        if name == "source" and n is not None:
            r = inputs[int(n)]
            return f"{r.topic}/{r.partition}/{r.offset}"
        if name in topics and n is None:
            return topics[name]
        raise ValueError(f"placeholder {m.group(0)} names no topic of the scenario")

    return _PLACEHOLDER.sub(sub, s)


def claim_mismatch(v: bytes, m: Match, claims: claim.Claims | None) -> str:
    """Why an sl-claim value does not reference an object holding m.claim
    (of kind m.kind); "" when it does."""
    if claims is None:
        return "an sl-claim where the scenario has no claims"
    try:
        ref = claim.parse(v)
        got = claims.fetch(ref)
    except (claim.MalformedRef, claim.ClaimError) as exc:
        return str(exc)
    if m.kind and ref.kind != m.kind:
        return f"claim {ref.key} of kind {ref.kind!r}, want {m.kind!r}"
    if got != (m.claim or "").encode():
        return f"claim {ref.key} holds {got!r}, want {m.claim!r}"
    return ""


def mismatch(
    got: Record, want: Rec, topics: dict[str, str], inputs: list[Record], claims: claim.Claims | None = None
) -> list[str]:
    """What differs: key (null is none or empty), value, headers as a set."""
    problems: list[str] = []
    if (want.key is None and got.key) or (want.key is not None and (got.key or b"") != want.key.encode()):
        problems.append(f"key {got.key!r}, want {want.key!r}")
    if (got.value or b"") != want.value:
        problems.append(f"value {got.value!r}, want {want.value!r}")
    seen: dict[str, list[str]] = {}
    for k, v in got.headers:
        seen.setdefault(k, []).append(v.decode("utf-8", "replace"))
    for k, vs in seen.items():
        m = want.headers.get(k)
        if m is None:
            problems.append(f"header {k}={vs} not expected")
        elif m.values is not None:
            if vs != m.values:
                problems.append(f"header {k}={vs}, want {m.values} in that order")
        elif len(vs) > 1:
            problems.append(f"header {k} repeated")
        elif m.claim is not None:
            if why := claim_mismatch(vs[0].encode(), m, claims):
                problems.append(f"header {k}: {why}")
        elif m.contains is not None and m.contains not in vs[0]:
            problems.append(f"header {k}={vs[0]!r}, want it to contain {m.contains!r}")
        elif m.exact is not None and vs[0] != expand(m.exact, topics, inputs):
            problems.append(f"header {k}={vs[0]!r}, want {expand(m.exact, topics, inputs)!r}")
    problems += [f"header {k} missing" for k in sorted(want.headers) if k not in seen]
    return problems


async def wait_for(what: str, cond: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(cond):
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
async def test_conformance(path: Path, brokers: list[str], uniq: Callable[[str], str], tmp_path: Path) -> None:
    sc = Scenario.load(path)
    topics = {name: uniq(name) for name in sc.topics}
    await asyncio.to_thread(create_topics, brokers, list(topics.values()))

    d = sc.deployment
    h = d["handler"]
    spec = Spec(h["name"], h.get("items", 0), h.get("status", 0), h.get("code", ""), h.get("message", ""))
    cfg = ReplicaConfig(
        brokers=brokers,
        group=uniq("group"),
        topics=[topics[t] for t in d["inputs"]],
        successors=[topics[t] for t in d.get("successors", [])],
        output=topics[d["output"]],
        dead_letter=topics[d["dead_letter"]],
        deployment=d["name"],
        max_ongoing_requests=1,  # one record in flight: each topic's records in input order
        drain_timeout_s=5.0,
    )
    if sc.claims is not None:
        store = claim.DirStore(tmp_path / "blobs")
        for k, v in sc.claims.get("objects", {}).items():
            store.put(k, v.encode(), "")
        cfg.claims = claim.Claims(store, threshold=int(sc.claims["threshold"]))
    replica = Replica(cfg, Vocabulary(spec, bool(d.get("streams", False))))
    task = asyncio.create_task(replica.run())
    try:
        inputs: list[Record] = []
        for r in sc.input:
            hs = [
                (k, expand(v, topics, []).encode())
                for k in sorted(r.headers)
                for v in (r.headers[k].values or [r.headers[k].exact or ""])
            ]
            rec = Record(topics[r.topic], r.key.encode() if r.key is not None else None, r.value, hs)
            inputs.append(await asyncio.to_thread(produce, brokers, rec))

        # Every output of a record is acknowledged before its offset is
        # committed: once every input is committed, every output is there.
        for name in d["inputs"]:
            end = await asyncio.to_thread(end_offset, brokers, topics[name])
            await wait_for(
                f"the inputs of {name} committed", done(brokers, cfg.group, topics[name], end), COMMIT_TIMEOUT_S
            )
    finally:
        replica.stop()
        await asyncio.wait_for(task, 30)

    problems: list[str] = []
    for name in sc.topics:
        if name in d["inputs"]:
            continue
        got = await asyncio.to_thread(read_all, brokers, topics[name])
        want = [r for r in sc.output if r.topic == name]
        if len(got) != len(want):
            problems.append(f"topic {name}: {len(got)} records, want {len(want)}: {describe(got)}")
            continue
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            if p := mismatch(g, w, topics, inputs, cfg.claims):
                problems.append(f"topic {name} record {i}: {'; '.join(p)}\n{describe([g])}")
    if sc.claims is not None:
        problems += await claims_left(sc.claims, cfg.claims)
    assert not problems, f"{path.name}: {sc.description}\n" + "\n".join(problems)


async def claims_left(want: dict[str, Any], claims: claim.Claims | None) -> list[str]:
    """Waits for the gone keys to leave the store (deletes run in the
    background); every other object must be kept."""
    assert claims is not None
    store = claims.store
    gone: list[str] = want.get("gone", [])

    def missing(k: str) -> bool:
        try:
            store.get(k)
        except claim.NotFoundError:
            return True
        return False

    problems: list[str] = []
    for k in gone:
        try:
            await wait_for(f"claim {k} deleted", lambda k=k: missing(k), 10.0)  # type: ignore[misc]
        except TimeoutError:
            problems.append(f"claim {k} not deleted")
    problems += [f"claim {k} gone, want it kept" for k in want.get("objects", {}) if k not in gone and missing(k)]
    return problems


def done(brokers: list[str], group: str, topic: str, end: int) -> Callable[[], bool]:
    """Whether group has committed topic up to end."""
    return lambda: committed(brokers, group, topic) >= end


def describe(recs: list[Record]) -> str:
    return "".join(f"\n  key={r.key!r} value={r.value!r} headers={r.headers}" for r in recs)
