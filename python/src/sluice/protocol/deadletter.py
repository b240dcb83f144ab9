"""Dead letters: failed records nobody waits for, on the application's
dead-letter topic, with why and where they failed."""

from __future__ import annotations

from dataclasses import dataclass, field

from sluice.protocol import headers as h
from sluice.protocol.errors import Code, bad_header, missing_header
from sluice.protocol.records import Record

FAILURE_HEADERS = frozenset({h.STATUS, h.ERROR, h.SOURCE, h.DEPLOYMENT})


@dataclass(frozen=True)
class Source:
    """Where a record was read: what a dead letter's sl-source says."""

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


def parse_source(value: bytes) -> Source:
    """Reads "topic/partition/offset"; the topic is everything before the
    last two '/'."""
    bad = bad_header(h.SOURCE, value, "topic/partition/offset")
    rest, sep, off = value.rpartition(b"/")
    if not sep:
        raise bad
    topic, sep, part = rest.rpartition(b"/")
    if not sep or not topic:
        raise bad
    try:
        p = h.parse_count(h.SOURCE, part)
        o = h.parse_count(h.SOURCE, off)
    except ValueError:
        raise bad from None
    if p > (1 << 31) - 1:
        raise bad
    return Source(topic.decode("utf-8", "surrogateescape"), p, o)


@dataclass
class DeadLetter:
    topic: str  # the application's dead-letter topic
    key: bytes | None
    value: bytes | None
    headers: h.Headers = field(default_factory=list)  # the failed record's, less any earlier failure's
    status: str = Code.INTERNAL.value
    error: str = ""
    source: Source = Source("", 0, 0)
    deployment: str = ""

    def record(self) -> Record:
        """The record's headers, then sl-status, sl-error, sl-source, sl-deployment."""
        hs = without_failure(self.headers)
        hs += [
            h.text(h.STATUS, self.status),
            h.text(h.ERROR, self.error),
            h.text(h.SOURCE, str(self.source)),
            h.text(h.DEPLOYMENT, self.deployment),
        ]
        return Record(self.topic, self.key, self.value, hs)


def new_dead_letter(topic: str, rec: Record, deployment: str, code: str, message: str) -> DeadLetter:
    """The dead letter of rec (as it was read), failed at deployment; an
    empty code is internal."""
    return DeadLetter(
        topic=topic,
        key=rec.key,
        value=rec.value,
        headers=without_failure(rec.headers),
        status=code or Code.INTERNAL.value,
        error=message,
        source=Source(rec.topic, rec.partition, rec.offset),
        deployment=deployment,
    )


def parse_dead_letter(rec: Record) -> DeadLetter:
    """Decodes a dead letter. Raises ParseError without sl-status or with
    an sl-source that is not topic/partition/offset."""
    d = DeadLetter(rec.topic, rec.key, rec.value, without_failure(rec.headers), status="")
    source: bytes | None = None
    for key, value in rec.headers:
        if key == h.STATUS:
            d.status = value.decode("utf-8", "surrogateescape")
        elif key == h.ERROR:
            d.error = value.decode("utf-8", "surrogateescape")
        elif key == h.SOURCE:
            source = value
        elif key == h.DEPLOYMENT:
            d.deployment = value.decode("utf-8", "surrogateescape")
    if not d.status:
        raise missing_header(h.STATUS, "a dead letter")
    if source is None:
        raise missing_header(h.SOURCE, "a dead letter")
    d.source = parse_source(source)
    return d


def without_failure(hs: h.Headers) -> h.Headers:
    """hs less the four failure headers, in a new list."""
    return [(k, v) for k, v in hs if k not in FAILURE_HEADERS]
