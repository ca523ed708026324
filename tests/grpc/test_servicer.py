"""In-process gRPC: a real grpc.aio worker server, scripted ProcessingRequest sequences."""

import json
import os
import logging
import re

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from edge_ext.admin.pb import admin_pb2, admin_pb2_grpc
from edge_ext.config import parse_config
from edge_ext.extproc.pb import ext_proc_pb2 as pb
from edge_ext.extproc.pb import service_pb2_grpc
from edge_ext.extproc.server import build_server
from edge_ext.routing.router import Router
from tests.grpc.attempts import attempt_start, two_providers


@pytest.fixture
async def worker(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_PROVIDER_KEY", "sk-provider")
    config = parse_config(f"""
processor: {{address: "unix:{tmp_path}", workers: 1, max_body_bytes: 4096}}
providers:
  - name: openai-main
    kind: openai
    base_url: http://127.0.0.1:18080
    api_key_env: TEST_PROVIDER_KEY
    models: [gpt-4o-mini]
""")
    address = config.processor.worker_address(0)
    server, _ = await build_server(config, 0, address)
    channel = grpc.aio.insecure_channel(address)
    channel.edge_config = config
    yield channel
    await channel.close()
    await server.stop(0)


def headers_msg(path="/v1/chat/completions", method="POST", end_of_stream=False, **extra):
    hm = pb.HeaderMap()
    for key, value in {":method": method, ":path": path, "authorization": "Bearer client", **extra}.items():
        hm.headers.add(key=key, raw_value=value.encode())
    return pb.ProcessingRequest(request_headers=pb.HttpHeaders(headers=hm, end_of_stream=end_of_stream))


def body_msg(body: bytes):
    return pb.ProcessingRequest(request_body=pb.HttpBody(body=body, end_of_stream=True))


async def exchange(channel, *messages):
    stub = service_pb2_grpc.ExternalProcessorStub(channel)
    call = stub.Process(iter(messages))
    return [response async for response in call]


async def test_routed_chat_request_takes_two_messages(worker):
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode()
    first, second = await exchange(worker, headers_msg(), body_msg(body))
    assert first.WhichOneof("response") == "request_headers"
    common = second.request_body.response
    mutated = {o.header.key: o.header.raw_value.decode() for o in common.header_mutation.set_headers}
    assert mutated["x-edge-cluster"] == "provider_openai-main"
    assert mutated["authorization"] == "Bearer sk-provider"
    assert common.clear_route_cache
    assert second.dynamic_metadata["edge_ext"]["provider"] == "openai-main"


async def test_routed_responses_request_goes_to_the_responses_path(worker):
    body = json.dumps({"model": "gpt-4o-mini", "input": "hi"}).encode()
    first, second = await exchange(worker, headers_msg(path="/v1/responses"), body_msg(body))
    assert first.WhichOneof("response") == "request_headers"
    common = second.request_body.response
    mutated = {o.header.key: o.header.raw_value.decode() for o in common.header_mutation.set_headers}
    assert mutated[":path"] == "/v1/responses" and mutated["authorization"] == "Bearer sk-provider"
    assert second.dynamic_metadata["edge_ext"]["api"] == "responses"  # the outcome is read in its terms


@pytest.mark.parametrize(
    "messages, status, code",
    [
        pytest.param([headers_msg(path="/v1/responses"), body_msg(b'{"model":"gpt-4o-mini","input":7}')],
                     400, "invalid_request", id="responses-input-of-a-wrong-type"),
        pytest.param([headers_msg(path="/v1/responses", method="GET", end_of_stream=True)], 405, "method_not_allowed",
                     id="responses-get"),
        pytest.param([headers_msg(path="/nope")], 404, "unknown_url", id="unknown-path-answered-at-headers"),
        pytest.param([headers_msg(), body_msg(b"{")], 400, "invalid_json", id="malformed-json"),
        pytest.param(
            [headers_msg(), body_msg(b'{"model":"x","messages":[{"role":"user","content":"a"}]}')],
            404, "model_not_found", id="unknown-model",
        ),
        pytest.param([headers_msg(**{"content-length": "99999"})], 413, "request_too_large", id="declared-body-too-large"),
    ],
)
async def test_errors_end_the_stream_with_an_immediate_response(worker, messages, status, code):
    responses = await exchange(worker, *messages)
    final = responses[-1].immediate_response
    assert final.status.code == status
    assert json.loads(final.body)["error"]["code"] == code
    assert len(responses) == len(messages)


@pytest.mark.parametrize("token", [None, "not-the-token-0123456789"], ids=["no-token", "wrong-token"])
async def test_admin_calls_without_the_token_are_refused(worker, token):
    config = worker.edge_config
    async with grpc.aio.insecure_channel(config.processor.admin_address(0)) as admin:
        stub = admin_pb2_grpc.AdminStub(admin)
        metadata = admin_metadata(config, token) if token else ()
        for call, request in ((stub.GetStatus, admin_pb2.GetStatusRequest()), (stub.GetSpend, admin_pb2.GetSpendRequest()),
                              (stub.SetBreaker, admin_pb2.SetBreakerRequest(provider="openai-main", state="open"))):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call(request, metadata=metadata)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_the_ext_proc_socket_serves_no_admin_api(worker):
    """Envoy's door and the operators' door are different sockets."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await admin_pb2_grpc.AdminStub(worker).SetBreaker(admin_pb2.SetBreakerRequest(provider="openai-main", state="open"),
                                                          metadata=admin_metadata(worker.edge_config))
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_state_directory_is_private(worker):
    import stat

    config = worker.edge_config
    for path in (config.processor.directory, config.processor.directory + "/admin"):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(config.processor.admin_token_path).st_mode) == 0o600


@pytest.mark.parametrize("path, extra, api", [
    pytest.param("/v1/chat/completions", {}, "openai", id="openai-shape"),
    pytest.param("/v1/messages", {"anthropic-version": "2023-06-01"}, "anthropic", id="anthropic-shape"),
])
async def test_an_unexpected_error_is_a_500_with_an_id_logged_once_without_its_text(worker, monkeypatch, caplog, path, extra, api):
    def broken(self, *args, **kwargs):
        raise RuntimeError("a message quoting the prompt: secret-0001")

    monkeypatch.setattr(Router, "pick", broken)
    body = json.dumps({"model": "gpt-4o-mini", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}).encode()
    with caplog.at_level(logging.INFO):
        responses = await exchange(worker, headers_msg(path=path, **extra), body_msg(body))
    final = responses[-1].immediate_response
    assert final.status.code == 500 and final.details == "edge_ext_internal_error"
    error = json.loads(final.body)
    if api == "anthropic":
        assert error["type"] == "error" and error["error"]["type"] == "api_error"
    else:
        assert error["error"]["code"] == "internal_error"
    error_id = re.search(r"internal error ([0-9a-f]{16})", error["error"]["message"]).group(1)
    (record,) = [r for r in caplog.records if error_id in r.getMessage()]
    assert "RuntimeError" in record.getMessage() and "route_step.py" in record.getMessage()
    assert record.exc_info is None  # one line: the exception's text may quote a prompt or a key
    assert "secret-0001" not in caplog.text and "secret-0001" not in final.body.decode()


async def test_health_service_reports_serving(worker):
    stub = health_pb2_grpc.HealthStub(worker)
    for service in ("", "envoy.service.ext_proc.v3.ExternalProcessor"):
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def admin_metadata(config, token=None):
    from edge_ext.config.instance import admin_token

    return (("authorization", f"Bearer {token or admin_token(config.processor.admin_token_path, create=False)}"),)


async def test_admin_status_lists_providers(worker):
    await exchange(worker, headers_msg(method="GET", path="/health/ready", end_of_stream=True))
    config = worker.edge_config
    async with grpc.aio.insecure_channel(config.processor.admin_address(0)) as admin:
        reply = await admin_pb2_grpc.AdminStub(admin).GetStatus(admin_pb2.GetStatusRequest(), metadata=admin_metadata(config))
    assert [p.name for p in reply.providers] == ["openai-main"]
    assert reply.providers[0].circuit_state == "closed"
    assert reply.streams_total >= 1


from hypothesis import HealthCheck, given, settings  # noqa: E402

from tests.fuzzing import FUZZ_FIXED, bodies, header_sets, methods, paths  # noqa: E402


@settings(derandomize=FUZZ_FIXED, max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(method=methods, path=paths, headers=header_sets, body=bodies)
async def test_fuzzed_streams_always_end_in_a_well_formed_reply(worker, method, path, headers, body):
    hm = pb.HeaderMap()
    for key, value in {":method": method, ":path": path, **headers}.items():
        hm.headers.add(key=key, raw_value=value.encode())
    # As Envoy sends them: the body only after the headers' reply, and never after an immediate
    # response (the worker has ended the stream: a body written then fails on the client's side).
    call = service_pb2_grpc.ExternalProcessorStub(worker).Process(timeout=5)
    await call.write(pb.ProcessingRequest(request_headers=pb.HttpHeaders(headers=hm)))
    responses = [await call.read()]
    if responses[0] is not grpc.aio.EOF and not responses[0].HasField("immediate_response"):
        await call.write(body_msg(body))
    await call.done_writing()
    while (response := await call.read()) is not grpc.aio.EOF:
        responses.append(response)
    assert grpc.aio.EOF not in responses and 1 <= len(responses) <= 2
    last = responses[-1]
    if last.HasField("immediate_response"):
        assert json.loads(last.immediate_response.body)
    reply = await health_pb2_grpc.HealthStub(worker).Check(health_pb2.HealthCheckRequest(service=""))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_a_span_per_request_parented_to_the_clients_trace(tmp_path):
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    config = parse_config(f"""
processor: {{address: "unix:{tmp_path}", workers: 1}}
cache: {{enabled: false}}
providers: [{{name: p, kind: openai, base_url: "http://127.0.0.1:1", models: [gpt-4o-mini]}}]
""")
    server, _ = await build_server(config, 0, config.processor.worker_address(0), span_exporter=exporter)
    try:
        async with grpc.aio.insecure_channel(config.processor.worker_address(0)) as channel:
            trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
            body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode()
            await exchange(channel, headers_msg(traceparent=f"00-{trace_id}-00f067aa0ba902b7-01"), body_msg(body))
        (span,) = exporter.get_finished_spans()
        assert format(span.context.trace_id, "032x") == trace_id
        assert span.parent is not None and format(span.parent.span_id, "016x") == "00f067aa0ba902b7"
        assert span.attributes["gen_ai.request.model"] == "gpt-4o-mini"
        assert span.attributes["gen_ai.provider.name"] == "p"
    finally:
        await server.stop(0)


async def retry_attempt(tmp_path, monkeypatch):
    """Envoy's failover filter on a retry to provider "next" of a request first shaped for "first":
    the replies to its headers and its body."""
    config = two_providers(tmp_path, monkeypatch)
    address = config.processor.worker_address(0)
    server, _ = await build_server(config, 0, address)
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            start = attempt_start(headers_msg(authorization="Bearer sk-first"))
            body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
            return await exchange(channel, start, body_msg(body))
    finally:
        await server.stop(0)


async def test_an_attempt_that_fails_unexpectedly_is_refused_without_credentials(tmp_path, monkeypatch, caplog):
    """A bug while shaping a retry fails closed: a refusal, never the provider's key, one log line."""
    import edge_ext.policy.attempt as attempt_module

    def broken(*args, **kwargs):
        raise RuntimeError("a prompt quoted in an exception: sk-secret")

    monkeypatch.setattr(attempt_module, "shape", broken)
    first, second = await retry_attempt(tmp_path, monkeypatch)
    assert second.HasField("immediate_response") and second.immediate_response.details == "edge_ext_failover_refused"
    assert b"sk-next" not in second.SerializeToString() and b"sk-secret" not in second.SerializeToString()
    assert "sk-secret" not in caplog.text and "RuntimeError" in caplog.text


async def test_a_retry_attempt_stream_is_reshaped_for_its_provider(tmp_path, monkeypatch):
    """The failover cluster's filter: endpoint metadata names the attempt's provider, the
    forwarded request metadata the first provider and the model."""
    first, second = await retry_attempt(tmp_path, monkeypatch)
    assert first.mode_override.request_body_mode == pb.ProcessingMode.BUFFERED
    common = second.request_body.response
    mutated = {o.header.key: o.header.raw_value.decode() for o in common.header_mutation.set_headers}
    assert mutated[":path"] == "/v1/messages" and mutated["x-api-key"] == "sk-next"
    assert "authorization" in common.header_mutation.remove_headers
    assert json.loads(common.body_mutation.body)["model"] == "claude-x"
    assert not second.HasField("dynamic_metadata")  # an attempt is not a request: no metrics, no metadata
