"""One request through real Envoy and edge-ext, driven by the official openai SDK."""

import json
import os
import signal
import subprocess
import openai
import pytest

from edge_ext.config import parse_config
from edge_ext.envoy_config.render import render_yaml
from edge_ext.extproc.pb import ext_proc_pb2 as pb
from edge_ext.extproc.pb import service_pb2_grpc
from tests.keys import CLIENT_KEY, PROVIDER_KEY
from tests.support import edge_config, http, scrape_until, start_edge, stop, wait_until, worker_pids

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}]}


@pytest.fixture
def client(edge):
    return openai.OpenAI(base_url=f"{edge.url}/v1", api_key=CLIENT_KEY, max_retries=0)


def test_chat_completion_reaches_the_provider_with_its_key_not_the_clients(client, mock):
    raw = client.chat.completions.with_raw_response.create(**CHAT)
    completion = raw.parse()
    assert completion.choices[0].message.content
    assert completion.usage.total_tokens > 0
    assert raw.headers["x-edge-provider"] == "openai-main"
    assert raw.headers["x-request-id"]
    assert raw.headers["x-mock-provider"] == "openai-mock"

    (seen,) = mock.requests()
    assert seen["path"] == "/v1/chat/completions"
    assert seen["headers"]["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert CLIENT_KEY not in json.dumps(seen)
    assert "x-edge-cluster" not in seen["headers"]
    assert seen["json"]["model"] == "gpt-4o-mini"


def test_model_alias_is_rewritten_for_the_provider(client, mock):
    completion = client.chat.completions.create(model="team-default", messages=CHAT["messages"])
    assert completion.choices[0].message.content
    (seen,) = mock.requests()
    assert seen["json"]["model"] == "gpt-4o-mini-2024-07-18"


def test_streamed_answer_flows_through(client, mock):
    chunks = list(client.chat.completions.create(**CHAT, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_unknown_model_is_404_in_openai_shape(client, mock):
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-nope", messages=CHAT["messages"])
    assert info.value.status_code == 404
    assert info.value.body["code"] == "model_not_found"
    assert info.value.response.headers["content-type"] == "application/json"
    assert mock.requests() == []


ERROR_CASES = [
    pytest.param(b"{not json", {}, 400, "invalid_json", id="malformed-json"),
    pytest.param(b'{"model": "gpt-4o-mini"}', {}, 400, "invalid_request", id="missing-messages"),
    pytest.param(json.dumps({**CHAT, "pad": "x" * 70000}).encode(), {}, 413, "request_too_large", id="declared-length-over-limit"),
]


@pytest.mark.parametrize("body, headers, status, code", ERROR_CASES)
def test_bad_requests_get_openai_errors(edge, mock, body, headers, status, code):
    got, hdrs, payload = http("POST", f"{edge.url}/v1/chat/completions", body, {"content-type": "application/json", **headers})
    assert got == status
    assert hdrs["content-type"] == "application/json"
    assert json.loads(payload)["error"]["code"] == code
    assert mock.requests() == []


def test_chunked_body_over_envoys_buffer_is_413_json(edge, mock):
    # No content-length: only Envoy's buffer limit can stop it; its local reply is mapped to JSON.
    def chunks():
        yield json.dumps(CHAT)[:-1].encode() + b', "pad": "'
        for _ in range(40):
            yield b"x" * 4096
        yield b'"}'

    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", edge.port, timeout=10)
    conn.request("POST", "/v1/chat/completions", body=chunks(), headers={"content-type": "application/json"}, encode_chunked=True)
    resp = conn.getresponse()
    payload = json.loads(resp.read())
    assert resp.status == 413
    assert resp.getheader("content-type") == "application/json"
    assert payload["error"]["type"] == "invalid_request_error"
    assert mock.requests() == []


def test_unknown_path_is_404_json(edge):
    status, hdrs, payload = http("GET", f"{edge.url}/v1/unknown")
    assert status == 404 and json.loads(payload)["error"]["code"] == "unknown_url"


@pytest.mark.parametrize("path, expected", [("/health", "ready"), ("/health/ready", "ready"), ("/health/live", "live")])
def test_health_routes(edge, path, expected):
    status, _, payload = http("GET", f"{edge.url}{path}")
    assert status == 200 and json.loads(payload)["status"] == expected


def test_metrics_count_requests_and_phase_latency(edge, client):
    client.chat.completions.create(**CHAT)
    scrape_until(edge, 'edge_ext_requests_total{outcome="routed",provider="openai-main"}',
                 'edge_ext_processing_seconds_count{phase="request_body"}')


def test_access_log_has_request_fields_and_no_keys(edge, client):
    client.chat.completions.create(**CHAT)
    wait_until(lambda: '"provider":"openai-main"' in edge.log(), what="access log line")
    log = edge.log()
    assert CLIENT_KEY not in log and PROVIDER_KEY not in log


def test_a_killed_worker_is_restarted_and_requests_keep_succeeding(edge, client):
    pids = worker_pids(edge)
    assert len(pids) == 2
    os.kill(pids[0], signal.SIGKILL)
    ok = 0
    for _ in range(20):
        try:
            client.chat.completions.create(**CHAT)
            ok += 1
        except openai.APIStatusError:
            pass
    # Streams in flight on the killed worker may fail; new ones go to the live worker.
    assert ok >= 15
    wait_until(lambda: "restarting" in edge.log(), what="restart logged")
    wait_until(lambda: len(worker_pids(edge)) == 2 and pids[0] not in worker_pids(edge), what="worker back")


def test_processor_down_fails_closed_with_json_503(tmp_path):
    """Envoy with no processor listening: requests are refused, never forwarded unprocessed."""
    config = parse_config(json.dumps(edge_config(tmp_path, [
        {"name": "p", "kind": "openai", "base_url": "http://127.0.0.1:9", "models": ["m"]}])))
    bootstrap = tmp_path / "envoy.yaml"
    bootstrap.write_text(render_yaml(config))
    from edge_ext.edge import envoy_binary

    envoy = subprocess.Popen([envoy_binary(), "-c", str(bootstrap), "--disable-hot-restart", "-l", "error"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{config.listen.port}"
    try:
        wait_until(lambda: http("GET", f"{url}/health/live", timeout=1)[0] == 200, what="envoy up")
        status, hdrs, payload = http("POST", f"{url}/v1/chat/completions", json.dumps(CHAT).encode(),
                                     {"content-type": "application/json", "x-edge-cluster": "provider_p"})
        assert status == 503
        assert hdrs["content-type"] == "application/json"
        error = json.loads(payload)["error"]
        assert error["type"] == "api_error" and error["code"].startswith("ext_proc_error")
        assert http("GET", f"{url}/health/ready")[0] == 503
    finally:
        stop(envoy)


class _SlowProcessor:
    """A processor that never answers in time, to see what Envoy does at message_timeout."""

    async def Process(self, request_iterator, context):
        import asyncio

        async for _ in request_iterator:
            await asyncio.sleep(2)
            yield pb.ProcessingResponse()


async def test_processor_slower_than_message_timeout_gives_504_json(tmp_path):
    import asyncio

    import grpc

    config = parse_config(json.dumps(edge_config(tmp_path, [
        {"name": "p", "kind": "openai", "base_url": "http://127.0.0.1:9", "models": ["m"]}],
        processor={"workers": 1, "message_timeout_ms": 100})))
    server = grpc.aio.server()
    service_pb2_grpc.add_ExternalProcessorServicer_to_server(_SlowProcessor(), server)
    from grpc_health.v1 import health, health_pb2_grpc

    from grpc_health.v1 import health_pb2

    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    await health_servicer.set("envoy.service.ext_proc.v3.ExternalProcessor", health_pb2.HealthCheckResponse.SERVING)
    address = config.processor.worker_address(0)
    os.makedirs(address[5:].rsplit("/", 1)[0], exist_ok=True)
    server.add_insecure_port(address)
    await server.start()
    bootstrap = tmp_path / "envoy.yaml"
    bootstrap.write_text(render_yaml(config))
    from edge_ext.edge import envoy_binary

    envoy = subprocess.Popen([envoy_binary(), "-c", str(bootstrap), "--disable-hot-restart", "-l", "error"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{config.listen.port}"
    try:
        # Ready is itself a processor round trip: past the timeout once the worker is healthy.
        await asyncio.to_thread(wait_until, lambda: http("GET", f"{url}/health/ready", timeout=1)[0] == 504)
        status, hdrs, payload = await asyncio.to_thread(
            http, "POST", f"{url}/v1/chat/completions", json.dumps(CHAT).encode(), {"content-type": "application/json"})
        assert status == 504, payload
        assert hdrs["content-type"] == "application/json"
        assert json.loads(payload)["error"]["code"] == "ext_proc_error_per-message_timeout_exceeded"
    finally:
        stop(envoy)
        await server.stop(0)


def test_sigterm_lets_an_in_flight_request_finish_then_exits_cleanly(tmp_path, mock):
    import threading

    config = edge_config(tmp_path, [{"name": "p", "kind": "openai", "base_url": mock.url, "models": ["gpt-4o-mini"],
                                     "api_key_env": "E2E_OPENAI_KEY"}], processor={"workers": 1})
    edge = start_edge(tmp_path, config, env={"E2E_OPENAI_KEY": PROVIDER_KEY})
    result = {}
    mock.faults(latency_ms=1500)

    def slow_request():
        result["status"], _, result["body"] = http(
            "POST", f"{edge.url}/v1/chat/completions", json.dumps(CHAT).encode(),
            {"content-type": "application/json"}, timeout=20)

    thread = threading.Thread(target=slow_request)
    thread.start()
    wait_until(lambda: len(mock.requests()) == 1, what="request in flight at the provider")
    edge.proc.send_signal(signal.SIGTERM)
    thread.join(timeout=20)
    assert result["status"] == 200, result
    assert json.loads(result["body"])["choices"][0]["message"]["content"]
    assert edge.proc.wait(timeout=20) == 0
    assert "stopped" in edge.log()
