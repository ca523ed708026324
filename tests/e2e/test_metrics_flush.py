"""Worker metrics reach the endpoint as snapshots: written every flush interval and when a worker
stops, kept when it exits, at most one interval lost when it is killed."""

import json
import os
import signal

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.keys import PROVIDER_KEY
from tests.support import edge_config, http, scrape, start_edge, stop, wait_until, worker_pids

# Longer than this module takes: only a worker's start and its stop write its values here.
FLUSH_S = 60


@pytest.fixture(scope="module")
def edge(tmp_path_factory, mock):
    tmp = tmp_path_factory.mktemp("flush")
    providers = [{"name": "p", "kind": "openai", "base_url": mock.url, "api_key_env": "E2E_OPENAI_KEY", "models": ["m"]}]
    config = edge_config(tmp, providers, processor={"workers": 1})
    config["metrics"]["flush_interval_s"] = FLUSH_S
    running = start_edge(tmp, config, env={"E2E_OPENAI_KEY": PROVIDER_KEY})
    yield running
    assert stop(running.proc) == 0, running.log()


def routed(edge) -> float:
    for family in text_string_to_metric_families(scrape(edge)):
        for sample in family.samples:
            if sample.name == "edge_ext_requests_total" and sample.labels == {"outcome": "routed", "provider": "p"}:
                return sample.value
    return 0.0


def ask(edge) -> None:
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "count me"}]}).encode()
    status, _, payload = http("POST", f"{edge.url}/v1/chat/completions", body, {"content-type": "application/json"})
    assert status == 200, payload


def replace_worker(edge, sig: int) -> None:
    (pid,) = worker_pids(edge)
    os.kill(pid, sig)
    wait_until(lambda: worker_pids(edge) not in ([pid], []), timeout=15, what="worker restarted")
    wait_until(lambda: http("GET", f"{edge.url}/health/ready", timeout=1)[0] == 200, timeout=30, what="edge ready again")


def test_a_stopping_worker_writes_its_values_and_an_exited_worker_keeps_them(edge):
    ask(edge)
    assert routed(edge) == 0  # counted in the worker, not written yet: the interval is longer than this test

    replace_worker(edge, signal.SIGTERM)  # drains, writes its last values, exits; the supervisor keeps them
    wait_until(lambda: routed(edge) == 1, timeout=10, what="the stopped worker's values")

    ask(edge)
    replace_worker(edge, signal.SIGKILL)  # no last write: what it counted since its last one is lost
    assert routed(edge) == 1  # and the earlier worker's count does not go down with it

    ask(edge)
    replace_worker(edge, signal.SIGTERM)
    wait_until(lambda: routed(edge) == 2, timeout=10, what="the third worker's values added")
