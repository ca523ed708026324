import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edge_ext.config import ConfigInvalid, load_config, parse_config
from edge_ext.envoy_config.render import render, render_yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = ROOT / "envoy" / "example-config.yaml"
EXAMPLE_BOOTSTRAP = ROOT / "envoy" / "example.yaml"

HTTPS = """\
listen: {host: 0.0.0.0, port: 8443}
processor: {address: "127.0.0.1:50051", workers: 3, allow_plaintext_tcp: true}
providers:
  - name: openai
    kind: openai
    base_url: https://api.openai.com
    api_key_env: OPENAI_API_KEY
    models: [gpt-4o-mini]
  - name: local
    kind: openai_compatible
    base_url: http://10.1.2.3:8000
    models: [llama]
"""


def envoy_binary():
    beside = Path(sys.executable).parent / "envoy"
    return str(beside) if beside.exists() else shutil.which("envoy")


def validate(tmp_path, text):
    path = tmp_path / "bootstrap.yaml"
    path.write_text(text)
    out = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(path), "--disable-hot-restart", "-l", "error"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


RATE_LIMITED = HTTPS.replace("port: 8443}", "port: 8443, rate_limit: {max_tokens: 5}}")


@pytest.mark.parametrize("text", [EXAMPLE_CONFIG.read_text(), HTTPS, RATE_LIMITED],
                         ids=["minimal-example", "https-and-tcp-workers", "rate-limited-with-probes-exempt"])
def test_rendered_bootstrap_passes_envoy_validate(tmp_path, text):
    validate(tmp_path, render_yaml(parse_config(text)))


def test_https_provider_gets_tls_with_sni_and_ca_checks():
    bootstrap = render(parse_config(HTTPS))
    clusters = {c["name"]: c for c in bootstrap["static_resources"]["clusters"]}
    tls = clusters["provider_openai"]["transport_socket"]["typed_config"]
    assert tls["sni"] == "api.openai.com"
    assert tls["common_tls_context"]["validation_context"]["trusted_ca"]["filename"].endswith(".crt")
    assert clusters["provider_openai"]["type"] == "LOGICAL_DNS"
    assert "transport_socket" not in clusters["provider_local"]
    assert clusters["provider_local"]["type"] == "STATIC"


def test_one_processor_endpoint_per_worker():
    bootstrap = render(parse_config(HTTPS))
    processor = bootstrap["static_resources"]["clusters"][0]
    ports = [e["endpoint"]["address"]["socket_address"]["port_value"] for e in processor["load_assignment"]["endpoints"][0]["lb_endpoints"]]
    assert ports == [50051, 50052, 50053]


def test_every_stream_a_killed_worker_leaves_may_retry_at_once():
    processor = render(parse_config(HTTPS))["static_resources"]["clusters"][0]
    (limits,) = processor["circuit_breakers"]["thresholds"]
    # Envoy's default is 3 retries in flight per cluster: a worker dying with 16 unanswered
    # streams would fail 13 of them (upstream_rq_retry_overflow).
    assert limits["max_retries"] >= limits["max_requests"]


def test_ext_proc_filter_fails_closed_with_configured_status():
    bootstrap = render(parse_config(HTTPS))
    hcm = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    ext_proc = hcm["http_filters"][0]["typed_config"]
    assert ext_proc["failure_mode_allow"] is False
    assert ext_proc["status_on_error"] == {"code": 503}
    assert ext_proc["processing_mode"]["request_header_mode"] == "SEND"


def test_committed_example_is_current():
    expected = render_yaml(load_config(EXAMPLE_CONFIG))
    assert EXAMPLE_BOOTSTRAP.read_text() == expected, "run: edge-ext envoy-config envoy/example-config.yaml -o envoy/example.yaml"
    assert yaml.safe_load(expected)["static_resources"]["listeners"]


