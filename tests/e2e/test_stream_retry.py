"""Clients that leave: their processor streams are neither replayed on another worker nor
counted against a healthy worker.

The processor streams' retry policy (docs/envoy.md, "A worker killed") has a per-try timeout,
which starts when Envoy half-closes a stream: after the last reply it needs, or when the client
leaves. A worker ends the stream once it reads that, after the work in hand; a timeout it could
miss then would replay a stream not yet answered on another worker, for a client already gone,
and have outlier detection eject the worker for seconds.
"""

import json
import socket
import struct
import threading
import time

import openai
import pytest

from tests.keys import PROVIDER_KEY
from tests.support import edge_config, start_edge, stop, wait_until

MESSAGES = [{"role": "user", "content": "a follower whose client leaves"}]
STATS = ("upstream_rq_per_try_timeout", "upstream_rq_retry", "outlier_detection.ejections_enforced_total")


@pytest.fixture(scope="module")
def edge(tmp_path_factory, mock):
    tmp = tmp_path_factory.mktemp("leave")
    providers = [{"name": "p", "kind": "openai", "base_url": mock.url, "api_key_env": "E2E_KEY", "models": ["gpt-4o-mini"]}]
    running = start_edge(tmp, edge_config(tmp, providers, auth={"enabled": False}), env={"E2E_KEY": PROVIDER_KEY})
    yield running
    assert stop(running.proc) == 0, running.log()


def stats(edge) -> dict[str, int]:
    return {name: edge.envoy_stat(f"cluster.edge_ext_processor.{name}") for name in STATS}


def ask(edge, timeout_s: float):
    client = openai.OpenAI(base_url=f"{edge.url}/v1", api_key="any", max_retries=0, timeout=timeout_s)
    return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, temperature=0)


def test_a_client_leaving_a_waiting_stream_replays_nothing_and_ejects_no_worker(edge, mock):
    mock.clear()
    before = stats(edge)
    mock.faults(latency_ms=1500, count=1)  # the leader's answer is slow: the followers wait for it
    leader = threading.Thread(target=ask, args=(edge, 10.0))
    leader.start()
    wait_until(lambda: any(r["path"].startswith("/v1/") for r in mock.requests()), what="the leader upstream")
    for _ in range(4):  # followers of the same cacheable request, each gone before the answer
        with pytest.raises(openai.APITimeoutError):
            ask(edge, 0.2)
    leader.join(timeout=10)
    time.sleep(1.0)  # past any follower's wait: a replay or an ejection would have happened by now
    assert stats(edge) == before, "a stream half-closed by a departing client was timed out or replayed"
    assert len([r for r in mock.requests() if r["path"].startswith("/v1/")]) == 1


def test_clients_leaving_together_get_no_stream_replayed_or_worker_ejected(edge, mock):
    """Sixteen clients in the middle of their requests drop their connections at once, again and
    again (as a load generator's clients do when it stops): the workers see a burst of cancelled
    streams, and Envoy half-closes the streams of the requests answered meanwhile. Ending those
    a few milliseconds late is no failure, and no reason to replay a stream or eject a worker."""
    client = openai.OpenAI(base_url=f"{edge.url}/v1", api_key="any", max_retries=0, timeout=10)
    messages = [{"role": "user", "content": "clients that leave together"}]

    def hit() -> str:
        return client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", temperature=0, messages=messages).headers["x-edge-cache"]

    hit()
    wait_until(lambda: hit().startswith("hit"), what="stored")
    body = json.dumps({"model": "gpt-4o-mini", "temperature": 0, "messages": messages}).encode()
    request = (f"POST /v1/chat/completions HTTP/1.1\r\nhost: edge\r\ncontent-type: application/json\r\n"
               f"content-length: {len(body)}\r\n\r\n").encode() + body
    before = stats(edge)
    for _ in range(20):  # bounded
        connections = [socket.create_connection(("127.0.0.1", edge.port), timeout=5) for _ in range(16)]
        for connection in connections:
            connection.sendall(request * 4)  # pipelined: some answered, some in flight at the close
        time.sleep(0.003)
        for connection in connections:
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # a reset, at once
            connection.close()
    assert hit().startswith("hit")
    time.sleep(0.5)
    assert stats(edge) == before
