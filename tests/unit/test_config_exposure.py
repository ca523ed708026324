"""What a config may leave exposed: plaintext provider keys are refused, OTLP's transport is an
explicit choice, and check-config warns about everything else an operator may mean."""

import pytest

from edge_ext.cli import main
from edge_ext.config import ConfigInvalid, parse_config
from edge_ext.config.exposure import exposure_warnings
from edge_ext.config.models import Telemetry

MINIMAL = 'providers: [{name: a, kind: openai, base_url: "https://api.openai.com", api_key_env: K, models: [m]}]\n'


def provider(url, extra=""):
    return f'providers: [{{name: a, kind: openai, base_url: "{url}", models: [m]{extra}}}]\n'


@pytest.mark.parametrize("url, extra, refused", [
    ("http://10.0.0.5:8000", ", api_key_env: K", True),
    ("http://llm.internal", ", api_key_file: /run/key", True),
    ("http://10.0.0.5:8000", ", api_key_env: K, allow_insecure_http: true", False),
    ("http://10.0.0.5:8000", "", False),
    ("http://127.0.0.1:18080", ", api_key_env: K", False),
    ("http://localhost:18080", ", api_key_env: K", False),
    ("http://[::1]:18080", ", api_key_env: K", False),
    ("https://api.openai.com", ", api_key_env: K", False),
], ids=["http-remote-with-env-key", "http-remote-with-key-file", "explicitly-allowed", "http-remote-without-key",
        "loopback-ipv4", "localhost", "loopback-ipv6", "https"])
def test_a_provider_key_never_crosses_a_network_in_plaintext_unless_allowed(url, extra, refused):
    if refused:
        with pytest.raises(ConfigInvalid, match="use https:// or set allow_insecure_http: true"):
            parse_config(provider(url, extra))
    else:
        parse_config(provider(url, extra))


@pytest.mark.parametrize("endpoint, insecure, plaintext", [
    ("https://collector:4317", None, False),
    ("http://collector:4317", True, True),
    ("http://127.0.0.1:4317", None, True),
], ids=["https-is-tls", "remote-http-said-insecure", "loopback-http"])
def test_otlp_transport_follows_the_scheme(endpoint, insecure, plaintext):
    assert Telemetry(otlp_endpoint=endpoint, insecure=insecure).plaintext is plaintext


@pytest.mark.parametrize("endpoint, insecure, message", [
    ("collector:4317", None, "without a scheme"),
    ("collector:4317", True, "without a scheme"),
    ("http://collector:4317", None, "set telemetry.insecure: true"),
    ("http://collector:4317", False, "contradicts an http://"),
    ("https://collector:4317", True, "contradicts an https://"),
], ids=["no-scheme", "no-scheme-even-if-insecure", "remote-http-not-said", "http-said-secure", "https-said-insecure"])
def test_ambiguous_or_unacknowledged_otlp_transport_is_refused(endpoint, insecure, message):
    with pytest.raises(ValueError, match=message):
        Telemetry(otlp_endpoint=endpoint, insecure=insecure)


WARNINGS = [
    pytest.param("listen: {host: 0.0.0.0}\nauth: {enabled: false}\n", ["without listen.tls", "auth has no client keys"],
                 id="open-listener-without-tls-or-keys"),
    pytest.param("listen: {host: 0.0.0.0, tls: {cert_file: c, key_file: k}}\nauth: {keys: [{id: a, sha256: '" + "a" * 64 + "'}]}\n",
                 [], id="open-listener-with-tls-and-keys"),
    pytest.param("metrics: {host: 0.0.0.0}\n", ["per-tenant spend"], id="metrics-open"),
    pytest.param("envoy: {admin: {host: 0.0.0.0, port: 9901}}\n", ["admin API"], id="envoy-admin-open"),
    pytest.param("envoy: {admin: {host: 0.0.0.0}}\n", [], id="envoy-admin-on-its-unix-socket"),
    pytest.param("telemetry: {otlp_endpoint: 'http://collector:4317', insecure: true}\n", ["spans"], id="otlp-plaintext-remote"),
    pytest.param("telemetry: {otlp_endpoint: 'http://127.0.0.1:4317'}\n", [], id="otlp-plaintext-loopback"),
    pytest.param("listen: {stream_idle_timeout_s: 60}\n", ["cut off"], id="provider-timeout-over-stream-idle"),
]


@pytest.mark.parametrize("section, expected", WARNINGS)
def test_check_config_warns_about_what_the_config_exposes(section, expected):
    found = exposure_warnings(parse_config(section + MINIMAL))
    assert len(found) == len(expected) and all(e in w for e, w in zip(expected, found)), found


def test_a_plaintext_key_allowed_explicitly_is_still_a_warning():
    found = exposure_warnings(parse_config(provider("http://10.0.0.5:8000", ", api_key_env: K, allow_insecure_http: true")))
    assert ["unencrypted (allow_insecure_http)" in w for w in found] == [True]


def test_the_default_config_has_nothing_to_warn_about():
    assert exposure_warnings(parse_config(MINIMAL)) == []


def test_check_config_prints_warnings_and_still_says_ok(tmp_path, capsys):
    path = tmp_path / "edge.yaml"
    path.write_text("listen: {host: 0.0.0.0}\n" + MINIMAL)
    assert main(["check-config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "OK (1 providers" in out and "2 warnings" in out
    assert err.count("edge-ext: warning: ") == 2


def test_check_config_refuses_a_plaintext_key(tmp_path, capsys):
    path = tmp_path / "edge.yaml"
    path.write_text(provider("http://10.0.0.5:8000", ", api_key_env: K"))
    with pytest.raises(SystemExit) as exit_info:
        main(["check-config", str(path)])
    assert exit_info.value.code == 2
    assert "allow_insecure_http" in capsys.readouterr().err
