import math
from dataclasses import replace

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from edge_ext.clock import FakeClock
from edge_ext.routing.breaker import (
    ALLOW, QUIET, RELEASE, SUCCESS, TRANSITIONS, Breaker, BreakerEvent, BreakerRecord, BreakerSettings, BreakerState,
    EventKind, step,
)
from edge_ext.routing.failures import FailureKind, classify

C, O, H = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN
K = FailureKind
S = BreakerSettings()  # threshold 5, open 30 s, 2 successes, 1 probe, retry-after cap 300 s, probe timeout 30 s
NOW = 1000.0


def fail(kind=K.STATUS_5XX, retry_after=None):
    return BreakerEvent.failed(kind, retry_after)


def rec(state=C, **fields):
    return BreakerRecord(state, **fields)


# (start record, event, expected record ignoring updated_at, allowed)
TRANSITION_CASES = [
    # closed
    pytest.param(rec(), ALLOW, rec(), True, id="closed+allow: admitted, nothing changes"),
    pytest.param(rec(failures=3), SUCCESS, rec(), False, id="closed+success: consecutive failures reset"),
    pytest.param(rec(), fail(), rec(failures=1), False, id="closed+failure: counted"),
    pytest.param(rec(failures=3), fail(K.TIMEOUT), rec(failures=4), False, id="closed+4th-failure: still closed"),
    pytest.param(rec(failures=4), fail(), rec(O, open_until=1030), False, id="closed+5th-failure: opens for open_seconds"),
    pytest.param(rec(failures=4), fail(K.CONNECT_FAILURE), rec(O, open_until=1030), False, id="closed+5th-connect-failure: opens"),
    pytest.param(rec(failures=4), fail(K.STATUS_429, 7), rec(O, open_until=1007), False, id="closed+5th-429-retry-after-7: opens for 7 s"),
    pytest.param(rec(failures=4), fail(K.STATUS_429, 90), rec(O, open_until=1090), False, id="closed+5th-429-retry-after-90: longer than open_seconds"),
    pytest.param(rec(failures=4), fail(K.STATUS_429, 86400), rec(O, open_until=1300), False, id="closed+429-retry-after-a-day: capped at max_retry_after"),
    pytest.param(rec(failures=4), fail(K.STATUS_429, -5), rec(O, open_until=1000), False, id="closed+429-negative-retry-after: clamped to 0"),
    pytest.param(rec(failures=4), fail(K.STATUS_429, math.nan), rec(O, open_until=1030), False, id="closed+429-nan-retry-after: open_seconds"),
    pytest.param(rec(failures=4), fail(K.STATUS_429), rec(O, open_until=1030), False, id="closed+429-without-retry-after: open_seconds"),
    pytest.param(rec(failures=4), fail(K.STATUS_5XX, 12), rec(O, open_until=1012), False, id="closed+503-retry-after: honoured too"),
    pytest.param(rec(failures=4), fail(K.RESET, 12), rec(O, open_until=1030), False, id="closed+reset-with-retry-after: ignored"),
    pytest.param(rec(failures=2), RELEASE, rec(failures=2), False, id="closed+release: nothing to free"),
    pytest.param(rec(failures=2), BreakerEvent.forced(O), rec(O, open_until=1030), False, id="closed+force-open: open_seconds"),
    pytest.param(rec(), BreakerEvent.forced(O, 5), rec(O, open_until=1005), False, id="closed+force-open-5s"),
    pytest.param(rec(failures=2), BreakerEvent.forced(C), rec(), False, id="closed+force-closed: counters cleared"),
    pytest.param(rec(), BreakerEvent.forced(H), rec(H), False, id="closed+force-half-open: no probes yet"),
    pytest.param(rec(failures=1), BreakerEvent.peer_open(1020), rec(O, open_until=1020), False, id="closed+peer-open: adopted"),
    pytest.param(rec(failures=1), BreakerEvent.peer_open(990), rec(failures=1), False, id="closed+expired-peer-open: ignored"),
    # open
    pytest.param(rec(O, open_until=1030), ALLOW, rec(O, open_until=1030), False, id="open+allow-before-deadline: refused"),
    pytest.param(rec(O, open_until=1000), ALLOW, rec(H, probes=1, probe_until=1030), True, id="open+allow-at-deadline: half-open, probe admitted"),
    pytest.param(rec(O, open_until=900), ALLOW, rec(H, probes=1, probe_until=1030), True, id="open+allow-long-after-deadline: half-open"),
    pytest.param(rec(O, open_until=1030), SUCCESS, rec(O, open_until=1030), False, id="open+late-success: ignored"),
    pytest.param(rec(O, open_until=1030), fail(), rec(O, open_until=1030), False, id="open+late-failure: ignored"),
    pytest.param(rec(O, open_until=1030), fail(K.STATUS_429, 60), rec(O, open_until=1060), False, id="open+429-longer-retry-after: extended"),
    pytest.param(rec(O, open_until=1030), fail(K.STATUS_429, 5), rec(O, open_until=1030), False, id="open+429-shorter-retry-after: kept"),
    pytest.param(rec(O, open_until=1030), RELEASE, rec(O, open_until=1030), False, id="open+release: ignored"),
    pytest.param(rec(O, open_until=1030), BreakerEvent.forced(C), rec(), False, id="open+force-closed"),
    pytest.param(rec(O, open_until=1030), BreakerEvent.forced(H), rec(H), False, id="open+force-half-open"),
    pytest.param(rec(O, open_until=1030), BreakerEvent.forced(O, 100), rec(O, open_until=1100), False, id="open+force-open-100s"),
    pytest.param(rec(O, open_until=1030), BreakerEvent.peer_open(1050), rec(O, open_until=1050), False, id="open+later-peer-open: extended"),
    pytest.param(rec(O, open_until=1030), BreakerEvent.peer_open(1010), rec(O, open_until=1030), False, id="open+earlier-peer-open: kept"),
    # half-open
    pytest.param(rec(H), ALLOW, rec(H, probes=1, probe_until=1030), True, id="half-open+allow-free-slot: probe admitted"),
    pytest.param(rec(H, probes=1, probe_until=1020), ALLOW, rec(H, probes=1, probe_until=1020), False, id="half-open+allow-slot-taken: refused"),
    pytest.param(rec(H, probes=1, probe_until=990), ALLOW, rec(H, probes=1, probe_until=1030), True, id="half-open+allow-lost-probe: slot reclaimed"),
    pytest.param(rec(H, probes=1, probe_until=1020), SUCCESS, rec(H, successes=1, probe_until=1020), False, id="half-open+1st-success: counted, slot freed"),
    pytest.param(rec(H, successes=1, probes=1, probe_until=1020), SUCCESS, rec(), False, id="half-open+2nd-success: closes"),
    pytest.param(rec(H, successes=1, probes=1), fail(), rec(O, open_until=1030), False, id="half-open+failure: reopens"),
    pytest.param(rec(H, probes=1), fail(K.TIMEOUT), rec(O, open_until=1030), False, id="half-open+timeout: reopens"),
    pytest.param(rec(H, probes=1), fail(K.STATUS_429, 45), rec(O, open_until=1045), False, id="half-open+429-retry-after: reopens for retry-after"),
    pytest.param(rec(H, probes=1, probe_until=1020), RELEASE, rec(H, probe_until=1020), False, id="half-open+release: slot freed, nothing counted"),
    pytest.param(rec(H), RELEASE, rec(H), False, id="half-open+release-without-probe: nothing"),
    pytest.param(rec(H, probes=1), BreakerEvent.forced(O), rec(O, open_until=1030), False, id="half-open+force-open"),
    pytest.param(rec(H, probes=1), BreakerEvent.forced(C), rec(), False, id="half-open+force-closed"),
    pytest.param(rec(H, probes=1), BreakerEvent.peer_open(1040), rec(O, open_until=1040), False, id="half-open+peer-open: adopted"),
]


