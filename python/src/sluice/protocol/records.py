"""Records in general, and request records: to an ingress, along an edge,
a handle call, a forwarded continuation."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from sluice.protocol import headers as h
from sluice.protocol.envelope import Envelope, Hop, parse_envelope
from sluice.protocol.errors import ParseError


@dataclass
class Record:
    """A Kafka record as the protocol sees it. partition and offset are
    known for a record that was read (-1 otherwise). A null key or value
    and an empty one mean the same."""

    topic: str
    key: bytes | None = None
    value: bytes | None = None
    headers: h.Headers = field(default_factory=list)
    partition: int = -1
    offset: int = -1


@dataclass
class Request:
    """A request record: the value is the payload, the headers the envelope."""

    topic: str
    key: bytes | None
    value: bytes | None
    env: Envelope

    def record(self) -> Record:
        return Record(self.topic, self.key, self.value, self.env.header_list())


def new_request(topic: str, key: bytes | None, env: Envelope, value: bytes | None) -> Request:
    """A request a caller starts: keyed by key, or by the request id."""
    if key is None and env.id:
        key = env.id.encode("utf-8", "surrogateescape")
    return Request(topic, key, value, env)


def parse_request(rec: Record) -> tuple[Request, ParseError | None]:
    """Decodes a request record; on a malformed header, what could be read
    and the error (see parse_envelope)."""
    env, err = parse_envelope(rec.headers)
    return Request(rec.topic, rec.key, rec.value, env), err


def edge(inp: Request, topic: str, value: bytes | None, content_type: str) -> Request:
    """The request an output becomes on a dataflow edge (or a routed hop):
    the input's key and whole envelope, with the output's content type and
    no method (the next deployment is called, not the input's method)."""
    env = replace(inp.env, content_type=content_type, method="", request=list(inp.env.request), cont=list(inp.env.cont))
    return Request(topic, inp.key, value, env)


def forward(inp: Request, value: bytes | None, content_type: str) -> Request | None:
    """The request an output becomes when its input carries a continuation:
    to the first hop's topic, keyed by and under the hop's id, with the
    later hops as its continuation, the output's content type and no
    method. None without a continuation."""
    if not inp.env.cont:
        return None
    nxt = inp.env.cont[0]
    env = replace(
        inp.env,
        id=nxt.id,
        cont=list(inp.env.cont[1:]),
        content_type=content_type,
        method="",
        request=list(inp.env.request),
    )
    return Request(nxt.topic, nxt.id.encode("utf-8", "surrogateescape"), value, env)


def hand_over(inp: Request, call: Request) -> Request:
    """The call a deployment makes as its answer to inp (a tail call),
    sent so that the callee's answer takes the way inp's would have: to
    inp's reply topic, under inp's id (the id of the call's last step
    where the call has a continuation of its own). inp has no
    continuation: where it has one, the call is awaited (its model,
    version and deadline are not the continuation's)."""
    if inp.env.cont:
        raise ValueError("a record with a continuation cannot hand its answer over")
    env = replace(call.env, reply_to=inp.env.reply_to, cont=list(call.env.cont))
    if env.cont:
        env.cont[-1] = Hop(env.cont[-1].topic, inp.env.id)
    else:
        env.id = inp.env.id
    return Request(call.topic, call.key, call.value, env)


def handle_call(parent: Envelope, call: Envelope) -> Envelope:
    """The envelope of a call made while serving parent: the call's own id,
    content type, model, version, method and continuation; the parent's trace
    context (traceparent and tracestate) and caller headers; the earlier
    deadline. The reply topic is set when the call is sent."""
    deadline = call.deadline_ns
    if deadline == 0 or (parent.deadline_ns and parent.deadline_ns < deadline):
        deadline = parent.deadline_ns
    return replace(
        call,
        reply_to="",
        deadline_ns=deadline,
        trace=parent.trace,
        trace_state=parent.trace_state,
        request=list(parent.request),
    )
