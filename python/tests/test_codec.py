"""Values as records carry them: what a deployment's argument decodes to."""

from __future__ import annotations

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
