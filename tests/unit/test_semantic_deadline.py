"""A semantic lookup that runs late asks Envoy for more time before the message's deadline; one
on time costs no extra message. The servicer driven directly, with the semantic policy's working
fakes (tests/unit/test_semantic_policy.py) and an embedder as slow as a saturated worker."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from edge_ext.config import parse_config
from edge_ext.extproc.pb import ext_proc_pb2 as pb
from edge_ext.extproc.servicer import ExternalProcessor
from edge_ext.metrics import WorkerMetrics
from tests.unit.test_semantic_policy import CONFIG, MockVectors, build


async def exchange(servicer: ExternalProcessor, body: bytes) -> list[tuple[float, pb.ProcessingResponse]]:
    headers = pb.HeaderMap()
    for key, value in {":method": "POST", ":path": "/v1/chat/completions", "authorization": "Bearer key-alice"}.items():
        headers.headers.add(key=key, raw_value=value.encode())

    async def requests():
        yield pb.ProcessingRequest(request_headers=pb.HttpHeaders(headers=headers))
        yield pb.ProcessingRequest(request_body=pb.HttpBody(body=body, end_of_stream=True))

    return [(time.monotonic(), response) async for response in servicer.Process(requests(), None)]


@pytest.mark.parametrize("delay_s, extended", [
    pytest.param(0.0, False, id="on-time-no-extra-message"),
    pytest.param(0.45, True, id="late-extends-before-the-500-ms-deadline"),
])
async def test_a_late_semantic_lookup_extends_envoys_deadline_first(monkeypatch, delay_s, extended):
    embed = MockVectors.embed

    embedded: list[float] = []

    async def slow(self, text):
        await asyncio.sleep(delay_s)
        embedded.append(time.monotonic())
        return await embed(self, text)

    monkeypatch.setattr(MockVectors, "embed", slow)
    driver, embedder, _ = build(parse_config(CONFIG))
    servicer = ExternalProcessor(driver, WorkerMetrics(), time.monotonic)
    body = json.dumps({"model": "gpt-4o-mini", "temperature": 0, "messages": [{"role": "user", "content": "capital of France?"}]})
    replies = await exchange(servicer, body.encode())
    kinds = [r.WhichOneof("response") or "override" for _, r in replies]
    assert embedder.calls == 1
    if extended:
        assert kinds == ["request_headers", "override", "request_body"]
        # Sent while the lookup still ran (at 350 ms of the 500), for the embedding's timeout
        # and a second more.
        sent_at, override = replies[1]
        assert sent_at < embedded[0] and override.override_message_timeout.ToMilliseconds() == 1300
    else:
        assert kinds == ["request_headers", "request_body"]
