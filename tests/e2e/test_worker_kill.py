"""A worker killed (SIGKILL) during concurrent traffic: no request that starts after the kill
fails, and the only requests that may fail are those a killed worker had already answered in
part (docs/envoy.md, "When the processor fails")."""

import json
import os
import signal
import threading
import time

import openai
import pytest

from tests.keys import PROVIDER_KEY
from tests.support import edge_config, start_edge, stop, wait_until, worker_pids

MSG = [{"role": "user", "content": "hello"}]
# Envoy's words for a processor stream reset after the worker's first reply: the one case no
# retry can save, since the worker's decisions on that stream died with it.
ANSWERED_IN_PART = "upstream_reset_after_response_started"


@pytest.fixture(scope="module")
def edge(tmp_path_factory, mock):
    tmp = tmp_path_factory.mktemp("kill")
    providers = [{"name": "p", "kind": "openai", "base_url": mock.url, "api_key_env": "E2E_KEY", "models": ["gpt-4o-mini"]}]
    running = start_edge(tmp, edge_config(tmp, providers, auth={"enabled": False}, cache={"enabled": False}),
                         env={"E2E_KEY": PROVIDER_KEY})
    yield running
    assert stop(running.proc) == 0, running.log()


def test_a_worker_killed_during_concurrent_traffic_fails_no_request_that_starts_after(edge):
    client = openai.OpenAI(base_url=f"{edge.url}/v1", api_key="any", max_retries=0)
    outcomes = []

    def traffic(index):
        for n in range(40):  # bounded
            started = time.monotonic()
            try:
                if n % 4 == index % 4:
                    list(client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True))
                else:
                    client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
                outcomes.append((started, None, None))
            except openai.APIStatusError as exc:
                outcomes.append((started, "status", exc.response.headers.get("x-request-id", "?")))
            except Exception as exc:  # a stream cut after its first bytes; counted, not raised in a thread
                outcomes.append((started, "broken", repr(exc)))

    threads = [threading.Thread(target=traffic, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    wait_until(lambda: len(outcomes) >= 20, what="traffic under way")
    os.kill(worker_pids(edge)[0], signal.SIGKILL)
    killed_at = time.monotonic()
    for t in threads:
        t.join(timeout=120)

    assert len(outcomes) == 160
    assert [o for o in outcomes if o[0] > killed_at and o[1]] == []
    in_flight = [o for o in outcomes if o[0] <= killed_at and o[1]]
    assert len(in_flight) <= 4  # at most the requests in flight at the kill
    lines = edge.log().splitlines()
    for _, kind, detail in in_flight:
        if kind == "status":  # answered by Envoy: its access log says why
            (line,) = [json.loads(l) for l in lines if detail in l and l.startswith("{")]
            assert ANSWERED_IN_PART in line["details"], line
    wait_until(lambda: "restarting" in edge.log(), what="the restart")
