"""Reply records: to a caller's sl-reply topic, without a key."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sluice.protocol import headers as h
from sluice.protocol.envelope import Envelope
from sluice.protocol.errors import Code, ParseError, missing_header
from sluice.protocol.http import HTTPResponse, response_field
from sluice.protocol.records import Record


class ReplyKind(enum.Enum):
    UNARY = "unary"  # the whole answer
    ITEM = "item"  # one item of a stream (sl-seq)
    END = "end"  # the end of a stream (sl-eos)
    ERROR = "error"  # a failure (sl-status); it also ends a stream


@dataclass
class Reply:
    """The answer of a unary request, an item or the end of a stream, or a
    failure."""

    topic: str  # the caller's reply topic
    id: str  # the id the caller waits on
    content_type: str = ""
    value: bytes | None = None
    seq: int = -1  # stream item number; -1: not an item
    eos: int = -1  # end of stream: items sent; -1: not the end
    status: str = ""  # failure: its code; "": no failure
    error: str = ""  # failure: the message
    http: HTTPResponse | None = None  # on a unary answer or item 0

    @property
    def kind(self) -> ReplyKind:
        if self.status:
            return ReplyKind.ERROR
        if self.eos >= 0:
            return ReplyKind.END
        if self.seq >= 0:
            return ReplyKind.ITEM
        return ReplyKind.UNARY

    def record(self) -> Record:
        """sl-id always; content-type when set; sl-seq, sl-eos when not
        negative; sl-status and sl-error on a failure."""
        hs: h.Headers = [h.text(h.ID, self.id)]
        if self.content_type:
            hs.append(h.text(h.CONTENT_TYPE, self.content_type))
        if self.seq >= 0:
            hs.append(h.count(h.SEQ, self.seq))
        if self.eos >= 0:
            hs.append(h.count(h.EOS, self.eos))
        if self.status:
            hs += [h.text(h.STATUS, self.status), h.text(h.ERROR, self.error)]
        if self.http is not None:
            hs += self.http.header_list()
        return Record(self.topic, None, self.value, hs)


def unary_reply(env: Envelope, value: bytes | None, content_type: str) -> Reply:
    return Reply(env.reply_to, env.final_id(), content_type, value)


def item_reply(env: Envelope, seq: int, value: bytes | None, content_type: str) -> Reply:
    return Reply(env.reply_to, env.final_id(), content_type, value, seq=seq)


def end_reply(env: Envelope, n: int) -> Reply:
    return Reply(env.reply_to, env.final_id(), eos=n)


def error_reply(env: Envelope, code: str, message: str) -> Reply:
    """A failure; an empty code is internal."""
    return Reply(env.reply_to, env.final_id(), status=code or Code.INTERNAL.value, error=message)


def parse_reply(rec: Record) -> Reply:
    """Decodes a reply. Raises ParseError on a missing or empty sl-id, a
    count that is not one, and sl-seq with sl-eos. An unknown sl-status is
    kept; an empty one, or sl-error alone, is no failure."""
    r = Reply(rec.topic, "", value=rec.value)
    for key, value in rec.headers:
        if key == h.ID:
            r.id = _str(value)
        elif key == h.CONTENT_TYPE:
            r.content_type = _str(value)
        elif key == h.STATUS:
            r.status = _str(value)
        elif key == h.ERROR:
            r.error = _str(value)
        elif key == h.SEQ:
            r.seq = h.parse_count(h.SEQ, value)
        elif key == h.EOS:
            r.eos = h.parse_count(h.EOS, value)
        else:
            r.http = response_field(r.http, key, value)
    if not r.status:
        r.error = ""
    if not r.id:
        raise missing_header(h.ID, "a reply")
    if r.seq >= 0 and r.eos >= 0:
        raise ParseError(h.EOS, "on the same record as " + h.SEQ)
    return r


def _str(value: bytes) -> str:
    return value.decode("utf-8", "surrogateescape")
