"""In-process gRPC: a peer sending ext_proc messages out of protocol order ends its stream with a
gRPC status (FAILED_PRECONDITION), a metric and a log line; never a reply body, never a 500."""

from __future__ import annotations

import json
import logging

import grpc
import pytest

from edge_ext.extproc.pb import ext_proc_pb2 as pb
from edge_ext.extproc.pb import service_pb2_grpc
from edge_ext.extproc import server as server_module
from edge_ext.extproc.server import build_server
from edge_ext.wiring import build_worker
from tests.grpc.attempts import attempt_start, two_providers

CHAT = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()


@pytest.fixture
async def worker(tmp_path, monkeypatch):
    config = two_providers(tmp_path, monkeypatch)
    built = []
    monkeypatch.setattr(server_module, "build_worker", lambda config: built.append(build_worker(config)) or built[0])
    address = config.processor.worker_address(0)
    server, _ = await build_server(config, 0, address)
    channel = grpc.aio.insecure_channel(address)
    channel.metrics = built[0].metrics
    yield channel
    await channel.close()
    await server.stop(0)


def headers(path="/v1/chat/completions", method="POST", end_of_stream=False):
    hm = pb.HeaderMap()
    for key, value in {":method": method, ":path": path, "authorization": "Bearer client"}.items():
        hm.headers.add(key=key, raw_value=value.encode())
    return pb.ProcessingRequest(request_headers=pb.HttpHeaders(headers=hm, end_of_stream=end_of_stream))


def body(data: bytes = CHAT):
    return pb.ProcessingRequest(request_body=pb.HttpBody(body=data, end_of_stream=True))


def response_headers(status="200"):
    hm = pb.HeaderMap()
    hm.headers.add(key=":status", raw_value=status.encode())
    return pb.ProcessingRequest(response_headers=pb.HttpHeaders(headers=hm))


EMPTY = pb.ProcessingRequest()
HEALTH = headers("/health/ready", "GET", end_of_stream=True)


async def run(channel, messages):
    """The replies the stream gave before it ended, and the status it ended with."""
    call = service_pb2_grpc.ExternalProcessorStub(channel).Process(iter(messages))
    replies = []
    try:
        async for reply in call:
            replies.append(reply)
    except grpc.aio.AioRpcError as err:
        return replies, err.code()
    return replies, grpc.StatusCode.OK


@pytest.mark.parametrize("messages, answered, message", [
    pytest.param([headers(), headers()], 1, "request_headers", id="request-headers-twice"),
    pytest.param([body()], 0, "request_body", id="body-before-headers"),
    pytest.param([HEALTH, body()], 1, "request_body", id="body-after-a-health-probe-passed"),
    pytest.param([headers(), response_headers("503"), body()], 2, "request_body", id="body-after-envoys-local-reply"),
    pytest.param([HEALTH, headers()], 1, "request_headers", id="request-headers-after-a-passed-probe"),
    pytest.param([EMPTY], 0, "empty", id="empty-message-first"),
    pytest.param([headers(), EMPTY], 1, "empty", id="empty-message-after-headers"),
    pytest.param([attempt_start(headers()), attempt_start(headers())], 1, "request_headers", id="attempt-headers-twice"),
    pytest.param([attempt_start(headers()), EMPTY], 1, "empty", id="attempt-empty-message"),
])
async def test_a_message_out_of_order_ends_the_stream_with_a_grpc_status(worker, caplog, messages, answered, message):
    with caplog.at_level(logging.WARNING, logger="edge_ext.extproc"):
        replies, code = await run(worker, messages)
    assert code is grpc.StatusCode.FAILED_PRECONDITION
    assert len(replies) == answered
    assert not any(r.HasField("immediate_response") for r in replies)  # no 500, no body of ours
    assert worker.metrics.protocol_errors.labels(message=message).value == 1
    assert "out of protocol order" in caplog.text


@pytest.mark.parametrize("messages", [
    pytest.param([HEALTH, response_headers()], id="response-headers-after-a-passed-probe"),
    pytest.param([response_headers("502")], id="response-headers-of-a-local-reply-first"),
    pytest.param([headers(), response_headers("413")], id="envoys-local-reply-before-the-body"),
])
async def test_response_messages_are_taken_in_any_phase(worker, messages):
    """Envoy sends response headers for its own local replies too: not a violation."""
    replies, code = await run(worker, messages)
    assert code is grpc.StatusCode.OK and len(replies) == len(messages)
    assert worker.metrics.protocol_errors.labels(message="response_headers").value == 0


async def test_the_worker_keeps_serving_after_a_violation(worker):
    assert (await run(worker, [headers(), headers()]))[1] is grpc.StatusCode.FAILED_PRECONDITION
    replies, code = await run(worker, [headers(), body()])
    assert code is grpc.StatusCode.OK
    assert replies[-1].request_body.response.clear_route_cache