FAILOVER = """\
routing: {max_attempts: 3}
providers:
  - {name: alpha, kind: openai, base_url: "https://api.openai.com", models: [m], api_key_env: A}
  - {name: beta, kind: anthropic, base_url: "https://api.anthropic.com", model_map: {m: claude-x}, api_key_env: B}
  - {name: gamma, kind: openai_compatible, base_url: "http://10.0.0.9:8000", models: [m, other]}
"""


def test_failover_clusters_list_providers_in_attempt_order_and_pass_envoy_validate(tmp_path):
    text = render_yaml(parse_config(FAILOVER))
    validate(tmp_path, text)
    clusters = {c["name"]: c for c in yaml.safe_load(text)["static_resources"]["clusters"]}
    failover = {name: c for name, c in clusters.items() if name.startswith("failover_")}
    assert len(failover) == 3 * (2 + 2)  # each first choice, then one or both of the others, in any order
    members = failover["failover_beta_alpha_gamma"]["cluster_type"]["typed_config"]["clusters"]
    assert members == ["provider_beta", "provider_alpha", "provider_gamma"]
    options = failover["failover_alpha_beta"]["typed_extension_protocol_options"]
    filters = options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]["http_filters"]
    assert [f["name"] for f in filters] == ["envoy.filters.http.match_delegate", "envoy.filters.http.upstream_codec"]
    for name in ("provider_alpha", "provider_beta", "provider_gamma"):
        endpoint = clusters[name]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
        assert endpoint["metadata"]["filter_metadata"]["edge_ext"]["provider"] == name.removeprefix("provider_")


def test_no_failover_clusters_without_a_second_provider_or_attempt(tmp_path):
    single = render(parse_config(FAILOVER.replace("max_attempts: 3", "max_attempts: 1")))
    assert not [c for c in single["static_resources"]["clusters"] if c["name"].startswith("failover_")]


