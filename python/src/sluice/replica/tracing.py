"""Whether a replica process traces, and what the replica asks of its
tracer, without importing OpenTelemetry: tracing is an extra
(`sluice[otel]`), and with it off nothing of it is imported and each hook
costs one test of None.

The rule is the Go processes' (platform/cli/observe.go): on when
OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set
and neither OTEL_SDK_DISABLED=true nor OTEL_TRACES_EXPORTER=none; then
spans go out over OTLP/HTTP, sampled as OTEL_TRACES_SAMPLER and _ARG say
(sluice.replica.otel). A record's trace context is its traceparent
header (and tracestate, when it has one): each hop's span is the child of
the one that sent the record, and the records it sends carry its own."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from sluice.protocol import Envelope

if TYPE_CHECKING:
    from sluice.protocol import Request

SERVICE = "sluice-replica"
"""The service name when OTEL_SERVICE_NAME (or the resource's) sets none:
the Go `sluice replica` command's, whose process the Python one replaces."""


def enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the standard environment asks for traces."""
    endpoint = bool(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
    if not endpoint:
        return False
    if environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    return environ.get("OTEL_TRACES_EXPORTER", "") != "none"


def trace_id(traceparent: str) -> str:
    """The trace id of a W3C traceparent (version-traceid-spanid-flags),
    or "" when it names none."""
    if len(traceparent) < 55 or traceparent[2] != "-" or traceparent[35] != "-":
        return ""
    tid = traceparent[3:35]
    return "" if tid == "0" * 32 else tid


def unsampled(traceparent: str) -> bool:
    """Whether traceparent is well formed and its caller did not sample the
    trace: a hop then starts no span and passes it on as it came, which
    carries the decision to the next hop at no cost."""
    if not trace_id(traceparent) or len(traceparent) != 55 or traceparent[52] != "-":
        return False
    return traceparent[54] in "02468ace"


class Span(Protocol):
    """An OpenTelemetry span, as far as the replica holds one."""

    def end(self, end_time: int | None = None) -> None: ...


class Tracing(Protocol):
    """The replica's spans (sluice.replica.otel.Tracing): "process <d>"
    (consumer) per record, "handle <d>" (internal) around its handler,
    "call <topic>" (client) per handle call, named and attributed as the
    Go replica's (replicas/trace.go, streams/trace.go)."""

    def process(self, env: Envelope, app: str, deployment: str, topic: str, partition: int, offset: int,
                queue_wait_ms: float) -> Span | None:  # fmt: skip
        """Starts a record's process span, the child of its traceparent,
        and makes env carry the span's own. None when the record's trace
        is not sampled."""
        ...

    def handle(self, process: Span, deployment: str) -> tuple[Span, object]:
        """Starts the handle span inside process and makes it the current
        span of this context (a handler's own spans and calls hang under
        it); returns it and what handled() restores the context with."""
        ...

    def handled(self, span: Span, token: object, code: str, message: str) -> None:
        """Ends a handle span; code "" for success."""
        ...

    def failed(self, process: Span, code: str, message: str) -> None:
        """Marks a record's process span failed with code."""
        ...

    def call(self, req: Request) -> Span | None:
        """Starts a call span, the child of the current span or else of
        req's traceparent, and makes req carry the span's own. None when
        the trace is not sampled."""
        ...

    def called(self, span: Span, code: str, message: str) -> None:
        """Ends a call span; code "" for success."""
        ...

    def shutdown(self) -> None:
        """Exports what is left (bounded) and stops."""
        ...


def from_env(environ: Mapping[str, str] = os.environ, log: logging.Logger | None = None) -> Tracing | None:
    """The process's tracing when the environment asks for it (enabled),
    else None, without importing OpenTelemetry. Asked for without the
    extra installed, it logs why and the replica runs untraced: records
    pass their traceparent on unchanged, as they would through a replica
    of a platform that does not trace."""
    if not enabled(environ):
        return None
    try:
        from sluice.replica import otel
    except ImportError as exc:
        (log or logging.getLogger("sluice.replica")).warning(
            "tracing asked for (OTEL_EXPORTER_OTLP_ENDPOINT) but OpenTelemetry is not installed:"
            " list sluice[otel] in the project's requirements",
            extra={"err": str(exc)},
        )
        return None
    return otel.from_env()
