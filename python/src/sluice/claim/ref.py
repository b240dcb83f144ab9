"""The sl-claim reference: `<size> <sha256> <key>`, and claim keys
`claims/<UTC hour>/<kind>/<32 hex>` (streams/claim's Ref, Parse)."""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass

KIND_REQUEST = "q"
"""A request a caller started: that caller deletes it once a reply came."""
KIND_REPLY = "r"
"""A reply or stream item: the caller that reads it deletes it."""
KIND_RECORD = "e"
"""An edge record, continuation or output: the replica that answered it
to a waiting caller deletes it; otherwise it expires."""

_SIZE = re.compile(r"0|[1-9][0-9]*")
_SHA = re.compile(r"[0-9a-f]{64}")
_BUCKET = re.compile(r"[0-9]{10}")
_INT64_MAX = (1 << 63) - 1


class MalformedRef(ValueError):
    """An sl-claim value that cannot be read."""


@dataclass(frozen=True)
class Ref:
    """A claimed value: its key, size and SHA-256 (32 bytes)."""

    key: str
    size: int
    sha256: bytes

    def __str__(self) -> str:
        return f"{self.size} {self.sha256.hex()} {self.key}"

    @property
    def kind(self) -> str:
        """The kind in the key (q, r, e), "" when the key has none."""
        parts = self.key.split("/")
        if len(parts) < 3 or not _BUCKET.fullmatch(parts[-3]) or len(parts[-2]) != 1:
            return ""
        return parts[-2]


def check_key(key: str) -> str:
    """Why key is no claim key ("" when it is one): a relative
    slash-separated path without empty, "." or ".." segments, spaces or
    control characters."""
    if not key:
        return "is empty"
    if any(c <= " " or c == "\x7f" for c in key):
        return "has a space or control character"
    if any(seg in ("", ".", "..") for seg in key.split("/")):
        return 'has an empty, "." or ".." segment'
    return ""


def parse(v: bytes | str) -> Ref:
    """Reads an sl-claim header value; MalformedRef names what is wrong."""
    s = v.decode("utf-8", "replace") if isinstance(v, bytes) else v

    def bad(why: str) -> MalformedRef:
        return MalformedRef(f"malformed claim reference: {s!r}: {why}")

    parts = s.split(" ", 2)
    if len(parts) != 3:
        raise bad('want "<size> <sha256> <key>"')
    size, sha, key = parts
    if not _SIZE.fullmatch(size) or int(size) > _INT64_MAX:
        raise bad("size is not a count")
    if not _SHA.fullmatch(sha):
        raise bad("sha256 is not 64 lower-case hex digits")
    if why := check_key(key):
        raise bad("key " + why)
    return Ref(key, int(size), bytes.fromhex(sha))


def new_key(prefix: str, kind: str, now_s: float | None = None) -> str:
    """A new key of kind under prefix, in the bucket of the UTC hour now."""
    bucket = time.strftime("%Y%m%d%H", time.gmtime(time.time() if now_s is None else now_s))
    return f"{prefix}{bucket}/{kind}/{os.urandom(16).hex()}"
