"""In-process gRPC: the worker's AccessLogService fed scripted batches of Envoy's access log
entries, as Envoy sends the outcomes of requests answered in 2 ext_proc messages."""

import json

import grpc
import pytest
from google.protobuf import struct_pb2

from edge_ext.config import parse_config
from edge_ext.extproc.pb import accesslog_pb2 as alpb
from edge_ext.extproc.pb import als_service_pb2_grpc
from edge_ext.extproc.pb import ext_proc_pb2 as pb
from edge_ext.extproc.pb import service_pb2_grpc
from edge_ext.extproc.server import build_server

BODY = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode()


@pytest.fixture
async def worker(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_PROVIDER_KEY", "sk-provider")
    config = parse_config(f"""
processor: {{address: "unix:{tmp_path}", workers: 1}}
providers:
  - {{name: oa, kind: openai, base_url: "http://127.0.0.1:18080", api_key_env: TEST_PROVIDER_KEY, models: [gpt-4o-mini]}}
routing: {{breaker: {{failure_threshold: 3, open_seconds: 60}}}}
cache: {{enabled: false}}
""")
    address = config.processor.worker_address(0)
    server, _ = await build_server(config, 0, address)
    channel = grpc.aio.insecure_channel(address)
    yield channel
    await channel.close()
    await server.stop(0)


async def route(channel) -> list[pb.ProcessingResponse]:
    headers = pb.HeaderMap()
    for key, value in {":method": "POST", ":path": "/v1/chat/completions", "authorization": "Bearer c"}.items():
        headers.headers.add(key=key, raw_value=value.encode())
    messages = [pb.ProcessingRequest(request_headers=pb.HttpHeaders(headers=headers)),
                pb.ProcessingRequest(request_body=pb.HttpBody(body=BODY, end_of_stream=True))]
    return [r async for r in service_pb2_grpc.ExternalProcessorStub(channel).Process(iter(messages))]


def entry(metadata: struct_pb2.Struct, status: int, request_id: str) -> alpb.HTTPAccessLogEntry:
    e = alpb.HTTPAccessLogEntry()
    e.common_properties.metadata.filter_metadata["edge_ext"].CopyFrom(metadata.fields["edge_ext"].struct_value)
    e.common_properties.upstream_request_attempt_count = 1
    e.common_properties.custom_tags["served"] = "oa"
    e.response.response_code.value = status
    e.response.response_code_details = "via_upstream"
    e.request.request_id = request_id
    return e


async def test_a_batch_of_failed_outcomes_opens_the_breaker_for_the_next_request(worker):
    routed = [await route(worker) for _ in range(3)]
    # The processor ended each stream after its body reply: 2 replies, the last one routes.
    assert all(len(replies) == 2 and replies[1].request_body.response.clear_route_cache for replies in routed)
    metadata = [replies[1].dynamic_metadata for replies in routed]
    assert all(m.fields["edge_ext"].struct_value.fields["outcome"].string_value == "1" for m in metadata)
    batch = alpb.StreamAccessLogsMessage()
    batch.identifier.log_name = "edge_ext_outcomes"
    batch.http_logs.log_entry.extend(entry(m, 500, f"r{i}") for i, m in enumerate(metadata))

    async def once():
        yield batch

    await als_service_pb2_grpc.AccessLogServiceStub(worker).StreamAccessLogs(once())
    _, refused = await route(worker)  # refused at the body, where the model is known
    assert refused.immediate_response.status.code == 503
    assert json.loads(refused.immediate_response.body)["error"]["code"] == "provider_unavailable"
