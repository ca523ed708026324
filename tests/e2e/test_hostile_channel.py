"""Hostile peers of the processor, through a real edge: who may open the ext_proc socket, the
admin API and the instance's state.

Finding: any peer that reached a worker socket could pose as Envoy's failover filter and be
handed a provider key, or force breakers and read spend; every instance on a machine shared one
world-reachable directory (sockets, cache, spend).
"""

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile

import grpc
import openai
import pytest

from edge_ext.admin.pb import admin_pb2, admin_pb2_grpc
from edge_ext.extproc.pb import ext_proc_pb2 as pb
from edge_ext.extproc.pb import service_pb2_grpc
from tests.hostile import ANTHROPIC_PROVIDER_KEY, KEY_ACME, MESSAGES, OPENAI_PROVIDER_KEY, hostile_config, provider_env
from tests.support import start_edge, start_mock, stop, wait_until


@pytest.fixture(scope="module")
def mock():
    started = start_mock("channel-mock", "--openai-key", OPENAI_PROVIDER_KEY, "--anthropic-key", ANTHROPIC_PROVIDER_KEY)
    yield started
    stop(started.proc)


@pytest.fixture(scope="module")
def edge(tmp_path_factory, mock):
    tmp = tmp_path_factory.mktemp("channel")
    config = hostile_config(tmp, mock, mock)
    # gpt-4o-mini is served by both providers: its requests get a failover plan.
    config["providers"][1]["model_map"] = {"gpt-4o-mini": "claude-haiku-4-5"}
    running = start_edge(tmp, config, env=provider_env())
    yield running
    assert stop(running.proc) == 0, running.log()


def forged_attempt(provider: str, route: dict[str, str]) -> list[pb.ProcessingRequest]:
    """What Envoy's failover filter sends for a retry, as a peer without Envoy would write it."""
    headers = pb.HeaderMap()
    for key, value in {":method": "POST", ":path": "/v1/chat/completions", "content-type": "application/json"}.items():
        headers.headers.add(key=key, raw_value=value.encode())
    first = pb.ProcessingRequest(request_headers=pb.HttpHeaders(headers=headers))
    host = f'filter_metadata {{ key: "edge_ext" value {{ fields {{ key: "provider" value {{ string_value: "{provider}" }} }} }} }} '
    first.attributes["envoy.filters.http.ext_proc"].fields["xds.upstream_host_metadata"].string_value = host
    first.metadata_context.filter_metadata["edge_ext"].update(route)
    body = json.dumps({"model": "gpt-4o-mini", "messages": MESSAGES}).encode()
    return [first, pb.ProcessingRequest(request_body=pb.HttpBody(body=body, end_of_stream=True))]


async def exchange(address: str, messages: list[pb.ProcessingRequest]) -> list[pb.ProcessingResponse]:
    """As Envoy sends them: each message after the reply to the one before, none after an
    immediate response (the worker has ended the stream: a message written then fails on the
    client's side)."""
    async with grpc.aio.insecure_channel(address) as channel:
        call = service_pb2_grpc.ExternalProcessorStub(channel).Process(timeout=5)
        replies = []
        for message in messages:
            await call.write(message)
            reply = await call.read()
            if reply is grpc.aio.EOF:
                break
            replies.append(reply)
            if reply.HasField("immediate_response"):
                break
        await call.done_writing()
        while (reply := await call.read()) is not grpc.aio.EOF:
            replies.append(reply)
        return replies


@pytest.mark.parametrize("route", [
    {"provider": "oa", "model": "gpt-4o-mini", "api": "openai"},
    {"provider": "oa", "model": "gpt-4o-mini", "api": "openai", "plan": "oa,an", "grant": "ab" * 32},
], ids=["no-grant", "forged-grant"])
async def test_a_peer_posing_as_the_failover_filter_gets_no_provider_key(edge, route):
    replies = await exchange(f"unix:{edge.socket_dir}/worker-0.sock", forged_attempt("an", route))
    text = b"".join(r.SerializeToString() for r in replies)
    assert ANTHROPIC_PROVIDER_KEY.encode() not in text and OPENAI_PROVIDER_KEY.encode() not in text
    assert replies[0].HasField("immediate_response")
    assert replies[0].immediate_response.details == "edge_ext_failover_refused"


def test_a_real_failover_still_gets_its_credentials(edge, mock):
    mock.faults(status=500, count=1)
    client = openai.OpenAI(base_url=f"{edge.url}/v1", api_key=KEY_ACME, max_retries=0)
    reply = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    assert reply.headers["x-edge-attempts"] == "2" and reply.headers["x-edge-provider"] == "an"
    second = mock.requests()[-1]
    assert second["headers"]["x-api-key"] == ANTHROPIC_PROVIDER_KEY


