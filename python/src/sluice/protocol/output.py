"""Output records: to the application's output topic, keyed like the
request, for results nobody waits for."""

from __future__ import annotations

from dataclasses import dataclass

from sluice.protocol import headers as h
from sluice.protocol.errors import ParseError
from sluice.protocol.http import HTTPResponse, response_field
from sluice.protocol.records import Record, Request


@dataclass
class Output:
    topic: str  # the application's output topic
    key: bytes | None  # the request's key
    id: str = ""  # the request's id, if it had one
    content_type: str = ""
    value: bytes | None = None
    seq: int = -1  # stream item number; -1: not an item
    eos: int = -1  # end of stream: items sent; -1: not the end
    http: HTTPResponse | None = None

    def record(self) -> Record:
        """sl-id and content-type when set, sl-seq and sl-eos when not negative."""
        hs: h.Headers = []
        if self.id:
            hs.append(h.text(h.ID, self.id))
        if self.content_type:
            hs.append(h.text(h.CONTENT_TYPE, self.content_type))
        if self.seq >= 0:
            hs.append(h.count(h.SEQ, self.seq))
        if self.eos >= 0:
            hs.append(h.count(h.EOS, self.eos))
        if self.http is not None:
            hs += self.http.header_list()
        return Record(self.topic, self.key, self.value, hs)


def unary_output(inp: Request, topic: str, value: bytes | None, content_type: str) -> Output:
    return Output(topic, inp.key, inp.env.id, content_type, value)


def item_output(inp: Request, topic: str, seq: int, value: bytes | None, content_type: str) -> Output:
    return Output(topic, inp.key, inp.env.id, content_type, value, seq=seq)


def end_output(inp: Request, topic: str, n: int) -> Output:
    return Output(topic, inp.key, inp.env.id, eos=n)


def parse_output(rec: Record) -> Output:
    """Decodes an output record. Raises ParseError on a count that is not
    one and on sl-seq with sl-eos."""
    o = Output(rec.topic, rec.key, value=rec.value)
    for key, value in rec.headers:
        if key == h.ID:
            o.id = value.decode("utf-8", "surrogateescape")
        elif key == h.CONTENT_TYPE:
            o.content_type = value.decode("utf-8", "surrogateescape")
        elif key == h.SEQ:
            o.seq = h.parse_count(h.SEQ, value)
        elif key == h.EOS:
            o.eos = h.parse_count(h.EOS, value)
        else:
            o.http = response_field(o.http, key, value)
    if o.seq >= 0 and o.eos >= 0:
        raise ParseError(h.EOS, "on the same record as " + h.SEQ)
    return o
