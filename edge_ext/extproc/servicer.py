"""The thin gRPC side: one ext_proc stream in, policy decisions out as ProcessingResponses; the
I/O a decision needs first is performed by the driver (edge_ext.driver)."""

from __future__ import annotations

import asyncio
import logging
import traceback
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc

from edge_ext.driver import Driver
from edge_ext.extproc.attributes import ATTRIBUTES, attempt_provider, route_metadata, upstream_of
from edge_ext.extproc.convert import extend_timeout, header_dict, to_response
from edge_ext.extproc.pb import ext_proc_pb2 as pb
from edge_ext.extproc.pb import service_pb2_grpc
from edge_ext.metrics import WorkerMetrics
from edge_ext.policy.attempt import AttemptState, AttemptStep
from edge_ext.policy.decisions import CONTINUE, Continue, Decision, Respond
from edge_ext.policy.engine import Step
from edge_ext.policy.state import ARRIVES_IN, StreamState
from edge_ext.telemetry import end_request_span, start_request_span

log = logging.getLogger("edge_ext.extproc")
_PHASES = frozenset({"request_headers", "request_body", "response_headers", "response_body"})
# A peer breaking the protocol is logged once per interval at most, with the count since.
_VIOLATION_LOG_EVERY_S = 60.0


def _status_of(headers: dict[str, str]) -> int:
    try:
        return int(headers.get(":status", "0"))
    except ValueError:
        return 0


def _code_details(request: pb.ProcessingRequest) -> str:
    """Envoy's %RESPONSE_CODE_DETAILS%: via_upstream for a provider's answer, else why Envoy answered."""
    attrs = request.attributes.get(ATTRIBUTES)
    if attrs is None or "response.code_details" not in attrs.fields:
        return "via_upstream"
    return attrs.fields["response.code_details"].string_value


