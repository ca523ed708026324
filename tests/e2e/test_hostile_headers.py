"""A hostile client against real Envoy: headers it sends to steer the provider or Envoy, secrets it
puts in the query string, connections it holds open, and a pickle planted in the disk cache."""

import json
import os
import pickle
import socket
import sqlite3
import time

import pytest

from tests.hostile import (
    ANTHROPIC_PROVIDER_KEY, KEY_ACME, MESSAGES, OPENAI_PROVIDER_KEY, hostile_config, post, provider_env, start_mocks, stop_mocks,
)
from tests.support import start_edge, stop, wait_until

LISTED_BETA = "listed-beta-2025-01-01"
CONFIGURED_VERSION = "2023-06-01"
# Short, so the slow-client tests finish in seconds; the defaults are bounded the same way.
HEADERS_TIMEOUT_S, REQUEST_TIMEOUT_S = 1, 3
IN_QUERY = "sk-secret-in-the-query-string-0001"


@pytest.fixture(scope="module")
def mocks():
    started = start_mocks("hostile-hdr")
    yield started
    stop_mocks(started)


@pytest.fixture(autouse=True)
def clean(mocks):
    for mock in mocks.values():
        mock.clear()


@pytest.fixture(scope="module")
def edge(tmp_path_factory, mocks):
    tmp = tmp_path_factory.mktemp("hostile-headers")
    # No L1: every cache read goes to the disk L2, as in a fresh worker.
    cache = {"l1_max_entries": 0, "local_dir": str(tmp / "l2"), "single_flight_wait_s": 1}
    config = hostile_config(tmp, mocks["openai"], mocks["anthropic"], cache=cache)
    config["providers"][1]["anthropic_betas"] = [LISTED_BETA]
    # gpt-4o fails over from the OpenAI provider to the Anthropic one.
    config["providers"][1]["model_map"] = {"gpt-4o": "claude-haiku-4-5"}
    config["listen"].update(request_headers_timeout_s=HEADERS_TIMEOUT_S, request_timeout_s=REQUEST_TIMEOUT_S)
    running = start_edge(tmp, config, env=provider_env())
    running.extra["l2"] = tmp / "l2"
    yield running
    assert stop(running.proc) == 0, running.log()


# -- client headers never reach the provider ---------------------------------------------------