@pytest.mark.parametrize("start, event, expected, allowed", TRANSITION_CASES)
def test_transition(start, event, expected, allowed):
    result = step(start, event, NOW, S)
    assert replace(result.record, updated_at=0.0) == expected
    assert result.allowed is allowed
    if result.record is start:
        assert result.record.updated_at == start.updated_at  # a no-op is the same object, unstamped
    else:
        assert result.record.updated_at == NOW


def test_every_state_event_pair_has_a_transition():
    assert set(TRANSITIONS) == {(state, kind) for state in BreakerState for kind in EventKind}


def test_noop_returns_the_same_record_object():
    # Shared stores rely on identity to skip the lock for events that change nothing.
    closed = BreakerRecord()
    assert step(closed, ALLOW, NOW, S).record is closed
    assert step(closed, SUCCESS, NOW, S).record is closed
    still_open = BreakerRecord(O, open_until=NOW + 1)
    assert step(still_open, ALLOW, NOW, S).record is still_open


# Idle records (no counters) of every state, times on both sides of their deadlines, settings
# at their extremes, and events of every kind with and without their optional fields.
IDLE_TIMES = (0.0, NOW - 31, NOW - 1, NOW, NOW + 1, NOW + 31)
IDLE_SETTINGS = (S, BreakerSettings(failure_threshold=1, success_threshold=1, open_seconds=0, probe_timeout_seconds=0),
                 BreakerSettings(failure_threshold=9, success_threshold=9, half_open_probes=9, open_seconds=600))
