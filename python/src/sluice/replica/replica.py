"""One replica: a member of its deployment's consumer group that processes
records with bounded concurrency and produces their results downstream or
to the caller, keeping the invariants of replicas/replica.go.

Threads: the event loop runs the poll loop and async handlers; one poll
thread makes every consumer call (librdkafka runs the rebalance callbacks
there); a pool runs synchronous handlers; the producer's thread runs the
delivery callbacks, which complete records. Offsets: see offsets.Tracker.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaError, KafkaException, Message, TopicPartition

from sluice import claim, protocol
from sluice.protocol import Code, HTTPResponse, Record, Request, SluiceError, code_of, headers
from sluice.replica import kafkastats, logfmt
from sluice.replica.config import (
    CLAIM_DELETERS,
    CLAIM_RETRY_MAX_S,
    CLAIM_RETRY_MIN_S,
    CLAIM_UPLOADERS,
    PAUSE_GRACE_S,
    POLL_INTERVAL_S,
    READY_GRACE_S,
    ReplicaConfig,
)
from sluice.replica.context import RequestContext, set_current
from sluice.replica.handler import Handler, HTTPIngress, Input, Methods, Streamer
from sluice.replica.latency import LatencyWindow
from sluice.replica.leave import leave_group
from sluice.replica.metrics import Observers
from sluice.replica.offsets import Slot, Tracker
from sluice.replica.producer import Sender, too_large
from sluice.replica.report import Report, go_time
from sluice.replica.tracing import Span, trace_id


@dataclass
class Stats:
    """A replica's counters."""

    processed: int = 0
    failed: int = 0
    expired: int = 0
    dead_lettered: int = 0
    ongoing: int = 0
    partitions: int = 0


