"""Envoy's gRPC access log as the outcome channel of requests answered in 2 ext_proc messages.

Envoy streams the entries of the requests the processor marked (``edge_ext:outcome``) to the
workers' ext_proc servers, the same door as ext_proc itself (docs/security.md), many entries per
message, one stream per Envoy worker thread. Each entry becomes a plain ``Outcome`` for the
policy (edge_ext.policy.outcome), in the order Envoy sent them. The channel is lossy by design
(an entry on the wire when a worker dies is gone, and Envoy counts it as written): the policy's
due holds account for those.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import grpc

from edge_ext.extproc.convert import METADATA_NAMESPACE
from edge_ext.extproc.pb import accesslog_pb2 as pb
from edge_ext.extproc.pb import als_service_pb2_grpc
from edge_ext.envoy_config.outcomes import SERVED_TAG, USAGE_NAMESPACE
from edge_ext.metrics import WorkerMetrics
from edge_ext.policy.outcome import Outcome
from edge_ext.policy.state import StreamState

log = logging.getLogger("edge_ext.outcomes")

# ResponseFlags fields -> Envoy's short flags, as edge_ext.routing.failures reads them.
_FLAGS = (("upstream_connection_failure", "UF"), ("no_healthy_upstream", "UH"), ("upstream_request_timeout", "UT"),
          ("upstream_connection_termination", "UC"), ("upstream_remote_reset", "UR"), ("upstream_protocol_error", "UPE"),
          ("upstream_max_stream_duration_reached", "UMSDR"), ("upstream_overflow", "UO"), ("local_reset", "LR"),
          ("downstream_connection_termination", "DC"), ("no_route_found", "NR"), ("no_cluster_found", "NC"),
          ("upstream_retry_limit_exceeded", "URX"), ("overload_manager", "OM"))


def _seconds(common: pb.AccessLogCommon, name: str) -> float | None:
    return getattr(common, name).ToTimedelta().total_seconds() if common.HasField(name) else None


def _between(start: float | None, end: float | None) -> float | None:
    return end - start if start is not None and end is not None and end >= start else None


def outcome_of(entry: pb.HTTPAccessLogEntry) -> Outcome:
    common, response = entry.common_properties, entry.response
    flags = common.response_flags
    metadata = common.metadata.filter_metadata
    route = metadata[METADATA_NAMESPACE] if METADATA_NAMESPACE in metadata else None
    usage = metadata[USAGE_NAMESPACE] if USAGE_NAMESPACE in metadata else None
    sent = _seconds(common, "time_to_first_upstream_tx_byte")
    # From the request's last byte, where the response phases' clock starts too (the processor
    # routes it then): least-latency compares samples of both paths.
    received = _seconds(common, "time_to_last_rx_byte")
    return Outcome(
        request_id=entry.request.request_id,
        status=response.response_code.value if response.HasField("response_code") else 0,
        details=response.response_code_details,
        flags=",".join(short for name, short in _FLAGS if getattr(flags, name)),
        served=common.custom_tags.get(SERVED_TAG, ""),
        attempts=common.upstream_request_attempt_count,
        upstream_ttfb_s=_between(received if received is not None else sent, _seconds(common, "time_to_first_upstream_rx_byte")),
        duration_s=_between(sent, _seconds(common, "time_to_last_upstream_rx_byte")),
        response_bytes=response.response_body_bytes,
        retry_after=response.response_headers.get("retry-after"),
        limits={k: v for k, v in response.response_headers.items() if k != "retry-after"},
        usage={k: v.number_value for k, v in usage.fields.items() if v.WhichOneof("kind") == "number_value"} if usage else {},
        route={k: v.string_value for k, v in route.fields.items()} if route else {},
    )


class AccessLogService(als_service_pb2_grpc.AccessLogServiceServicer):
    def __init__(self, on_outcome: Callable[[Outcome], StreamState | None], metrics: WorkerMetrics):
        self._on_outcome, self._metrics = on_outcome, metrics
        self._draining = asyncio.Event()

    def drain(self) -> None:
        """Ends every stream at its next message boundary: Envoy sends its next batch to
        another worker instead of to one about to stop."""
        self._draining.set()

    async def StreamAccessLogs(self, request_iterator: AsyncIterator[pb.StreamAccessLogsMessage],
                               context: grpc.aio.ServicerContext) -> pb.StreamAccessLogsResponse:
        drained = asyncio.ensure_future(self._draining.wait())
        try:
            while not self._draining.is_set():
                read = asyncio.ensure_future(context.read())
                await asyncio.wait({read, drained}, return_when=asyncio.FIRST_COMPLETED)
                if not read.done():
                    read.cancel()
                    break
                message = read.result()
                if message is grpc.aio.EOF:
                    break
                for entry in message.http_logs.log_entry:
                    self._apply(entry)
        finally:
            drained.cancel()
        return pb.StreamAccessLogsResponse()

    def _apply(self, entry: pb.HTTPAccessLogEntry) -> None:
        try:
            outcome = outcome_of(entry)
            st = self._on_outcome(outcome)
        except Exception as exc:  # noqa: BLE001 - one bad entry must not drop the rest of the batch
            log.error("outcome of request %s not applied: %s", entry.request.request_id or "-", type(exc).__name__)
            return
        if st is None:
            return
        # The metrics the response phases would have recorded, on the outcome's own timings.
        st.routed_at = 1.0
        if outcome.upstream_ttfb_s is not None:
            self._metrics.on_first_byte(st, 1.0 + outcome.upstream_ttfb_s)
        self._metrics.on_finish(st, 1.0 + (outcome.duration_s or 0.0))

