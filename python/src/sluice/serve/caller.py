"""Request/reply from Python: requests produced with this process's reply
topic in sl-reply, replies read from it (one partition, no group) and
handed to whoever waits by id (as streams.Pending does: the first reply or
error settles a unary call; later ones, and ids nobody waits for, are
dropped).

Claim checks (docs/PROTOCOL.md): with a store, a request value over the
threshold is stored as a `q` claim, deleted once a reply for it came; a
claimed reply (`r`) is fetched and checked on the reader thread, in
order, and deleted after, also when nobody waits for it any more."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import count
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from sluice import claim
from sluice.kafkaauth import client_settings
from sluice.protocol import (
    DeadlineExceeded,
    InvalidArgument,
    ParseError,
    Record,
    Reply,
    ReplyKind,
    Request,
    SluiceError,
    Unavailable,
    code_of,
    headers,
    parse_reply,
)
from sluice.protocol.names import Namer
from sluice.replica import kafkastats
from sluice.replica.kafkastats import KafkaStats
from sluice.replica.tracing import Span, Tracing

_POLL_S = 0.1
EXPIRY_GRACE_S = 2.0
"""How long past its deadline a call waits for its answer (the callee's
deadline_exceeded error reply among them) before it is failed here."""
_EXPIRE_EVERY_S = 1.0


@dataclass(frozen=True)
class Answer:
    value: bytes
    content_type: str


Link = Future["tuple[Answer, Link] | None"]
"""One step of a streamed answer: settles with an item and the next
step, with None at the end of the stream, or with the call's error. The
reader thread settles each in turn; a reader of the stream follows them."""


class _Stream:
    """The items of one streamed call, in sequence order (a duplicate or
    an item past a gap is dropped: items come in order on the reply
    partition)."""

    def __init__(self, end: Callable[[BaseException | None], None] | None = None) -> None:
        self.head: Link = Future()
        self._tail = self.head
        self._next_seq = 0
        self._end = end  # told once, when the stream ends or fails

    def item(self, seq: int, ans: Answer) -> None:
        if seq != self._next_seq:
            return
        self._next_seq += 1
        nxt: Link = Future()
        self._tail.set_result((ans, nxt))
        self._tail = nxt

    def end(self, count: int) -> bool:
        """Ends the stream when every item came; reports whether it did
        (else the caller fails it)."""
        if count != self._next_seq:
            return False
        self._tail.set_result(None)
        self._ended(None)
        return True

    def fail(self, exc: BaseException) -> None:
        if not self._tail.done():
            self._tail.set_exception(exc)
            self._ended(exc)

    def _ended(self, exc: BaseException | None) -> None:
        end, self._end = self._end, None
        if end is not None:
            end(exc)


class Caller:
    """One reply topic and the calls waiting on it. Thread-safe."""

    def __init__(
        self,
        brokers: list[str],
        namer: Namer,
        log: logging.Logger | None = None,
        tracing: Tracing | None = None,
        claims: claim.Claims | None = None,
        kafka_stats: KafkaStats | None = None,
    ) -> None:
        self._log = log or logging.getLogger("sluice.serve")
        self._tracing = tracing  # a span per call (sluice.replica.tracing); None: none
        self.claims = claims
        self._requests: dict[str, claim.Ref] = {}  # the q claims of calls no reply came for yet, by id
        self._deleter = ThreadPoolExecutor(2, thread_name_prefix="sluice-caller-claims")
        self._instance = "py-" + uuid.uuid4().hex[:12]
        self.reply_topic = namer.reply(self._instance)
        self._ids = count()
        self._prefix = f"{os.getpid():x}{uuid.uuid4().hex[:8]}"
        base = client_settings(brokers)
        ensure_topics(brokers, [self.reply_topic])
        # murmur2, as Kafka's Java client and the Go side (streams.KeyPartition)
        # partition keys: a call keyed by a model id lands where the
        # gateway's calls for that model do.
        # Delivery reports of failures only: a call that was produced
        # waits for its reply, and a report per call would wake the
        # producer's thread (and take the GIL) on every call for nothing.
        pconf: dict[str, Any] = {**base, "linger.ms": 0, "enable.idempotence": True,
                                 "partitioner": "murmur2_random", "delivery.report.only.error": True}  # fmt: skip
        cconf: dict[str, Any] = {**base, "group.id": self._instance, "enable.auto.commit": False,
                                 "fetch.wait.max.ms": 100}  # fmt: skip
        # kafka_stats: the clients' statistics, as the replica's (sluice.replica.kafkastats).
        self._unstat = [kafkastats.enable(kafka_stats, conf, "caller") for conf in (pconf, cconf)]
        self._p = Producer(pconf, logger=self._log)
        self._c = Consumer(cconf, logger=self._log)
        hi = _end_offset(self._c, self.reply_topic)
        self._c.assign([TopicPartition(self.reply_topic, 0, max(hi, 0))])
        self._lock = threading.Lock()
        self._waiting: dict[str, Future[Answer]] = {}
        self._streams: dict[str, _Stream] = {}
        # The deadlines of the calls that have one, by id: a call whose
        # answer never comes (its record lost with a replica, a callee that
        # dropped it) is failed EXPIRY_GRACE_S after, and forgotten.
        self._deadlines: dict[str, int] = {}
        self._closing = threading.Event()
        self._threads = [
            threading.Thread(target=self._read, name="sluice-caller-read", daemon=True),
            threading.Thread(target=self._serve_producer, name="sluice-caller-produce", daemon=True),
        ]
        for t in self._threads:
            t.start()

    def new_id(self) -> str:
        return f"{self._prefix}-{next(self._ids):x}"

    def call(self, req: Request) -> Future[Answer]:
        """Produces req with this caller's reply topic; the future settles
        with the answer, or a SluiceError from an error reply."""
        req.env.reply_to = self.reply_topic
        fut: Future[Answer] = Future()
        end = self.trace(req)
        if end is not None:
            fut.add_done_callback(lambda f: end(f.exception()))
        final = req.env.final_id()
        with self._lock:
            self._waiting[final] = fut
            if req.env.deadline_ns:
                self._deadlines[final] = req.env.deadline_ns
        self._produce(req, final)
        return fut

    def _produce(self, req: Request, final: str) -> None:
        rec = req.record()
        ref: claim.Ref | None = None
        if self.claims is not None:
            try:
                ref = self.claims.put(rec.value or b"", claim.KIND_REQUEST)
            except claim.TooLarge as exc:
                self._settle(final, exc=InvalidArgument(exc.message))
                return
            except claim.ClaimError as exc:
                self._settle(final, exc=exc)
                return
            if ref is not None:
                with self._lock:
                    self._requests[final] = ref
                rec.value = b""
                rec.headers = [*rec.headers, (headers.CLAIM, str(ref).encode())]

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                self._drop_request(final)  # the request never landed: nobody reads its claim
                self._settle(final, exc=_unavailable(f"produce to {rec.topic}: {err.str()}"))

        hs: list[tuple[str, str | bytes | None]] = list(rec.headers)
        try:
            self._p.produce(rec.topic, value=rec.value, key=rec.key, headers=hs, on_delivery=delivered)
        except Exception as exc:  # BufferError, KafkaException: the call fails, not the caller
            self._drop_request(final)
            self._settle(final, exc=_unavailable(f"produce to {rec.topic}: {exc}"))

    def _drop_request(self, rid: str) -> None:
        """Deletes the request claim of call rid, if any: a reply for it
        came (its callee read it), or it never landed."""
        with self._lock:
            ref = self._requests.pop(rid, None)
        if ref is not None:
            self._delete(ref)

    def _delete(self, ref: claim.Ref) -> None:
        claims = self.claims
        if claims is None:
            return

        def delete() -> None:
            try:
                claims.delete(ref)
            except claim.ClaimError as exc:
                self._log.warning("claim not deleted; it expires", extra={"key": ref.key, "err": exc.message})

        with contextlib.suppress(RuntimeError):  # closed: the claim expires
            self._deleter.submit(delete)

    def call_stream(self, req: Request) -> Link:
        """Produces req as call does, for a streamed answer: the first step
        of its items (see Link)."""
        req.env.reply_to = self.reply_topic
        final = req.env.final_id()
        st = _Stream(self.trace(req))
        with self._lock:
            self._streams[final] = st
            if req.env.deadline_ns:
                self._deadlines[final] = req.env.deadline_ns
        self._produce(req, final)
        return st.head

    def trace(self, req: Request) -> Callable[[BaseException | None], None] | None:
        """Starts req's call span (the child of the calling handler's span,
        or of req's traceparent), which req then carries; returns what ends
        it with the call's outcome. None when not traced."""
        tr = self._tracing
        if tr is None:
            return None
        span = tr.call(req)
        if span is None:
            return None

        def end(exc: BaseException | None, span: Span = span) -> None:
            if exc is None:
                tr.called(span, "", "")
            else:
                tr.called(span, code_of(exc), str(exc))

        return end

    def forget(self, rid: str) -> None:
        with self._lock:
            self._waiting.pop(rid, None)
            self._deadlines.pop(rid, None)
            st = self._streams.pop(rid, None)
        if st is not None:
            st.fail(_unavailable("the call was abandoned"))

    def _settle(self, rid: str, answer: Answer | None = None, exc: BaseException | None = None) -> None:
        with self._lock:
            fut = self._waiting.pop(rid, None)
            st = self._streams.pop(rid, None) if fut is None else None
            self._deadlines.pop(rid, None)
        if st is not None:
            st.fail(exc if exc is not None else TypeError("a single answer to a call made with stream=True"))
            return
        if fut is None or fut.done():
            return
        if exc is not None:
            fut.set_exception(exc)
        else:
            assert answer is not None
            fut.set_result(answer)

    def _expire(self, now_ns: int) -> None:
        """Fails the calls EXPIRY_GRACE_S past their deadline with no
        answer, and forgets them: their request claims are left to expire
        (a callee may still be reading one)."""
        grace = int(EXPIRY_GRACE_S * 1e9)
        with self._lock:
            late = [rid for rid, d in self._deadlines.items() if d + grace < now_ns]
            for rid in late:
                del self._deadlines[rid]
                self._requests.pop(rid, None)
        for rid in late:
            self._settle(rid, exc=DeadlineExceeded("no answer came by the call's deadline"))

    def _read(self) -> None:
        next_expiry = time.monotonic() + _EXPIRE_EVERY_S
        while not self._closing.is_set():
            if time.monotonic() >= next_expiry:
                self._expire(time.time_ns())
                next_expiry = time.monotonic() + _EXPIRE_EVERY_S
            m = self._c.poll(_POLL_S)
            if m is None or m.error() is not None:
                continue
            rec = Record(self.reply_topic, m.key(), m.value(), headers.normalize(m.headers()))
            try:
                r = parse_reply(rec)
            except ParseError as exc:
                self._log.warning("unreadable reply dropped", extra={"err": str(exc)})
                continue
            self._drop_request(r.id)
            raw = claim.find(rec.headers)
            if raw is not None and not self._claimed(r, raw):
                continue
            self._deliver(r)

    def _claimed(self, r: Reply, raw: bytes) -> bool:
        """Fetches a claimed reply's value into r and deletes its claim;
        reports whether r is to be delivered (False: nobody waits for it,
        or its fetch failed, which settles the call)."""
        with self._lock:
            waits = r.id in self._waiting or r.id in self._streams
        try:
            ref = claim.read_ref(raw, self.claims)
        except claim.ClaimError as exc:
            if waits:
                self._settle(r.id, exc=exc)
            return False
        try:
            if waits:
                r.value = self._fetch(ref)
            return waits
        except claim.ClaimError as exc:
            self._settle(r.id, exc=exc)
            return False
        finally:
            if ref.kind == claim.KIND_REPLY:
                self._delete(ref)

    def _fetch(self, ref: claim.Ref) -> bytes:
        assert self.claims is not None
        return self.claims.fetch(ref)

    def _deliver(self, r: Reply) -> None:
        if r.kind == ReplyKind.ERROR:
            self._settle(r.id, exc=SluiceError(r.error, r.status))
        elif r.kind == ReplyKind.UNARY:
            self._settle(r.id, Answer(r.value or b"", r.content_type))
        else:
            with self._lock:
                st = self._streams.get(r.id)
            if st is None:  # a unary call: Ray's handles refuse a stream there too
                self._settle(r.id, exc=TypeError("a streamed answer to a call made without stream=True"))
            elif r.kind == ReplyKind.ITEM:
                st.item(r.seq, Answer(r.value or b"", r.content_type))
            else:
                with self._lock:
                    self._streams.pop(r.id, None)
                    self._deadlines.pop(r.id, None)
                if not st.end(r.eos):
                    st.fail(_unavailable(f"the stream ended after {r.eos} items, not all of which came"))

    def _serve_producer(self) -> None:
        while not self._closing.is_set():
            self._p.poll(_POLL_S)

    def close(self) -> None:
        self._closing.set()
        for t in self._threads:
            t.join()
        self._p.flush(5)
        self._c.close()
        for forget in self._unstat:
            forget()
        self._deleter.shutdown(wait=True)
        with self._lock:
            waiting, self._waiting = self._waiting, {}
            streams, self._streams = self._streams, {}
        for fut in waiting.values():
            if not fut.done():
                fut.set_exception(_unavailable("the caller closed"))
        for st in streams.values():
            st.fail(_unavailable("the caller closed"))


