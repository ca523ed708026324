"""Client keys, tenants, validation, prompt PII, TLS and rate limiting, through real Envoy."""

import json
import ssl
import subprocess
import sys

import anthropic
import httpx2
import openai
import pytest

from edge_ext.auth import hash_key
from tests.keys import SECURITY_KEY_A as KEY_A
from tests.keys import SECURITY_KEY_B as KEY_B
from tests.keys import SECURITY_KEY_PII as KEY_PII
from tests.keys import SECURITY_PROVIDER_KEY, SECURITY_REDIS_KEY
from tests.support import edge_config, http, start_edge, start_mock, stop

MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def mock():
    started = start_mock("sec-mock", "--openai-key", SECURITY_PROVIDER_KEY)
    yield started
    stop(started.proc)


@pytest.fixture(autouse=True)
def clean(mock):
    mock.clear()


def keys():
    return {"keys": [
        {"id": "team-a", "sha256": hash_key(KEY_A), "tenant": "a"},
        {"id": "team-b", "sha256": hash_key(KEY_B), "tenant": "b", "models": ["gpt-4o-mini"]},
        {"id": "careful", "sha256": hash_key(KEY_PII), "tenant": "a", "pii": "block"},
    ], "pii": "redact"}


@pytest.fixture(scope="module")
def edge(tmp_path_factory, mock):
    tmp = tmp_path_factory.mktemp("sec")
    providers = [{"name": "oa", "kind": "openai", "base_url": mock.url, "api_key_env": "SEC_KEY",
                  "models": ["gpt-4o-mini", "gpt-4o"]}]
    running = start_edge(tmp, edge_config(tmp, providers, auth=keys()), env={"SEC_KEY": SECURITY_PROVIDER_KEY})
    yield running
    assert stop(running.proc) == 0, running.log()


def oai(edge, key):
    return openai.OpenAI(base_url=f"{edge.url}/v1", api_key=key, max_retries=0)


def test_valid_key_is_served_and_never_forwarded(edge, mock):
    assert oai(edge, KEY_A).chat.completions.create(model="gpt-4o", messages=MESSAGES).choices
    (seen,) = mock.requests()
    assert seen["headers"]["authorization"] == f"Bearer {SECURITY_PROVIDER_KEY}"
    assert KEY_A not in json.dumps(seen)


@pytest.mark.parametrize("headers, status, code", [
    ({}, 401, "missing_api_key"),
    ({"authorization": "Bearer sk-not-a-key"}, 401, "invalid_api_key"),
    ({"x-api-key": "sk-not-a-key"}, 401, "invalid_api_key"),
], ids=["missing", "unknown-bearer", "unknown-x-api-key"])
def test_bad_keys_are_401_in_openai_shape(edge, mock, headers, status, code):
    got, hdrs, body = http("POST", f"{edge.url}/v1/chat/completions",
                           json.dumps({"model": "gpt-4o", "messages": MESSAGES}).encode(), {"content-type": "application/json", **headers})
    assert got == status and json.loads(body)["error"]["code"] == code
    assert mock.requests() == []


def test_anthropic_clients_get_401_in_their_shape_and_x_api_key_works(edge, mock):
    with pytest.raises(anthropic.AuthenticationError) as info:
        anthropic.Anthropic(base_url=edge.url, api_key="sk-wrong", max_retries=0).messages.create(
            model="gpt-4o", max_tokens=10, messages=MESSAGES)
    assert info.value.body["type"] == "error" and info.value.body["error"]["type"] == "authentication_error"
    status, _, _ = http("POST", f"{edge.url}/v1/messages", json.dumps({"model": "gpt-4o", "max_tokens": 10, "messages": MESSAGES}).encode(),
                        {"content-type": "application/json", "x-api-key": KEY_A, "anthropic-version": "2023-06-01"})
    assert status == 200


def test_model_not_allowed_for_the_key_is_403(edge, mock):
    with pytest.raises(openai.PermissionDeniedError) as info:
        oai(edge, KEY_B).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert info.value.body["code"] == "model_not_allowed"
    assert oai(edge, KEY_B).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).choices
    assert len(mock.requests()) == 1