class Replica:
    """One consumer-group member of a deployment. Create it, then await
    run(); stop() (or SIGTERM with serve_until_signalled) stops it softly."""

    def __init__(self, cfg: ReplicaConfig, handler: Handler) -> None:
        self.cfg = cfg
        self._h = handler
        self._latency = LatencyWindow()  # the handler's recent run times, for report()
        self._log = cfg.log
        self._streams = isinstance(handler, Streamer) and handler.streams()
        self._http = isinstance(handler, HTTPIngress) and handler.http_ingress()
        # A runtime-checkable Protocol's isinstance inspects every member:
        # once here, not per record.
        self._methods = handler if isinstance(handler, Methods) else None
        self._async = inspect.iscoroutinefunction(handler.handle)
        self._tracker: Tracker[Message] = Tracker()
        self._stats = Stats()
        self._stats_lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._unhealthy = False
        self._joined = False
        self._started_ns = time.time_ns()
        self._changed: Callable[[], None] | None = None
        self._consumer: Consumer | None = None
        self._sender: Sender | None = None
        self._paused = False
        self._slots = asyncio.Semaphore(cfg.max_ongoing_requests)
        self._tasks: set[asyncio.Task[None]] = set()
        self._obs: Observers | None = None  # set by run() when cfg.metrics
        self._lag: dict[tuple[str, int], int] = {}  # each partition's lag as of its latest fetch
        self._lag_lock = threading.Lock()
        self._deleter = ThreadPoolExecutor(CLAIM_DELETERS, thread_name_prefix="sluice-claim-delete")
        # Claims of outputs emitted on the event loop (an async handler's)
        # are stored here, so that an upload does not stop the loop.
        self._uploader = ThreadPoolExecutor(CLAIM_UPLOADERS, thread_name_prefix="sluice-claim-put")
        self._store_down = False  # a claim fetch found the store unreachable; logged once per outage

    # -- public surface

    def stats(self) -> Stats:
        with self._stats_lock:
            s = Stats(**vars(self._stats))
        s.ongoing = self._tracker.ongoing
        s.partitions = len(self._tracker.owned())
        return s

    def assignment(self) -> dict[str, list[int]]:
        """The partitions the replica owns now, by topic."""
        out: dict[str, list[int]] = {}
        for topic, partition in self._tracker.owned():
            out.setdefault(topic, []).append(partition)
        return out

    @property
    def ready(self) -> threading.Event:
        """Set once the replica holds partitions, or has been a member of
        its group for READY_GRACE_S without any (more replicas than
        partitions): a roll stops the replica it replaces only then."""
        return self._ready

    def on_change(self, fn: Callable[[], None]) -> None:
        """Calls fn (from the poll thread; it must not block) after every
        change of the owned partitions and once ready (a Publisher's poke)."""
        self._changed = fn

    def report(self) -> Report:
        """The replica's report as of now."""
        st, cfg = self.stats(), self.cfg
        return Report(
            app=cfg.app, deployment=cfg.deployment, instance=cfg.instance,
            revision=cfg.revision, generation=cfg.generation,
            ready=self._ready.is_set(), partitions=st.partitions,
            processed=st.processed, failed=st.failed, expired=st.expired,
            dead_lettered=st.dead_lettered, ongoing=st.ongoing,
            started=go_time(self._started_ns), at=go_time(time.time_ns()),
            metrics=cfg.metrics_addr, handler_p99_seconds=self._latency.p99(time.monotonic()),
        )  # fmt: skip

    def fetch_lag(self) -> int:
        """Records in the owned partitions past the last one fetched, as
        of each partition's latest fetch (its high watermark then); the
        partitions no longer owned are forgotten. Counted only with
        cfg.metrics."""
        owned = set(self._tracker.owned())
        with self._lag_lock:
            for tp in [tp for tp in self._lag if tp not in owned]:
                del self._lag[tp]
            return sum(self._lag.values())

    def _mark_ready(self) -> None:
        if not self._ready.is_set() and not self._unhealthy:
            self._ready.set()
            self._tell()

    def _tell(self) -> None:
        if self._changed is not None:
            self._changed()

    def stop(self) -> None:
        """Asks for a soft stop: no new records, those in flight finish
        (bounded by drain_timeout_s), offsets are committed, the replica
        leaves its group. Safe from any thread and from signal handlers."""
        self._stop.set()

    def unhealthy(self) -> None:
        """Reports the replica not ready and stops it softly: its
        deployment's health check failed. Safe from any thread."""
        self._unhealthy = True
        self._ready.clear()
        self._tell()
        self.stop()

    @property
    def healthy(self) -> bool:
        """False once unhealthy() was called."""
        return not self._unhealthy

    async def run(self) -> None:
        """Consumes until stop(), then stops softly; cancelling it stops
        at once (a hard stop: nothing more is committed)."""
        cfg = self.cfg
        loop = asyncio.get_running_loop()
        poll = ThreadPoolExecutor(1, thread_name_prefix="sluice-poll")
        pool = ThreadPoolExecutor(cfg.sync_workers or cfg.max_ongoing_requests, thread_name_prefix="sluice-handler")
        # With metrics, the clients' statistics (sluice_kgo_*, sluice_rdkafka_*).
        kafka = cfg.metrics.kafka if cfg.metrics is not None else None
        pconf, cconf = cfg.producer_settings(), cfg.consumer_settings()
        unstat = [kafkastats.enable(kafka, pconf, "replica"), kafkastats.enable(kafka, cconf, "replica")]
        self._sender = Sender(pconf, self._log)
        consumer = Consumer(cconf, logger=self._log)
        self._consumer = consumer
        halt = threading.Event()
        if cfg.metrics is not None:
            self._obs = cfg.metrics.observe(self, cfg.app, cfg.deployment, cfg.instance)
        try:
            await loop.run_in_executor(poll, self._subscribe)
            await loop.run_in_executor(poll, self._poll_until_stopped, loop, pool, halt)
            await self._drain()
            await loop.run_in_executor(poll, self._close)
            # The claims of the records answered: each delete is bounded.
            await asyncio.to_thread(self._deleter.shutdown, True)
        finally:
            # A hard stop: nothing still running may be marked, and the
            # poll thread ends after its current consume call.
            halt.set()
            self._tracker.forget()
            for t in self._tasks:
                t.cancel()
            left = self._sender.close(cfg.drain_timeout_s)
            if left:
                self._log.warning("outputs unacknowledged at close", extra={"left": left})
            pool.shutdown(wait=False, cancel_futures=True)
            self._deleter.shutdown(wait=False)
            self._uploader.shutdown(wait=False)
            poll.shutdown(wait=False)  # after a hard stop, a poll may still be running
            if cfg.metrics is not None:
                cfg.metrics.forget(self)
            for forget in unstat:
                forget()

    # -- the poll thread

    def _subscribe(self) -> None:
        assert self._consumer is not None
        self._consumer.subscribe(self.cfg.topics, on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._lost)

    def _poll_until_stopped(
        self, loop: asyncio.AbstractEventLoop, pool: ThreadPoolExecutor, halt: threading.Event
    ) -> None:
        """The poll thread's loop: each batch is tracked here and handed to
        the event loop in one wake-up, and the thread goes straight back
        to its consume call (a batch costs the loop one hand-off, not a
        round trip through an executor)."""
        while not self._stop.is_set() and not halt.is_set():
            slots = [s for s in map(self._track, self._poll_once()) if s is not None]
            if not slots:
                continue
            try:
                loop.call_soon_threadsafe(self._start, slots, pool, halt)
            except RuntimeError:  # the loop closed: a hard stop
                return

    def _track(self, msg: Message) -> Slot[Message] | None:
        """Tracks a record as read; None when its partition is not owned."""
        return self._tracker.add((msg.topic() or "", msg.partition() or 0), msg)

    def _poll_once(self) -> list[Message]:
        """One consume call. At max_ongoing_requests in flight the owned
        partitions are paused (the call then serves rebalances only) and
        resumed once a slot is free."""
        c = self._consumer
        assert c is not None
        limit = self.cfg.max_ongoing_requests
        full = self._tracker.ongoing >= limit
        if full and not self._paused:
            # A slot is usually free again within milliseconds: wait for
            # it rather than pause, as a resumed partition is fetched
            # again from the broker (a round trip and a fetch wait, which
            # held every cycle of max_ongoing_requests records for about
            # half a second).
            full = not self._tracker.wait_below(limit, PAUSE_GRACE_S)
        if full != self._paused:
            parts = c.assignment()
            if parts:
                (c.pause if full else c.resume)(parts)
            self._paused = full
        self._store_marks(c)
        # A batch consume waits for all it asks for: wait for one record,
        # then take what else is already fetched, up to the free slots.
        msgs = c.consume(1, POLL_INTERVAL_S)
        free = self.cfg.max_ongoing_requests - self._tracker.ongoing - len(msgs)
        if msgs and free > 0:
            msgs += c.consume(free, 0)
        out: list[Message] = []
        for m in msgs:
            err = m.error()
            if err is not None:
                self._log.warning("fetch failed", extra={"err": str(err)})
                continue
            out.append(m)
        if self._obs is not None and out:
            self._fetched(c, out)
        return out

    def _fetched(self, c: Consumer, msgs: list[Message]) -> None:
        """Records each fetched partition's lag: its high watermark as of
        the fetch (librdkafka's cached one) less the offset after the last
        record fetched."""
        last: dict[tuple[str, int], int] = {}
        for m in msgs:
            last[(m.topic() or "", m.partition() or 0)] = m.offset() or 0
        lags = {}
        for (topic, part), off in last.items():
            try:
                _, hi = c.get_watermark_offsets(TopicPartition(topic, part), cached=True)
            except KafkaException:
                continue
            if hi >= 0:
                lags[(topic, part)] = max(hi - off - 1, 0)
        with self._lag_lock:
            self._lag.update(lags)

    def _assigned(self, c: Consumer, parts: list[TopicPartition]) -> None:
        n = self._tracker.assign((p.topic, p.partition) for p in parts)
        if self._paused and parts:
            c.pause(parts)
        if n:
            self._log.info("partitions assigned", extra={"group": self.cfg.group, "added": n})
        if not self._joined:
            # A member that joins a cooperative group is given partitions in
            # the rebalance after the one that admitted it; one that has
            # none by then is beyond the partition count, and ready as it is.
            self._joined = True
            timer = threading.Timer(READY_GRACE_S, self._mark_ready)
            timer.daemon = True
            timer.start()
        if parts:
            self._mark_ready()
            if self._obs is not None:
                self._obs.rebalanced()
        self._tell()

    def _revoked(self, c: Consumer, parts: list[TopicPartition]) -> None:
        """Waits (bounded) for the revoked partitions' records in flight,
        forgets them, then commits what was marked. Records still running
        after the wait are never marked: the next owner processes them."""
        tps = [(p.topic, p.partition) for p in parts]
        self._tracker.wait_idle(tps, self.cfg.drain_timeout_s)
        self._store_marks(c)
        n = self._tracker.forget(tps)
        if n:
            self._log.info("partitions revoked", extra={"group": self.cfg.group, "revoked": n})
        if parts and self._obs is not None:
            self._obs.rebalanced()
        self._tell()
        self._commit(c, "commit on revoke failed")

    def _lost(self, _c: Consumer, parts: list[TopicPartition]) -> None:
        n = self._tracker.forget((p.topic, p.partition) for p in parts)
        if n:
            self._log.warning("partitions lost", extra={"group": self.cfg.group, "lost": n})
        if parts and self._obs is not None:
            self._obs.rebalanced()
        self._tell()

    def _store_marks(self, c: Consumer) -> None:
        """Stores the offsets marked since the last call (offset + 1 of
        each partition's finished prefix), for the next commit."""
        for msg in self._tracker.take_marks():
            try:
                c.store_offsets(message=msg)
            except KafkaException as exc:  # the partition went away in librdkafka
                self._log.debug("offset not stored", extra={"err": str(exc)})

    def _commit(self, c: Consumer, what: str) -> None:
        try:
            c.commit(asynchronous=False)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if isinstance(err, KafkaError) and err.code() == KafkaError._NO_OFFSET:
                return  # nothing marked since the last commit
            self._log.warning(what, extra={"group": self.cfg.group, "err": str(exc)})

    def _close(self) -> None:
        """After the drain: forget every partition (whatever still runs is
        the next owner's), commit, leave the group, close."""
        c = self._consumer
        assert c is not None
        self._store_marks(c)
        self._tracker.forget()
        self._commit(c, "final commit failed")
        member = c.memberid() or ""
        c.close()  # a dynamic member leaves its group here
        if self.cfg.instance_id and member:
            leave_group(self.cfg, member, self._log)

    # -- the event loop

    def _start(self, slots: list[Slot[Message]], pool: ThreadPoolExecutor, halt: threading.Event) -> None:
        """Starts one task per record of a batch the poll thread tracked
        (none after a hard stop: the tracker forgot them)."""
        if halt.is_set():
            return
        loop = asyncio.get_running_loop()
        for slot in slots:
            task = loop.create_task(self._process(slot, pool))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _drain(self) -> None:
        """Waits for every record in flight, bounded by drain_timeout_s."""
        if not await asyncio.to_thread(self._tracker.wait_idle, None, self.cfg.drain_timeout_s):
            self._log.warning("drain timed out; records will be redelivered", extra={"ongoing": self._tracker.ongoing})

    def _count(self, name: str) -> None:
        with self._stats_lock:
            setattr(self._stats, name, getattr(self._stats, name) + 1)

    async def _process(self, slot: Slot[Message], pool: ThreadPoolExecutor) -> None:
        msg = slot.msg
        rec = Record(
            topic=msg.topic() or "",
            key=msg.key(),
            value=msg.value(),
            headers=headers.normalize(msg.headers()),
            partition=msg.partition() or 0,
            offset=msg.offset() or 0,
        )
        req, err = protocol.parse_request(rec)
        run = _Run(self, slot, rec, req)
        # Each record runs in its own task: the lines logged while it is
        # served, the deployment's own included, carry its ids.
        logfmt.set_request(req.env.id, trace_id(req.env.trace))
        obs, tr = self._obs, self.cfg.tracing
        if obs is not None or tr is not None:
            ts_type, ts_ms = msg.timestamp()
            wait_s = max(time.time() - ts_ms / 1000, 0.0) if ts_type != TIMESTAMP_NOT_AVAILABLE else 0.0
            if obs is not None and ts_type != TIMESTAMP_NOT_AVAILABLE:
                obs.picked_up(wait_s)
            if tr is not None:
                # The record's traceparent becomes its process span's, so
                # every record the handler causes is that span's child.
                run.span = tr.process(req.env, self.cfg.app, self.cfg.deployment, rec.topic, rec.partition,
                                      rec.offset, wait_s * 1000)  # fmt: skip
        try:
            async with self._slots:
                await self._serve(run, req, err, pool)
        finally:
            run.release()

    async def _serve(self, run: _Run, req: Request, err: protocol.ParseError | None, pool: ThreadPoolExecutor) -> None:
        if err is not None:
            run.fail(Code.INVALID_ARGUMENT.value, str(err))
            return
        env = req.env
        if self._http:
            try:
                env.http_request()
            except protocol.ParseError as exc:
                run.fail(Code.INVALID_ARGUMENT.value, f"deployment {self.cfg.deployment} is an HTTP ingress: {exc}")
                return
        if env.method and not (self._methods is not None and self._methods.has_method(env.method)):
            run.fail(Code.INVALID_ARGUMENT.value, f"deployment {self.cfg.deployment} has no method {env.method!r}")
            return
        if env.expired():
            self._count("expired")
            run.fail(Code.DEADLINE_EXCEEDED.value, "deadline passed before processing")
            return
        value = run.rec.value or b""
        raw = claim.find(run.rec.headers)
        if raw is not None:
            ref: claim.Ref | None = None
            try:
                ref = claim.read_ref(raw, self.cfg.claims)
                value = await self._fetch_claim(run, ref)
            except _Abandoned:
                run.abandon()  # the replica stops, or lost the partition, while the store is down
                return
            except claim.ClaimError as exc:
                if exc.not_found and ref is not None and ref.kind == claim.KIND_RECORD and env.reply_to:
                    # A replica deletes a record's claim once it answered it
                    # to a waiting caller: this is a redelivery of work done.
                    self._log.debug("claim gone: record already answered", extra={"key": ref.key, **run.ids()})
                    return
                run.fail(exc.code, exc.message)
                return
            run.claim = ref
        inp = Input(env=env, topic=run.rec.topic, key=run.rec.key, value=value)
        # Each record runs in its own task, so its context is its own; a
        # synchronous handler gets a copy of it in the pool.
        set_current(RequestContext(env.id, env.deadline_ns, env.model, env.version, env.request_headers(), env))
        tr, handle, token = self.cfg.tracing, None, None
        if tr is not None and run.span is not None:
            handle, token = tr.handle(run.span, self.cfg.deployment)
        start = time.perf_counter()
        code, message = "", ""
        try:
            code, message = await self._call(inp, run, env, pool)
            if code:
                # A deadline that passes as a sync handler's thread answers
                # fails the record only when the answer did not go first:
                # then it was processed, and its handle span succeeded. A
                # record failed already (an output's produce) is not.
                late = code == Code.DEADLINE_EXCEEDED.value
                if not run.fail(code, message, unless_answered=late) and late and run.answered():
                    self._count("processed")
                    code, message = "", ""
                return
        finally:
            took = time.perf_counter() - start
            self._latency.observe(time.monotonic(), took)
            if self._obs is not None:
                self._obs.handled(took)
            if handle is not None and tr is not None:
                tr.handled(handle, token, code, message)
        self._count("processed")
        if run.stream:
            run.send(protocol.end(req, self.cfg.output, run.seq))

    async def _call(self, inp: Input, run: _Run, env: protocol.Envelope, pool: ThreadPoolExecutor) -> tuple[str, str]:
        """Runs the handler on one record: the failure's code and message,
        or two empty strings."""
        try:
            if self._async:
                coro: Any = self._h.handle(inp, run)
                if env.deadline_ns == 0:
                    await coro
                else:
                    await _within(coro, max(0.0, (env.deadline_ns - time.time_ns()) / 1e9))
            else:
                ctx = contextvars.copy_context()
                await asyncio.get_running_loop().run_in_executor(pool, ctx.run, self._h.handle, inp, run)
        except SluiceError as exc:
            return exc.code, exc.message
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if isinstance(exc, DeadlinePassed) or (
                isinstance(exc, (TimeoutError, asyncio.TimeoutError)) and env.expired()
            ):
                return Code.DEADLINE_EXCEEDED.value, "deadline passed while serving"
            self._log.error(
                "deployment raised",
                extra={"deployment": self.cfg.deployment, "traceback": traceback.format_exc(), **run.ids()},
            )
            return code_of(exc), f"deployment {self.cfg.deployment} raised {type(exc).__name__}: {exc}"
        return "", ""

    async def _fetch_claim(self, run: _Run, ref: claim.Ref) -> bytes:
        """The claimed value of run's record, fetched again while the store
        cannot be reached (CLAIM_RETRY_MIN_S doubling to CLAIM_RETRY_MAX_S):
        until the record's deadline (deadline_exceeded), or, without one,
        as long as the replica runs and owns the partition (_Abandoned).
        The outage is logged once, and its end."""
        claims = self.cfg.claims
        assert claims is not None
        deadline_ns = run.req.env.deadline_ns
        wait = CLAIM_RETRY_MIN_S
        down = ""  # the last failure of a store that cannot be reached
        while True:
            left = None if deadline_ns == 0 else (deadline_ns - time.time_ns()) / 1e9
            try:
                if left is not None and left <= 0:
                    raise asyncio.TimeoutError
                b = await asyncio.wait_for(asyncio.to_thread(claims.fetch, ref, left), left)
            except (asyncio.TimeoutError, TimeoutError):
                why = f"{down} (retried until the deadline)" if down else "cut off by the record's deadline"
                raise claim.ClaimError("fetch", ref.key, why, Code.DEADLINE_EXCEEDED.value) from None
            except claim.StoreDown as exc:
                down = exc.cause
                if not self._store_down:
                    self._store_down = True
                    self._log.warning(
                        "claim store unavailable; retrying claimed records until it answers",
                        extra={"group": self.cfg.group, "key": ref.key, "err": exc.message, **run.ids()},
                    )
                end = time.monotonic() + wait
                while (now := time.monotonic()) < end:
                    if self._stop.is_set() or run.slot.part.revoked:
                        raise _Abandoned from None
                    if deadline_ns and time.time_ns() >= deadline_ns:
                        raise claim.ClaimError(
                            "fetch", ref.key, f"{exc.cause} (retried until the deadline)",
                            Code.DEADLINE_EXCEEDED.value,
                        ) from None  # fmt: skip
                    await asyncio.sleep(min(0.05, end - now))
                wait = min(2 * wait, CLAIM_RETRY_MAX_S)
                continue
            if self._store_down:
                self._store_down = False
                self._log.info("claim store available again", extra={"group": self.cfg.group})
            return b

    def _delete_claim(self, ref: claim.Ref) -> None:
        """Deletes ref in the background (bounded by DELETE_TIMEOUT_S)."""
        claims = self.cfg.claims
        if claims is None:
            return

        def delete() -> None:
            try:
                claims.delete(ref)
            except claim.ClaimError as exc:
                self._log.warning("claim not deleted; it expires", extra={"key": ref.key, "err": exc.message})

        with contextlib.suppress(RuntimeError):  # stopped: the claim expires
            self._deleter.submit(delete)


