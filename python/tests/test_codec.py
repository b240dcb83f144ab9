"""Values as records carry them: what a deployment's argument decodes to."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sluice.serve.codec import decode, encode


@pytest.mark.parametrize(
    ("value", "content_type", "want"),
    [
        (b"5", "application/json", 5),
        (b'{"a":1}', "application/vnd.x+json", {"a": 1}),
        (b"5", "", 5),
        (b"not json", "", b"not json"),
        # curl -d's default: JSON text is read as JSON, anything else stays bytes.
        (b"5", "application/x-www-form-urlencoded", 5),
        (b"a=1&b=2", "application/x-www-form-urlencoded", b"a=1&b=2"),
        (b"Dora", "text/plain; charset=utf-8", "Dora"),
        (b"\x00\x01", "application/octet-stream", b"\x00\x01"),
    ],
)
def test_decode(value: bytes, content_type: str, want: Any) -> None:
    assert decode(value, content_type) == want


def test_round_trip() -> None:
    for v in (12, "Hola Dora", {"x": [1, 2]}, b"\xff", None):
        assert decode(*encode(v)) == v


def test_several_arguments_travel_as_args() -> None:
    from sluice.serve.codec import ARGS, Args, apply, call_value

    assert call_value((), {}) is None and call_value((5,), {}) == 5
    a = call_value((1, "x"), {"k": [2]})
    assert a == Args((1, "x"), {"k": [2]})
    body, ct = encode(a)
    assert ct == ARGS and json.loads(body) == {"args": [1, "x"], "kwargs": {"k": [2]}}
    back = decode(body, ct)
    assert back == a and apply(lambda p, q, k: (p, q, k), back) == (1, "x", [2])
    assert apply(lambda v: v * 2, decode(*encode(21))) == 42
    # A call with no argument: none given to a function that needs none.
    assert apply(lambda: "none", None) == "none" and apply(lambda v: v, None) is None
    assert apply(lambda v=5: v, None) == 5
    for bad in (b"[1]", b'{"args": 1}', b'{"kwargs": []}'):
        with pytest.raises(ValueError, match="args"):
            decode(bad, ARGS)
