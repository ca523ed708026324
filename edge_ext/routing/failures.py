"""Which upstream outcomes count against a provider's circuit breaker.

Envoy reports why a stream ended in ``response.code_details``: ``via_upstream`` when the provider
itself answered, something else when Envoy wrote the reply (connect failure, reset, timeout, its
own overload protection, a missing route). Only the provider's own failures may open its
breaker: a 503 Envoy sends because *its* connection pool overflowed says nothing about the
provider, and a provider's 400 is the client's fault. ``response.flags`` (``UF``, ``UT``...) is
the fallback when the details are missing.
"""

from __future__ import annotations

import enum


class FailureKind(str, enum.Enum):
    STATUS_5XX = "status_5xx"
    STATUS_429 = "status_429"
    CONNECT_FAILURE = "connect_failure"
    RESET = "reset"
    TIMEOUT = "timeout"
    # An earlier attempt of a request Envoy then retried on the next provider: it retries only
    # on the failures above, but does not say which one it saw.
    RETRIED = "retried"


_K = FailureKind

# Reset reasons inside ``upstream_reset_{before,after}_response_started{<reason>[,<transport>]}``
# (Envoy's resetReasonToString with spaces as underscores; ``connection_failure`` is the
# pre-1.27 spelling). ``None``: Envoy reset the stream for its own reasons (the client went
# away, its pool overflowed, the overload manager shed load), which is not the provider's fault.
_RESET_REASONS: dict[str, FailureKind | None] = {
    "connection_failure": _K.CONNECT_FAILURE,
    "remote_connection_failure": _K.CONNECT_FAILURE,
    "local_connection_failure": _K.CONNECT_FAILURE,
    "connection_timeout": _K.CONNECT_FAILURE,
    "remote_error_with_connect_request": _K.CONNECT_FAILURE,
    "connection_termination": _K.RESET,
    "remote_reset": _K.RESET,
    "remote_refused_stream_reset": _K.RESET,
    "protocol_error": _K.RESET,
    "local_reset": None,
    "local_refused_stream_reset": None,
    "overflow": None,
    "overload_manager_reset": None,
}

# Whole details strings of Envoy's local replies that blame the provider.
_LOCAL_DETAILS: dict[str, FailureKind] = {
    "upstream_response_timeout": _K.TIMEOUT,
    # What Envoy 1.40 actually writes when the route (or x-envoy-upstream-rq-timeout-ms) expires.
    "response_timeout": _K.TIMEOUT,
    "upstream_per_try_timeout": _K.TIMEOUT,
    "upstream_per_try_idle_timeout": _K.TIMEOUT,
    "upstream_max_stream_duration_reached": _K.TIMEOUT,
    # Envoy's health checks or outlier detection have already given up on every host.
    "no_healthy_upstream": _K.CONNECT_FAILURE,
}

# Response flags, most specific first: a stream can carry several (``UF,URX``).
_FLAGS: tuple[tuple[str, FailureKind], ...] = (
    ("UF", _K.CONNECT_FAILURE),
    ("DF", _K.CONNECT_FAILURE),
    ("UH", _K.CONNECT_FAILURE),
    ("UT", _K.TIMEOUT),
    ("UMSDR", _K.TIMEOUT),
    ("UC", _K.RESET),
    ("UR", _K.RESET),
    ("UPE", _K.RESET),
)


def classify_status(status: int) -> FailureKind | None:
    """A status the provider itself sent."""
    if status == 429:
        return _K.STATUS_429
    # Envoy sends the buffered request in one go, so a provider's 408 means it was too slow to
    # read it, not that the client was.
    if status == 408:
        return _K.TIMEOUT
    # 501 is a deterministic "this endpoint/feature is not supported", not an outage.
    if 500 <= status <= 599 and status != 501:
        return _K.STATUS_5XX
    return None


def _reset_reason(details: str) -> FailureKind | None:
    inner = details.partition("{")[2].rstrip("}")
    reason = inner.split(",", 1)[0].strip()
    # An unknown reason from a newer Envoy is still the upstream stream dying under us.
    return _RESET_REASONS.get(reason, _K.RESET)


def classify(status: int, code_details: str, response_flags: str = "") -> FailureKind | None:
    """The failure a finished upstream exchange counts as, or None when it is no provider failure."""
    details = code_details.strip()
    if details == "via_upstream":
        return classify_status(status)
    if details.startswith(("upstream_reset_before_response_started", "upstream_reset_after_response_started")):
        return _reset_reason(details)
    if details in _LOCAL_DETAILS:
        return _LOCAL_DETAILS[details]
    if details:
        # Any other detail is a local reply (no route, ext_proc error, payload too large,
        # client disconnect): the provider never saw the request.
        return None
    # "-" is how Envoy writes "no flags".
    flags = {flag.strip() for flag in response_flags.split(",")} - {"", "-"}
    for flag, kind in _FLAGS:
        if flag in flags:
            return kind
    if flags:
        return None
    # No details and no flags: an Envoy too old to say, so trust the status.
    return classify_status(status)