VALIDATION = [
    pytest.param({"temperature": 3}, "temperature", id="temperature-above-2"),
    pytest.param({"temperature": "hot"}, "temperature", id="temperature-not-a-number"),
    pytest.param({"top_p": 1.5}, "top_p", id="top_p-above-1"),
    pytest.param({"max_tokens": 0}, "max_tokens", id="max_tokens-zero"),
    pytest.param({"max_tokens": 1.5}, "max_tokens", id="max_tokens-not-an-integer"),
    pytest.param({"n": 0}, "n", id="n-zero"),
    pytest.param({"n": 1000}, "n", id="n-too-many"),
    pytest.param({"stream": "yes"}, "stream", id="stream-not-boolean"),
    pytest.param({"messages": []}, "messages", id="messages-empty"),
    pytest.param({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role", id="unknown-role"),
    pytest.param({"messages": ["hi"]}, "messages[0]", id="message-not-an-object"),
    pytest.param({"model": 42}, "model", id="model-not-a-string"),
]


@pytest.mark.parametrize("change, param", VALIDATION)
def test_invalid_fields_are_400_naming_the_field(edge, mock, change, param):
    with pytest.raises(openai.BadRequestError) as info:
        oai(edge, KEY_A).chat.completions.create(**{"model": "gpt-4o", "messages": MESSAGES, **change})
    assert info.value.body["param"] == param
    assert mock.requests() == []


@pytest.mark.parametrize("raw", [b"\xff\xfe{", b"[]", b'{"model": "gpt-4o", "messages": [', b"null"],
                         ids=["invalid-utf8", "array", "truncated", "null"])
def test_malformed_bodies_are_400_json(edge, mock, raw):
    status, hdrs, body = http("POST", f"{edge.url}/v1/chat/completions", raw,
                              {"content-type": "application/json", "authorization": f"Bearer {KEY_A}"})
    assert status == 400 and hdrs["content-type"] == "application/json"
    assert json.loads(body)["error"]["type"] == "invalid_request_error"


def test_unknown_extra_fields_pass_through_untouched(edge, mock):
    oai(edge, KEY_A).chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_body={"brand_new_param": {"x": [1, 2]}})
    (seen,) = mock.requests()
    assert seen["json"]["brand_new_param"] == {"x": [1, 2]}


def test_pii_is_redacted_before_the_provider_sees_it(edge, mock):
    text = "Mail jane.doe@example.com or call +1 415 555 0100 about card 4111 1111 1111 1111"
    oai(edge, KEY_A).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": text}])
    sent = mock.requests()[0]["json"]["messages"][0]["content"]
    assert "jane.doe@example.com" not in sent and "4111" not in sent
    assert "[EMAIL]" in sent and "[CARD]" in sent


def test_pii_block_names_the_type_never_the_value(edge, mock):
    with pytest.raises(openai.BadRequestError) as info:
        oai(edge, KEY_PII).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "I am jane.doe@example.com"}])
    assert info.value.body["code"] == "pii_detected" and "EMAIL" in info.value.body["message"]
    assert "jane.doe" not in json.dumps(info.value.body)
    assert mock.requests() == []


def test_tenants_never_share_cache_entries(edge, mock):
    body = dict(model="gpt-4o-mini", messages=[{"role": "user", "content": "tenant cache"}], temperature=0)
    oai(edge, KEY_A).chat.completions.create(**body)
    second = oai(edge, KEY_B).chat.completions.with_raw_response.create(**body)
    assert second.headers["x-edge-cache"] == "miss"
    assert len(mock.requests()) == 2


def test_hash_key_command():
    out = subprocess.run([sys.executable, "-m", "edge_ext.cli", "hash-key", "sk-abc"], capture_output=True, text=True)
    assert out.stdout.strip() == hash_key("sk-abc")
    new = subprocess.run([sys.executable, "-m", "edge_ext.cli", "hash-key", "--new"], capture_output=True, text=True).stdout
    key = new.split()[1]
    assert hash_key(key) in new


