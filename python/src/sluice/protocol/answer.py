"""Where a finished request's records go: to the caller when one waits
(sl-reply), else to the output or dead-letter topic."""

from __future__ import annotations

from sluice.protocol.deadletter import new_dead_letter
from sluice.protocol.http import HTTPResponse
from sluice.protocol.output import end_output, unary_output
from sluice.protocol.records import Record, Request
from sluice.protocol.reply import end_reply, error_reply, unary_reply


def answer(
    inp: Request,
    output: str,
    seq: int,
    value: bytes | None,
    content_type: str,
    http: HTTPResponse | None = None,
) -> Record:
    """The record an output that goes no further becomes: a reply when a
    caller waits, else an output record keyed like the request. seq is the
    item number of a stream, -1 for a unary answer; http the HTTP
    response of an HTTP ingress's first answer."""
    if inp.env.reply_to:
        r = unary_reply(inp.env, value, content_type)
        r.seq, r.http = seq, http
        return r.record()
    o = unary_output(inp, output, value, content_type)
    o.seq, o.http = seq, http
    return o.record()


def end(inp: Request, output: str, n: int) -> Record:
    """The record that ends the stream of n items inp caused."""
    if inp.env.reply_to:
        return end_reply(inp.env, n).record()
    return end_output(inp, output, n).record()


def failure(inp: Request, rec: Record, dead_letter: str, deployment: str, code: str, message: str) -> Record:
    """The record a failed request becomes: an error reply when a caller
    waits, else the dead letter of rec, the record as it was read."""
    if inp.env.reply_to:
        return error_reply(inp.env, code, message).record()
    return new_dead_letter(dead_letter, rec, deployment, code, message).record()
