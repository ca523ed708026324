"""In-process gRPC: a stream Envoy closes in the middle of a streamed answer (the client hung up)
is charged what it delivered, in the worker's disk ledger."""

import asyncio
import json
import time
from decimal import Decimal

import grpc
import pytest

from edge_ext.auth import hash_key
from edge_ext.config import parse_config
from edge_ext.cost.budget import period_key
from edge_ext.cost.ledgers import DiskLedger
from edge_ext.extproc.pb import ext_proc_pb2 as pb
from edge_ext.extproc.pb import service_pb2_grpc
from edge_ext.extproc.server import build_server

KEY = "sk-spend-grpc-0001"


@pytest.fixture
async def worker(tmp_path):
    config = parse_config(f"""
processor: {{address: "unix:{tmp_path}/sockets", workers: 1}}
providers:
  - {{name: oa, kind: openai, base_url: "http://127.0.0.1:18080", models: [gpt-4o-mini]}}
auth:
  keys: [{{id: acme-key, sha256: "{hash_key(KEY)}", tenant: acme, tokens_per_minute: 100000}}]
budgets:
  limits: [{{scope: tenant, id: acme, period: daily, limit_usd: 5}}]
  local_dir: "{tmp_path}/ledger"
""")
    address = config.processor.worker_address(0)
    server, _ = await build_server(config, 0, address)
    channel = grpc.aio.insecure_channel(address)
    yield channel, DiskLedger(str(tmp_path / "ledger"))
    await channel.close()
    await server.stop(0)  # closes the worker's services too


def headers(pairs: dict, end_of_stream: bool = False) -> pb.HttpHeaders:
    hm = pb.HeaderMap()
    for key, value in pairs.items():
        hm.headers.add(key=key, raw_value=value.encode())
    return pb.HttpHeaders(headers=hm, end_of_stream=end_of_stream)


def cut_stream(events: int) -> list[pb.ProcessingRequest]:
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}], "stream": True})
    chunk = b'data: {"choices":[{"index":0,"delta":{"content":"lorem ipsum "}}]}\n\n'
    return [pb.ProcessingRequest(request_headers=headers({":method": "POST", ":path": "/v1/chat/completions",
                                                         "authorization": f"Bearer {KEY}"})),
            pb.ProcessingRequest(request_body=pb.HttpBody(body=body.encode(), end_of_stream=True)),
            pb.ProcessingRequest(response_headers=headers({":status": "200", "content-type": "text/event-stream"})),
            *(pb.ProcessingRequest(response_body=pb.HttpBody(body=chunk)) for _ in range(events))]


async def test_a_stream_closed_mid_answer_is_charged_an_estimate(worker):
    channel, ledger = worker
    stub = service_pb2_grpc.ExternalProcessorStub(channel)
    # The messages end without the body's end_of_stream: Envoy closing the stream mid-answer.
    replies = [reply async for reply in stub.Process(iter(cut_stream(200)), timeout=5)]
    assert len(replies) == 203
    day = period_key("daily", time.time())
    for _ in range(50):  # bounded: the settlement is written in the background
        totals = await ledger.totals("tenant:acme", day, time.time())
        if totals.spent:
            break
        await asyncio.sleep(0.05)
    # 200 events of "lorem ipsum ": 2400 characters, 600 output tokens estimated.
    assert totals.held == 0 and totals.spent == totals.estimated >= Decimal(600) * Decimal("0.60") / 1_000_000
