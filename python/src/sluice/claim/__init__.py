"""Claim checks (docs/PROTOCOL.md, "Claim checks"): a record value over
the claim threshold travels through the blob store, and its record
carries `sl-claim: <size> <sha256> <key>` instead. Readers fetch the
object and check its size and SHA-256 before a handler or a caller sees
the value. The Go side is streams/claim."""

from sluice.claim.claims import (
    DEFAULT_LIMIT,
    DEFAULT_PREFIX,
    DEFAULT_THRESHOLD,
    DELETE_TIMEOUT_S,
    ClaimError,
    Claims,
    StoreDown,
    TooLarge,
    find,
    read_ref,
)
from sluice.claim.env import open_claims, store_from_env
from sluice.claim.ref import KIND_RECORD, KIND_REPLY, KIND_REQUEST, MalformedRef, Ref, parse
from sluice.claim.store import DirStore, NotFoundError, Store, StoreError, UnreachableError

__all__ = [
    "DEFAULT_LIMIT",
    "DEFAULT_PREFIX",
    "DEFAULT_THRESHOLD",
    "DELETE_TIMEOUT_S",
    "KIND_RECORD",
    "KIND_REPLY",
    "KIND_REQUEST",
    "ClaimError",
    "Claims",
    "DirStore",
    "MalformedRef",
    "NotFoundError",
    "Ref",
    "Store",
    "StoreDown",
    "StoreError",
    "TooLarge",
    "UnreachableError",
    "find",
    "open_claims",
    "parse",
    "read_ref",
    "store_from_env",
]