class _Abandoned(Exception):
    """A claim fetch gave up: the replica stops or the record's partition
    was revoked while the store is down."""


class _Run:
    """One record's processing: the Output its handler gets. It counts the
    produces in flight so that the record completes after the last
    acknowledgement. Thread-safe: emit may come from a handler thread,
    acknowledgements from the producer's."""

    def __init__(self, r: Replica, slot: Slot[Message], rec: Record, req: Request) -> None:
        self.r = r
        self.slot = slot
        self.rec = rec
        self.req = req
        self.seq = 0
        self.stream = r._streams
        self._resp: HTTPResponse | None = None
        self._lock = threading.Lock()
        self._pending = 1  # the processing itself; released when it ends
        self._failed = False
        self.span: Span | None = None  # the process span, when traced
        self.claim: claim.Ref | None = None  # the input's claimed value
        self._dead = False  # dead-lettered: its claim stays for a replay
        self._answered = False  # a unary answer was emitted
        self._upload: Future[None] | None = None  # the last output queued behind a claim upload

    def ids(self) -> dict[str, str]:
        """The record's request and trace ids, for a log line's extra: a
        line logged outside its task (an acknowledgement's) has them too."""
        return {"request_id": self.req.env.id, "trace_id": trace_id(self.req.env.trace)}

    def answered(self) -> bool:
        """Whether a unary answer was emitted before any failure."""
        with self._lock:
            return self._answered and not self._failed

    def respond(self, resp: HTTPResponse, streamed: bool = False) -> None:
        with self._lock:
            self._resp = resp
            self.stream = self.stream or streamed

    def start_stream(self) -> None:
        with self._lock:
            self.stream = True

    def emit(self, value: bytes, content_type: str = "") -> None:
        """Routes one output: along the continuation, to the successors, to
        the caller, or to the output topic."""
        cfg = self.r.cfg
        with self._lock:
            if self._failed:
                # The record was failed first: its deadline passed while a
                # handler thread computed this. The caller has its answer.
                return
            self._answered = not self.stream
            if self.req.env.cont:
                if self.stream:
                    raise protocol.InvalidArgument(
                        "a streaming deployment's result cannot be forwarded to another deployment"
                    )
                fwd = protocol.forward(self.req, value, content_type)
                assert fwd is not None
                recs = [fwd.record()]
            elif cfg.successors:
                recs = [protocol.edge(self.req, t, value, content_type).record() for t in cfg.successors]
            else:
                seq = self.seq if self.stream else -1
                recs = [protocol.answer(self.req, cfg.output, seq, value, content_type, self._resp)]
                self._resp = None  # on the first answer only
            self.seq += 1
            # Held from the moment the answer counts as given: a deadline
            # that passes before send() takes its own hold must not see
            # the processing as the last one and complete the record.
            self._pending += 1
        try:
            for rec in recs:
                self.send(rec)
        finally:
            self.release()

    def can_hand_over(self) -> bool:
        """Whether the record's answer may be a call it hands over
        (hand_over): only an answer to a waiting caller (not one that goes
        on along a continuation, to successors or to the output topic),
        of a record that does not stream, has no HTTP response set, and
        has not failed."""
        env = self.req.env
        with self._lock:
            if self._failed or self.stream or self._resp is not None:
                return False
        return not env.cont and not self.r.cfg.successors and bool(env.reply_to)

    def hand_over(self, call: Request) -> None:
        """Sends call, a handle call the handler answers with (a tail
        call), as the record's answer: the callee answers where this
        answer would have gone (protocol.hand_over), and the record is
        done once the call is acknowledged. Ask can_hand_over first."""
        with self._lock:
            self._answered = True
            self.seq += 1
            self._pending += 1  # as emit's
        try:
            self.send(protocol.hand_over(self.req, call).record())
        finally:
            self.release()

    def send(self, rec: Record) -> None:
        """Produces rec, a value over the claim threshold as a claim check
        (never a dead letter's: it is the record as read, claim included).
        On the event loop (an async handler's output), a value to store
        is put by an uploader thread, and the run's later outputs queue
        behind it, so that stream items keep their order."""
        cfg = self.r.cfg
        claims = cfg.claims if rec.topic != cfg.dead_letter else None
        with self._lock:
            self._pending += 1
            behind = self._upload if self._upload is not None and not self._upload.done() else None
            if claims is not None and (behind is not None or (len(rec.value or b"") > claims.threshold and _on_loop())):
                self._upload = self.r._uploader.submit(self._send_after, behind, rec)
                return
        self._send_now(rec)

    def _send_after(self, behind: Future[None] | None, rec: Record) -> None:
        if behind is not None:
            wait([behind])
        try:
            self._send_now(rec)
        except Exception as exc:  # the record must not wait for an acknowledgement that never comes
            self._send_failed(rec, f"{type(exc).__name__}: {exc}", False, local=True)
            self.release()

    def _send_now(self, rec: Record) -> None:
        assert self.r._sender is not None
        cfg = self.r.cfg
        ref: claim.Ref | None = None
        if cfg.claims is not None and rec.topic != cfg.dead_letter:
            kind = claim.KIND_REPLY if rec.topic == self.req.env.reply_to else claim.KIND_RECORD
            try:
                ref = cfg.claims.put(rec.value or b"", kind)
            except claim.ClaimError as exc:
                self._send_failed(rec, exc.message, isinstance(exc, claim.TooLarge), local=True)
                self.release()
                return
            if ref is not None:
                rec = Record(rec.topic, rec.key, b"", [*rec.headers, (headers.CLAIM, str(ref).encode())])
        size = len(rec.value or b"")

        def delivered(rec: Record, err: KafkaError | None) -> None:
            if err is not None and ref is not None:  # the record never landed: nobody reads its claim
                self.r._delete_claim(ref)
            if err is not None:
                msg = err.str()
                if too_large(err) and cfg.claims is None:
                    msg = no_store(size, msg)
                self._send_failed(rec, msg, too_large(err), local=too_large(err))
            self.release()

        self.r._sender.send(rec, delivered)

    def _send_failed(self, rec: Record, err: str, too_big: bool, local: bool) -> None:
        """A caller that waits gets an error now, naming the cause (an
        answer too large, a claim that could not be stored, an edge gone),
        not its deadline; when the caller cannot be reached (its reply
        topic is gone), or nobody waits, the record is dead-lettered."""
        cfg, log = self.r.cfg, self.r._log
        reply_to = self.req.env.reply_to
        reachable = bool(reply_to) and (rec.topic != reply_to or local)
        with self._lock:
            failed = self._failed
        if rec.topic != cfg.dead_letter and reachable and not failed:
            log.warning(
                "output produce failed; answering the caller with the error",
                extra={"topic": rec.topic, "err": err, **self.ids()},
            )
            code = Code.INTERNAL.value if too_big else Code.UNAVAILABLE.value
            self.fail(code, f"the answer could not be delivered: produce to {rec.topic}: {err}")
        elif rec.topic != cfg.dead_letter:
            log.warning("output produce failed", extra={"topic": rec.topic, "err": err, **self.ids()})
            self.dead_letter(Code.UNAVAILABLE.value, f"produce to {rec.topic}: {err}")
        else:
            src = protocol.Source(self.rec.topic, self.rec.partition, self.rec.offset)
            log.error("dead letter lost", extra={"topic": rec.topic, "source": str(src), "err": err, **self.ids()})

    def fail(self, code: str, message: str, unless_answered: bool = False) -> bool:
        """Answers the caller with the failure, or dead-letters the record
        when nobody waits (once; with unless_answered, not after a unary
        answer was emitted); reports whether it did."""
        with self._lock:
            if self._failed or (unless_answered and self._answered):
                return False
            self._failed = True
        self.r._count("failed")
        if self.r._obs is not None:
            self.r._obs.failed(code)
        if self.span is not None and self.r.cfg.tracing is not None:
            self.r.cfg.tracing.failed(self.span, code, message)
        src = str(protocol.Source(self.rec.topic, self.rec.partition, self.rec.offset))
        what = {"code": code, "err": message, "source": src, **self.ids()}
        if not self.req.env.reply_to:
            self.r._count("dead_lettered")
            with self._lock:
                self._dead = True
            self.r._log.warning("record dead-lettered", extra=what)
        else:
            self.r._log.debug("request failed", extra=what)
        cfg = self.r.cfg
        self.send(protocol.failure(self.req, self.rec, cfg.dead_letter, cfg.deployment, code, message))
        return True

    def dead_letter(self, code: str, message: str) -> None:
        """Dead-letters the record whoever waits: an output of it could not
        be produced."""
        self.r._count("dead_lettered")
        with self._lock:
            self._dead = True
        cfg = self.r.cfg
        self.send(protocol.new_dead_letter(cfg.dead_letter, self.rec, cfg.deployment, code, message).record())

    def release(self) -> None:
        """Ends one produce (or the processing). After the last, the record
        completes, and the claim of a record this replica answered to a
        waiting caller is deleted: nobody reads it again but a
        redelivery, which finds it gone and skips the record."""
        with self._lock:
            self._pending -= 1
            done = self._pending == 0
            dead = self._dead
        if not done:
            return
        if self.span is not None:
            self.span.end()  # after the last output's acknowledgement
        ref = self.claim
        if ref is not None and ref.kind == claim.KIND_RECORD and self.req.env.reply_to and not dead:
            self.r._delete_claim(ref)
        self.r._tracker.complete(self.slot)

    def abandon(self) -> None:
        """Leaves the record to the partition's next owner: nothing after
        it in the partition is marked for commit by this replica."""
        self.r._tracker.abandon(self.slot)