class ExternalProcessor(service_pb2_grpc.ExternalProcessorServicer):
    def __init__(self, driver: Driver, metrics: WorkerMetrics, clock: Callable[[], float], tracer=None):
        self._tracer = tracer
        self._driver = driver
        self._policy = policy = driver.policy
        self._attempts = AttemptStep(policy.router, policy.grants)
        self._metrics = metrics
        self._clock = clock
        self._violations, self._violation_logged = 0, -_VIOLATION_LOG_EVERY_S

    async def Process(
        self, request_iterator: AsyncIterator[pb.ProcessingRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ProcessingResponse]:
        # The first message tells the two filters apart: only the failover cluster's filter
        # asks for the endpoint's metadata.
        requests = aiter(request_iterator)
        first = await anext(requests, None)
        if first is None:
            return
        provider = attempt_provider(first)
        if provider is not None:
            attempt = self._attempt(first, provider, requests, context)
            try:
                async for response in attempt:
                    yield response
            finally:
                # Run the inner stream's cleanup now, not whenever it is collected.
                await attempt.aclose()
            return
        # The common request is served by this generator itself: every async generator layer
        # costs each message a hop, and one left unfinished is closed later by a task of its own.
        policy, driver, metrics, clock = self._policy, self._driver, self._metrics, self._clock
        st = policy.new_stream()
        metrics.streams.inc()
        span = None
        request: pb.ProcessingRequest | None = first
        try:
            while request is not None:
                started = clock()
                phase = request.WhichOneof("request")
                if phase not in _PHASES:
                    if phase is None:
                        await self._violation(context, st, "empty")
                    # Trailers are never requested by our filter config; answer so Envoy is not stuck.
                    yield pb.ProcessingResponse(**{phase: pb.TrailersResponse()})
                    request = await anext(requests, None)
                    continue
                expected = ARRIVES_IN.get(phase)
                if expected is not None and st.phase not in expected:
                    await self._violation(context, st, phase)
                extended = False
                try:
                    decision = self._decide(st, phase, request, started)
                    if phase == "request_headers" and self._tracer is not None:
                        span = start_request_span(self._tracer, st.headers)
                    while not isinstance(decision, (Continue, Respond)):
                        # I/O the policy needs first.
                        if not extended and phase == "request_body":
                            if decision.extend_s:
                                # Envoy would fail the request at message_timeout while we wait.
                                yield extend_timeout(decision.extend_s)
                                extended = True
                            elif decision.slow_s:
                                performing = asyncio.ensure_future(driver.perform(st, decision))
                                try:
                                    late = clock() - started
                                    if not (await asyncio.wait((performing,), timeout=driver.soft_deadline_s - late))[0]:
                                        yield extend_timeout(decision.slow_s)
                                        extended = True
                                    decision = await performing
                                finally:
                                    performing.cancel()  # when the stream was cancelled meanwhile
                                continue
                        decision = await driver.perform(st, decision)
                    if extended:
                        started = clock()
                    if st.effects:  # most messages leave none
                        waits = driver.run_effects(st)
                        if waits:
                            await driver.answer_after(waits)
                except Exception as exc:  # noqa: BLE001 - the one place an unexpected error ends
                    decision = self._internal_error(st, phase, exc)
                response = to_response(phase, decision)
                metrics.observe_phase(phase, clock() - started)
                yield response
                if getattr(decision, "last", False):
                    # Sent: from here the request's outcome settles it. Ending the stream (gRPC
                    # OK) tells Envoy the processor wants no more of it: no response phase runs.
                    policy.handed_over(st)
                    break
                if isinstance(decision, Respond):  # answered here (an immediate response): nothing follows
                    break
                request = await anext(requests, None)
            if request is not None:
                # Left before Envoy's end of stream (the reply ends it): gRPC's request generator
                # is closed here. Left to the collector, asyncio would close it later through a
                # task of its own and a thread-safe wake-up of the loop, for every such request.
                aclose = getattr(requests, "aclose", None)
                if aclose is not None:
                    await aclose()
        finally:
            # Every stream ends here, answered, failed or cancelled by Envoy.
            driver.end(st)
            metrics.requests.child((st.outcome or "none", st.provider or "none")).inc()
            metrics.on_finish(st, clock())
            if span is not None:
                end_request_span(span, st)

    async def _violation(self, context: grpc.aio.ServicerContext, st: StreamState | None, message: str) -> None:
        """The peer sent ``message`` where the ext_proc protocol does not allow it (request headers
        twice, a body before the headers or after the answer, an empty message): the stream ends
        with FAILED_PRECONDITION, no reply body, and Envoy applies its own failure mode
        (``failure_mode_allow``, ``status_on_error``). Raises (grpc's abort)."""
        where = st.phase.value if st is not None else "attempt"
        if st is not None:
            st.outcome = "protocol_error"
        self._metrics.protocol_errors.labels(message=message).inc()
        self._violations += 1
        now = self._clock()
        if now - self._violation_logged >= _VIOLATION_LOG_EVERY_S:
            log.warning("ext_proc peer sent %s in phase %s, out of protocol order: stream ended with "
                        "FAILED_PRECONDITION (%d such streams since the last line)", message, where, self._violations)
            self._violations, self._violation_logged = 0, now
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"{message} not expected in phase {where}")

    async def _attempt(self, first: pb.ProcessingRequest, provider: str, rest: AsyncIterator[pb.ProcessingRequest],
                       context: grpc.aio.ServicerContext) -> AsyncIterator[pb.ProcessingResponse]:
        """One retry attempt of a failed-over request (edge_ext.policy.attempt)."""
        st, steps = AttemptState(), self._attempts
        decision = self._guarded("attempt_headers", lambda: steps.on_headers(
            st, header_dict(first.request_headers.headers), provider, route_metadata(first)))
        response = _attempt_reply(to_response("request_headers", decision))
        yield response
        if response.HasField("immediate_response"):
            return  # refused: nothing a peer sends after it is read
        async for request in rest:
            # The request body follows; the answer too when it is read for a refusal.
            phase = request.WhichOneof("request")
            if phase is None or phase == "request_headers":
                await self._violation(context, None, phase or "empty")
            if phase == "response_headers":
                headers = header_dict(request.response_headers.headers)
                yield to_response(phase, self._guarded("attempt_answer", lambda: steps.on_response_headers(
                    st, _status_of(headers), headers)))
                continue
            if phase == "response_body":
                yield to_response(phase, self._guarded("attempt_answer", lambda: steps.on_response_body(
                    st, request.response_body.body)))
                continue
            if phase != "request_body":
                yield to_response(phase, CONTINUE)
                continue
            response = _attempt_reply(to_response(phase, self._guarded("attempt_body", lambda: steps.on_body(
                st, request.request_body.body))))
            yield response
            if response.HasField("immediate_response"):
                return

    def _guarded(self, phase: str, decide: Callable[[], Decision]) -> Decision:
        """An attempt that fails unexpectedly is refused (fail closed), never sent on half-shaped."""
        try:
            return decide()
        except Exception as exc:  # noqa: BLE001 - the one place an unexpected attempt error ends
            return self._attempts.refuse(f"internal error {_log_internal(phase, '-', exc)}")

    def _decide(self, st: StreamState, phase: str, request: pb.ProcessingRequest, started: float) -> Step:
        policy = self._policy
        if phase == "request_headers":
            msg = request.request_headers
            return policy.on_request_headers(st, header_dict(msg.headers), msg.end_of_stream)
        if phase == "request_body":
            return policy.on_request_body(st, request.request_body.body)
        if phase == "response_headers":
            headers = header_dict(request.response_headers.headers)
            self._metrics.on_first_byte(st, started)
            served, attempts = upstream_of(request)
            return policy.on_response_headers(st, _status_of(headers), headers, _code_details(request), served, attempts)
        msg = request.response_body
        return policy.on_response_body(st, msg.body, msg.end_of_stream)

    def _internal_error(self, st: StreamState, phase: str, exc: Exception) -> Respond:
        """A bug, not a client fault: the client gets a 500 in its API's shape with an id."""
        return self._policy.internal_error(st, _log_internal(phase, st.request_id or "-", exc))


def _attempt_reply(response: pb.ProcessingResponse) -> pb.ProcessingResponse:
    """An attempt's refusal is rendered in the client's shape by local_reply_config: it must not
    carry the metadata marking a reply as already shaped (the attempt filter receives metadata,
    for refusal fallback, so it would reach the request)."""
    if response.HasField("immediate_response"):
        unmarked = pb.ProcessingResponse()
        unmarked.CopyFrom(response)  # a copy: converted replies are cached and shared
        unmarked.ClearField("dynamic_metadata")
        return unmarked
    return response


def _log_internal(phase: str, request_id: str, exc: Exception) -> str:
    """One log line with an id and where it happened; never the exception's text: it may quote
    the prompt or a key."""
    error_id = uuid.uuid4().hex[:16]
    where = " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}"
                        for f in reversed(traceback.extract_tb(exc.__traceback__)))
    log.error("internal error %s in %s of request %s: %s at %s", error_id, phase, request_id, type(exc).__name__, where)
    return error_id
