"""The replica's spans on OpenTelemetry (the `sluice[otel]` extra);
imported only when tracing is on (sluice.replica.tracing.from_env)."""

from __future__ import annotations

import os
from typing import cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from sluice.protocol import Envelope, Request
from sluice.replica import tracing

SCOPE = "github.com/sluice-serve/sluice/python"
"""The instrumentation scope of the replica's spans."""

_W3C = TraceContextTextMapPropagator()


def _carrier(env: Envelope) -> dict[str, str]:
    c = {"traceparent": env.trace}
    if env.trace_state:
        c["tracestate"] = env.trace_state
    return c


def _inject(span: Span, env: Envelope) -> None:
    """Makes env carry span's context (traceparent, and tracestate when
    the trace has one)."""
    c: dict[str, str] = {}
    _W3C.inject(c, context=trace.set_span_in_context(span))
    if "traceparent" in c:
        env.trace = c["traceparent"]
        env.trace_state = c.get("tracestate", "")


def _fail(span: Span, code: str, message: str) -> None:
    span.set_status(Status(StatusCode.ERROR, message))
    span.set_attribute("sluice.code", code)


class Tracing:
    """sluice.replica.tracing.Tracing on an OpenTelemetry tracer."""

    def __init__(self, tracer: Tracer, shutdown: object = None) -> None:
        self._t = tracer
        self._shutdown = shutdown

    def process(self, env: Envelope, app: str, deployment: str, topic: str, partition: int, offset: int,
                queue_wait_ms: float) -> tracing.Span | None:  # fmt: skip
        if tracing.unsampled(env.trace):
            return None
        parent = _W3C.extract(_carrier(env)) if env.trace else None
        span = self._t.start_span(
            "process " + deployment,
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "sluice.app": app,
                "sluice.deployment": deployment,
                "sluice.request_id": env.id,
                "messaging.destination.name": topic,
                "messaging.destination.partition.id": partition,
                "messaging.kafka.offset": offset,
                "sluice.queue_wait_ms": queue_wait_ms,
            },
        )
        _inject(span, env)
        return span

    def handle(self, process: tracing.Span, deployment: str) -> tuple[tracing.Span, object]:
        ctx = trace.set_span_in_context(cast(Span, process))
        span = self._t.start_span("handle " + deployment, context=ctx, kind=SpanKind.INTERNAL)
        return span, otel_context.attach(trace.set_span_in_context(span))

    def handled(self, span: tracing.Span, token: object, code: str, message: str) -> None:
        otel_context.detach(token)  # type: ignore[arg-type]
        s = cast(Span, span)
        if code:
            _fail(s, code, message)
        s.end()

    def failed(self, process: tracing.Span, code: str, message: str) -> None:
        _fail(cast(Span, process), code, message)

    def call(self, req: Request) -> tracing.Span | None:
        sc = trace.get_current_span().get_span_context()
        parent = None
        if sc.is_valid:
            if not sc.trace_flags.sampled:
                return None  # the request carries the unsampled parent already
        elif tracing.unsampled(req.env.trace):
            return None
        elif req.env.trace:
            parent = _W3C.extract(_carrier(req.env))
        span = self._t.start_span(
            "call " + req.topic,
            context=parent,
            kind=SpanKind.CLIENT,
            attributes={"sluice.request_id": req.env.id, "messaging.destination.name": req.topic},
        )
        _inject(span, req.env)
        return span

    def called(self, span: tracing.Span, code: str, message: str) -> None:
        s = cast(Span, span)
        if code:
            _fail(s, code, message)
        s.end()

    def shutdown(self) -> None:
        if callable(self._shutdown):
            self._shutdown()


def from_env() -> Tracing:
    """A tracer provider exporting OTLP over HTTP (the exporter reads
    OTEL_EXPORTER_OTLP_*), sampled as OTEL_TRACES_SAMPLER and _ARG say,
    its resource from OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES with
    the process id (replicas of one deployment apart), the service
    sluice-replica when they name none. It becomes the global provider, so
    a handler's own spans (trace.get_tracer) nest under its handle span
    and go out with the replica's."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    res = Resource.create({"process.pid": os.getpid()})
    if str(res.attributes.get("service.name", "")).startswith("unknown_service"):
        res = res.merge(Resource({"service.name": tracing.SERVICE}))
    tp = TracerProvider(resource=res)
    tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(tp)
    return Tracing(tp.get_tracer(SCOPE), tp.shutdown)