EVENTS_OF = {
    EventKind.ALLOW: (ALLOW, BreakerEvent(EventKind.ALLOW, retry_after=5, until=NOW + 9)),
    EventKind.SUCCESS: (SUCCESS, BreakerEvent(EventKind.SUCCESS, retry_after=5, state=O, until=NOW + 9)),
    EventKind.FAILURE: tuple(fail(kind, ra) for kind in K for ra in (None, 0, 7, 900)),
    EventKind.RELEASE: (RELEASE, BreakerEvent(EventKind.RELEASE, seconds=3)),
    EventKind.FORCE: tuple(BreakerEvent.forced(state, seconds) for state in BreakerState for seconds in (None, 0, 5)),
    EventKind.PEER_OPEN: tuple(BreakerEvent.peer_open(until) for until in (0.0, NOW - 1, NOW + 5, NOW + 900)),
}


def idle_steps(state, kind):
    """Every step of an idle ``state`` record under ``kind``: (result, record it started from)."""
    for open_until in IDLE_TIMES:
        for probe_until in IDLE_TIMES:
            record = BreakerRecord(state, open_until=open_until, probe_until=probe_until, updated_at=NOW - 60)
            for now in IDLE_TIMES:
                for settings in IDLE_SETTINGS:
                    for event in EVENTS_OF[kind]:
                        yield step(record, event, now, settings), record


@pytest.mark.parametrize("state, kind", sorted(QUIET, key=str))
def test_quiet_pairs_never_move_an_idle_record(state, kind):
    # Stores answer these from a Step built once per record: it must be what the table gives.
    for result, record in idle_steps(state, kind):
        assert result.record is record and result.allowed is QUIET[(state, kind)]


@pytest.mark.parametrize("state, kind", sorted(set(TRANSITIONS) - set(QUIET), key=str))
def test_every_other_pair_can_move_an_idle_record(state, kind):
    assert any(result.record is not record for result, record in idle_steps(state, kind))


def make(**overrides):
    clock = FakeClock(NOW)
    log = []
    breaker = Breaker(BreakerSettings(**overrides), clock, on_transition=lambda old, new: log.append((old, new)))
    return breaker, clock, log


