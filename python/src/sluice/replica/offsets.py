"""Which offsets a replica may commit: per owned partition, the records in
flight in offset order; the end of the finished prefix is marked, never
for a partition the replica no longer owns.

Marks are taken by the consumer's own thread (take_marks), which stores
them in librdkafka before each poll and before a revoke completes:
librdkafka's offset store blocks while a rebalance callback runs on the
poll thread, so no other thread may call it. A mark is made under the
lock that forget takes, so a forgotten partition is never marked.
Tracker._lock is a leaf."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

M = TypeVar("M")  # a record as the Kafka client hands it over

TopicPartition = tuple[str, int]


@dataclass
class Partition(Generic[M]):
    queue: deque[Slot[M]] = field(default_factory=deque)  # in offset order
    revoked: bool = False


@dataclass(eq=False)
class Slot(Generic[M]):
    """One record in flight."""

    msg: M
    part: Partition[M]
    tp: TopicPartition
    done: bool = False


class Tracker(Generic[M]):
    """The records in flight of the owned partitions. Thread-safe: records
    are added by the poll loop, completed from any thread, and partitions
    assigned and revoked from the consumer's rebalance callbacks."""

    def __init__(self) -> None:
        self._marks: dict[TopicPartition, M] = {}  # the latest per partition, not yet taken
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._parts: dict[TopicPartition, Partition[M]] = {}
        self._ongoing = 0

    @property
    def ongoing(self) -> int:
        with self._lock:
            return self._ongoing

    def owned(self) -> list[TopicPartition]:
        with self._lock:
            return sorted(self._parts)

    def assign(self, tps: Iterable[TopicPartition]) -> int:
        """Starts tracking newly assigned partitions; returns how many."""
        n = 0
        with self._lock:
            for tp in tps:
                if tp not in self._parts:
                    self._parts[tp] = Partition()
                    n += 1
        return n

    def add(self, tp: TopicPartition, msg: M) -> Slot[M] | None:
        """Tracks a record just read; None when its partition is not owned
        (revoked between the poll and now: its new owner has it)."""
        with self._lock:
            part = self._parts.get(tp)
            if part is None:
                return None
            slot = Slot(msg, part, tp)
            part.queue.append(slot)
            self._ongoing += 1
            return slot

    def complete(self, slot: Slot[M]) -> None:
        """Marks slot done; if it ends its partition's finished prefix and
        the partition is still owned, marks the prefix's last record."""
        with self._lock:
            slot.done = True
            part = slot.part
            last: M | None = None
            while part.queue and part.queue[0].done:
                last = part.queue.popleft().msg
            if last is not None and not part.revoked:
                self._marks[slot.tp] = last
            self._ongoing -= 1
            self._changed.notify_all()

    def abandon(self, slot: Slot[M]) -> None:
        """Leaves slot's record uncommitted: nothing of its partition is
        marked from now on (the replica stops, or lost the partition, and
        the next owner reads the record again)."""
        with self._lock:
            slot.part.revoked = True

    def take_marks(self) -> list[M]:
        """The records to store offsets for (each partition's latest), once."""
        with self._lock:
            marks = list(self._marks.values())
            self._marks.clear()
            return marks

    def busy(self, tps: Iterable[TopicPartition]) -> bool:
        with self._lock:
            return self._busy_locked(tps)

    def _busy_locked(self, tps: Iterable[TopicPartition]) -> bool:
        return any((p := self._parts.get(tp)) is not None and p.queue for tp in tps)

    def wait_idle(self, tps: Iterable[TopicPartition] | None, timeout_s: float) -> bool:
        """Waits until the partitions (None: all) have nothing in flight, at
        most timeout_s; reports whether they got there."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                idle = self._ongoing == 0 if tps is None else not self._busy_locked(list(tps))
                left = deadline - time.monotonic()
                if idle or left <= 0:
                    return idle
                self._changed.wait(left)

    def wait_below(self, limit: int, timeout_s: float) -> bool:
        """Waits until fewer than limit records are in flight, at most
        timeout_s; reports whether they are."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                left = deadline - time.monotonic()
                if self._ongoing < limit or left <= 0:
                    return self._ongoing < limit
                self._changed.wait(left)

    def forget(self, tps: Iterable[TopicPartition] | None = None) -> int:
        """Stops tracking the partitions (None: all): their records still in
        flight are never marked, and marks not yet taken are dropped.
        Returns how many were owned."""
        with self._lock:
            keys = list(self._parts) if tps is None else list(tps)
            n = 0
            for tp in keys:
                self._marks.pop(tp, None)
                part = self._parts.pop(tp, None)
                if part is not None:
                    part.revoked = True
                    n += 1
            return n
