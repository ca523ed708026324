"""A port the edge needs that something else holds: `edge-ext up` says so in one line and exits
before anything serves (no worker, no Envoy, no metrics endpoint)."""

import socket
import subprocess
import sys

import pytest
import yaml

from tests.support import ROOT, edge_config


@pytest.mark.parametrize("setting", ["listen.port", "metrics.port", "envoy.admin.port"])
def test_a_taken_port_stops_up_with_one_line_and_nothing_started(tmp_path, setting):
    config = edge_config(tmp_path, [{"name": "p", "kind": "openai", "base_url": "http://127.0.0.1:9", "models": ["m"]}])
    section, *_ = setting.split(".")
    port = config["envoy"]["admin"]["port"] if section == "envoy" else config[section]["port"]
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(config))
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        out = subprocess.run([sys.executable, "-m", "edge_ext.cli", "up", "--config", str(path)], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.splitlines() == [f"edge-ext: refusing to start: 127.0.0.1:{port} ({setting}) is already in use"]
    assert "started" not in out.stdout and "serving" not in out.stdout, out.stdout
    assert not list((tmp_path / "sockets").glob("worker-*.sock"))