def test_lifecycle_closed_open_half_open_closed():
    breaker, clock, log = make()
    for _ in range(4):
        assert breaker.allow()
        breaker.on_failure(K.STATUS_5XX)
    assert breaker.state is C
    breaker.on_failure(K.STATUS_5XX)
    assert breaker.state is O and breaker.open_until == NOW + 30
    assert not breaker.allow()
    clock.advance(29.9)
    assert not breaker.allow()
    clock.advance(0.1)
    assert breaker.allow()  # the probe
    assert breaker.state is H
    assert not breaker.allow()  # one probe at a time
    breaker.on_success()
    assert breaker.state is H
    assert breaker.allow()
    breaker.on_success()
    assert breaker.state is C and breaker.allow()
    assert log == [(C, O), (O, H), (H, C)]


def test_success_in_closed_resets_the_count():
    breaker, _, log = make()
    for _ in range(4):
        breaker.on_failure(K.RESET)
    breaker.on_success()
    for _ in range(4):
        breaker.on_failure(K.RESET)
    assert breaker.state is C and breaker.record.failures == 4 and log == []


def test_probe_failure_reopens_for_a_fresh_window():
    breaker, clock, log = make(failure_threshold=1)
    breaker.on_failure(K.CONNECT_FAILURE)
    clock.advance(30)
    assert breaker.allow()
    breaker.on_failure(K.TIMEOUT)
    assert breaker.state is O and breaker.open_until == clock.now + 30
    assert log == [(C, O), (O, H), (H, O)]


def test_concurrent_probes_limited_by_setting():
    breaker, clock, _ = make(failure_threshold=1, half_open_probes=2, success_threshold=3)
    breaker.on_failure(K.STATUS_5XX)
    clock.advance(30)
    assert [breaker.allow() for _ in range(4)] == [True, True, False, False]
    breaker.release()  # a probe whose client went away
    assert breaker.allow()


def test_lost_probe_slot_is_reclaimed_after_probe_timeout():
    breaker, clock, _ = make(failure_threshold=1, probe_timeout_seconds=10)
    breaker.on_failure(K.STATUS_5XX)
    clock.advance(30)
    assert breaker.allow()  # this probe's outcome never arrives
    clock.advance(9.9)
    assert not breaker.allow()
    clock.advance(0.1)
    assert breaker.allow()


def test_429_retry_after_sets_open_window():
    breaker, clock, _ = make(failure_threshold=1)
    breaker.on_failure(K.STATUS_429, retry_after=3)
    assert breaker.open_until == NOW + 3
    clock.advance(3)
    assert breaker.allow() and breaker.state is H


def test_force_for_admin():
    breaker, clock, log = make()
    breaker.force(O)
    assert not breaker.allow()
    breaker.force(C)
    assert breaker.allow()
    breaker.force(O, seconds=math.inf)
    clock.advance(10**9)
    assert not breaker.allow()
    assert log == [(C, O), (O, C), (C, O)]


@pytest.mark.parametrize("field, value", [
    pytest.param("failure_threshold", 0, id="zero-failure-threshold"),
    pytest.param("success_threshold", 0, id="zero-success-threshold"),
    pytest.param("half_open_probes", 0, id="zero-probes"),
    pytest.param("open_seconds", -1, id="negative-open-seconds"),
    pytest.param("open_seconds", math.inf, id="infinite-open-seconds"),
    pytest.param("max_retry_after_seconds", math.nan, id="nan-retry-after-cap"),
    pytest.param("probe_timeout_seconds", -0.5, id="negative-probe-timeout"),
])
def test_settings_rejected(field, value):
    with pytest.raises(ValueError, match=field):
        BreakerSettings(**{field: value})


EVENTS = st.one_of(
    st.just(ALLOW), st.just(SUCCESS), st.just(RELEASE),
    st.builds(BreakerEvent.failed, st.sampled_from(list(K)), st.none() | st.floats(-10, 1000, allow_nan=False)),
    st.builds(BreakerEvent.forced, st.sampled_from(list(BreakerState)), st.none() | st.floats(0, 100)),
    st.builds(BreakerEvent.peer_open, st.floats(900, 1200)),
)


