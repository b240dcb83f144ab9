"""The handle caller's bookkeeping: a call whose answer never comes is
failed a moment past its deadline and forgotten, not kept for ever."""

from __future__ import annotations

import time

import pytest

from broker import create_topics
from conftest import Uniq
from sluice.protocol import DeadlineExceeded, Envelope, new_request
from sluice.protocol.names import Namer
from sluice.serve import caller as caller_mod
from sluice.serve.caller import Caller


def test_a_call_nobody_answers_fails_past_its_deadline_and_is_forgotten(
    brokers: list[str], uniq: Uniq, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(caller_mod, "EXPIRY_GRACE_S", 0.2)
    topic = uniq("nobody")  # no replica reads it
    create_topics(brokers, [topic])
    c = Caller(brokers, Namer(uniq("p")))
    try:
        soon = Envelope(id=c.new_id(), deadline_ns=time.time_ns() + 300_000_000)
        never = Envelope(id=c.new_id())  # no deadline: it waits as long as its caller does
        fut = c.call(new_request(topic, None, soon, b"1"))
        other = c.call(new_request(topic, None, never, b"2"))
        with pytest.raises(DeadlineExceeded, match="no answer came by the call's deadline"):
            fut.result(timeout=10)
        assert not other.done()
        assert soon.final_id() not in c._waiting and soon.final_id() not in c._deadlines
        assert never.final_id() in c._waiting
        stream = c.call_stream(new_request(topic, None, Envelope(id=c.new_id(), deadline_ns=time.time_ns()), b"3"))
        deadline = time.monotonic() + 10
        while c._streams and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not c._streams, "an expired stream call was kept"
        assert stream is not None
    finally:
        c.close()