# -- TLS and rate limiting ---------------------------------------------------------------------

def test_tls_listener_with_a_verifying_sdk_client(tmp_path, mock):
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "server.crt"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    config = edge_config(tmp_path, [{"name": "oa", "kind": "openai", "base_url": mock.url, "api_key_env": "SEC_KEY",
                                     "models": ["gpt-4o"]}])
    config["listen"]["tls"] = {"cert_file": str(tmp_path / "server.crt"), "key_file": str(tmp_path / "server.key")}
    edge = start_edge(tmp_path, config, env={"SEC_KEY": SECURITY_PROVIDER_KEY}, wait_ready=False)
    try:
        context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        url = f"https://127.0.0.1:{edge.port}"
        from tests.support import wait_until

        def ready():
            try:
                return httpx2.get(f"{url}/health/ready", verify=context, timeout=1).status_code == 200
            except httpx2.HTTPError:
                return False

        wait_until(ready, timeout=30, what="TLS edge ready")
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0, http_client=httpx2.Client(verify=context))
        assert client.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices
        with pytest.raises(httpx2.ConnectError):  # a client that does not trust the CA refuses
            httpx2.get(f"{url}/health/ready", timeout=2)
    finally:
        assert stop(edge.proc) == 0, edge.log()


def test_provider_with_an_untrusted_certificate_is_refused(tmp_path):
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "bad.pem"))
    port_server = subprocess.Popen([sys.executable, "-c", f"""
import http.server, ssl
srv = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain({str(tmp_path / 'bad.pem')!r})
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True); srv.serve_forever()
"""], stdout=subprocess.PIPE, text=True)
    try:
        port = int(port_server.stdout.readline())
        config = edge_config(tmp_path, [{"name": "evil", "kind": "openai", "base_url": f"https://localhost:{port}", "models": ["m"]}])
        edge = start_edge(tmp_path, config)
        try:
            status, hdrs, body = http("POST", f"{edge.url}/v1/chat/completions", json.dumps({"model": "m", "messages": MESSAGES}).encode(),
                                      {"content-type": "application/json"})
            assert status == 503 and json.loads(body)["error"]["type"] == "api_error"
            stats = http("GET", f"{edge.admin}/stats?filter=provider_evil.ssl")[2].decode()
            assert "fail_verify" in stats and any(
                line.split(":")[1].strip() not in ("0", "") for line in stats.splitlines() if "fail_verify" in line), stats
        finally:
            assert stop(edge.proc) == 0, edge.log()
    finally:
        port_server.kill()


PROBES = [("GET", "/health/live"), ("HEAD", "/health/live"), ("GET", "/health/ready"), ("HEAD", "/health/ready"),
          ("GET", "/health")]


def test_local_rate_limit_refuses_clients_in_openai_shape_but_never_probes(tmp_path, mock):
    config = edge_config(tmp_path, [{"name": "oa", "kind": "openai", "base_url": mock.url, "api_key_env": "SEC_KEY",
                                     "models": ["gpt-4o"]}])
    config["listen"]["rate_limit"] = {"max_tokens": 2, "tokens_per_fill": 1, "fill_interval_s": 3600}
    # start_edge polls /health/ready until it answers: were probes counted, the bucket would be
    # short of a token (or empty) before the first client request.
    edge = start_edge(tmp_path, config, env={"SEC_KEY": SECURITY_PROVIDER_KEY})
    try:
        for method, path in PROBES * 5:
            assert http(method, f"{edge.url}{path}")[0] == 200, (method, path)
        client = oai(edge, "k")
        for _ in range(2):  # the whole bucket is the clients'
            assert client.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices
        with pytest.raises(openai.RateLimitError) as refused:
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert refused.value.body["type"] == "rate_limit_error"
        assert refused.value.response.headers["retry-after"] == "3600"
        # The bucket is empty: probes still tell the truth, and non-probe methods on the
        # health paths are client requests like any other.
        for method, path in PROBES:
            assert http(method, f"{edge.url}{path}")[0] == 200, (method, path)
        assert http("POST", f"{edge.url}/health/ready", b"{}", {"content-type": "application/json"})[0] == 429
        assert http("DELETE", f"{edge.url}/health/live")[0] == 429
        assert edge.envoy_stat("edge_rate_limit.http_local_rate_limit.rate_limited") == 3
    finally:
        assert stop(edge.proc) == 0, edge.log()