@hsettings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(EVENTS, st.floats(0, 20)), max_size=60), st.integers(1, 3), st.integers(1, 4))
def test_invariants_hold_for_any_event_sequence(events, probes, threshold):
    s = BreakerSettings(failure_threshold=threshold, half_open_probes=probes)
    record, now = BreakerRecord(), NOW
    for event, dt in events:
        now += dt
        before = record
        result = step(record, event, now, s)
        record = result.record
        assert record.probes <= probes
        assert record.state is not C or record.failures < threshold
        assert record.state is H or (record.probes == 0 and record.successes == 0)
        if result.allowed:
            assert event.kind is EventKind.ALLOW
            assert before.state is C or record.state is H
        if before.state is O and event.kind is EventKind.ALLOW and now < before.open_until:
            assert not result.allowed


# --- classify ---------------------------------------------------------------------------------
RESET_BEFORE = "upstream_reset_before_response_started"
CLASSIFY_CASES = [
    # the provider answered
    pytest.param(200, "via_upstream", "", None, id="provider-200-success"),
    pytest.param(201, "via_upstream", "", None, id="provider-201-success"),
    pytest.param(304, "via_upstream", "", None, id="provider-304-not-a-failure"),
    pytest.param(400, "via_upstream", "", None, id="provider-400-client-error"),
    pytest.param(401, "via_upstream", "", None, id="provider-401-key-problem-not-outage"),
    pytest.param(404, "via_upstream", "", None, id="provider-404-unknown-model"),
    pytest.param(413, "via_upstream", "", None, id="provider-413-too-large"),
    pytest.param(422, "via_upstream", "", None, id="provider-422-unprocessable"),
    pytest.param(408, "via_upstream", "", K.TIMEOUT, id="provider-408-slow-provider"),
    pytest.param(429, "via_upstream", "", K.STATUS_429, id="provider-429-rate-limited"),
    pytest.param(500, "via_upstream", "", K.STATUS_5XX, id="provider-500"),
    pytest.param(501, "via_upstream", "", None, id="provider-501-not-implemented-is-deterministic"),
    pytest.param(502, "via_upstream", "", K.STATUS_5XX, id="provider-502"),
    pytest.param(503, "via_upstream", "", K.STATUS_5XX, id="provider-own-503-overloaded"),
    pytest.param(504, "via_upstream", "", K.STATUS_5XX, id="provider-504"),
    pytest.param(529, "via_upstream", "", K.STATUS_5XX, id="anthropic-529-overloaded"),
    pytest.param(503, " via_upstream ", "", K.STATUS_5XX, id="details-with-whitespace"),
    # Envoy's local replies that blame the provider
    pytest.param(503, f"{RESET_BEFORE}{{connection_failure}}", "UF", K.CONNECT_FAILURE, id="envoy-503-connection-failure-old-spelling"),
    pytest.param(503, f"{RESET_BEFORE}{{remote_connection_failure,delayed_connect_error:_Connection_refused}}", "UF,URX", K.CONNECT_FAILURE, id="envoy-503-connection-refused"),
    pytest.param(503, f"{RESET_BEFORE}{{remote_connection_failure,TLS_error:_268435581:SSL_routines}}", "UF", K.CONNECT_FAILURE, id="envoy-503-tls-handshake-failure"),
    pytest.param(503, f"{RESET_BEFORE}{{local_connection_failure}}", "UF", K.CONNECT_FAILURE, id="envoy-503-local-connection-failure"),
    pytest.param(503, f"{RESET_BEFORE}{{connection_timeout}}", "UF", K.CONNECT_FAILURE, id="envoy-503-connect-timeout"),
    pytest.param(503, f"{RESET_BEFORE}{{remote_reset}}", "UR", K.RESET, id="envoy-503-remote-reset"),
    pytest.param(503, f"{RESET_BEFORE}{{connection_termination}}", "UC", K.RESET, id="envoy-503-connection-termination"),
    pytest.param(502, f"{RESET_BEFORE}{{protocol_error}}", "UPE", K.RESET, id="envoy-502-upstream-protocol-error"),
    pytest.param(503, f"{RESET_BEFORE}{{remote_refused_stream_reset}}", "UR", K.RESET, id="envoy-503-refused-stream"),
    pytest.param(503, f"{RESET_BEFORE}{{some_future_reason}}", "", K.RESET, id="envoy-503-unknown-reset-reason"),
    pytest.param(200, "upstream_reset_after_response_started{remote_reset}", "UR", K.RESET, id="envoy-stream-cut-mid-response"),
    pytest.param(200, "upstream_reset_after_response_started{connection_termination}", "UC", K.RESET, id="envoy-connection-dropped-mid-stream"),
    pytest.param(504, "upstream_response_timeout", "UT", K.TIMEOUT, id="envoy-504-route-timeout"),
    pytest.param(504, "upstream_per_try_timeout", "UT", K.TIMEOUT, id="envoy-504-per-try-timeout"),
    pytest.param(408, "upstream_max_stream_duration_reached", "UMSDR", K.TIMEOUT, id="envoy-max-stream-duration"),
    pytest.param(503, "no_healthy_upstream", "UH", K.CONNECT_FAILURE, id="envoy-503-no-healthy-upstream"),
    # Envoy's local replies that are not the provider's fault
    pytest.param(503, f"{RESET_BEFORE}{{overflow}}", "UO", None, id="envoy-503-own-pool-overflow"),
    pytest.param(503, f"{RESET_BEFORE}{{local_reset}}", "LR", None, id="envoy-local-reset"),
    pytest.param(503, f"{RESET_BEFORE}{{overload_manager_reset}}", "OM", None, id="envoy-overload-manager"),
    pytest.param(0, "upstream_reset_after_response_started{local_reset}", "DC", None, id="client-went-away-mid-stream"),
    pytest.param(503, "cluster_not_found", "NC", None, id="envoy-503-cluster-not-found"),
    pytest.param(404, "route_not_found", "NR", None, id="envoy-404-no-route"),
    pytest.param(413, "request_payload_too_large", "", None, id="envoy-413-buffer-limit"),
    pytest.param(503, "ext_proc_error_gRPC_error_14", "", None, id="envoy-503-ext-proc-down"),
    pytest.param(504, "ext_proc_error_per-message_timeout_exceeded", "", None, id="envoy-504-ext-proc-timeout"),
    pytest.param(0, "downstream_remote_disconnect", "DC", None, id="client-disconnected"),
    pytest.param(429, "request_rate_limited", "RL", None, id="envoy-429-local-rate-limit"),
    # no details: flags, then status
    pytest.param(503, "", "UF,URX", K.CONNECT_FAILURE, id="no-details-flag-UF"),
    pytest.param(504, "", "UT", K.TIMEOUT, id="no-details-flag-UT"),
    pytest.param(503, "", "UC", K.RESET, id="no-details-flag-UC"),
    pytest.param(503, "", "UO", None, id="no-details-flag-overflow"),
    pytest.param(503, "", "", K.STATUS_5XX, id="no-details-no-flags-trust-status-503"),
    pytest.param(429, "", "", K.STATUS_429, id="no-details-no-flags-trust-status-429"),
    pytest.param(200, "", "", None, id="no-details-no-flags-200"),
    pytest.param(200, "", "-", None, id="no-details-dash-flags-200"),
    pytest.param(503, "", "-", K.STATUS_5XX, id="no-details-dash-flags-trust-status-503"),
]


@pytest.mark.parametrize("status, details, flags, expected", CLASSIFY_CASES)
def test_classify(status, details, flags, expected):
    assert classify(status, details, flags) is expected
