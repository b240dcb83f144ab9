"""Python values as record values: bytes as they are, str as UTF-8 text,
anything else as JSON."""

from __future__ import annotations

import json
from typing import Any

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
BYTES = "application/octet-stream"
FORM = "application/x-www-form-urlencoded"
"""What `curl -d` sends by default: read as JSON when it is JSON text."""


def encode(value: Any) -> tuple[bytes, str]:
    """The value and content type a Python value travels as."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value), BYTES
    if isinstance(value, str):
        return value.encode(), TEXT
    return json.dumps(value, separators=(",", ":")).encode(), JSON


def decode(value: bytes, content_type: str) -> Any:
    """The Python value of a record value: JSON (or JSON text without a
    content type or as a form body) decoded, text as str, anything else
    as bytes."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == JSON or media.endswith("+json"):
        return json.loads(value) if value else None
    if media.startswith("text/"):
        return value.decode("utf-8", "replace")
    if not media or media == FORM:
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