def _unavailable(msg: str) -> BaseException:
    return Unavailable(msg)


WATERMARK_TIMEOUT_S = 15.0
"""How long a new reply topic may take to reach the client's metadata."""


def _end_offset(c: Consumer, topic: str) -> int:
    """The end of topic's partition 0. A topic just created may not be in
    the client's metadata yet (a real broker's controller takes a moment
    to tell the others): "unknown partition" is asked again, until
    WATERMARK_TIMEOUT_S."""
    deadline = time.monotonic() + WATERMARK_TIMEOUT_S
    while True:
        try:
            _, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
            return int(hi)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            unknown = isinstance(err, KafkaError) and err.code() in (
                KafkaError._UNKNOWN_PARTITION,
                KafkaError.UNKNOWN_TOPIC_OR_PART,
                KafkaError._UNKNOWN_TOPIC,
            )
            if not unknown or time.monotonic() >= deadline:
                raise
        time.sleep(0.1)


def ensure_topics(brokers: list[str], names: list[str], partitions: int = 1) -> None:
    """Creates the topics that do not exist yet."""
    # The client's own lines go through logging, as the process's others.
    admin = AdminClient(client_settings(brokers), logger=logging.getLogger("sluice.kafka"))
    futures = admin.create_topics([NewTopic(n, partitions, 1) for n in names], operation_timeout=10)
    for f in futures.values():
        try:
            f.result(15)
        except Exception as exc:
            err = exc.args[0] if exc.args else None
            if not (isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS):
                raise