def test_max_tokens_above_the_models_limit_is_400(edge, mock):
    with pytest.raises(openai.BadRequestError) as info:
        oai(edge, KEY_A).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=10_000_000)
    assert info.value.body["param"] == "max_tokens"
    assert mock.requests() == []


def test_mutual_tls_between_envoy_and_the_processor(tmp_path, mock):
    import grpc
    import trustme
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    ca = trustme.CA()
    server = ca.issue_cert("edge-ext-processor")
    client = ca.issue_cert("envoy-edge")
    files = {}
    for name, blob in (("ca", ca.cert_pem), ("server_cert", server.cert_chain_pems[0]), ("server_key", server.private_key_pem),
                       ("client_cert", client.cert_chain_pems[0]), ("client_key", client.private_key_pem)):
        files[name] = str(tmp_path / f"{name}.pem")
        blob.write_to_path(files[name])
    config = edge_config(tmp_path, [{"name": "oa", "kind": "openai", "base_url": mock.url, "api_key_env": "SEC_KEY",
                                     "models": ["gpt-4o"]}], processor={"workers": 1})
    config["processor"]["mtls"] = {"ca_file": files["ca"], "server_cert_file": files["server_cert"],
                                   "server_key_file": files["server_key"], "client_cert_file": files["client_cert"],
                                   "client_key_file": files["client_key"]}
    edge = start_edge(tmp_path, config, env={"SEC_KEY": SECURITY_PROVIDER_KEY})
    try:
        assert oai(edge, "k").chat.completions.create(model="gpt-4o", messages=MESSAGES).choices
        # Anyone else on the socket, without a client certificate from the CA, is refused.
        address = config["processor"]["address"] + "/worker-0.sock"
        with grpc.insecure_channel(address) as channel:
            with pytest.raises(grpc.RpcError):
                health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
    finally:
        assert stop(edge.proc) == 0, edge.log()


def test_client_keys_from_redis(tmp_path, mock, redis_server):
    import redis as redis_py

    r = redis_py.Redis(port=redis_server.port)
    r.hset("edge-ext:key:" + hash_key(SECURITY_REDIS_KEY), mapping={"id": "redis-team", "tenant": "r", "models": "gpt-4o"})
    config = edge_config(tmp_path, [{"name": "oa", "kind": "openai", "base_url": mock.url, "api_key_env": "SEC_KEY",
                                     "models": ["gpt-4o", "gpt-4o-mini"]}],
                         auth={**keys(), "redis_keys": True}, redis={"url": redis_server.url})
    edge = start_edge(tmp_path, config, env={"SEC_KEY": SECURITY_PROVIDER_KEY})
    try:
        assert oai(edge, SECURITY_REDIS_KEY).chat.completions.create(model="gpt-4o", messages=MESSAGES).choices
        with pytest.raises(openai.PermissionDeniedError):
            oai(edge, SECURITY_REDIS_KEY).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        with pytest.raises(openai.AuthenticationError):
            oai(edge, "sk-nowhere").chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert oai(edge, KEY_A).chat.completions.create(model="gpt-4o", messages=MESSAGES).choices  # config keys too
        redis_server.stop()
        # A key only Redis knows cannot be checked now: refused with 503, never let through.
        with pytest.raises(openai.APIStatusError) as info:
            oai(edge, "sk-unseen-while-down").chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert info.value.status_code == 503
    finally:
        assert stop(edge.proc) == 0, edge.log()