def test_admin_calls_never_reach_the_ext_proc_socket(edge):
    with grpc.insecure_channel(f"unix:{edge.socket_dir}/worker-0.sock") as channel:
        with pytest.raises(grpc.RpcError) as info:
            admin_pb2_grpc.AdminStub(channel).SetBreaker(admin_pb2.SetBreakerRequest(provider="oa", state="open"), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


@pytest.mark.parametrize("metadata", [(), (("authorization", "Bearer guessed-token-000000000000"),)], ids=["no-token", "wrong-token"])
def test_the_admin_socket_refuses_callers_without_the_token(edge, metadata):
    with grpc.insecure_channel(f"unix:{edge.socket_dir}/admin/worker-0.sock") as channel:
        stub = admin_pb2_grpc.AdminStub(channel)
        for call, request in ((stub.SetBreaker, admin_pb2.SetBreakerRequest(provider="oa", state="open")),
                              (stub.GetSpend, admin_pb2.GetSpendRequest(scope="tenant", id="acme"))):
            with pytest.raises(grpc.RpcError) as info:
                call(request, timeout=5, metadata=metadata)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with edge.admin_client() as admin:  # the operator, holding the token
        assert admin.GetStatus(admin_pb2.GetStatusRequest()).providers


def test_the_admin_command_uses_the_instance_socket_and_token(edge):
    run = [sys.executable, "-m", "edge_ext.cli", "admin", "--config", str(edge.config_path)]
    status = subprocess.run([*run, "status"], capture_output=True, text=True, timeout=30)
    assert status.returncode == 0, status.stderr
    assert [p["name"] for p in json.loads(status.stdout)["providers"]] == ["oa", "an"]
    spend = subprocess.run([*run, "spend", "--scope", "tenant", "--id", "acme"], capture_output=True, text=True, timeout=30)
    assert spend.returncode == 0 and json.loads(spend.stdout)["budgets"][0]["id"] == "acme"
    missing = subprocess.run([*run, "breaker", "nobody", "open"], capture_output=True, text=True, timeout=30)
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr


def test_sockets_state_and_token_are_closed_to_other_users(edge):
    directory = edge.socket_dir
    for path in (directory, directory / "admin"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700 and path.stat().st_uid == os.geteuid()
    assert stat.S_IMODE((directory / "admin.token").stat().st_mode) == 0o600


@pytest.mark.parametrize("prepare, says", [
    (lambda d: (d.mkdir(), d.chmod(0o777)), "mode 0777"),
    (lambda d: (d.mkdir(mode=0o700), os.chown(d, 4242, 4242)), "owned by uid 4242"),
], ids=["world-writable", "another-users"])
def test_an_edge_refuses_a_socket_directory_someone_else_prepared(tmp_path, mock, prepare, says):
    if os.geteuid() != 0 and "uid" in says:
        pytest.skip("giving a directory to another user needs root")
    config = hostile_config(tmp_path, mock)
    prepare(tmp_path / "sockets")
    edge = start_edge(tmp_path, config, env=provider_env(), wait_ready=False)
    try:
        assert edge.proc.wait(timeout=30) == 2
    finally:
        stop(edge.proc)
    log = edge.log()
    assert "refusing to start" in log and says in log
    assert not list((tmp_path / "sockets").glob("*.sock"))


def test_envoy_admin_listens_only_for_the_instance_user_by_default(tmp_path, mock):
    from edge_ext import envoy_admin

    config = hostile_config(tmp_path, mock)
    del config["envoy"]  # the default: no admin port
    edge = start_edge(tmp_path, config, env=provider_env())
    try:
        sock = edge.socket_dir / "envoy-admin.sock"
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600 and stat.S_ISSOCK(sock.stat().st_mode)
        assert envoy_admin.stat(f"unix:{sock}", "server\\.live") == 1
    finally:
        assert stop(edge.proc) == 0, edge.log()  # drained through that socket
    assert "envoy drain skipped" not in edge.log()


def ask(edge, content: str):
    client = openai.OpenAI(base_url=f"{edge.url}/v1", api_key=KEY_ACME, max_retries=0)
    return client.chat.completions.with_raw_response.create(model="gpt-4o-mini", temperature=0,
                                                        messages=[{"role": "user", "content": content}])


def spent(edge) -> float:
    with edge.admin_client() as admin:
        reply = admin.GetSpend(admin_pb2.GetSpendRequest(scope="tenant", id="acme"))
    return sum(float(b.spent_usd) for b in reply.budgets)


def test_each_config_keeps_its_own_cache_and_spend_across_restarts(tmp_path, mock, monkeypatch):
    """Two edges started from two config files share nothing; one edge restarted keeps its own."""
    # Short: pytest's own directories would leave too little of a Unix socket path's 107 bytes.
    state_home = tempfile.mkdtemp(prefix="ee-")
    monkeypatch.setenv("XDG_STATE_HOME", state_home)  # the edges' and this test's admin client's
    env = provider_env()

    def start(name: str):
        config = hostile_config(tmp_path / name, mock)
        del config["processor"]["address"]  # the default: a directory of this config's own
        return start_edge(tmp_path / name, config, env=env)

    first = start("one")
    try:
        assert ask(first, "remember me").headers["x-edge-cache"] == "miss"
        wait_until(lambda: ask(first, "remember me").headers["x-edge-cache"].startswith("hit"), what="stored")
        wait_until(lambda: spent(first) > 0, what="spend recorded")
        spent_by_first = spent(first)
    finally:
        assert stop(first.proc) == 0, first.log()
    second = start("two")
    try:
        assert spent(second) == 0  # another config: another instance, another ledger
        assert ask(second, "remember me").headers["x-edge-cache"] == "miss"
    finally:
        assert stop(second.proc) == 0, second.log()
    again = start("one")
    try:
        assert spent(again) >= spent_by_first  # the same config: the same instance
        assert ask(again, "remember me").headers["x-edge-cache"] == "hit-l2"
    finally:
        assert stop(again.proc) == 0, again.log()
        shutil.rmtree(state_home, ignore_errors=True)


def test_a_socket_path_too_long_for_unix_is_one_clear_line(tmp_path, mock):
    config = hostile_config(tmp_path, mock)
    config["processor"]["address"] = "unix:" + str(tmp_path / ("d" * 90))
    edge = start_edge(tmp_path, config, env=provider_env(), wait_ready=False)
    try:
        assert edge.proc.wait(timeout=30) == 2
    finally:
        stop(edge.proc)
    assert "Unix sockets allow 107" in edge.log() and "Traceback" not in edge.log()
