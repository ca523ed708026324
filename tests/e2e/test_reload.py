"""Hot reload through real Envoy: traffic (a long stream among it) across a reload that adds a
provider, removes a client key and changes the listener; a bad config refused while the old one
serves; the admin Reload call behind the token."""

import os
import signal
import subprocess
import sys
import threading

import grpc
import openai
import pytest
import yaml

from edge_ext.admin.client import AdminClient
from edge_ext.admin.pb import admin_pb2 as pb
from edge_ext.auth import hash_key
from edge_ext.config import load_config
from edge_ext.reload import version_of
from tests.keys import PROVIDER_KEY
from tests.support import edge_config, scrape, start_edge, start_mock, stop, wait_until

KEEP, DROP = "sk-client-keep-0123456789", "sk-client-drop-0123456789"
MSG = [{"role": "user", "content": "hello"}]


def keys(*names):
    return {"keys": [{"id": name.split("-")[2], "sha256": hash_key(name)} for name in names]}


@pytest.fixture(scope="module")
def second_mock():
    provider = start_mock("second-mock", "--openai-key", PROVIDER_KEY)
    yield provider
    stop(provider.proc)


@pytest.fixture(scope="module")
def edge(tmp_path_factory, mock):
    tmp = tmp_path_factory.mktemp("reload")
    providers = [{"name": "first", "kind": "openai", "base_url": mock.url, "api_key_env": "E2E_KEY", "models": ["gpt-4o-mini"]}]
    running = start_edge(tmp, edge_config(tmp, providers, auth=keys(KEEP, DROP), cache={"enabled": False}),
                         env={"E2E_KEY": PROVIDER_KEY})
    yield running
    assert stop(running.proc) == 0, running.log()


def client(edge, key=KEEP):
    return openai.OpenAI(base_url=f"{edge.url}/v1", api_key=key, max_retries=0)


def rewrite(edge, change) -> str:
    config = yaml.safe_load(edge.config_path.read_text())
    change(config)
    edge.config_path.write_text(yaml.safe_dump(config))
    return version_of(edge.config_path.read_bytes())


def reloads(edge, result: str) -> float:
    line = next(l for l in scrape(edge).splitlines() if l.startswith(f'edge_ext_config_reloads_total{{result="{result}"}}'))
    return float(line.split()[-1])


def live_version(edge) -> str:
    return next(l for l in scrape(edge).splitlines() if l.startswith("edge_ext_config_info")).split('"')[1]


def test_traffic_and_a_long_stream_cross_a_reload_with_no_failure(edge, mock, second_mock):
    before = live_version(edge)
    mock.faults(chunk_delay_ms=300, headers={"x-mock-output-words": "60"})  # the next stream lasts ~18 s
    failures, done, long_stream = [], threading.Event(), {}

    def stream():
        try:
            chunks = list(client(edge).chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True))
            long_stream["text"] = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        except Exception as exc:  # counted, not raised in a thread
            failures.append(f"stream: {exc!r}")

    def plain():
        for _ in range(400):  # bounded; stops once the reload is over
            if done.is_set():
                return
            try:
                client(edge).chat.completions.create(model="gpt-4o-mini", messages=MSG)
            except Exception as exc:
                failures.append(repr(exc))

    threads = [threading.Thread(target=stream)]
    threads[0].start()
    wait_until(lambda: mock.requests(), what="the long stream reached the provider")
    threads += [threading.Thread(target=plain) for _ in range(2)]
    for t in threads[1:]:
        t.start()

    def change(config):
        config["providers"].append({"name": "second", "kind": "openai", "base_url": second_mock.url,
                                    "api_key_env": "E2E_KEY", "models": ["gpt-4o"], "timeout_s": 300})
        config["auth"] = keys(KEEP)
        config["listen"]["rate_limit"] = {"max_tokens": 100000, "tokens_per_fill": 100000}  # a listener change

    version = rewrite(edge, change)
    out = subprocess.run([sys.executable, "-m", "edge_ext.cli", "reload", "--config", str(edge.config_path)],
                         capture_output=True, text=True, timeout=300)
    done.set()
    for t in threads:
        t.join(timeout=120)
    assert out.returncode == 0, out.stderr + edge.log()
    assert version in out.stdout and version != before
    assert failures == [], failures
    assert len(long_stream["text"].split()) == 60
    assert live_version(edge) == version and reloads(edge, "applied") == 1

    # The provider added by the reload takes traffic; the key it removed is refused.
    raw = client(edge).chat.completions.with_raw_response.create(model="gpt-4o", messages=MSG)
    assert raw.headers["x-edge-provider"] == "second" and second_mock.requests()
    with pytest.raises(openai.AuthenticationError):
        client(edge, DROP).chat.completions.create(model="gpt-4o-mini", messages=MSG)


def test_a_bad_config_is_refused_with_its_line_and_the_old_one_serves(edge):
    version, refused = live_version(edge), reloads(edge, "refused")
    good = edge.config_path.read_text()
    edge.config_path.write_text(good + "routing:\n  strategy: weighted\n  no_such_key: 1\n")
    try:
        out = subprocess.run([sys.executable, "-m", "edge_ext.cli", "reload", "--config", str(edge.config_path)],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 2 and "routing.no_such_key: unknown key" in out.stderr and "line " in out.stderr
        os.kill(edge.proc.pid, signal.SIGHUP)  # the edge itself refuses it too, and says why in its log
        wait_until(lambda: reloads(edge, "refused") == refused + 1, what="the refusal counted")
    finally:
        edge.config_path.write_text(good)
    assert "reload refused" in edge.log()
    assert any("routing.no_such_key: unknown key" in l and "line " in l for l in edge.log().splitlines())
    assert live_version(edge) == version
    client(edge).chat.completions.create(model="gpt-4o-mini", messages=MSG)


def test_a_restart_only_change_is_refused(edge):
    good = edge.config_path.read_text()
    rewrite(edge, lambda config: config["processor"].update(workers=3))
    try:
        with AdminClient(load_config(edge.config_path), address=load_config(edge.config_path).processor.edge_admin_address) as admin:
            reply = admin.Reload(pb.ReloadRequest(), timeout=60)
    finally:
        edge.config_path.write_text(good)
    assert not reply.applied and reply.version == live_version(edge)
    assert any("processor.workers" in p and "needs a restart" in p for p in reply.problems)


def test_the_reload_call_needs_the_admin_token(edge):
    config = load_config(edge.config_path)
    with AdminClient(config, token="not-the-token-at-all", address=config.processor.edge_admin_address) as admin:
        with pytest.raises(grpc.RpcError) as info:
            admin.Reload(pb.ReloadRequest())
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with AdminClient(config, 0) as worker:  # a worker's socket sends the caller to the edge's
        with pytest.raises(grpc.RpcError) as info:
            worker.Reload(pb.ReloadRequest())
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "edge.sock" in info.value.details()