def _hcm(text):
    return render(parse_config(text))["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]


def _listening(listen: str) -> str:
    """HTTPS with its listen section replaced."""
    return f"listen: {{{listen}}}\n" + HTTPS.split("\n", 1)[1]


@pytest.mark.parametrize("listen, expected", [
    ("", {"request_headers_timeout": "10.0s", "request_timeout": "120.0s", "stream_idle_timeout": "300.0s"}),
    ("request_headers_timeout_s: 2, request_timeout_s: 40, stream_idle_timeout_s: 90",
     {"request_headers_timeout": "2.0s", "request_timeout": "40.0s", "stream_idle_timeout": "90.0s"}),
], ids=["bounded-defaults", "configured"])
def test_slow_clients_are_bounded_by_listener_timeouts(listen, expected):
    hcm = _hcm(_listening(listen))
    assert {key: hcm[key] for key in expected} == expected


def test_a_request_timeout_shorter_than_a_cache_follower_waits_is_refused():
    with pytest.raises(ConfigInvalid, match="request_timeout_s must exceed 26.5s"):
        parse_config(_listening("request_timeout_s: 20"))
    parse_config(_listening("request_timeout_s: 20") + "cache: {single_flight_wait_s: 5}\n")


def test_the_access_log_path_has_no_query_string():
    # The stdout log; the other one (the outcome channel) sends no path at all.
    logs = _hcm(HTTPS)["access_log"]
    assert [entry["name"] for entry in logs] == ["envoy.access_loggers.stdout", "envoy.access_loggers.http_grpc"]
    log = logs[0]
    fields = log["typed_config"]["log_format"]["json_format"]
    # NQ: without the query, where clients put keys (?api_key=...).
    assert fields["path"] == "%PATH(NQ:ORIG_OR_PATH)%"
    assert not [v for v in fields.values() if "QUERY" in v or v in ("%REQ(:PATH)%", "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%")]


def test_health_routes_send_no_body_to_the_processor_and_are_never_routed_to_a_provider():
    vhost = render(parse_config(HTTPS))["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"]["route_config"]["virtual_hosts"][0]
    routes = {r["name"]: r for r in vhost["routes"]}
    assert [r["name"] for r in vhost["routes"]][-1] == "providers"  # health routes match first
    live, ready = routes["health_live"], routes["health_ready"]
    assert live["typed_per_filter_config"]["envoy.filters.http.ext_proc"]["disabled"] is True
    assert live["match"]["headers"][0]["string_match"]["safe_regex"]["regex"] == "GET|HEAD"
    mode = ready["typed_per_filter_config"]["envoy.filters.http.ext_proc"]["overrides"]["processing_mode"]
    assert mode["request_header_mode"] == "SEND" and mode["request_body_mode"] == "NONE"
    for route in (live, ready):
        assert "direct_response" in route and "route" not in route


def _routes(text):
    return render(parse_config(text))["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"]["route_config"]["virtual_hosts"][0]["routes"]


def test_probes_skip_the_clients_token_bucket_and_other_methods_on_health_paths_do_not():
    routes = {r["name"]: r for r in _routes(RATE_LIMITED)}
    assert list(routes) == ["health_live", "health_ready_probe", "health_ready", "providers"]
    for name in ("health_live", "health_ready_probe"):
        assert routes[name]["typed_per_filter_config"]["envoy.filters.http.local_ratelimit"]["disabled"] is True
        assert routes[name]["match"]["headers"][0]["string_match"]["safe_regex"]["regex"] == "GET|HEAD"
    assert routes["health_ready_probe"]["match"]["safe_regex"] == routes["health_ready"]["match"]["safe_regex"]
    for name in ("health_ready", "providers"):
        assert "envoy.filters.http.local_ratelimit" not in routes[name].get("typed_per_filter_config", {})


def test_without_a_rate_limit_the_health_routes_are_as_in_the_template():
    assert [r["name"] for r in _routes(HTTPS)] == ["health_live", "health_ready", "providers"]


def test_envoy_half_closes_processor_streams_instead_of_resetting_them():
    # Each ext_proc stream Envoy resets leaks native memory in grpc.aio (docs/envoy.md, "Messages
    # per request"); this flag makes Envoy wait for the worker's status instead.
    layers = render(parse_config(HTTPS))["layered_runtime"]["layers"]
    static = [layer["static_layer"] for layer in layers if "static_layer" in layer]
    assert static and static[0]["envoy.reloadable_features.ext_proc_graceful_grpc_close"] is True


FAILOVER_HTTPS = HTTPS.replace("models: [llama]", "models: [llama, gpt-4o-mini]") + "routing: {models: {gpt-4o-mini: round_robin}}\n"


def grpc_services(node) -> list[dict]:
    """Every ext_proc filter's grpc_service in the bootstrap (the listener's and the attempt filters')."""
    if isinstance(node, list):
        return [g for item in node for g in grpc_services(item)]
    if not isinstance(node, dict):
        return []
    found = [node["grpc_service"]] if str(node.get("@type", "")).endswith("ext_proc.v3.ExternalProcessor") else []
    return found + [g for value in node.values() for g in grpc_services(value)]


def test_every_ext_proc_stream_skips_envoys_headers_and_retries_its_start(tmp_path):
    text = render_yaml(parse_config(FAILOVER_HTTPS))
    services = grpc_services(yaml.safe_load(text))
    assert len(services) >= 2, "the listener's filter and at least one failover cluster's attempt filter"
    for service in services:
        assert service["envoy_grpc"] == {"cluster_name": "edge_ext_processor", "skip_envoy_headers": True}
        assert "refused-stream" in service["retry_policy"]["retry_on"]
    validate(tmp_path, text)


@pytest.mark.parametrize(("concurrency", "tail"), [(0, []), (4, ["--concurrency", "4"])],
                         ids=["envoy-picks-its-threads", "threads-set"])
def test_envoy_command_line_flushes_the_access_log_every_second(concurrency, tail):
    from edge_ext.envoy_config.render import envoy_args

    argv = envoy_args("/etc/envoy/envoy.yaml", 30, concurrency)
    assert argv[argv.index("--file-flush-interval-msec") + 1] == "1000"  # Envoy's default is 10 s
    assert argv[argv.index("--drain-time-s") + 1] == "30"
    assert argv[len(argv) - len(tail):] == tail
