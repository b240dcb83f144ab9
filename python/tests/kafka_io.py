"""Plain confluent-kafka helpers for tests: produce acknowledged, read a
topic to its end, read a group's committed offset."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from sluice.kafkaauth import client_settings
from sluice.protocol import Record, headers


def produce(brokers: list[str], rec: Record) -> Record:
    """Produces rec (to its partition when not negative) and waits for its
    acknowledgement; returns it with its partition and offset."""
    p = Producer({**client_settings(brokers), "linger.ms": 0})
    got: list[Message] = []
    errs: list[KafkaError] = []

    def done(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            errs.append(err)
        got.append(msg)

    hs: list[tuple[str, str | bytes | None]] = list(rec.headers)
    if rec.partition >= 0:
        p.produce(rec.topic, value=rec.value, key=rec.key, headers=hs, partition=rec.partition, on_delivery=done)
    else:
        p.produce(rec.topic, value=rec.value, key=rec.key, headers=hs, on_delivery=done)
    p.flush(15)
    if errs or not got:
        raise RuntimeError(f"produce to {rec.topic}: {errs or 'no acknowledgement'}")
    m = got[0]
    return Record(rec.topic, rec.key, rec.value, rec.headers, m.partition() or 0, m.offset() or 0)


def read_all(brokers: list[str], topic: str, timeout_s: float = 15.0) -> list[Record]:
    """Every record of partition 0 of topic, from the start to its end offset now."""
    c = Consumer(
        {
            **client_settings(brokers),
            "group.id": "py-reader-" + uuid.uuid4().hex,
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    try:
        lo, hi = watermarks(c, topic, timeout_s)
        out: list[Record] = []
        if hi <= lo:
            return out
        c.assign([TopicPartition(topic, 0, lo)])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is None or m.error() is not None:
                continue
            out.append(
                Record(topic, m.key(), m.value(), headers.normalize(m.headers()), m.partition() or 0, m.offset() or 0)
            )
            if (m.offset() or 0) + 1 >= hi:
                return out
        raise TimeoutError(f"read {topic}: {len(out)} records by the deadline, its end is at {hi}")
    finally:
        c.close()


# Errors a partition answers while its leadership moves (a topic just
# created, a broker just restarted): asked again until the deadline.
_LEADER_MOVING = frozenset(
    {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE, KafkaError.UNKNOWN_TOPIC_OR_PART}
)


def watermarks(c: Consumer, topic: str, timeout_s: float) -> tuple[int, int]:
    """The low and high watermarks of partition 0 of topic, asked again
    while the partition has no leader yet."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
            return int(lo), int(hi)
        except KafkaException as e:
            if e.args[0].code() not in _LEADER_MOVING or time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def committed(brokers: list[str], group: str, topic: str, partition: int = 0) -> int:
    """The offset group has committed for a partition of topic; -1: none."""
    c = Consumer({**client_settings(brokers), "group.id": group, "enable.auto.commit": False})
    try:
        try:
            (tp,) = c.committed([TopicPartition(topic, partition)], timeout=5)
        except KafkaException:
            return -1  # the group does not exist yet
        return int(tp.offset) if tp.offset >= 0 else -1
    finally:
        c.close()


def end_offset(brokers: list[str], topic: str) -> int:
    c = Consumer({**client_settings(brokers), "group.id": "py-offsets-" + uuid.uuid4().hex})
    try:
        return int(c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1])
    finally:
        c.close()
