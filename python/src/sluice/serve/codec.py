"""Python values as record values: bytes as they are, str as UTF-8 text,
anything else as JSON."""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field
from typing import Any

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
BYTES = "application/octet-stream"
FORM = "application/x-www-form-urlencoded"
"""What `curl -d` sends by default: read as JSON when it is JSON text."""


ARGS = "application/vnd.sluice.args+json"
"""A call of several arguments (positional, keyword), as a JSON object
{"args": [...], "kwargs": {...}}: what handle.remote(a, b, k=c) sends.
A single positional argument travels as itself."""


@dataclass(frozen=True)
class Args:
    """The arguments of a call that has more than one, or keyword ones."""

    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


def call_value(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """What a call with args and kwargs sends: nothing (None), its one
    positional argument, or Args."""
    if not kwargs and len(args) <= 1:
        return args[0] if args else None
    return Args(tuple(args), dict(kwargs))


def apply(fn: Any, value: Any) -> Any:
    """Calls fn with a decoded call value: Args spread, None (a call with
    no argument) as no argument when fn needs none, anything else as the
    one argument."""
    if isinstance(value, Args):
        return fn(*value.args, **value.kwargs)
    if value is None and _needs_nothing(fn):
        return fn()
    return fn(value)


_nothing: dict[Any, bool] = {}


def _needs_nothing(fn: Any) -> bool:
    """Whether fn can be called with no argument, and takes no positional
    one a caller would fill (a method of no parameter, or of defaults
    only). Cached by the function under a bound method."""
    key = getattr(fn, "__func__", fn)
    got = _nothing.get(key)
    if got is None:
        try:
            params = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):
            params = None
        got = params is not None and all(
            p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params
        )
        _nothing[key] = got
    return got


def encode(value: Any) -> tuple[bytes, str]:
    """The value and content type a Python value travels as."""
    if isinstance(value, Args):
        return json.dumps({"args": list(value.args), "kwargs": value.kwargs}, separators=(",", ":")).encode(), ARGS
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
    if media == ARGS:
        call = json.loads(value) if value else {}
        if (
            not isinstance(call, dict)
            or not isinstance(call.get("args", []), list)
            or not isinstance(call.get("kwargs", {}), dict)
        ):
            raise ValueError(f"a {ARGS} value is an object with a list args and an object kwargs")
        return Args(tuple(call.get("args", [])), dict(call.get("kwargs", {})))
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
