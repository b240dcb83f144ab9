"""Claims: putting values over the threshold in the store and fetching
claimed values back, checked against their reference (streams/claim's
Claims). Every failure is a SluiceError with the code docs/PROTOCOL.md
gives it, its message naming the key and the cause."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from sluice.claim.ref import MalformedRef, Ref, check_key, new_key, parse
from sluice.claim.store import NotFoundError, Store, StoreError, UnreachableError
from sluice.protocol import FailedPrecondition, InvalidArgument, SluiceError, Unavailable, headers

DEFAULT_THRESHOLD = 512 << 10
"""The largest value a record carries itself (streams/claim.DefaultThreshold)."""
DEFAULT_LIMIT = 64 << 20
"""The largest value a claim carries (the gateway's default MaxBody)."""
DEFAULT_PREFIX = "claims/"
"""Where claims live in the store."""
DELETE_TIMEOUT_S = 10.0
"""Bound on one delete of a claim that was answered."""


class ClaimError(SluiceError):
    """A claim that could not be stored or fetched: `claim <key>: <op>:
    <cause>`. not_found: the object is gone (answered and deleted, or
    expired)."""

    def __init__(self, op: str, key: str, cause: str, code: str, not_found: bool = False) -> None:
        super().__init__(f"claim {key}: {op}: {cause}", code)
        self.key = key
        self.cause = cause
        self.not_found = not_found


class StoreDown(ClaimError):
    """The store could not be reached: a reader fetches again (unavailable)."""

    def __init__(self, op: str, key: str, cause: str) -> None:
        super().__init__(op, key, cause, Unavailable.code)


class TooLarge(ClaimError):
    """A value over the payload limit."""

    def __init__(self, op: str, key: str, size: int, limit: int, code: str) -> None:
        super().__init__(op, key, f"payload of {size} bytes is over the {limit}-byte limit", code)
        self.size, self.limit = size, limit


def find(hs: Iterable[tuple[str, bytes]]) -> bytes | None:
    """The sl-claim value among a record's headers (the last), if any."""
    v: bytes | None = None
    for k, val in hs:
        if k == headers.CLAIM:
            v = val
    return v


class Claims:
    """Claim checks kept in store: values over threshold bytes go there,
    up to limit bytes. Thread-safe as its store is."""

    def __init__(self, store: Store, threshold: int = DEFAULT_THRESHOLD, limit: int = DEFAULT_LIMIT,
                 prefix: str = DEFAULT_PREFIX) -> None:  # fmt: skip
        if threshold <= 0 or limit <= 0:
            raise ValueError(f"claims: threshold {threshold} and limit {limit} must be positive")
        if threshold > limit:
            raise ValueError(f"claims: threshold {threshold} is over the limit {limit}")
        if not prefix.endswith("/") or check_key(prefix[:-1]):
            raise ValueError(f"claims: prefix {prefix!r} is not a key prefix ending with '/'")
        self.store = store
        self.threshold = threshold
        self.limit = limit
        self.prefix = prefix

    def put(self, value: bytes, kind: str, timeout_s: float | None = None) -> Ref | None:
        """Stores value under a new key of kind when it is over the
        threshold and returns its reference (None: it stays in its
        record). Over the limit: TooLarge (internal: the same value fails
        again); a store failure: ClaimError."""
        if len(value) <= self.threshold:
            return None
        key = new_key(self.prefix, kind)
        if len(value) > self.limit:
            raise TooLarge("store", key, len(value), self.limit, "internal")
        sha = hashlib.sha256(value)
        try:
            self.store.put(key, value, sha.hexdigest(), timeout_s)
        except UnreachableError as exc:
            raise StoreDown("store", key, str(exc)) from exc
        except StoreError as exc:
            raise ClaimError("store", key, str(exc), Unavailable.code) from exc
        return Ref(key, len(value), sha.digest())

    def fetch(self, ref: Ref, timeout_s: float | None = None) -> bytes:
        """The claimed bytes, checked against ref's size and SHA-256."""
        if not ref.key.startswith(self.prefix):
            raise ClaimError("fetch", ref.key, f"malformed claim reference: the key is outside the claims prefix "
                             f"{self.prefix}", InvalidArgument.code)  # fmt: skip
        if ref.size > self.limit:
            raise TooLarge("fetch", ref.key, ref.size, self.limit, InvalidArgument.code)
        try:
            b = self.store.get(ref.key, timeout_s)
        except NotFoundError as exc:
            raise ClaimError("fetch", ref.key, f"claimed value not found: {exc}", InvalidArgument.code,
                             not_found=True) from exc  # fmt: skip
        except UnreachableError as exc:
            raise StoreDown("fetch", ref.key, f"claim store unavailable: {exc}") from exc
        except StoreError as exc:
            raise ClaimError("fetch", ref.key, str(exc), Unavailable.code) from exc
        if len(b) != ref.size:
            raise ClaimError("fetch", ref.key, f"claimed value does not match its reference: {len(b)} bytes, "
                             f"the reference says {ref.size}", InvalidArgument.code)  # fmt: skip
        if hashlib.sha256(b).digest() != ref.sha256:
            raise ClaimError("fetch", ref.key, "claimed value does not match its reference: SHA-256 differs",
                             InvalidArgument.code)  # fmt: skip
        return b

    def delete(self, ref: Ref, timeout_s: float = DELETE_TIMEOUT_S) -> None:
        """Removes a claimed value; one outside the prefix, or gone, is no
        error."""
        if not ref.key.startswith(self.prefix):
            return
        try:
            self.store.delete(ref.key, timeout_s)
        except NotFoundError:
            pass
        except StoreError as exc:
            raise ClaimError("delete", ref.key, str(exc), Unavailable.code) from exc


def read_ref(v: bytes, claims: Claims | None) -> Ref:
    """Parses an sl-claim value for a reader: invalid_argument when it is
    unreadable, failed_precondition for a reader with no store."""
    try:
        ref = parse(v)
    except MalformedRef as exc:
        raise ClaimError("fetch", "(unreadable)", str(exc), InvalidArgument.code) from exc
    if claims is None:
        raise ClaimError("fetch", ref.key, "no claim store configured: give this process a blob store "
                         "(SLUICE_S3_ENDPOINT, or SLUICE_BLOB_DIR)", FailedPrecondition.code)  # fmt: skip
    return ref
