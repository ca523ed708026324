"""Envoy's gRPC access log as the outcome channel of requests answered in 2 ext_proc messages.

Envoy streams the entries of the requests the processor marked (``edge_ext:outcome``) to the
workers' ext_proc servers, the same door as ext_proc itself (docs/security.md), many entries per
message, one stream per Envoy worker thread. Each entry becomes a plain ``Outcome`` for the
policy (edge_ext.policy.outcome), in the order Envoy sent them; the entries of one message are
one batch (``OutcomeStep.apply_all``), and their metrics are recorded together. Only what the
policy reads is converted: the metadata keys it knows, the four timings, the flags at all only
when one is set. The channel is lossy by design
(an entry on the wire when a worker dies is gone, and Envoy counts it as written): the policy's
due holds account for those.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from types import MappingProxyType

import grpc

from edge_ext.extproc.convert import METADATA_NAMESPACE
from edge_ext.extproc.pb import accesslog_pb2 as pb
from edge_ext.extproc.pb import als_service_pb2_grpc
from edge_ext.envoy_config.outcomes import SERVED_TAG, USAGE_NAMESPACE
from edge_ext.usage import READERS
from edge_ext.metrics import WorkerMetrics
from edge_ext.policy.outcome import ROUTE_FIRST, ROUTE_WITH, Outcome, Settled

log = logging.getLogger("edge_ext.outcomes")
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})
# Every number Envoy's json_to_metadata may have extracted (edge_ext.envoy_config.outcomes).
USAGE_KEYS = tuple(dict.fromkeys(key for reader in READERS.values() for key in reader.paths))
_USAGE_KEYS = frozenset(USAGE_KEYS)
_new = tuple.__new__

# ResponseFlags fields -> Envoy's short flags, as edge_ext.routing.failures reads them.
_FLAGS = (("upstream_connection_failure", "UF"), ("no_healthy_upstream", "UH"), ("upstream_request_timeout", "UT"),
          ("upstream_connection_termination", "UC"), ("upstream_remote_reset", "UR"), ("upstream_protocol_error", "UPE"),
          ("upstream_max_stream_duration_reached", "UMSDR"), ("upstream_overflow", "UO"), ("local_reset", "LR"),
          ("downstream_connection_termination", "DC"), ("no_route_found", "NR"), ("no_cluster_found", "NC"),
          ("upstream_retry_limit_exceeded", "URX"), ("overload_manager", "OM"))


def _flags(raised) -> str:
    names = {descriptor.name for descriptor, value in raised if value}
    return ",".join(short for name, short in _FLAGS if name in names)


def _route(struct) -> dict[str, str]:
    # Looked up one by one: iterating a protobuf map builds a Python object per entry, and the
    # metadata holds more (cache status, grants) than the outcome reads. (``in`` then ``[]``:
    # the map's ``get`` raises and catches KeyError for every key that is absent.) Keys written
    # together are looked up only when the first of them is there.
    fields = struct.fields
    route = {key: fields[key].string_value for key in ROUTE_FIRST if key in fields}
    for first, rest in ROUTE_WITH:
        if first in route:
            route.update((key, fields[key].string_value) for key in rest if key in fields)
    return route


def _numbers(struct) -> dict[str, float]:
    # The keys Envoy extracted, each one of USAGE_KEYS. A Value of another kind reads as 0.0:
    # only a zero needs its kind checked.
    fields = struct.fields
    return {key: number for key in fields
            if key in _USAGE_KEYS and ((number := (value := fields[key]).number_value)
                                       or value.WhichOneof("kind") == "number_value")}


def outcome_of(entry: pb.HTTPAccessLogEntry) -> Outcome:
    common, response = entry.common_properties, entry.response
    metadata = common.metadata.filter_metadata
    # Envoy's marks, in seconds from the request's start; None where it has none. One body, no
    # helper calls: this runs once per entry. An unset mark reads as zero: only a zero needs
    # asking whether it was set.
    has = common.HasField
    d = common.time_to_first_upstream_tx_byte
    sent = d.seconds + d.nanos * 1e-9
    if not sent and not has("time_to_first_upstream_tx_byte"):
        sent = None
    # From the request's last byte, where the response phases' clock starts too (the processor
    # routes it then): least-latency compares samples of both paths.
    d = common.time_to_last_rx_byte
    start = d.seconds + d.nanos * 1e-9
    if not start and not has("time_to_last_rx_byte"):
        start = sent
    ttfb = duration = None
    if start is not None:
        d = common.time_to_first_upstream_rx_byte
        end = d.seconds + d.nanos * 1e-9
        if end >= start and (end or has("time_to_first_upstream_rx_byte")):
            ttfb = end - start
    if sent is not None:
        d = common.time_to_last_upstream_rx_byte
        end = d.seconds + d.nanos * 1e-9
        if end >= sent and (end or has("time_to_last_upstream_rx_byte")):
            duration = end - sent
    headers = response.response_headers
    # Most entries have no flag set: one call lists the flags set (none), instead of reading all 14.
    raised = common.response_flags.ListFields()
    # In Outcome's field order, through tuple's own constructor: the NamedTuple's ``__new__`` is
    # one more Python call per entry, and keywords would go through a dict.
    return _new(Outcome, (
        entry.request.request_id,
        response.response_code.value,  # 0 when unset: no response was sent
        response.response_code_details,
        _flags(raised) if raised else "",
        common.custom_tags.get(SERVED_TAG, ""),
        common.upstream_request_attempt_count,
        ttfb,
        duration,
        response.response_body_bytes,
        headers.get("retry-after") if headers else None,
        # The rate-limit headers, the only others logged (edge_ext.envoy_config.outcomes).
        {k: v for k, v in headers.items() if k != "retry-after"} if headers else _NO_HEADERS,
        _numbers(metadata[USAGE_NAMESPACE]) if USAGE_NAMESPACE in metadata else {},
        _route(metadata[METADATA_NAMESPACE]) if METADATA_NAMESPACE in metadata else {},
    ))


class AccessLogService(als_service_pb2_grpc.AccessLogServiceServicer):
    def __init__(self, on_outcomes: Callable[[Sequence[Outcome]], list[Settled | None]], metrics: WorkerMetrics):
        self._on_outcomes, self._metrics = on_outcomes, metrics
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
                self._apply(message.http_logs.log_entry)
        finally:
            drained.cancel()
        return pb.StreamAccessLogsResponse()

    def _apply(self, entries) -> None:
        """One message's entries, as one batch: converted, applied in order, then their metrics."""
        outcomes = []
        for entry in entries:
            try:
                outcomes.append(outcome_of(entry))
            except Exception as exc:  # noqa: BLE001 - one bad entry must not drop the rest of the batch
                log.error("outcome of request %s not applied: %s", entry.request.request_id or "-", type(exc).__name__)
        if not outcomes:
            return
        finished = []
        for outcome, st in zip(outcomes, self._on_outcomes(outcomes)):
            if st is not None:
                # The metrics the response phases would have recorded, on the outcome's own timings.
                st.routed_at = 1.0
                ttfb = outcome.upstream_ttfb_s
                finished.append((st, None if ttfb is None else 1.0 + ttfb, 1.0 + (outcome.duration_s or 0.0)))
        if finished:
            self._metrics.on_outcomes(finished)