ROUTES = {
    "openai": ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": MESSAGES}, "openai"),
    "anthropic": ("/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 20, "messages": MESSAGES}, "anthropic"),
    "openai-client-to-anthropic": ("/v1/chat/completions", {"model": "claude-haiku-4-5", "messages": MESSAGES}, "anthropic"),
}
# header -> what the provider may see of it (None: nothing at all).
HOSTILE = [
    pytest.param("openai-organization", "org-attacker", None, id="openai-organization"),
    pytest.param("openai-project", "proj-attacker", None, id="openai-project"),
    pytest.param("anthropic-beta", "unlisted-beta-2099-01-01", None, id="anthropic-beta-unlisted"),
    pytest.param("anthropic-version", "2099-01-01", CONFIGURED_VERSION, id="anthropic-version-client-chosen"),
    pytest.param("cookie", "session=attacker", None, id="cookie"),
    pytest.param("proxy-authorization", "Basic YTpi", None, id="proxy-authorization"),
    pytest.param("x-envoy-anything", "attacker-chosen", None, id="x-envoy-unknown"),
    pytest.param("x-envoy-retry-on", "5xx", None, id="x-envoy-retry-on"),
    pytest.param("x-envoy-upstream-rq-timeout-alt-response", "204", None, id="x-envoy-timeout-alt-response"),
    pytest.param("x-forwarded-for", "203.0.113.7", None, id="x-forwarded-for"),
    pytest.param("x-forwarded-proto", "https", "http", id="x-forwarded-proto"),
    pytest.param("x-stainless-lang", "python", None, id="sdk-telemetry"),
    pytest.param("accept-encoding", "gzip, br", "identity", id="accept-encoding"),
]


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize("header, value, seen", HOSTILE)
def test_a_client_header_never_reaches_the_provider(edge, mocks, route, header, value, seen):
    path, body, provider = ROUTES[route]
    status, _, answer = post(edge.url + path, body, {header: value, "anthropic-version": "2023-06-01"}
                             if header != "anthropic-version" else {header: value})
    assert status == 200, answer
    (sent,) = mocks[provider].requests()
    expected = seen if header != "anthropic-version" or provider == "anthropic" else None
    assert sent["headers"].get(header) == expected
    # Under no other name either. Envoy's own x-request-id is a random UUID: a short value such
    # as "204" turns up in one now and then by chance.
    assert [k for k, v in sent["headers"].items() if value in v and k != "x-request-id"] == []


def test_a_failed_over_attempt_gets_the_same_allow_list(edge, mocks):
    # The retry starts from the header map the first attempt left: it must carry neither the
    # client's headers nor the first provider's key.
    mocks["openai"].faults(status=500)
    hostile = {p.values[0]: p.values[1] for p in HOSTILE}
    status, headers, answer = post(edge.url + "/v1/chat/completions", {"model": "gpt-4o", "messages": MESSAGES}, hostile)
    assert status == 200 and headers["x-edge-provider"] == "an", answer
    assert len(mocks["openai"].requests()) == 1
    (retry,) = mocks["anthropic"].requests()
    sent = retry["headers"]
    assert sent["x-api-key"] == ANTHROPIC_PROVIDER_KEY and sent["anthropic-version"] == CONFIGURED_VERSION
    assert "authorization" not in sent and OPENAI_PROVIDER_KEY not in json.dumps(sent)
    assert not [name for name, value in hostile.items() if value in sent.values()]


def test_trace_context_and_content_type_do_reach_the_provider(edge, mocks):
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    status, _, _ = post(edge.url + "/v1/chat/completions", ROUTES["openai"][1], {"traceparent": trace})
    assert status == 200
    (sent,) = mocks["openai"].requests()
    assert sent["headers"]["traceparent"] == trace and sent["headers"]["content-type"] == "application/json"
    assert sent["headers"]["authorization"] == f"Bearer {OPENAI_PROVIDER_KEY}"


def test_client_headers_cannot_make_envoy_retry_or_time_out(edge, mocks):
    mocks["openai"].faults(status=500)
    steer = {"x-envoy-max-retries": "5", "x-envoy-retry-on": "5xx", "x-envoy-upstream-rq-timeout-ms": "1",
             "x-envoy-upstream-rq-per-try-timeout-ms": "1", "x-envoy-hedge-on-per-try-timeout": "true"}
    status, _, _ = post(edge.url + "/v1/chat/completions", ROUTES["openai"][1], steer)
    assert status == 500 and len(mocks["openai"].requests()) == 1
    mocks["openai"].faults(latency_ms=300)
    status, _, _ = post(edge.url + "/v1/chat/completions", ROUTES["openai"][1], steer)
    assert status == 200


def test_only_listed_betas_reach_anthropic_and_they_key_the_cache(edge, mocks):
    body = {"model": "claude-haiku-4-5", "max_tokens": 20, "messages": [{"role": "user", "content": "beta"}], "temperature": 0}
    url, version = edge.url + "/v1/messages", {"anthropic-version": "2023-06-01"}
    stored, betas = len(stored_entries(edge.extra["l2"])), {**version, "anthropic-beta": f"unlisted-beta, {LISTED_BETA}"}
    status, first, _ = post(url, body, betas)
    assert status == 200 and first["x-edge-cache"] == "miss"
    assert mocks["anthropic"].requests()[-1]["headers"]["anthropic-beta"] == LISTED_BETA
    # L2 writes happen in the background.
    wait_until(lambda: len(stored_entries(edge.extra["l2"])) == stored + 1, timeout=5, what="the answer stored")
    # Without the beta the answer may differ: another entry.
    status, plain, _ = post(url, body, version)
    assert status == 200 and plain["x-edge-cache"] == "miss"
    assert "anthropic-beta" not in mocks["anthropic"].requests()[-1]["headers"]
    status, again, _ = post(url, body, betas)
    assert status == 200 and again["x-edge-cache"] == "hit-l2"
    assert len(mocks["anthropic"].requests()) == 2


# -- the disk cache is never unpickled ---------------------------------------------------------

class Payload:
    """Pickled, it creates a directory when loaded: proof that a row was unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def stored_entries(directory) -> list[str]:
    with sqlite3.connect(directory / "cache.db") as db:
        return [key for (key,) in db.execute("SELECT key FROM Cache") if not key.startswith("lock:")]


def test_a_pickle_planted_in_the_disk_cache_never_runs(edge, mocks, tmp_path):
    marker = tmp_path / "pwned"
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "planted"}], "temperature": 0}
    url = edge.url + "/v1/chat/completions"
    before = set(stored_entries(edge.extra["l2"]))
    assert post(url, body)[0] == 200
    wait_until(lambda: set(stored_entries(edge.extra["l2"])) - before, timeout=5, what="the answer stored in the disk L2")
    (key,) = set(stored_entries(edge.extra["l2"])) - before
    # As anyone who can write the cache directory would: MODE_PICKLE (4) and a pickled value.
    with sqlite3.connect(edge.extra["l2"] / "cache.db") as db:
        db.execute("UPDATE Cache SET mode = 4, value = ? WHERE key = ?", (pickle.dumps(Payload(marker)), key))
    status, headers, answer = post(url, body)
    assert status == 200 and headers["x-edge-cache"] == "miss", answer
    assert not marker.exists()
    assert len(mocks["openai"].requests()) == 2


# -- the access log never holds a query string -------------------------------------------------

LOGGED = {"refused-401": ("/v1/chat/completions", "sk-not-a-key", 401), "unknown-path-404": ("/v1/nowhere", KEY_ACME, 404),
          "served-200": ("/v1/chat/completions", KEY_ACME, 200)}


@pytest.fixture(scope="module")
def access_log(edge, mocks):
    """Each LOGGED request sent with a key in its query string: its access log entry by name."""
    sent = {}
    for name, (path, key, status) in LOGGED.items():
        got, headers, _ = post(f"{edge.url}{path}?api_key={IN_QUERY}&x=1", ROUTES["openai"][1], key=key)
        assert got == status
        sent[name] = headers["x-request-id"]

    def entries():
        lines = [json.loads(line) for line in edge.log().splitlines() if line.startswith('{"')]
        return {name: e for e in lines for name, rid in sent.items() if e.get("request_id") == rid}

    # Envoy flushes its access log every 10 s (--file-flush-interval-msec).
    wait_until(lambda: len(entries()) == len(sent), timeout=15, what="the access log lines")
    return entries()


@pytest.mark.parametrize("name", list(LOGGED))
def test_the_access_log_has_the_path_without_its_query(edge, access_log, name):
    path, _, status = LOGGED[name]
    assert access_log[name]["status"] == status and access_log[name]["path"] == path
    assert IN_QUERY not in edge.log()


# -- slow clients cannot hold a connection and a processor stream ------------------------------

def exchange(port: int, data: bytes, within_s: float) -> tuple[bytes, float | None]:
    """Send ``data`` and read until Envoy closes the connection: (what came back, seconds it took),
    or (..., None) when it is still open after ``within_s``."""
    start = time.monotonic()
    deadline = start + within_s
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=within_s) as conn:
        conn.sendall(data)
        while time.monotonic() < deadline:
            conn.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = conn.recv(65536)
            except (TimeoutError, socket.timeout):
                break
            except ConnectionResetError:
                return received, time.monotonic() - start
            if not chunk:
                return received, time.monotonic() - start
            received += chunk
    return received, None


def test_a_client_that_never_finishes_its_headers_is_cut_off(edge):
    partial = f"POST /v1/chat/completions HTTP/1.1\r\nhost: edge\r\nauthorization: Bearer {KEY_ACME}\r\n".encode()
    _, closed_after = exchange(edge.port, partial, within_s=HEADERS_TIMEOUT_S + 5)
    assert closed_after is not None and closed_after < HEADERS_TIMEOUT_S + 3


def test_a_client_that_never_finishes_its_body_gets_408(edge, mocks):
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nhost: edge\r\nauthorization: Bearer {KEY_ACME}\r\n"
            "content-type: application/json\r\ncontent-length: 1000\r\n\r\n").encode()
    received, closed_after = exchange(edge.port, head + b'{"model": "gpt-4o-mini", ', within_s=REQUEST_TIMEOUT_S + 5)
    assert received.startswith(b"HTTP/1.1 408"), received[:200]
    assert b'"error"' in received  # in the caller's API shape
    assert mocks["openai"].requests() == []


def test_a_streamed_answer_may_outlast_the_request_timeout(edge, mocks):
    # The request timer stops once the request went upstream: a long answer is the provider
    # timeout's business, not this one's.
    mocks["openai"].faults(latency_ms=1500, chunk_delay_ms=250)
    start = time.monotonic()
    status, _, answer = post(edge.url + "/v1/chat/completions", {**ROUTES["openai"][1], "stream": True})
    took = time.monotonic() - start
    assert status == 200 and took > REQUEST_TIMEOUT_S
    text = answer.decode() if isinstance(answer, bytes) else json.dumps(answer)
    assert text.rstrip().endswith("data: [DONE]")
