"""The request a handler serves, as a context variable: visible to async
handlers and to synchronous ones in the thread pool alike."""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass, field

from sluice.protocol import Envelope


@dataclass(frozen=True)
class RequestContext:
    id: str  # the request id ("" offline without one)
    deadline_ns: int  # absolute, Unix nanoseconds; 0: none
    model: str = ""  # sl-model
    version: str = ""  # sl-version
    headers: dict[str, str] = field(default_factory=dict)  # the caller's x-* headers
    envelope: Envelope | None = None  # the whole envelope (handle calls take from it)

    def remaining_s(self) -> float | None:
        """Seconds until the deadline (negative once past); None: none."""
        if self.deadline_ns == 0:
            return None
        return (self.deadline_ns - time.time_ns()) / 1e9


_current: ContextVar[RequestContext | None] = ContextVar("sluice_request", default=None)


def current() -> RequestContext | None:
    """The request being served, or None outside a handler."""
    return _current.get()


def set_current(ctx: RequestContext) -> None:
    _current.set(ctx)