def _on_loop() -> bool:
    """Whether the calling thread runs an event loop (an async handler's)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def no_store(size: int, err: str) -> str:
    """A produce refused as too large in a process with no claim store:
    the size, the record limit, and how to configure a store."""
    return (
        f"a record of {size} bytes is over the broker's record limit (about 1 MB by default: message.max.bytes) "
        "and this process has no claim store to carry it: give it a blob store (the platform's --s3-endpoint, "
        f"or --blob-dir; SLUICE_S3_ENDPOINT or SLUICE_BLOB_DIR) for payloads up to the {claim.DEFAULT_LIMIT}-byte "
        f"limit: {err}"
    )


class DeadlinePassed(Exception):
    """The record's deadline ended its handler (_within's own timeout, not
    a TimeoutError the handler raised)."""


async def _within(coro: Any, timeout_s: float) -> None:
    """Awaits coro, raising DeadlinePassed past timeout_s; in the calling
    task where asyncio can (3.11: no task and loop turn of its own per
    record, as wait_for takes). The loop's clock may end it a hair before
    the wall clock reaches the deadline (uvloop rounds timers to
    milliseconds), so the timeout itself says so, not the wall clock."""
    if sys.version_info >= (3, 11):
        cm = asyncio.timeout(timeout_s)
        try:
            async with cm:
                await coro
        except TimeoutError:
            if cm.expired():
                raise DeadlinePassed from None
            raise
    else:
        await asyncio.wait_for(coro, timeout_s)


async def serve_until_signalled(replica: Replica) -> None:
    """Runs the replica until SIGTERM or SIGINT, then stops it softly."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, replica.stop)
    try:
        await replica.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
