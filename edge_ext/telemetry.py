"""OpenTelemetry: a span per HTTP request, parented to the trace context the client sent.

Off by default (no exporter, no instrumentation, no per-request cost). With
``telemetry.otlp_endpoint`` set, spans go to an OTLP/gRPC collector and the processor's gRPC
server is instrumented too. Span attributes follow the GenAI semantic conventions.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from edge_ext.config.models import Telemetry

_PROPAGATOR = TraceContextTextMapPropagator()


def build_tracer(config: Telemetry, exporter: Any = None) -> trace.Tracer | None:
    """A tracer, or None when tracing is off. ``exporter`` replaces OTLP (tests)."""
    if exporter is None and not config.otlp_endpoint:
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio

    provider = TracerProvider(resource=Resource.create({"service.name": config.service_name}),
                              sampler=ParentBasedTraceIdRatio(config.sample_ratio))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorServer

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=config.otlp_endpoint, insecure=config.plaintext)))
        GrpcAioInstrumentorServer().instrument(tracer_provider=provider)
    return provider.get_tracer("edge_ext")


def start_request_span(tracer: trace.Tracer, headers: dict[str, str]):
    context = _PROPAGATOR.extract({k: v for k, v in headers.items() if k in ("traceparent", "tracestate")})
    return tracer.start_span("edge-ext request", context=context, kind=trace.SpanKind.SERVER,
                             attributes={"http.request.method": headers.get(":method", ""),
                                         "url.path": headers.get(":path", "").split("?", 1)[0]})


def end_request_span(span, st) -> None:
    attributes = {
        "gen_ai.request.model": st.model,
        "gen_ai.provider.name": st.provider,
        "edge_ext.outcome": st.outcome,
        "edge_ext.cache": st.cache_status,
        "edge_ext.tenant": getattr(st.caller, "tenant", ""),
        "http.response.status_code": st.response_status,
    }
    if st.charge is not None:
        u = st.charge.usage
        attributes.update({"gen_ai.usage.input_tokens": u.prompt_tokens, "gen_ai.usage.output_tokens": u.output_tokens,
                           "edge_ext.cost_usd": st.charge.usd_text()})
    span.set_attributes({k: v for k, v in attributes.items() if v not in ("", None)})
    span.end()
