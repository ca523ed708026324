import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edge_ext.config import load_config, parse_config
from edge_ext.envoy_config.render import render, render_yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = ROOT / "envoy" / "example-config.yaml"
EXAMPLE_BOOTSTRAP = ROOT / "envoy" / "example.yaml"

HTTPS = """\
listen: {host: 0.0.0.0, port: 8443}
processor: {address: "127.0.0.1:50051", workers: 3}
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


@pytest.mark.parametrize("text", [EXAMPLE_CONFIG.read_text(), HTTPS], ids=["minimal-example", "https-and-tcp-workers"])
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
